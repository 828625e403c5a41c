package conference

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

// udpExchange sends one datagram to mcc and returns the first final
// answer, or "" when none comes within wait.
func udpExchange(t *testing.T, addr, m string, wait time.Duration) string {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	m = strings.ReplaceAll(m, "127.0.0.1:5999", conn.LocalAddr().String())
	if _, err := conn.Write([]byte(m)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 8192)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return ""
		}
		if s := string(buf[:n]); !strings.HasPrefix(s, "SIP/2.0 100") {
			return s
		}
	}
}

// TestNetworkCannotStopMCC sends, over real UDP, the datagrams that used
// to kill the daemon (a BYE or ACK without To, a 2xx without From, To or
// Call-ID) and the ones sipgo used to accept against RFC 3261; mcc
// answers or drops each as the RFC says, and still answers OPTIONS.
func TestNetworkCannotStopMCC(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	addr := e.c.Addrs()[0].Addr
	for _, tc := range []struct {
		name, msg, want string
	}{
		{"BYE without To", msg("BYE sip:lecture@"+addr+" SIP/2.0", without(base("BYE"), "To"), ""), "SIP/2.0 400"},
		{"ACK without To", msg("ACK sip:lecture@"+addr+" SIP/2.0", without(base("ACK"), "To"), ""), ""},
		{"2xx without From, To, Call-ID", msg("SIP/2.0 200 OK", []string{"Via: SIP/2.0/UDP " + addr + ";branch=z9hG4bKx", "CSeq: 1 INVITE", "Content-Length: 0"}, ""), ""},
		{"no Call-ID", msg("OPTIONS sip:lecture@"+addr+" SIP/2.0", without(base("OPTIONS"), "Call-ID"), ""), "SIP/2.0 400"},
		{"CSeq method differs", msg("OPTIONS sip:lecture@"+addr+" SIP/2.0", with(without(base("OPTIONS"), "CSeq"), "CSeq: 1 BYE"), ""), "SIP/2.0 400"},
		{"SIP/7.0", msg("OPTIONS sip:lecture@"+addr+" SIP/7.0", base("OPTIONS"), ""), "SIP/2.0 505"},
		{"NUL in a header", msg("OPTIONS sip:lecture@"+addr+" SIP/2.0", with(base("OPTIONS"), "Subject: \x00"), ""), "SIP/2.0 400"},
		{"Require", msg("OPTIONS sip:lecture@"+addr+" SIP/2.0", with(base("OPTIONS"), "Require: nosuchext"), ""), "SIP/2.0 420"},
		{"in-dialog OPTIONS for no dialog", msg("OPTIONS sip:lecture@"+addr+" SIP/2.0", with(without(base("OPTIONS"), "To"), "To: <sip:lecture@127.0.0.1>;tag=nosuch"), ""), "SIP/2.0 481"},
		{"INVITE with XML", msg("INVITE sip:lecture@"+addr+" SIP/2.0", with(base("INVITE"), "Content-Type: application/xml", "Content-Length: 4"), "<a/>"), "SIP/2.0 415"},
	} {
		got := udpExchange(t, addr, tc.msg, 700*time.Millisecond)
		if tc.want == "" && got != "" {
			t.Errorf("%s: answered %q, want a drop", tc.name, firstLine(got))
		}
		if tc.want != "" && !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: answered %q, want %s", tc.name, firstLine(got), tc.want)
		}
	}
	p := e.peer(t, "udp")
	res := p.do(t, sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", User: "lecture", Host: "127.0.0.1", Port: e.c.Addrs()[0].port()}))
	if res.StatusCode != 200 {
		t.Fatalf("OPTIONS afterwards: %d", res.StatusCode)
	}
	if m := e.c.Metrics(); m.Rejected[Rejection{"panic", true}]+m.Rejected[Rejection{"panic", false}] != 0 {
		t.Fatalf("panics recovered: %v", m.Rejected)
	}
}

// TestTCPIdleSlowAndKeepAlive: over TCP, a keep-alive ping gets its pong,
// an idle connection is closed after TCPIdle, and one whose message
// trickles in is closed TCPMessage after its first byte.
func TestTCPIdleSlowAndKeepAlive(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) {
		c.Limits.TCPIdle, c.Limits.TCPMessage = 400*time.Millisecond, 400*time.Millisecond
	}, "tcp")
	addr := e.c.Addrs()[0].Addr

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("\r\n\r\n"))
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	pong := make([]byte, 2)
	if _, err := io.ReadFull(conn, pong); err != nil || string(pong) != "\r\n" {
		t.Fatalf("keep-alive: %q, %v", pong, err)
	}
	start := time.Now()
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("an idle connection carried data")
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("an idle connection stayed open %v", d)
	}

	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	closed := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		slow.SetReadDeadline(time.Now().Add(5 * time.Second))
		slow.Read(make([]byte, 1))
		closed <- time.Since(start)
	}()
	line := "OPTIONS sip:lecture@" + addr + " SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKslow\r\n"
	for i := 0; i < len(line); i++ { // a byte every 50 ms keeps no idle timer from firing
		if _, err := slow.Write([]byte{line[i]}); err != nil {
			break
		}
		select {
		case d := <-closed:
			if d > 1500*time.Millisecond {
				t.Fatalf("a trickling message held the connection %v", d)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("a trickling message was never cut off")
}

// TestTCPConnectionLimits: past TCPConnsPerSource, a new connection is
// closed at once; closing one makes room again, and SIP over TCP works.
func TestTCPConnectionLimits(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.Limits.TCPConnsPerSource = 3 }, "tcp")
	addr := e.c.Addrs()[0].Addr
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	eventually(t, "three connections counted", func() bool { return e.c.Metrics().TCPConns == 3 })
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a fourth connection from one source: %v, want it closed", err)
	}
	conns[0].Close()
	eventually(t, "the closed connection uncounted", func() bool { return e.c.Metrics().TCPConns == 2 })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opt := msg("OPTIONS sip:lecture@"+addr+" SIP/2.0", with(base("OPTIONS"), "Content-Length: 0"), "")
	opt = strings.Replace(opt, "SIP/2.0/UDP 127.0.0.1:5999", "SIP/2.0/TCP "+c.LocalAddr().String(), 1)
	c.Write([]byte(opt))
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	status, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "SIP/2.0 200") {
		t.Fatalf("OPTIONS over TCP after the limit: %q, %v", status, err)
	}
}

