package conference

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"mcc/multicast"
	"mcc/sdp"
)

// memPacketConn is a UDP socket that goes nowhere: what mcc sends is
// counted and thrown away, and nothing arrives. It lets the fuzz targets
// run mcc's whole receive path with no traffic on any network.
type memPacketConn struct {
	addr   *net.UDPAddr
	mu     sync.Mutex
	sent   int
	closed chan struct{}
	once   sync.Once
}

func newMemPacketConn(addr string) *memPacketConn {
	a, _ := net.ResolveUDPAddr("udp", addr)
	return &memPacketConn{addr: a, closed: make(chan struct{})}
}

func (c *memPacketConn) ReadFrom([]byte) (int, net.Addr, error) {
	<-c.closed
	return 0, nil, net.ErrClosed
}

func (c *memPacketConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.mu.Lock()
	c.sent++
	c.mu.Unlock()
	return len(b), nil
}

func (c *memPacketConn) Close() error                     { c.once.Do(func() { close(c.closed) }); return nil }
func (c *memPacketConn) LocalAddr() net.Addr              { return c.addr }
func (c *memPacketConn) SetDeadline(time.Time) error      { return nil }
func (c *memPacketConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memPacketConn) SetWriteDeadline(time.Time) error { return nil }

// memTx is a server transaction that records the responses a handler
// gives, in place of sipgo's.
type memTx struct {
	mu   sync.Mutex
	res  []*sip.Response
	done chan struct{}
	acks chan *sip.Request
}

func newMemTx() *memTx { return &memTx{done: make(chan struct{}), acks: make(chan *sip.Request)} }

func (t *memTx) Respond(res *sip.Response) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.res = append(t.res, res)
	return nil
}
func (t *memTx) responses() []*sip.Response {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]*sip.Response(nil), t.res...)
}
func (t *memTx) Acks() <-chan *sip.Request          { return t.acks }
func (t *memTx) OnCancel(sip.FnTxCancel) bool       { return false }
func (t *memTx) Terminate()                         {}
func (t *memTx) OnTerminate(sip.FnTxTerminate) bool { return false }
func (t *memTx) Done() <-chan struct{}              { return t.done }
func (t *memTx) Err() error                         { return nil }

var _ sip.ServerTransaction = (*memTx)(nil)

// sipHarness is a controller with one conference and a joined
// participant whose dialog the seeds address, on a socket that sends
// nothing anywhere, and a resolver that resolves nothing.
type sipHarness struct {
	c   *Controller
	pc  *memPacketConn
	src netip.AddrPort
}

const (
	harnessCallID = "fuzz-dialog@127.0.0.1"
	harnessOurTag = "mcctag"
	harnessTheirs = "peertag"
)

