package conference

import (
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

// msg builds a request from its start line and header lines, with CRLFs.
func msg(start string, headers []string, body string) string {
	return start + "\r\n" + strings.Join(headers, "\r\n") + "\r\n\r\n" + body
}

// base are the six header fields RFC 3261 §8.1.1 makes every request carry.
func base(method string) []string {
	return []string{
		"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK" + sip.GenerateTagN(8),
		"Max-Forwards: 70",
		"To: <sip:lecture@127.0.0.1>",
		"From: <sip:alice@127.0.0.1>;tag=a1",
		"Call-ID: " + sip.GenerateTagN(10),
		"CSeq: 1 " + method,
	}
}

func without(hs []string, name string) []string {
	var out []string
	for _, h := range hs {
		if !strings.HasPrefix(h, name+":") {
			out = append(out, h)
		}
	}
	return out
}

func with(hs []string, more ...string) []string { return append(append([]string(nil), hs...), more...) }

var testSrc = netip.MustParseAddrPort("127.0.0.9:5999")

// TestGuardRFC3261 drives the guard's screen with one broken request per
// rule it enforces, and checks the answer the RFC gives (or the drop).
func TestGuardRFC3261(t *testing.T) {
	invite := base("INVITE")
	sdpBody := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	for _, tc := range []struct {
		name   string
		msg    string
		status int    // 0: dropped
		want   string // a header line or Warning text the answer must hold
		reason string // the Rejection reason counted
	}{
		{"valid OPTIONS passes", msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", base("OPTIONS"), ""), -1, "", ""},
		{"keep-alive passes", "\r\n\r\n", -1, "", ""},
		{"no To", msg("BYE sip:lecture@127.0.0.1 SIP/2.0", without(base("BYE"), "To"), ""), 400, "missing To header", "malformed"},
		{"no From", msg("BYE sip:lecture@127.0.0.1 SIP/2.0", without(base("BYE"), "From"), ""), 400, "missing From header", "malformed"},
		{"no Call-ID", msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", without(base("OPTIONS"), "Call-ID"), ""), 400, "missing Call-ID header", "malformed"},
		{"no CSeq", msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", without(base("OPTIONS"), "CSeq"), ""), 400, "missing CSeq header", "malformed"},
		{"no Max-Forwards passes (RFC 4475 §3.4.1)", msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", without(base("OPTIONS"), "Max-Forwards"), ""), -1, "", ""},
		{"two Max-Forwards", msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", with(base("OPTIONS"), "Max-Forwards: 69"), ""), 400, "more than one Max-Forwards header", "malformed"},
		{"unreadable Max-Forwards", msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", with(without(base("OPTIONS"), "Max-Forwards"), "Max-Forwards: lots"), ""), 400, "unreadable Max-Forwards header", "malformed"},
		{"INVITE that accepts no SDP", msg("INVITE sip:lecture@127.0.0.1 SIP/2.0", with(invite, "Accept: text/plain"), ""), 406, "Accept: application/sdp", "media_type"},
		{"no Via is dropped", msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", without(base("OPTIONS"), "Via"), ""), 0, "", "malformed"},
		{"unreadable CSeq", msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", with(without(base("OPTIONS"), "CSeq"), "CSeq: one OPTIONS"), ""), 400, "unreadable CSeq header", "malformed"},
		{"two To", msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", with(base("OPTIONS"), "To: <sip:x@127.0.0.1>"), ""), 400, "more than one To header", "malformed"},
		{"CSeq method differs", msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", with(without(base("OPTIONS"), "CSeq"), "CSeq: 1 INVITE"), ""), 400, "CSeq method INVITE does not match", "malformed"},
		{"CSeq of 2**31", msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", with(without(base("OPTIONS"), "CSeq"), "CSeq: 2147483648 OPTIONS"), ""), 400, "CSeq", "malformed"},
		{"SIP/7.0", msg("OPTIONS sip:lecture@127.0.0.1 SIP/7.0", base("OPTIONS"), ""), 505, "", "version"},
		{"NUL in a header", msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", with(base("OPTIONS"), "Subject: a\x00b"), ""), 400, "control character 0x00", "malformed"},
		{"NUL as a quoted-pair passes", msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", with(without(base("OPTIONS"), "To"), "To: \"a\\\x00b\" <sip:lecture@127.0.0.1>"), ""), -1, "", ""},
		{"bare LF", msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", with(base("OPTIONS"), "Subject: a\nb"), ""), 400, "an LF that does not follow CR", "malformed"},
		{"Require an unknown option", msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", with(base("OPTIONS"), "Require: foo, 100rel"), ""), 420, "Unsupported: foo, 100rel", "extension"},
		{"Require on ACK is ignored", msg("ACK sip:lecture@127.0.0.1 SIP/2.0", with(base("ACK"), "Require: foo"), ""), -1, "", ""},
		{"Require: timer is met (RFC 4028)", msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", with(base("OPTIONS"), "Require: timer"), ""), -1, "", ""},
		{"Require: timer and another", msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", with(base("OPTIONS"), "Require: timer, foo"), ""), 420, "Unsupported: foo", "extension"},
		{"INVITE with a text body", msg("INVITE sip:lecture@127.0.0.1 SIP/2.0", with(invite, "Content-Type: text/plain", "Content-Length: 5"), "hello"), 415, "Accept: application/sdp", "media_type"},
		{"INVITE with gzip SDP", msg("INVITE sip:lecture@127.0.0.1 SIP/2.0", with(invite, "Content-Type: application/sdp", "Content-Encoding: gzip", "Content-Length: 5"), "hello"), 415, "Accept-Encoding: identity", "media_type"},
		{"INVITE with a body and no type", msg("INVITE sip:lecture@127.0.0.1 SIP/2.0", with(invite, "Content-Length: 5"), "hello"), 400, "without Content-Type", "malformed"},
		{"INVITE with SDP passes", msg("INVITE sip:lecture@127.0.0.1 SIP/2.0", with(invite, "Content-Type: Application/SDP; charset=utf-8", "Content-Length: "+strconv.Itoa(len(sdpBody))), sdpBody), -1, "", ""},
		{"Content-Length past the end", msg("INVITE sip:lecture@127.0.0.1 SIP/2.0", with(invite, "Content-Type: application/sdp", "Content-Length: 9999"), sdpBody), 400, "shorter than Content-Length", "malformed"},
		{"unknown method", msg("FROB sip:lecture@127.0.0.1 SIP/2.0", base("FROB"), ""), 501, "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS", "method"},
		{"REGISTER", msg("REGISTER sip:127.0.0.1 SIP/2.0", base("REGISTER"), ""), 405, "Allow:", "method"},
		{"tel: Request-URI", msg("OPTIONS tel:+15551234 SIP/2.0", base("OPTIONS"), ""), 416, "", "scheme"},
		{"broken ACK is dropped", msg("ACK sip:lecture@127.0.0.1 SIP/2.0", without(base("ACK"), "To"), ""), 0, "", "malformed"},
		{"not SIP at all", "\x00\x01\x02 hello", 0, "", "unparseable"},
		{"half a request line", "INVITE sip:", 0, "", "unparseable"},
		{"response without Call-ID", msg("SIP/2.0 200 OK", without(base("INVITE"), "Call-ID"), ""), 0, "", "response"},
		{"response without To", msg("SIP/2.0 200 OK", without(base("INVITE"), "To"), ""), 0, "", "response"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGuard(Limits{}, handledMethods)
			g.timers = true // as a controller with session timers on
			pass, reply := g.screen([]byte(tc.msg), "UDP", testSrc)
			switch {
			case tc.status == -1:
				if !pass {
					t.Fatalf("refused: %v", reply)
				}
				return
			case pass:
				t.Fatalf("passed, want %d", tc.status)
			case tc.status == 0 && reply != nil:
				t.Fatalf("answered %d, want a drop", reply.StatusCode)
			case tc.status != 0 && reply == nil:
				t.Fatalf("dropped, want %d", tc.status)
			case reply != nil && reply.StatusCode != tc.status:
				t.Fatalf("answered %s, want %d", reply.StartLine(), tc.status)
			}
			if reply != nil && !strings.Contains(reply.String(), tc.want) {
				t.Errorf("answer lacks %q:\n%s", tc.want, reply)
			}
			if n := g.rejections()[Rejection{tc.reason, reply != nil}]; n != 1 {
				t.Errorf("rejections[%s] = %d, want 1 (%v)", tc.reason, n, g.rejections())
			}
		})
	}
}

// TestGuardRate: a source over its rate gets 503 with Retry-After, then is
// dropped once it has been told ten times in a second; another source,
// and a later second, go on.
func TestGuardRate(t *testing.T) {
	g := newGuard(Limits{SourceRate: 5, SourceBurst: 5}, handledMethods)
	now := time.Unix(1000, 0)
	g.now = func() time.Time { return now }
	opt := func() []byte { return []byte(msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", base("OPTIONS"), "")) }
	for i := range 5 {
		if pass, _ := g.screen(opt(), "UDP", testSrc); !pass {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	for i := range 10 {
		pass, reply := g.screen(opt(), "UDP", testSrc)
		if pass || reply == nil || reply.StatusCode != 503 || reply.GetHeader("Retry-After") == nil {
			t.Fatalf("request %d over the rate: pass %v, %v", i, pass, reply)
		}
	}
	if pass, reply := g.screen(opt(), "UDP", testSrc); pass || reply != nil {
		t.Fatalf("the 11th refusal in a second: pass %v, answer %v; want a drop", pass, reply)
	}
	other := netip.MustParseAddrPort("127.0.0.10:5999")
	if pass, _ := g.screen(opt(), "UDP", other); !pass {
		t.Fatal("another source was refused")
	}
	// IPv6 sources count by /64.
	a := netip.MustParseAddrPort("[2001:db8::1]:5060")
	b := netip.MustParseAddrPort("[2001:db8::ffff:2]:5060")
	for range 5 {
		g.screen(opt(), "UDP", a)
	}
	if pass, _ := g.screen(opt(), "UDP", b); pass {
		t.Error("a second address of the same /64 got its own bucket")
	}
	now = now.Add(time.Second)
	if pass, _ := g.screen(opt(), "UDP", testSrc); !pass {
		t.Error("a second later the source is still refused")
	}
}

// TestGuardSourceTable: the table of sources stays within MaxSources, and
// sources past it share one bucket.
func TestGuardSourceTable(t *testing.T) {
	g := newGuard(Limits{MaxSources: 100, SourceRate: 1000}, handledMethods)
	opt := []byte(msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", base("OPTIONS"), ""))
	for i := range 5000 {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 5060)
		g.screen(opt, "UDP", src)
	}
	g.mu.Lock()
	n := len(g.sources)
	g.mu.Unlock()
	if n > 100 {
		t.Fatalf("%d sources kept, want at most 100", n)
	}
}

// TestGuardHold bounds the dial-ins waiting for their ACK, per source and
// in all.
func TestGuardHold(t *testing.T) {
	g := newGuard(Limits{PendingPerSource: 2, MaxPending: 3}, handledMethods)
	a, b := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	for range 2 {
		if !g.hold(a) {
			t.Fatal("one of two holds refused")
		}
	}
	if g.hold(a) {
		t.Fatal("a third hold from one source allowed")
	}
	if !g.hold(b) {
		t.Fatal("another source refused")
	}
	if g.hold(netip.MustParseAddr("127.0.0.3")) {
		t.Fatal("a fourth hold in all allowed")
	}
	g.unhold(a)
	if !g.hold(a) {
		t.Fatal("a hold after a release refused")
	}
}

func TestContentLength(t *testing.T) {
	for _, tc := range []struct {
		head string
		n    int
		ok   bool
	}{
		{"INVITE x SIP/2.0\r\nContent-Length: 12\r\n", 12, true},
		{"INVITE x SIP/2.0\r\nl: 3\r\n", 3, true},
		{"INVITE x SIP/2.0\r\nContent-Length:\r\n 4\r\n", 4, true}, // folded (§7.3.1)
		{"INVITE x SIP/2.0\r\nVia: x\r\n", 0, true},
		{"INVITE x SIP/2.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n", 0, false},
		{"INVITE x SIP/2.0\r\nContent-Length: -1\r\n", 0, false},
		{"INVITE x SIP/2.0\r\nContent-Length: 99999999999999999999\r\n", 0, false},
	} {
		n, ok := contentLength([]byte(tc.head))
		if n != tc.n || ok != tc.ok {
			t.Errorf("contentLength(%q) = %d, %v; want %d, %v", tc.head, n, ok, tc.n, tc.ok)
		}
	}
}

// TestStreamContentLengthOverflow: a Content-Length near the largest int
// closes the stream (after a 513) instead of wrapping the frame size
// negative, which took the process down.
func TestStreamContentLengthOverflow(t *testing.T) {
	for _, cl := range []string{"9223372036854775807", "9223372036854775617", "99999999999999999999", "2147483647"} {
		g := newGuard(Limits{}, handledMethods)
		raw := &chunkConn{data: []byte(msg("OPTIONS sip:lecture@127.0.0.1 SIP/2.0", with(base("OPTIONS"), "Content-Length: "+cl), "")), size: 4096}
		c := newGuardedConn(raw, g, testSrc, "TCP")
		n, err := c.Read(make([]byte, 4096))
		if err == nil || n != 0 {
			t.Errorf("Content-Length %s: read %d bytes, %v; want the stream closed", cl, n, err)
		}
		if g.rejections()[Rejection{"panic", false}] != 0 {
			t.Errorf("Content-Length %s: the framing panicked", cl)
		}
	}
}

// TestLockOrderDialogParticipant runs the two paths that take a
// participant's and its dialog's locks, hasRejectedActive and offerFor
// under d.mu (as reinviteOnce and onReinvite do), side by side: they used
// to take them in opposite orders and deadlock the conference.
func TestLockOrderDialogParticipant(t *testing.T) {
	desc := sdp.MustParse("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\nc=IN IP4 239.255.1.1/15\r\nm=video 5006 RTP/AVP 96\r\nc=IN IP4 239.255.1.2/15\r\n")
	d := &dialog{offered: desc}
	p := &participant{dlg: d, rejected: map[int]bool{1: true}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		wg.Go(func() {
			for range 20000 {
				hasRejectedActive(p)
			}
		})
		wg.Go(func() {
			for range 20000 {
				d.mu.Lock()
				offerFor(desc, p)
				d.mu.Unlock()
			}
		})
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("deadlock between hasRejectedActive and offerFor under d.mu")
	}
}

// TestEndedStaysEnded: a participant that ended (declined, failed, left,
// removed) is never made invited, ringing or joined again, as a join that
// completes after a removal would; nor does a later end replace its own
// (a 481 crossing a removal does not make it failed).
func TestEndedStaysEnded(t *testing.T) {
	for _, from := range []State{Declined, Failed, Left, Removed} {
		for _, to := range []State{Invited, Ringing, Joined} {
			p := &participant{state: from}
			p.set(to, 200, "OK")
			if p.state != from {
				t.Errorf("%v then %v: %v, want it to stay %v", from, to, p.state, from)
			}
		}
		p := &participant{state: from, reason: "first"}
		p.set(Failed, 0, "second")
		if p.state != from || p.reason != "first" {
			t.Errorf("%v then failed: %v %q, want the first end kept", from, p.state, p.reason)
		}
	}
	p := &participant{state: Ringing}
	if p.set(Joined, 200, "OK"); p.state != Joined {
		t.Fatalf("ringing then joined: %v", p.state)
	}
}

// TestNegativeLimits: a negative bound is off (or, for the burst, the
// default), never one that refuses everything.
func TestNegativeLimits(t *testing.T) {
	l := Limits{SourceBurst: -1, TCPIdle: -1, TCPMessage: -time.Second, MaxTransactions: -1}.withDefaults()
	if l.SourceBurst != 400 {
		t.Errorf("SourceBurst -1 became %d, want the default 400", l.SourceBurst)
	}
	now := time.Now()
	for name, d := range map[string]time.Duration{"TCPIdle": l.TCPIdle, "TCPMessage": l.TCPMessage} {
		if !now.Add(d).After(now.Add(50 * 365 * 24 * time.Hour)) {
			t.Errorf("%s -1 became %v, want no deadline", name, d)
		}
	}
	if !unlimited(l.MaxTransactions) {
		t.Errorf("MaxTransactions -1 became %d", l.MaxTransactions)
	}
}

// TestNextHopFamily: the family mcc sends a dialog's requests over
// follows its next hop (RFC 3261 §12.2.1.1): the first route when there is
// one, else the remote target a 2xx or a re-INVITE set; a host name keeps
// the family found before.
func TestNextHopFamily(t *testing.T) {
	contact := func(uri string) *sip.Response {
		res := sip.NewResponse(200, "OK")
		res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "a", Host: uri}})
		return res
	}
	for _, tc := range []struct {
		name   string
		before bool
		route  string
		target string
		want   bool
	}{
		{"IPv4 dialog, IPv6 Contact", false, "", "::1", true},
		{"IPv6 dialog, IPv4 Contact", true, "", "127.0.0.1", false},
		{"IPv4-mapped is IPv4", true, "", "::ffff:127.0.0.1", false},
		{"a host name keeps the family", true, "", "pc.example.org", true},
		{"the first route decides", false, "::1", "127.0.0.1", true},
	} {
		d := &dialog{v6: tc.before}
		if tc.route != "" {
			d.routeSet = []sip.Uri{{Scheme: "sip", Host: tc.route}}
		}
		d.refreshTargetLocked(contact(tc.target))
		if d.v6 != tc.want {
			t.Errorf("%s: v6 = %v, want %v", tc.name, d.v6, tc.want)
		}
	}
}

// TestListenerNeedsHost: a listener with no host (one socket for both
// families) is refused; mcc sends each family from a socket of its own.
func TestListenerNeedsHost(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	for _, tr := range []string{"udp", "tcp"} {
		c, err := New(Config{Listeners: []Listener{{Transport: tr, Addr: ":0"}}, Host: "127.0.0.1", Manager: e.m})
		if err == nil {
			c.Close()
			t.Fatalf("%s :0 was taken", tr)
		}
		if !strings.Contains(err.Error(), "names no host") {
			t.Fatalf("%s :0: %v", tr, err)
		}
	}
}

// TestTargetStaysPinned: a 2xx to mcc's re-INVITE of a dial-in, or a
// re-INVITE of the caller's, that names another host in its Contact does
// not move the first hop away from the address the dial-in came from (nor
// its family); over TLS the name is kept, for its certificate.
func TestTargetStaysPinned(t *testing.T) {
	contact := func(host string) *sip.Response {
		res := sip.NewResponse(200, "OK")
		res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "a", Host: host, Port: 5070}})
		return res
	}
	d := &dialog{transport: "UDP", fixTo: netip.MustParseAddrPort("127.0.0.5:5999")}
	d.refreshTargetLocked(contact("::1"))
	if d.remoteTarget.Host != "127.0.0.5" || d.remoteTarget.Port != 5999 || d.v6 {
		t.Fatalf("the target moved to %s:%d (v6 %v)", d.remoteTarget.Host, d.remoteTarget.Port, d.v6)
	}
	tls := &dialog{transport: "TLS", fixTo: netip.MustParseAddrPort("127.0.0.5:5999")}
	tls.refreshTargetLocked(contact("pc.example.org"))
	if tls.remoteTarget.Host != "pc.example.org" {
		t.Fatalf("over TLS the target became %s", tls.remoteTarget.Host)
	}
}

// TestAnswerOwnOffer: a participant's own offer is answered as RFC 3264
// §6.2 and §8 say: a multicast stream with the offer's direction (a hold,
// a=inactive, gets a=inactive, and shows as on hold), a declined stream
// at port 0, and an offer that moves the group or the port refused.
func TestAnswerOwnOffer(t *testing.T) {
	cur, err := sdp.Parse([]byte("v=0\r\no=mcc 1 3 IN IP4 192.0.2.1\r\ns=Lecture\r\nt=0 0\r\n" +
		"m=audio 5004 RTP/AVP 0\r\nc=IN IP4 239.255.1.1/15\r\na=recvonly\r\n" +
		"m=video 5006 RTP/AVP 96\r\nc=IN IP4 239.255.1.2/15\r\na=rtpmap:96 H264/90000\r\na=recvonly\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	offer := func(audio, video string) *sdp.Session {
		s, err := sdp.Parse([]byte("v=0\r\no=p 7 8 IN IP4 192.0.2.9\r\ns=-\r\nt=0 0\r\n" + audio + video))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	const (
		audio    = "m=audio 5004 RTP/AVP 0\r\nc=IN IP4 239.255.1.1/15\r\na=recvonly\r\n"
		video    = "m=video 5006 RTP/AVP 96\r\nc=IN IP4 239.255.1.2/15\r\na=rtpmap:96 H264/90000\r\na=recvonly\r\n"
		audioOff = "m=audio 5004 RTP/AVP 0\r\nc=IN IP4 239.255.1.1/15\r\na=inactive\r\n"
		videoOff = "m=video 5006 RTP/AVP 96\r\nc=IN IP4 239.255.1.2/15\r\na=rtpmap:96 H264/90000\r\na=inactive\r\n"
	)
	for _, tc := range []struct {
		name    string
		offer   *sdp.Session
		dirs    []sdp.Direction
		ports   []uint16
		changed bool
		hold    bool
		refused string
	}{
		{"a refresh: the same", offer(audio, video), []sdp.Direction{sdp.RecvOnly, sdp.RecvOnly}, []uint16{5004, 5006}, false, false, ""},
		{"hold", offer(audioOff, videoOff), []sdp.Direction{sdp.Inactive, sdp.Inactive}, []uint16{5004, 5006}, true, true, ""},
		{"one stream held", offer(audioOff, video), []sdp.Direction{sdp.Inactive, sdp.RecvOnly}, []uint16{5004, 5006}, true, false, ""},
		{"video declined", offer(audio, "m=video 0 RTP/AVP 96\r\n"), []sdp.Direction{sdp.RecvOnly, sdp.RecvOnly}, []uint16{5004, 0}, true, false, ""},
		{"the group moved", offer(strings.Replace(audio, "239.255.1.1", "239.255.9.9", 1), video), nil, nil, false, false, "stream 0"},
		{"the port moved", offer(audio, strings.Replace(video, "5006", "6000", 1)), nil, nil, false, false, "stream 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed, hold, why := answerOwnOffer(cur, tc.offer)
			if tc.refused != "" {
				if !strings.Contains(why, tc.refused) || got != nil {
					t.Fatalf("answer %v, why %q; want a refusal of %s", got, why, tc.refused)
				}
				return
			}
			if why != "" {
				t.Fatalf("refused: %s", why)
			}
			for i, m := range got.Media {
				if m.Port != tc.ports[i] || (m.Port != 0 && got.EffectiveDirection(m) != tc.dirs[i]) {
					t.Errorf("stream %d: port %d %s, want %d %s", i, m.Port, got.EffectiveDirection(m), tc.ports[i], tc.dirs[i])
				}
			}
			if changed != tc.changed || hold != tc.hold {
				t.Errorf("changed %v hold %v, want %v %v", changed, hold, tc.changed, tc.hold)
			}
			if cur.Media[0].Direction != sdp.RecvOnly || cur.Media[0].Port != 5004 {
				t.Fatal("the dialog's description was changed in place")
			}
		})
	}
}

// TestRetryAfterOf: only a 500 or 503 with a delta-seconds Retry-After
// (RFC 3261 §20.33, comment and parameters allowed) asks for a retry, at
// most maxRetryAfter later.
func TestRetryAfterOf(t *testing.T) {
	for _, tc := range []struct {
		code  int
		value string
		want  time.Duration // 0: no retry
	}{
		{500, "5", 5 * time.Second},
		{503, "18000;duration=3600", maxRetryAfter},
		{500, "2 (in a moment)", 2 * time.Second},
		{500, "", 0},
		{500, "soon", 0},
		{486, "5", 0},
		{491, "5", 0},
	} {
		res := sip.NewResponse(tc.code, "x")
		if tc.value != "" {
			res.AppendHeader(sip.NewHeader("Retry-After", tc.value))
		}
		r := retryAfterOf(res)
		switch {
		case tc.want == 0 && r != nil:
			t.Errorf("%d Retry-After %q: retry after %v, want none", tc.code, tc.value, r.after)
		case tc.want != 0 && (r == nil || r.after != tc.want):
			t.Errorf("%d Retry-After %q: %v, want %v", tc.code, tc.value, r, tc.want)
		}
	}
}

// TestNATRebinding: a dial-in behind NAT (a private Contact) whose
// re-INVITE comes from a new source port is reached at that port from then
// on, with or without a Contact in the re-INVITE.
func TestNATRebinding(t *testing.T) {
	invite := func(contact bool) *sip.Request {
		req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "lecture", Host: "192.0.2.1"})
		if contact {
			req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "a", Host: "10.0.0.5", Port: 5060}})
		}
		return req
	}
	for _, withContact := range []bool{true, false} {
		d := &dialog{transport: "UDP", fixTo: netip.MustParseAddrPort("198.51.100.7:40000")}
		d.refreshTargetLocked(invite(true)) // the dial-in
		if d.remoteTarget.Host != "198.51.100.7" || d.remoteTarget.Port != 40000 {
			t.Fatalf("the dial-in's target is %s:%d", d.remoteTarget.Host, d.remoteTarget.Port)
		}
		// The re-INVITE, as onReinvite applies it: fixTo first.
		d.fixTo = netip.MustParseAddrPort("198.51.100.7:41234")
		d.refreshTargetLocked(invite(withContact))
		d.fixTargetLocked()
		if d.remoteTarget.Host != "198.51.100.7" || d.remoteTarget.Port != 41234 {
			t.Errorf("Contact %v: after the rebinding the target is %s:%d, want the new source port", withContact, d.remoteTarget.Host, d.remoteTarget.Port)
		}
	}
}