// flakyListener fails its first Accepts with EMFILE, as a process out of
// file descriptors does.
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// TestAcceptSurvivesEMFILE: sipgo's accept loop returns on the first
// error; the guarded listener waits and accepts again.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	g := newGuard(Limits{}, handledMethods)
	gl := &guardedListener{Listener: &flakyListener{Listener: ln, fails: 5}, g: g, transport: "TCP", log: slog.New(slog.DiscardHandler)}
	got := make(chan error, 1)
	go func() {
		c, err := gl.Accept()
		if err == nil {
			c.Close()
		}
		got <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Accept after five EMFILEs: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept never came back after EMFILE")
	}
	ln.Close()
	if _, err := gl.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a closed listener: %v", err)
	}
}

// TestDialInNeverACKed: a caller that never ACKs leaves nothing behind
// (no participant, no dialog) and gets no BYE; past PendingPerSource its
// next calls get 503 until the first ones time out.
func TestDialInNeverACKed(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.Limits.PendingPerSource, c.ackWait = 2, 600*time.Millisecond }, "udp")
	addr := e.c.Addrs()[0].Addr
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raddr, _ := net.ResolveUDPAddr("udp", addr)
	invite := func(i int) {
		m := msg("INVITE sip:lecture@"+addr+" SIP/2.0", with(without(base("INVITE"), "Via"),
			"Via: SIP/2.0/UDP "+conn.LocalAddr().String()+";branch=z9hG4bKnoack"+itoa(i),
			"Contact: <sip:elsewhere@127.0.0.1:9>", "Content-Length: 0"), "")
		conn.WriteTo([]byte(m), raddr)
	}
	statuses, seen := map[string]int{}, map[string]bool{}
	byes := 0
	for i := range 3 {
		invite(i)
		time.Sleep(50 * time.Millisecond)
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 8192)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			break
		}
		line := firstLine(string(buf[:n]))
		if strings.HasPrefix(line, "BYE") {
			byes++
		}
		if res, err := sip.ParseMessage(buf[:n]); err == nil && !seen[res.CallID().Value()+line] {
			seen[res.CallID().Value()+line] = true // retransmissions count once
			statuses[line]++
		}
	}
	if statuses["SIP/2.0 503 Service Unavailable"] != 1 {
		t.Errorf("the third unACKed dial-in from one source: %v, want one 503", statuses)
	}
	if byes != 0 {
		t.Errorf("%d BYEs to callers that never ACKed", byes)
	}
	eventually(t, "the unACKed dial-ins forgotten", func() bool {
		ps, _ := e.c.Participants(e.name)
		return len(ps) == 0 && e.c.Metrics().Pending == 0
	})
	e.c.mu.Lock()
	n := len(e.c.dialogs) + len(e.c.byCallID)
	e.c.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d dialog entries kept for calls that never completed", n)
	}
}

// TestEndedParticipantsBounded: a conference keeps only the newest
// EndedKept participants that ended.
func TestEndedParticipantsBounded(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.Limits.EndedKept = 5 }, "udp")
	for range 20 {
		// Nobody listens on port 9: each invitation fails.
		if _, err := e.c.Invite(e.name, "sip:nobody@127.0.0.1:9;transport=tcp"); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the invitations end", func() bool {
		ps, _ := e.c.Participants(e.name)
		for _, p := range ps {
			if p.State < Declined {
				return false
			}
		}
		return true
	})
	e.c.Invite(e.name, "sip:nobody@127.0.0.1:9;transport=tcp")
	ps, _ := e.c.Participants(e.name)
	if len(ps) > 6 {
		t.Fatalf("%d participants kept, want at most 5 ended and the new one", len(ps))
	}
}

// TestBadResponseOnOwnConnection: a participant mcc invites over TCP, on
// a connection mcc opened (which the guard does not screen), answers
// with a 200 that has no To, From or Call-ID: mcc drops it and counts it,
// and goes on serving. (sipgo's transaction has taken the 200 as final by
// then, so that invitation ends only when the transaction does, 64·T1
// later: the peer spoils its own call, nobody else's.)
func TestBadResponseOnOwnConnection(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp", "tcp")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(conn)
		var via, cseq string
		for {
			line, err := r.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
			if n, v, ok := strings.Cut(strings.TrimRight(line, "\r\n"), ":"); ok {
				switch strings.ToLower(strings.TrimSpace(n)) {
				case "via":
					via = strings.TrimSpace(v)
				case "cseq":
					cseq = strings.TrimSpace(v)
				}
			}
		}
		conn.Write([]byte("SIP/2.0 200 OK\r\nVia: " + via + "\r\nCSeq: " + cseq + "\r\nContent-Length: 0\r\n\r\n"))
		io.Copy(io.Discard, r)
	}()
	if _, err := e.c.Invite(e.name, "sip:bob@"+ln.Addr().String()+";transport=tcp"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the broken 200 counted", func() bool { return e.c.Metrics().Rejected[Rejection{"response", false}] == 1 })
	p := e.peer(t, "udp")
	ps, err := e.c.Invite(e.name, p.uri())
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	if m := e.c.Metrics(); m.Rejected[Rejection{"panic", false}] != 0 {
		t.Fatalf("panics: %v", m.Rejected)
	}
}