func newSIPHarness(t testing.TB) *sipHarness {
	t.Helper()
	pool, _ := multicast.ScopePool(multicast.IPv4, multicast.ScopeLocal, multicast.ScopeOptions{})
	a, err := multicast.NewAllocator(multicast.Config{Pools: []multicast.Pool{pool}})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := sdp.NewManager(sdp.ManagerConfig{Allocator: a, Origin: netip.MustParseAddr("127.0.0.1")})
	s, err := m.Create(sdp.SessionSpec{Name: "Lecture", Pool: pool.Name, Media: []sdp.MediaSpec{{Kind: "audio"}}})
	if err != nil {
		t.Fatal(err)
	}
	pc := newMemPacketConn("127.0.0.1:5060")
	refuse := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("the harness resolves nothing")
	}}
	c, err := New(Config{Listeners: []Listener{{Transport: "udp", PacketConn: pc}}, Manager: m, Host: "127.0.0.1",
		Resolver: refuse, Limits: Limits{SourceRate: -1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Create("lecture", s.Origin.SessionID, Access{}); err != nil {
		t.Fatal(err)
	}
	// RFC 4475's INVITEs go to sip:user@...
	u, err := m.Create(sdp.SessionSpec{Name: "User", Pool: pool.Name, Media: []sdp.MediaSpec{{Kind: "audio"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create("user", u.Origin.SessionID, Access{}); err != nil {
		t.Fatal(err)
	}
	// A conference behind digest, for the Authorization seeds.
	l, err := m.Create(sdp.SessionSpec{Name: "Locked", Pool: pool.Name, Media: []sdp.MediaSpec{{Kind: "audio"}}})
	if err != nil {
		t.Fatal(err)
	}
	users, _ := HashPasswords("locked", map[string]string{"Mufasa": "Circle of Life"})
	if _, err := c.Create("locked", l.Origin.SessionID, Access{Mode: Digest, Users: users, Realm: "locked"}); err != nil {
		t.Fatal(err)
	}
	h := &sipHarness{c: c, pc: pc, src: netip.MustParseAddrPort("127.0.0.1:5999")}
	h.restore(t)
	return h
}

// restore brings the harness's participant back, joined, when a message
// ended its dialog.
func (h *sipHarness) restore(t testing.TB) {
	h.c.mu.Lock()
	_, ok := h.c.dialogs[dialogKey{harnessCallID, harnessOurTag, harnessTheirs}]
	h.c.mu.Unlock()
	if ok {
		return
	}
	desc, _ := h.c.Session("lecture")
	body, _ := desc.Marshal()
	err := h.c.RestoreParticipant(SavedParticipant{Conference: "lecture", ID: newID(), URI: "sip:peer@127.0.0.1:5999",
		CallID: harnessCallID, Owner: true, Transport: "UDP", Local: "sip:lecture@127.0.0.1", LocalTag: harnessOurTag,
		Remote: "sip:peer@127.0.0.1", RemoteTag: harnessTheirs, LocalCSeq: 10, RemoteCSeq: 0,
		RemoteTarget: "sip:peer@127.0.0.1:5999", Offered: body, Version: desc.Origin.Version, Streams: []string{"accepted"}})
	if err != nil {
		t.Fatal(err)
	}
}

// receive runs one datagram through mcc's receive path as sipgo would:
// the guard, sipgo's parser, then mcc's dispatch for a request (with a
// transaction that records its answers) or the stray-response handler.
func (h *sipHarness) receive(data []byte) (pass bool, guardReply *sip.Response, answers []*sip.Response) {
	out, guardReply := h.c.guard.forward(data, "UDP", h.src)
	if out == nil {
		return false, guardReply, nil
	}
	msg, err := sip.ParseMessage(out)
	if err != nil {
		return true, nil, nil // sipgo drops what it cannot parse
	}
	msg.SetTransport("UDP")
	msg.SetSource(h.src.String())
	switch m := msg.(type) {
	case *sip.Request:
		tx := newMemTx()
		h.c.dispatch(m, tx)
		return true, nil, tx.responses()
	case *sip.Response:
		h.c.onStrayResponse(m)
	}
	return true, nil, nil
}

// seeds are the messages the fuzz targets start from: every message of
// RFC 4475 and RFC 5118, then mcc's own, in and out of the harness's
// dialog, for every method.
func seeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, dir := range []string{"rfc4475", "rfc5118"} {
		files, _ := filepath.Glob(filepath.Join("testdata", "torture", dir, "*.dat"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	inDialog := func(method string, cseq int, body string) []byte {
		hdr := []string{
			"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK" + method + "x",
			"Max-Forwards: 70",
			"From: <sip:peer@127.0.0.1>;tag=" + harnessTheirs,
			"To: <sip:lecture@127.0.0.1>;tag=" + harnessOurTag,
			"Call-ID: " + harnessCallID,
			"CSeq: " + itoa(cseq) + " " + method,
			"Contact: <sip:peer@127.0.0.1:5999>",
		}
		if body != "" {
			hdr = append(hdr, "Content-Type: application/sdp")
		}
		hdr = append(hdr, "Content-Length: "+itoa(len(body)))
		return []byte(msg(method+" sip:lecture@127.0.0.1 SIP/2.0", hdr, body))
	}
	hold := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\na=inactive\r\n"
	for i, m := range []string{"INVITE", "ACK", "BYE", "OPTIONS", "CANCEL", "INFO", "UPDATE", "REFER", "NOTIFY", "SUBSCRIBE", "MESSAGE", "PRACK", "FROB"} {
		out = append(out, inDialog(m, 20+i, ""))
		out = append(out, []byte(msg(m+" sip:lecture@127.0.0.1 SIP/2.0", base(m), "")))
	}
	out = append(out, inDialog("INVITE", 40, hold))
	dialIn := with(base("INVITE"), "Contact: <sip:alice@127.0.0.1:5999>", "Content-Type: application/sdp", "Content-Length: "+itoa(len(hold)))
	out = append(out, []byte(msg("INVITE sip:lecture@127.0.0.1 SIP/2.0", dialIn, hold)))
	for _, auth := range []string{rfc7616Credentials,
		`Digest username="Mufasa", realm="locked", nonce="AAAA", uri="sip:locked@127.0.0.1", response="00", qop=auth, nc=00000001, cnonce="x"`,
		`Digest username="Mufasa", realm="locked", nonce="AAAA", uri="sip:locked@127.0.0.1", response="00", algorithm=MD5-sess`} {
		out = append(out, []byte(msg("INVITE sip:locked@127.0.0.1 SIP/2.0", with(base("INVITE"), "Authorization: "+auth, "Content-Length: 0"), "")))
	}
	resp := func(code string, cseq string) []byte {
		return []byte(msg("SIP/2.0 "+code, []string{
			"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKresp",
			"From: <sip:lecture@127.0.0.1>;tag=" + harnessOurTag,
			"To: <sip:peer@127.0.0.1>;tag=" + harnessTheirs,
			"Call-ID: " + harnessCallID,
			"CSeq: " + cseq,
			"Content-Length: 0",
		}, ""))
	}
	out = append(out, resp("200 OK", "10 INVITE"), resp("180 Ringing", "11 INVITE"), resp("486 Busy Here", "10 INVITE"), resp("200 OK", "3 BYE"))
	// The inputs that crashed mcc before the guard: BYE, ACK and a 2xx
	// without To, From or Call-ID.
	out = append(out, []byte(msg("BYE sip:lecture@127.0.0.1 SIP/2.0", without(base("BYE"), "To"), "")),
		[]byte(msg("ACK sip:lecture@127.0.0.1 SIP/2.0", without(base("ACK"), "To"), "")),
		[]byte(msg("SIP/2.0 200 OK", []string{"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx", "CSeq: 1 INVITE", "Content-Length: 0"}, "")),
		[]byte("INVITE sip:lecture@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKc\r\nMax-Forwards: 70\r\n"+
			"To: <sip:lecture@127.0.0.1>\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"+
			"Content-Length: 82\r\n\r\nv=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nc=IN IP4 224.0.0.1/15/9000000000000000000\r\nm=audio 5 RTP/AVP 0\r\n"))
	return out
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// FuzzSIP sends arbitrary datagrams through mcc's whole receive path:
// the guard, sipgo's parser and mcc's handlers, in and out of a live
// dialog. Nothing may panic (the barrier counts a panic it recovers, and
// that fails the target too), nothing the guard refuses may reach a
// handler, and the guard answers only with 4xx, 5xx or 513.
func FuzzSIP(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	h := newSIPHarness(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		h.restore(t)
		_, reply, answers := h.receive(data)
		if reply != nil && (reply.StatusCode < 400 || reply.StatusCode > 599) {
			t.Fatalf("the guard answered %s", reply.StartLine())
		}
		for _, a := range answers {
			if a.StatusCode < 100 || a.StatusCode > 699 {
				t.Fatalf("a handler answered %s", a.StartLine())
			}
		}
		if n := h.c.guard.rejections()[Rejection{"panic", true}] + h.c.guard.rejections()[Rejection{"panic", false}]; n > 0 {
			t.Fatalf("%d panics recovered", n)
		}
	})
}

// FuzzStream cuts arbitrary bytes into reads of a TCP connection and
// checks that what the guard hands sipgo is whole messages, each one it
// passes on its own, and that it never panics.
func FuzzStream(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s, uint8(7))
		f.Add(append(append([]byte("\r\n\r\n"), s...), s...), uint8(200))
	}
	// Content-Lengths that overflow an int when added to the header size.
	for _, cl := range []string{"9223372036854775807", "9223372036854775600", "4294967296", "2147483647"} {
		f.Add([]byte(msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", with(base("OPTIONS"), "Content-Length: "+cl), "")), uint8(255))
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		g := newGuard(Limits{SourceRate: -1, MaxMessage: 4096}, handledMethods)
		raw := &chunkConn{data: data, size: int(cut) + 1}
		c := newGuardedConn(raw, g, testSrc, "TCP")
		var got []byte
		buf := make([]byte, 512)
		for {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		if n := g.rejections()[Rejection{"panic", false}]; n > 0 {
			t.Fatalf("the framing panicked on %q", data)
		}
		// What came out parses as a sequence of messages, each whole.
		for len(got) > 0 {
			end := bytes.Index(got, []byte("\r\n\r\n"))
			if end < 0 {
				t.Fatalf("a partial message handed on: %q", got)
			}
			n, ok := contentLength(got[:end+2])
			if !ok || end+4+n > len(got) {
				t.Fatalf("a message handed on with a bad length: %q", got)
			}
			one := got[:end+4+n]
			if pass, _ := newGuard(Limits{SourceRate: -1, MaxMessage: 4096}, handledMethods).screen(one, "TCP", testSrc); !pass {
				t.Fatalf("handed on a message the guard refuses on its own: %q", one)
			}
			got = got[len(one):]
		}
	})
}

// chunkConn is a connection whose reads return data in pieces of size.
type chunkConn struct {
	net.Conn
	data  []byte
	size  int
	wrote bytes.Buffer
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), c.size, len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}
func (c *chunkConn) Write(b []byte) (int, error)      { return c.wrote.Write(b) }
func (c *chunkConn) SetReadDeadline(time.Time) error  { return nil }
func (c *chunkConn) SetWriteDeadline(time.Time) error { return nil }
func (c *chunkConn) Close() error                     { return nil }
func (c *chunkConn) RemoteAddr() net.Addr             { return net.TCPAddrFromAddrPort(testSrc) }
func (c *chunkConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5060} }

// rfc7616Credentials is the Authorization of RFC 7616 §3.9.1's example,
// with SHA-256.
const rfc7616Credentials = `Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", ` +
	`algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, ` +
	`cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, ` +
	`response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", ` +
	`opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`

// FuzzCredentials reads arbitrary Authorization values: the parser never
// panics, and what it accepts, written again with every value quoted,
// reads back the same.
func FuzzCredentials(f *testing.F) {
	f.Add(rfc7616Credentials)
	f.Add(`Digest username="a\\"b", realm=r, nonce=n, uri="sip:x", response=r, nc=00000001`)
	f.Add(`digest  USERNAME = "u" ,realm="r",nonce="n",uri="u",response="r"`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCredentials(s)
		if err != nil {
			return
		}
		again := fmt.Sprintf("Digest username=%s, realm=%s, nonce=%s, uri=%s, response=%s, algorithm=%s, cnonce=%s, opaque=%s, qop=%s, nc=%s, userhash=%v",
			quote(c.username), quote(c.realm), quote(c.nonce), quote(c.uri), quote(c.response), quote(c.algorithm),
			quote(c.cnonce), quote(c.opaque), quote(c.qop), quote(c.nc), c.userhash)
		c2, err := parseCredentials(again)
		if err != nil && len(again) <= maxCredentialsLen {
			t.Fatalf("parseCredentials(%q) = %+v, but it does not read back: %v", s, c, err)
		}
		if err == nil && *c2 != *c {
			t.Fatalf("parseCredentials(%q) = %+v; written again, %+v", s, c, c2)
		}
	})
}