// TestDeleteWhileInviting: invitations that are still out when their
// conference is deleted neither join it nor leave a saved dialog behind,
// and a new conference of the same name starts empty.
func TestDeleteWhileInviting(t *testing.T) {
	store := newMemStore()
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.Store = store }, "udp")
	p := e.peer(t, "udp")
	p.answerWith(func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session) {
		time.Sleep(200 * time.Millisecond) // the answer comes after the Delete
		return 200, sdp.Answer(offer, sdp.Origin{Username: "p", SessionID: 1, Version: 1, Host: "p.example"})
	})
	// Invitations go out before, during and after the Delete.
	var wg sync.WaitGroup
	stop := time.Now().Add(150 * time.Millisecond)
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				e.c.Invite(e.name, p.uri())
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if err := e.c.Delete(ctxT(t), e.name); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if _, err := e.c.Invite(e.name, p.uri()); err == nil {
		t.Fatal("invited into a deleted conference")
	}
	time.Sleep(time.Second) // the 200s come, and are answered with BYE
	if n := store.dialogs(); n != 0 {
		t.Fatalf("%d dialogs saved for a deleted conference", n)
	}
	s, err := e.m.Create(sdp.SessionSpec{Name: "again", Pool: "ipv4-local", Media: []sdp.MediaSpec{{Kind: "audio"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Create(e.name, s.Origin.SessionID, Access{}); err != nil {
		t.Fatal(err)
	}
	if ps, _ := e.c.Participants(e.name); len(ps) != 0 {
		t.Fatalf("the new conference of the same name has %d participants", len(ps))
	}
}

// rawUDP is a socket on loopback for hand-written SIP.
func rawUDP(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	a, _ := net.ResolveUDPAddr("udp", addr)
	c, err := net.ListenUDP("udp", a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readSIP returns the next message on c whose first line has prefix, or
// nil after wait.
func readSIP(c *net.UDPConn, prefix string, wait time.Duration) sip.Message {
	buf := make([]byte, 65536)
	c.SetReadDeadline(time.Now().Add(wait))
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return nil
		}
		if strings.HasPrefix(string(buf[:n]), prefix) {
			m, _ := sip.ParseMessage(append([]byte(nil), buf[:n]...))
			return m
		}
	}
}

// TestMergedRequest: an INVITE with the Call-ID, From tag and CSeq of a
// dial-in in progress but another branch gets 482 (RFC 3261 §8.2.2.2).
func TestMergedRequest(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	addr := e.c.Addrs()[0].Addr
	c := rawUDP(t, "127.0.0.1:0")
	to, _ := net.ResolveUDPAddr("udp", addr)
	hdr := func(branch string) string {
		return msg("INVITE sip:lecture@"+addr+" SIP/2.0", []string{
			"Via: SIP/2.0/UDP " + c.LocalAddr().String() + ";branch=z9hG4bK" + branch, "Max-Forwards: 70",
			"To: <sip:lecture@" + addr + ">", "From: <sip:a@127.0.0.1>;tag=merged", "Call-ID: merged-1",
			"CSeq: 1 INVITE", "Contact: <sip:a@" + c.LocalAddr().String() + ">", "Content-Length: 0"}, "")
	}
	c.WriteTo([]byte(hdr("one")), to)
	if readSIP(c, "SIP/2.0 200", 2*time.Second) == nil {
		t.Fatal("no 200 to the first INVITE")
	}
	c.WriteTo([]byte(hdr("two")), to)
	if readSIP(c, "SIP/2.0 482", 2*time.Second) == nil {
		t.Fatal("the merged INVITE got no 482")
	}
}

// TestDialInTargetIsSource: a caller that reaches mcc with no proxy is
// sent mcc's requests at the address they came from, not at the host its
// Contact names (a stranger could name a third party; a caller behind NAT
// names an address nobody reaches).
func TestDialInTargetIsSource(t *testing.T) {
	for _, via := range []string{"Contact", "Record-Route"} {
		t.Run(via, func(t *testing.T) {
			e := newEnv(t, "127.0.0.1", "udp")
			addr := e.c.Addrs()[0].Addr
			caller := rawUDP(t, "127.0.0.1:0")
			victim := rawUDP(t, "127.0.0.9:0")
			to, _ := net.ResolveUDPAddr("udp", addr)
			contact := "Contact: <sip:v@" + victim.LocalAddr().String() + ">"
			var extra []string
			if via == "Record-Route" {
				contact = "Contact: <sip:a@" + caller.LocalAddr().String() + ">"
				extra = []string{"Record-Route: <sip:" + victim.LocalAddr().String() + ";lr>"}
			}
			unicast := "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
			inv := msg("INVITE sip:lecture@"+addr+" SIP/2.0", append([]string{
				"Via: SIP/2.0/UDP " + caller.LocalAddr().String() + ";branch=z9hG4bKfix", "Max-Forwards: 70",
				"To: <sip:lecture@" + addr + ">", "From: <sip:a@127.0.0.1>;tag=fix", "Call-ID: fix-1", "CSeq: 1 INVITE",
				contact, "Content-Type: application/sdp", "Content-Length: " + strconv.Itoa(len(unicast))}, extra...), unicast)
			caller.WriteTo([]byte(inv), to)
			ok := readSIP(caller, "SIP/2.0 200", 2*time.Second)
			if ok == nil {
				t.Fatal("no 200")
			}
			res := ok.(*sip.Response)
			toTag, _ := tagOf(res.To().Params)
			ack := msg("ACK sip:lecture@"+addr+" SIP/2.0", []string{
				"Via: SIP/2.0/UDP " + caller.LocalAddr().String() + ";branch=z9hG4bKfixack", "Max-Forwards: 70",
				"To: <sip:lecture@" + addr + ">;tag=" + toTag, "From: <sip:a@127.0.0.1>;tag=fix", "Call-ID: fix-1",
				"CSeq: 1 ACK", "Content-Length: 0"}, "")
			caller.WriteTo([]byte(ack), to)
			// The unicast offer's streams were rejected: mcc re-INVITEs with
			// the session's, to the caller's source.
			if readSIP(caller, "INVITE ", 3*time.Second) == nil {
				t.Fatal("the re-INVITE did not come to the caller's source")
			}
			if m := readSIP(victim, "", 500*time.Millisecond); m != nil {
				t.Fatalf("the host the %s named got %s", via, m.String())
			}
		})
	}
}

// TestJoinedPerSource: past JoinedPerSource, a dial-in from that source
// gets 486; one ending makes room.
func TestJoinedPerSource(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.Limits.JoinedPerSource = 2 }, "udp")
	var calls []*call
	for i := range 3 {
		cl := e.peer(t, "udp").dialIn(t, e.c.URI(e.name), nil, echo)
		want := 200
		if i == 2 {
			want = 486
		}
		if cl.res.StatusCode != want {
			t.Fatalf("dial-in %d: %d, want %d", i, cl.res.StatusCode, want)
		}
		calls = append(calls, cl)
	}
	eventually(t, "two joined", func() bool {
		ps, _ := e.c.Participants(e.name)
		n := 0
		for _, p := range ps {
			if p.State == Joined {
				n++
			}
		}
		return n == 2
	})
	bye := calls[0].p.inDialog(calls[0], sip.BYE, 2, nil)
	if res := calls[0].p.do(t, bye); res.StatusCode != 200 {
		t.Fatalf("BYE: %d", res.StatusCode)
	}
	if cl := e.peer(t, "udp").dialIn(t, e.c.URI(e.name), nil, echo); cl.res.StatusCode != 200 {
		t.Fatalf("a dial-in after one left: %d", cl.res.StatusCode)
	}
}

// TestKeepAlivesDoNotHoldAConnection: a TCP connection that carries only
// CRLF keep-alives, never a message, is closed after TCPIdle.
func TestKeepAlivesDoNotHoldAConnection(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.Limits.TCPIdle = 400 * time.Millisecond }, "tcp")
	conn, err := net.Dial("tcp", e.c.Addrs()[0].Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	go func() {
		for range 40 {
			if _, err := conn.Write([]byte("\r\n\r\n")); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	conn.SetReadDeadline(time.Now().Add(4 * time.Second))
	r := bufio.NewReader(conn)
	for {
		if _, err := r.ReadByte(); err != nil {
			break // pongs until mcc closes
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("keep-alives held the connection %v", d)
	}
}

// TestNoDialBackToVia: a stranger sends an OPTIONS over TCP naming a third
// party in its Via and drops the connection; mcc does not connect there
// to answer (RFC 3261 §18.2.1: it answers the received address).
func TestNoDialBackToVia(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "tcp")
	victim, err := net.Listen("tcp", "127.0.0.9:0")
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	dialed := make(chan struct{}, 1)
	go func() {
		if c, err := victim.Accept(); err == nil {
			c.Close()
			dialed <- struct{}{}
		}
	}()
	conn, err := net.Dial("tcp", e.c.Addrs()[0].Addr)
	if err != nil {
		t.Fatal(err)
	}
	var burst strings.Builder // many, so some are answered after the reset
	for i := range 50 {
		burst.WriteString(msg("OPTIONS sip:lecture@"+e.c.Addrs()[0].Addr+" SIP/2.0", with(without(base("OPTIONS"), "Via"),
			"Via: SIP/2.0/TCP "+victim.Addr().String()+";branch=z9hG4bKdialback"+strconv.Itoa(i), "Content-Length: 0"), ""))
	}
	conn.Write([]byte(burst.String()))
	conn.(*net.TCPConn).SetLinger(0)
	conn.Close()
	select {
	case <-dialed:
		t.Fatal("mcc connected to the host a stranger's Via named")
	case <-time.After(time.Second):
	}
}

// TestUDPLoopReplaced: sipgo's UDP read loop keeps pool and map entries
// for every peer address it reads from; replacing the loop (udpMux) drops
// them, while a peer that goes on is answered from the listener's port,
// and a 2xx waiting for its ACK is still retransmitted from it.
func TestUDPLoopReplaced(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.ackWait = 5 * time.Second }, "udp")
	addr := e.c.Addrs()[0].Addr
	pool := e.c.ua.TransportLayer().Pool("udp")
	before := pool.Size()
	for i := range 300 {
		got := udpExchange(t, addr, msg("OPTIONS sip:lecture@"+addr+" SIP/2.0", with(without(base("OPTIONS"), "Via"),
			"Via: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bKpeer"+strconv.Itoa(i)), ""), time.Second)
		if !strings.HasPrefix(got, "SIP/2.0 200") {
			t.Fatalf("OPTIONS %d: %q", i, firstLine(got))
		}
	}
	if n := pool.Size(); n < before+250 { // ephemeral ports may repeat
		t.Fatalf("the pool holds %d entries after 300 peers, want at least %d", n, before+250)
	}
	if n := e.c.guard.udpPeersSeen(); n < 250 {
		t.Fatalf("the guard counted %d peers", n)
	}
	// A caller dials in and does not ACK yet; another peer goes on.
	caller := rawUDP(t, "127.0.0.1:0")
	to, _ := net.ResolveUDPAddr("udp", addr)
	caller.WriteTo([]byte(msg("INVITE sip:lecture@"+addr+" SIP/2.0", []string{
		"Via: SIP/2.0/UDP " + caller.LocalAddr().String() + ";branch=z9hG4bKrot", "Max-Forwards: 70",
		"To: <sip:lecture@" + addr + ">", "From: <sip:a@127.0.0.1>;tag=rot", "Call-ID: rot-1", "CSeq: 1 INVITE",
		"Contact: <sip:a@" + caller.LocalAddr().String() + ">", "Content-Length: 0"}, "")), to)
	if readSIP(caller, "SIP/2.0 200", 2*time.Second) == nil {
		t.Fatal("no 200 to the dial-in")
	}
	for _, m := range e.c.muxes {
		m.retire = 200 * time.Millisecond
		m.rotate(e.c.serving)
	}
	e.c.guard.resetUDPPeers()
	eventually(t, "the old loop's peers forgotten", func() bool { return pool.Size() <= before+2 })
	// The 2xx retransmission after the replacement leaves from the
	// listener's own port.
	buf := make([]byte, 65536)
	caller.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, from, err := caller.ReadFrom(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200") {
		t.Fatalf("no 2xx retransmission after the loop was replaced: %v", err)
	}
	if from.String() != addr {
		t.Fatalf("the retransmission came from %v, want the listener %s", from, addr)
	}
	// A peer that goes on is answered from the listener too.
	c2 := rawUDP(t, "127.0.0.1:0")
	for i := range 2 {
		c2.WriteTo([]byte(msg("OPTIONS sip:lecture@"+addr+" SIP/2.0", with(without(base("OPTIONS"), "Via"),
			"Via: SIP/2.0/UDP "+c2.LocalAddr().String()+";branch=z9hG4bKon"+strconv.Itoa(i)), "")), to)
		c2.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := c2.ReadFrom(buf)
		if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200") || from.String() != addr {
			t.Fatalf("OPTIONS %d after the replacement: %q from %v (%v)", i, firstLine(string(buf[:max(n, 0)])), from, err)
		}
		if i == 0 {
			for _, m := range e.c.muxes {
				m.rotate(e.c.serving)
			}
		}
	}
}

// TestRFC2543DialIn: a caller that writes no RFC 3261 branch (RFC 4475
// §3.4.1) dials in, ACKs the 200 with the same Request-URI, and joins:
// its ACK is not taken for the INVITE's own.
func TestRFC2543DialIn(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	addr := e.c.Addrs()[0].Addr
	caller := rawUDP(t, "127.0.0.1:0")
	to, _ := net.ResolveUDPAddr("udp", addr)
	uri := "sip:lecture@" + addr
	hdr := func(method, toTag string) []string {
		return []string{"Via: SIP/2.0/UDP " + caller.LocalAddr().String(), "To: <" + uri + ">" + toTag,
			"From: <sip:old@127.0.0.1>;tag=2543", "Call-ID: rfc2543-1", "CSeq: 1 " + method,
			"Contact: <sip:old@" + caller.LocalAddr().String() + ">", "Content-Length: 0"}
	}
	caller.WriteTo([]byte(msg("INVITE "+uri+" SIP/2.0", hdr("INVITE", ""), "")), to)
	ok := readSIP(caller, "SIP/2.0 200", 2*time.Second)
	if ok == nil {
		t.Fatal("no 200")
	}
	offer, err := sdp.Parse(ok.Body())
	if err != nil {
		t.Fatal(err)
	}
	answer := string(echo(offer))
	toTag, _ := tagOf(ok.(*sip.Response).To().Params)
	ack := hdr("ACK", ";tag="+toTag)
	ack = append(ack[:len(ack)-1], "Content-Type: application/sdp", "Content-Length: "+strconv.Itoa(len(answer)))
	caller.WriteTo([]byte(msg("ACK "+uri+" SIP/2.0", ack, answer)), to)
	eventually(t, "the RFC 2543 caller joined", func() bool {
		ps, _ := e.c.Participants(e.name)
		return len(ps) == 1 && ps[0].State == Joined
	})
}

// TestRemoveWhileRinging: removing a participant whose invitation still
// rings cancels it; no BYE goes out of a dialog that does not exist, and
// nothing is left behind.
func TestRemoveWhileRinging(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	p.answerWith(func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session) {
		time.Sleep(500 * time.Millisecond)
		return 200, sdp.Answer(offer, sdp.Origin{Username: "p", SessionID: 1, Version: 1, Host: "p.example"})
	})
	ps, err := e.c.Invite(e.name, p.uri())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the INVITE to arrive", func() bool { n, _, _ := p.counts(); return n == 1 })
	if err := e.c.Remove(e.name, ps[0].ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, _, byes := p.counts(); byes != 0 {
		t.Fatalf("%d BYEs", byes)
	}
	got, _ := e.c.Participants(e.name)
	if got[0].State != Removed {
		t.Fatalf("the participant is %v, want removed", got[0].State)
	}
	e.c.mu.Lock()
	n := len(e.c.dialogs)
	e.c.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d dialogs kept", n)
	}
}

// TestRemoveBeforeACK: a dial-in removed while its 200 waits for the ACK
// gets its BYE after the ACK, not before (RFC 3261 §15).
func TestRemoveBeforeACK(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	addr := e.c.Addrs()[0].Addr
	caller := rawUDP(t, "127.0.0.1:0")
	to, _ := net.ResolveUDPAddr("udp", addr)
	caller.WriteTo([]byte(msg("INVITE sip:lecture@"+addr+" SIP/2.0", []string{
		"Via: SIP/2.0/UDP " + caller.LocalAddr().String() + ";branch=z9hG4bKrm", "Max-Forwards: 70",
		"To: <sip:lecture@" + addr + ">", "From: <sip:a@127.0.0.1>;tag=rm", "Call-ID: rm-1", "CSeq: 1 INVITE",
		"Contact: <sip:a@" + caller.LocalAddr().String() + ">", "Content-Length: 0"}, "")), to)
	ok := readSIP(caller, "SIP/2.0 200", 2*time.Second)
	if ok == nil {
		t.Fatal("no 200")
	}
	ps, _ := e.c.Participants(e.name)
	if err := e.c.Remove(e.name, ps[0].ID); err != nil {
		t.Fatal(err)
	}
	if m := readSIP(caller, "BYE ", 700*time.Millisecond); m != nil {
		t.Fatal("BYE before the ACK")
	}
	offer, _ := sdp.Parse(ok.Body())
	answer := string(echo(offer))
	toTag, _ := tagOf(ok.(*sip.Response).To().Params)
	caller.WriteTo([]byte(msg("ACK sip:lecture@"+addr+" SIP/2.0", []string{
		"Via: SIP/2.0/UDP " + caller.LocalAddr().String() + ";branch=z9hG4bKrmack", "Max-Forwards: 70",
		"To: <sip:lecture@" + addr + ">;tag=" + toTag, "From: <sip:a@127.0.0.1>;tag=rm", "Call-ID: rm-1",
		"CSeq: 1 ACK", "Content-Type: application/sdp", "Content-Length: " + strconv.Itoa(len(answer))}, answer)), to)
	if readSIP(caller, "BYE ", 3*time.Second) == nil {
		t.Fatal("no BYE after the ACK")
	}
}

// TestSameCallIDTwoDialIns: two dial-ins that share a Call-ID but not a
// From tag are two dialogs: a BYE in one ends that one.
func TestSameCallIDTwoDialIns(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	addr := e.c.Addrs()[0].Addr
	to, _ := net.ResolveUDPAddr("udp", addr)
	type leg struct {
		c     *net.UDPConn
		tag   string
		toTag string
	}
	var legs []*leg
	for i, tag := range []string{"one", "two"} {
		c := rawUDP(t, "127.0.0.1:0")
		c.WriteTo([]byte(msg("INVITE sip:lecture@"+addr+" SIP/2.0", []string{
			"Via: SIP/2.0/UDP " + c.LocalAddr().String() + ";branch=z9hG4bKsame" + tag, "Max-Forwards: 70",
			"To: <sip:lecture@" + addr + ">", "From: <sip:a@127.0.0.1>;tag=" + tag, "Call-ID: same-1", "CSeq: 1 INVITE",
			"Contact: <sip:a@" + c.LocalAddr().String() + ">", "Content-Length: 0"}, "")), to)
		ok := readSIP(c, "SIP/2.0 200", 2*time.Second)
		if ok == nil {
			t.Fatalf("leg %d: no 200", i)
		}
		offer, _ := sdp.Parse(ok.Body())
		answer := string(echo(offer))
		toTag, _ := tagOf(ok.(*sip.Response).To().Params)
		c.WriteTo([]byte(msg("ACK sip:lecture@"+addr+" SIP/2.0", []string{
			"Via: SIP/2.0/UDP " + c.LocalAddr().String() + ";branch=z9hG4bKsameack" + tag, "Max-Forwards: 70",
			"To: <sip:lecture@" + addr + ">;tag=" + toTag, "From: <sip:a@127.0.0.1>;tag=" + tag, "Call-ID: same-1",
			"CSeq: 1 ACK", "Content-Type: application/sdp", "Content-Length: " + strconv.Itoa(len(answer))}, answer)), to)
		legs = append(legs, &leg{c, tag, toTag})
	}
	eventually(t, "both joined", func() bool {
		ps, _ := e.c.Participants(e.name)
		return len(ps) == 2 && ps[0].State == Joined && ps[1].State == Joined
	})
	l := legs[0]
	l.c.WriteTo([]byte(msg("BYE sip:lecture@"+addr+" SIP/2.0", []string{
		"Via: SIP/2.0/UDP " + l.c.LocalAddr().String() + ";branch=z9hG4bKsamebye", "Max-Forwards: 70",
		"To: <sip:lecture@" + addr + ">;tag=" + l.toTag, "From: <sip:a@127.0.0.1>;tag=" + l.tag, "Call-ID: same-1",
		"CSeq: 2 BYE", "Content-Length: 0"}, "")), to)
	if readSIP(l.c, "SIP/2.0 200", 2*time.Second) == nil {
		t.Fatal("no 200 to the BYE")
	}
	ps, _ := e.c.Participants(e.name)
	if ps[0].State != Left || ps[1].State != Joined {
		t.Fatalf("after a BYE in the first dialog: %v and %v, want left and joined", ps[0].State, ps[1].State)
	}
}

// TestRejectionsAnsweredOnce: mcc answers what changes nothing as a
// stateless UAS (RFC 3261 §8.2.7): an INVITE to no conference (404), one
// to a digest conference without credentials (401), a BYE for no dialog
// (481) and an OPTIONS (200) each get exactly one answer, even from an
// address that never ACKs (no Timer G retransmissions: over UDP a spoofed
// source would get them), and keep no transaction alive; sent again, the
// same request is answered again.
func TestRejectionsAnsweredOnce(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	if _, err := e.c.Create("board", e.sid, Access{Mode: Digest, Users: map[string]HA1{"bob": NewHA1("bob", "board", "s3cret")}}); err != nil {
		t.Fatal(err)
	}
	addr := e.c.Addrs()[0].Addr
	to, _ := net.ResolveUDPAddr("udp", addr)
	for _, tc := range []struct {
		name, method, user, extra, want string
	}{
		{"INVITE to no conference", "INVITE", "nobody", "", "SIP/2.0 404"},
		{"INVITE to a digest conference", "INVITE", "board", "", "SIP/2.0 401"},
		{"BYE for no dialog", "BYE", "lecture", ";tag=gone", "SIP/2.0 481"},
		{"re-INVITE for no dialog", "INVITE", "lecture", ";tag=gone", "SIP/2.0 481"},
		{"OPTIONS", "OPTIONS", "lecture", "", "SIP/2.0 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rawUDP(t, "127.0.0.1:0")
			m := msg(tc.method+" sip:"+tc.user+"@"+addr+" SIP/2.0", []string{
				"Via: SIP/2.0/UDP " + c.LocalAddr().String() + ";branch=z9hG4bKonce" + sip.GenerateTagN(6), "Max-Forwards: 70",
				"To: <sip:" + tc.user + "@" + addr + ">" + tc.extra, "From: <sip:a@127.0.0.1>;tag=once", "Call-ID: once-" + sip.GenerateTagN(8),
				"CSeq: 1 " + tc.method, "Contact: <sip:a@" + c.LocalAddr().String() + ">", "Content-Length: 0"}, "")
			count := func() int {
				// Timer G would resend a 4xx to an INVITE at 0.5 s and 1.5 s.
				n := 0
				for readSIP(c, tc.want, 2200*time.Millisecond) != nil {
					n++
				}
				return n
			}
			c.WriteTo([]byte(m), to)
			if n := count(); n != 1 {
				t.Fatalf("%d answers %s, want 1", n, tc.want)
			}
			if live := e.c.Metrics().Transactions; live != 0 {
				t.Fatalf("%d server transactions alive after the answer", live)
			}
			c.WriteTo([]byte(m), to) // the same request again, as a retransmission
			if n := count(); n != 1 {
				t.Fatalf("sent again: %d answers %s, want 1", n, tc.want)
			}
		})
	}
}

// TestRotateUnderLoad: sessions replaced 12 times while 64 peers send OPTIONS are
// answered, every one, from the listener's own address (never from a
// socket sipgo would open for a peer whose pool entry went), and once the
// replaced loops have ended, nothing of theirs stays: the pool is back to
// its size before, and no socket was left open.
func TestRotateUnderLoad(t *testing.T) {
	// All the peers are on 127.0.0.1: no per-source rate here.
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.Limits.SourceRate = -1 }, "udp")
	addr := e.c.Addrs()[0].Addr
	to, _ := net.ResolveUDPAddr("udp", addr)
	pool := e.c.ua.TransportLayer().Pool("udp")
	before := pool.Size()
	fds := func() int { ents, _ := os.ReadDir("/proc/self/fd"); return len(ents) }
	fdsBefore := fds()
	for _, m := range e.c.muxes {
		m.retire = 300 * time.Millisecond
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	answered, wrong, sent := 0, 0, 0
	stop := make(chan struct{})
	for p := range 64 {
		c := rawUDP(t, "127.0.0.1:0")
		wg.Go(func() {
			buf := make([]byte, 65536)
			for i := 0; i < 1000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c.WriteTo([]byte(msg("OPTIONS sip:lecture@"+addr+" SIP/2.0", with(without(base("OPTIONS"), "Via"),
					"Via: SIP/2.0/UDP "+c.LocalAddr().String()+";branch=z9hG4bKload"+strconv.Itoa(p)+"x"+strconv.Itoa(i)), "")), to)
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, from, err := c.ReadFrom(buf)
				mu.Lock()
				sent++
				if err == nil && strings.HasPrefix(string(buf[:n]), "SIP/2.0 200") {
					answered++
					if from.String() != addr {
						wrong++
					}
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	for range 12 { // a replacement each time the last one has retired
		for _, m := range e.c.muxes {
			m.rotate(e.c.serving)
		}
		time.Sleep(350 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if wrong != 0 || answered < sent*99/100 {
		t.Fatalf("%d of %d OPTIONS answered, %d of them from another address than %s", answered, sent, wrong, addr)
	}
	retired := func() bool {
		e.c.muxes[0].mu.RLock()
		defer e.c.muxes[0].mu.RUnlock()
		return len(e.c.muxes[0].retiring) == 0
	}
	// The current loop knows the peers too: once the last replaced one has
	// ended (no rotation while one retires), it is replaced as well.
	eventually(t, "the replaced loop ended", retired)
	for _, m := range e.c.muxes {
		m.rotate(e.c.serving)
	}
	eventually(t, "the replaced loops ended and their peers forgotten", func() bool {
		return retired() && pool.Size() <= before+2
	})
	// The 64 test sockets are closed by Cleanup, after this; what is open
	// beyond them was opened by mcc.
	if extra := fds() - fdsBefore - 64; extra > 2 {
		t.Fatalf("%d more descriptors open than before the replacements", extra)
	}
}

// rawCallee invites a raw UDP socket, with a ring timeout of 300 ms, and
// returns it with the INVITE it got and mcc's address to answer to.
func rawCallee(t *testing.T) (*env, *net.UDPConn, *sip.Request, *net.UDPAddr) {
	t.Helper()
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.RingTimeout = 300 * time.Millisecond }, "udp")
	peer := rawUDP(t, "127.0.0.1:0")
	if _, err := e.c.Invite(e.name, "sip:x@"+peer.LocalAddr().String()); err != nil {
		t.Fatal(err)
	}
	m := readSIP(peer, "INVITE", 3*time.Second)
	if m == nil {
		t.Fatal("no INVITE")
	}
	to, _ := net.ResolveUDPAddr("udp", e.c.Addrs()[0].Addr)
	return e, peer, m.(*sip.Request), to
}

// ring answers inv with 180 from peer, with the callee's tag.
func ring(peer *net.UDPConn, inv *sip.Request, to *net.UDPAddr) {
	ringing := sip.NewResponseFromRequest(inv, 180, "Ringing", nil)
	ringing.To().Params.Add("tag", "callee")
	peer.WriteTo([]byte(ringing.String()), to)
}

// TestCancelWaitsForProvisional: when the ring timeout ends an invitation
// that has had no provisional response, mcc sends no CANCEL until one
// comes (RFC 3261 §9.1), then at once; a 2xx that crosses the CANCEL is
// ACKed and the dialog ended with BYE, and the participant is failed.
func TestCancelWaitsForProvisional(t *testing.T) {
	e, peer, inv, to := rawCallee(t)
	if readSIP(peer, "CANCEL", 1200*time.Millisecond) != nil {
		t.Fatal("CANCEL before any provisional response")
	}
	ring(peer, inv, to)
	if readSIP(peer, "CANCEL", 2*time.Second) == nil {
		t.Fatal("no CANCEL after the 180")
	}
	offer, err := sdp.Parse(inv.Body())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := sdp.Answer(offer, sdp.Origin{Username: "x", SessionID: 1, Version: 1, Host: "x.example"}).Marshal()
	ok := sip.NewResponseFromRequest(inv, 200, "OK", b)
	ok.To().Params.Add("tag", "callee")
	ok.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "x", Host: "127.0.0.1", Port: peer.LocalAddr().(*net.UDPAddr).Port}})
	ct := sip.ContentTypeHeader("application/sdp")
	ok.AppendHeader(&ct)
	peer.WriteTo([]byte(ok.String()), to)
	if readSIP(peer, "ACK", 2*time.Second) == nil {
		t.Fatal("the crossing 2xx was not ACKed")
	}
	if readSIP(peer, "BYE", 2*time.Second) == nil {
		t.Fatal("no BYE for the dialog the crossing 2xx made")
	}
	eventually(t, "the participant failed", func() bool {
		ps, _ := e.c.Participants(e.name)
		return len(ps) == 1 && ps[0].State == Failed
	})
}

// TestCloseDuringReinvite: a shutdown while a re-INVITE is outstanding
// (SIGTERM) neither fails the participant nor deletes its saved dialog:
// the restart brings it back.
func TestCloseDuringReinvite(t *testing.T) {
	store := newMemStore()
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.Store = store }, "udp")
	p := e.peer(t, "udp")
	var n atomic.Int32
	p.answerWith(func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session) {
		if n.Add(1) > 1 {
			time.Sleep(3 * time.Second) // the re-INVITE is answered after the shutdown
		}
		return 200, sdp.Answer(offer, sdp.Origin{Username: "p", SessionID: 1, Version: uint64(n.Load()), Host: "p.example"})
	})
	ps, err := e.c.Invite(e.name, p.uri())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the participant joined", func() bool {
		got, _ := e.c.Participants(e.name)
		return len(got) == 1 && got[0].State == Joined
	})
	if store.dialogs() != 1 {
		t.Fatalf("%d dialogs saved for one joined participant", store.dialogs())
	}
	go e.c.AddStream(context.Background(), e.name, sdp.MediaSpec{Kind: "audio"})
	eventually(t, "the re-INVITE to arrive", func() bool { return n.Load() == 2 })
	e.c.Close()
	if store.dialogs() != 1 {
		t.Fatalf("the saved dialog of %s is gone after a shutdown during its re-INVITE", ps[0].ID)
	}
	got, _ := e.c.Participants(e.name)
	if len(got) == 1 && got[0].State == Failed {
		t.Fatalf("the participant was failed by the shutdown: %+v", got[0])
	}
}

// TestReinviteRetryAfter: a participant that answers a re-INVITE with 500
// and Retry-After is sent it again after that long, and converges; the
// status says it is to be retried meanwhile.
func TestReinviteRetryAfter(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	if _, err := e.c.Invite(e.name, p.uri()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the participant joined", func() bool {
		got, _ := e.c.Participants(e.name)
		return len(got) == 1 && got[0].State == Joined
	})
	var refusedAt time.Time
	p.handleInvites(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil)
		res.AppendHeader(sip.NewHeader("Retry-After", "1"))
		refusedAt = time.Now()
		tx.Respond(res)
		p.handleInvites(nil) // the next one is answered as usual
	})
	ch, err := e.c.AddStream(context.Background(), e.name, sdp.MediaSpec{Kind: "audio"})
	if err != nil {
		t.Fatal(err)
	}
	var converged time.Time
	eventually(t, "the participant to have the new version", func() bool {
		got, _ := e.c.Participants(e.name)
		converged = time.Now()
		return len(got) == 1 && got[0].Version >= ch.Version && got[0].State == Joined
	})
	p.mu.Lock()
	n := len(p.invites)
	p.mu.Unlock()
	if n != 3 {
		t.Fatalf("%d INVITEs, want the invitation, the refused re-INVITE and its retry", n)
	}
	if d := converged.Sub(refusedAt); d < 900*time.Millisecond {
		t.Fatalf("converged %v after the 500, before its Retry-After of 1 s", d)
	}
}

// TestCancelledInviteNeverAnswered: a callee that rings, then answers
// neither the CANCEL nor the INVITE, does not hold the invitation (nor
// Close) for ever: sipgo's Timer B stops at the 1xx, mcc's own bound
// (64·T1) or Close ends the wait.
func TestCancelledInviteNeverAnswered(t *testing.T) {
	e, peer, inv, to := rawCallee(t)
	ring(peer, inv, to)
	if readSIP(peer, "CANCEL", 2*time.Second) == nil {
		t.Fatal("no CANCEL after the ring timeout")
	}
	done := make(chan struct{})
	go func() { e.c.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for an invitation whose callee answers nothing")
	}
}

// TestByeRightAfterACK: a dial-in caller that sends BYE right after its
// ACK leaves no ghost: it ends left, is never shown joined again, and no
// dialog of it is saved, even when saving the join takes as long as an
// fsync.
func TestByeRightAfterACK(t *testing.T) {
	store := newMemStore()
	store.delay = 20 * time.Millisecond
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.Store = store }, "udp")
	events, _, stop := e.c.Subscribe()
	defer stop()
	addr := e.c.Addrs()[0].Addr
	to, _ := net.ResolveUDPAddr("udp", addr)
	for i := range 20 {
		caller := rawUDP(t, "127.0.0.1:0")
		callID, tag := "ghost-"+strconv.Itoa(i), "g"+strconv.Itoa(i)
		caller.WriteTo([]byte(msg("INVITE sip:lecture@"+addr+" SIP/2.0", []string{
			"Via: SIP/2.0/UDP " + caller.LocalAddr().String() + ";branch=z9hG4bKg" + strconv.Itoa(i), "Max-Forwards: 70",
			"To: <sip:lecture@" + addr + ">", "From: <sip:a@127.0.0.1>;tag=" + tag, "Call-ID: " + callID, "CSeq: 1 INVITE",
			"Contact: <sip:a@" + caller.LocalAddr().String() + ">", "Content-Length: 0"}, "")), to)
		ok := readSIP(caller, "SIP/2.0 200", 2*time.Second)
		if ok == nil {
			t.Fatal("no 200")
		}
		offer, _ := sdp.Parse(ok.Body())
		answer := string(echo(offer))
		toTag, _ := tagOf(ok.(*sip.Response).To().Params)
		dialog := []string{"Max-Forwards: 70", "To: <sip:lecture@" + addr + ">;tag=" + toTag, "From: <sip:a@127.0.0.1>;tag=" + tag, "Call-ID: " + callID}
		caller.WriteTo([]byte(msg("ACK sip:lecture@"+addr+" SIP/2.0", append(with(dialog,
			"Via: SIP/2.0/UDP "+caller.LocalAddr().String()+";branch=z9hG4bKga"+strconv.Itoa(i), "CSeq: 1 ACK", "Content-Type: application/sdp"),
			"Content-Length: "+strconv.Itoa(len(answer))), answer)), to)
		caller.WriteTo([]byte(msg("BYE sip:lecture@"+addr+" SIP/2.0", with(dialog,
			"Via: SIP/2.0/UDP "+caller.LocalAddr().String()+";branch=z9hG4bKgb"+strconv.Itoa(i), "CSeq: 2 BYE", "Content-Length: 0"), "")), to)
		if readSIP(caller, "SIP/2.0 200", 2*time.Second) == nil {
			t.Fatalf("call %d: no 200 to the BYE", i)
		}
	}
	eventually(t, "every caller left", func() bool {
		ps, _ := e.c.Participants(e.name)
		for _, p := range ps {
			if p.State != Left {
				return false
			}
		}
		return len(ps) == 20
	})
	time.Sleep(300 * time.Millisecond) // a late "joined" would come now
	ps, _ := e.c.Participants(e.name)
	for _, p := range ps {
		if p.State != Left {
			t.Fatalf("%s is %v after its BYE", p.ID, p.State)
		}
	}
	if n := store.dialogs(); n != 0 {
		t.Fatalf("%d dialogs saved of callers that left", n)
	}
	// No participant's events go "left" then "joined".
	last := map[string]State{}
	for {
		select {
		case ev := <-events:
			if ev.Participant == nil {
				continue
			}
			if last[ev.Participant.ID] == Left && ev.Participant.State == Joined {
				t.Fatalf("%s was shown joined after it left", ev.Participant.ID)
			}
			last[ev.Participant.ID] = ev.Participant.State
		default:
			return
		}
	}
}
