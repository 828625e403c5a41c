package conference

import (
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"mcc/sdp"
)

func TestMain(m *testing.M) {
	// sipgo logs some transport events through its package logger.
	sip.SetDefaultLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.Exit(m.Run())
}

func echo(offer *sdp.Session) []byte {
	b, _ := sdp.Answer(offer, sdp.Origin{Username: "bob", SessionID: 7, Version: 1, Host: "bob.example"}).Marshal()
	return b
}

func TestDialInOffers(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp", "tcp")
	desc, _ := e.c.Session(e.name)

	// An offer that is what a participant would answer to the session:
	// answered with the session's streams.
	q := e.peer(t, "udp")
	match := echo(desc)
	call := q.dialIn(t, e.c.URI(e.name), match, nil)
	if call.res.StatusCode != 200 {
		t.Fatalf("matching offer: %d %s", call.res.StatusCode, call.res.Reason)
	}
	ans, err := sdp.Parse(call.res.Body())
	if err != nil || len(ans.Media) != 2 || ans.Media[0].Connection.Addr != desc.Media[0].Connection.Addr {
		t.Fatalf("answer to a matching offer: %v\n%s", err, call.res.Body())
	}

	// A multicast offer for other groups: 488 with a Warning.
	other := desc.Clone()
	other.Media[0].Connection.Addr = other.Media[0].Connection.Addr.Next()
	b, _ := other.Marshal()
	call = e.peer(t, "udp").dialIn(t, e.c.URI(e.name), b, nil)
	if call.res.StatusCode != 488 || call.res.GetHeader("Warning") == nil {
		t.Fatalf("other groups: %d, Warning %v", call.res.StatusCode, call.res.GetHeader("Warning"))
	}

	// Malformed SDP: 488 naming the line.
	bad := "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=x\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\nc=IN IP4 239.1.1.1\r\n"
	call = e.peer(t, "udp").dialIn(t, e.c.URI(e.name), []byte(bad), nil)
	if w := call.res.GetHeader("Warning"); call.res.StatusCode != 488 || w == nil || !strings.Contains(w.Value(), "line 6") {
		t.Fatalf("bad SDP: %d %v", call.res.StatusCode, w)
	}

	// A unicast offer: its streams rejected, then a re-INVITE with the
	// session's streams, reusing the port-0 slots.
	u := e.peer(t, "udp")
	unicast := []byte("v=0\r\no=carol 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8\r\n")
	call = u.dialIn(t, e.c.URI(e.name), unicast, nil)
	if call.res.StatusCode != 200 {
		t.Fatalf("unicast offer: %d", call.res.StatusCode)
	}
	if a, _ := sdp.Parse(call.res.Body()); a == nil || a.Media[0].Port != 0 {
		t.Fatalf("unicast streams are not rejected:\n%s", call.res.Body())
	}
	eventually(t, "the re-INVITE with the multicast streams", func() bool { n, _, _ := u.counts(); return n == 1 })
	re, _ := sdp.Parse(u.lastInvite().Body())
	if len(re.Media) != 2 || !re.Media[0].Connection.IsMulticast() || re.Media[0].Port == 0 {
		t.Fatalf("re-INVITE after a unicast offer:\n%s", u.lastInvite().Body())
	}
	eventually(t, "everyone joined", func() bool {
		ps, _ := e.c.Participants(e.name)
		joined := 0
		for _, p := range ps {
			if p.State == Joined {
				joined++
			}
		}
		return joined == 2
	})

	// Unknown conference: 404. OPTIONS: 200 with Allow, Accept, Supported.
	call = e.peer(t, "udp").dialIn(t, strings.Replace(e.c.URI(e.name), "lecture", "nope", 1), nil, nil)
	if call.res.StatusCode != 404 {
		t.Fatalf("unknown conference: %d", call.res.StatusCode)
	}
	opt := sip.NewRequest(sip.OPTIONS, call.req.Recipient)
	res := q.do(t, opt)
	if res.StatusCode != 200 || res.GetHeader("Allow") == nil || res.GetHeader("Accept") == nil || res.GetHeader("Supported") == nil {
		t.Fatalf("OPTIONS: %s", res)
	}
}

func TestRejectUnicastPolicy(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.UnicastOffer = RejectUnicast }, "udp")
	unicast := []byte("v=0\r\no=carol 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n")
	call := e.peer(t, "udp").dialIn(t, e.c.URI(e.name), unicast, nil)
	if w := call.res.GetHeader("Warning"); call.res.StatusCode != 488 || w == nil || !strings.Contains(w.Value(), "multicast only") {
		t.Fatalf("unicast offer, reject policy: %d %v", call.res.StatusCode, w)
	}
}

func TestAccess(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	if _, err := e.c.Create("staff", e.sid, Access{Mode: AllowList, Allow: []string{"sip:alice@example.org", "example.com"}}); err != nil {
		t.Fatal(err)
	}
	uri := strings.Replace(e.c.URI(e.name), "lecture", "staff", 1)
	call := e.peer(t, "udp").dialIn(t, uri, nil, echo) // From: bob@example.org
	if call.res.StatusCode != 403 {
		t.Fatalf("caller not on the list: %d", call.res.StatusCode)
	}

	if _, err := e.c.Create("board", e.sid, Access{Mode: Digest, Users: map[string]HA1{"bob": NewHA1("bob", "board", "s3cret")}}); err != nil {
		t.Fatal(err)
	}
	uri = strings.Replace(e.c.URI(e.name), "lecture", "board", 1)
	p := e.peer(t, "udp")
	call = p.dialIn(t, uri, nil, echo)
	if call.res.StatusCode != 401 {
		t.Fatalf("no credentials: %d", call.res.StatusCode)
	}
	chal, err := digest.ParseChallenge(call.res.GetHeader("WWW-Authenticate").Value())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pass string
		want int
	}{{"wrong", 401}, {"s3cret", 200}} {
		cred, _ := digest.Digest(chal, digest.Options{Method: "INVITE", URI: uri, Username: "bob", Password: tc.pass, Count: 1})
		call = p.dialIn(t, uri, nil, echo, sip.NewHeader("Authorization", cred.String()))
		if call.res.StatusCode != tc.want {
			t.Fatalf("password %q: %d, want %d", tc.pass, call.res.StatusCode, tc.want)
		}
	}
}

func TestDeclineRedirectTimeout(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.RingTimeout = 300 * time.Millisecond }, "udp")
	busy := e.peer(t, "udp")
	busy.answerWith(func(*sip.Request, *sdp.Session) (int, *sdp.Session) { return 486, nil })
	ps, _ := e.c.Invite(e.name, busy.uri())
	if got := waitState(t, e.c, e.name, ps[0].ID, Declined); got.Status != 486 {
		t.Fatalf("busy: %+v", got)
	}

	// 302 to a peer that answers.
	target := e.peer(t, "udp")
	redirect := e.peer(t, "udp")
	redirect.handleInvites(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 302, "Moved Temporarily", nil)
		var u sip.Uri
		sip.ParseUri(target.uri(), &u)
		res.AppendHeader(&sip.ContactHeader{Address: u})
		tx.Respond(res)
	})
	ps, _ = e.c.Invite(e.name, redirect.uri())
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	if n, _, _ := target.counts(); n != 1 {
		t.Fatalf("redirect target got %d INVITEs", n)
	}

	// A peer that rings and never answers gets CANCEL after the ring timeout.
	ringing := e.peer(t, "udp")
	cancelled := make(chan struct{})
	ringing.handleInvites(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 180, "Ringing", nil))
		tx.OnCancel(func(*sip.Request) { close(cancelled) })
		<-tx.Done()
	})
	ps, _ = e.c.Invite(e.name, ringing.uri())
	if got := waitState(t, e.c, e.name, ps[0].ID, Ringing); got.Status != 180 {
		t.Fatalf("ringing: %+v", got)
	}
	got := waitState(t, e.c, e.name, ps[0].ID, Failed)
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatalf("no CANCEL; participant %+v", got)
	}
}

func TestParticipantReinviteAndBye(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	call := p.dialIn(t, e.c.URI(e.name), nil, echo)
	eventually(t, "joined", func() bool { ps, _ := e.c.Participants(e.name); return ps[0].State == Joined })
	offer, _ := sdp.Parse(call.res.Body())

	// A session refresh with the same description is answered with the
	// current session, version unchanged.
	req := p.inDialog(call, sip.INVITE, 2, echo(offer))
	res := p.do(t, req)
	if res.StatusCode != 200 {
		t.Fatalf("refresh: %d", res.StatusCode)
	}
	p.ack(t, call, 2, nil)
	ans, _ := sdp.Parse(res.Body())
	if ans.Origin.Version != offer.Origin.Version || len(ans.Media) != 2 {
		t.Fatalf("refresh answer: version %d after %d", ans.Origin.Version, offer.Origin.Version)
	}
	// An old CSeq is refused (our own CSeq tracking).
	res = p.do(t, p.inDialog(call, sip.INVITE, 2, echo(offer)))
	if res.StatusCode != 500 {
		t.Fatalf("re-INVITE with a used CSeq: %d", res.StatusCode)
	}
	// A re-INVITE without SDP gets an offer one version up.
	res = p.do(t, p.inDialog(call, sip.INVITE, 3, nil))
	o2, _ := sdp.Parse(res.Body())
	if res.StatusCode != 200 || o2 == nil || o2.Origin.Version != offer.Origin.Version+1 {
		t.Fatalf("re-INVITE without SDP: %d\n%s", res.StatusCode, res.Body())
	}
	p.ack(t, call, 3, echo(o2))
	// BYE from the participant: left.
	res = p.do(t, p.inDialog(call, sip.BYE, 4, nil))
	if res.StatusCode != 200 {
		t.Fatalf("BYE: %d", res.StatusCode)
	}
	if ps, _ := e.c.Participants(e.name); ps[0].State != Left {
		t.Fatalf("after BYE: %+v", ps[0])
	}
	// Anything more in that dialog: 481.
	if res = p.do(t, p.inDialog(call, sip.BYE, 5, nil)); res.StatusCode != 481 {
		t.Fatalf("BYE after BYE: %d", res.StatusCode)
	}
}

func TestRefusesHeaderInjection(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	for _, bad := range []string{"sip:alice@example.org\r\nX-Evil: 1", "sip:bob@example.org\n", "http://example.org", "alice"} {
		if _, err := e.c.Invite(e.name, bad); err == nil {
			t.Errorf("Invite(%q) was accepted", bad)
		}
	}
	if _, err := e.c.Create("bad name\r\n", e.sid, Access{}); err == nil {
		t.Error("a conference name with CRLF was accepted")
	}
}

// TestLargeOfferGoesOverTCP: a description too large for UDP is sent over
// TCP instead of failing (RFC 3261 §18.1.1).
func TestLargeOfferGoesOverTCP(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp", "tcp")
	big, err := e.m.Create(sdp.SessionSpec{Name: "Many streams", Pool: "ipv4-local", Media: slices.Repeat([]sdp.MediaSpec{{Kind: "audio"}}, 14)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Create("big", big.Origin.SessionID, Access{}); err != nil {
		t.Fatal(err)
	}
	// The peer listens on UDP and TCP at once, on one port number.
	p := e.peer(t, "tcp")
	newPeerOn(t, "udp", p.addr, p)
	ps, _ := e.c.Invite("big", strings.TrimSuffix(p.uri(), ";transport=tcp"))
	waitState(t, e.c, "big", ps[0].ID, Joined)
	if tr := p.lastInvite().Transport(); tr != "TCP" {
		t.Fatalf("a %d-byte INVITE went over %s", len(p.lastInvite().String()), tr)
	}
}

// TestUnicastDialInVersion0: a dial-in with a unicast offer (linphone's)
// into a session at o= version 0 (ffmpeg's) is answered with its streams
// rejected, then re-INVITEd with the session's: "acknowledged version 0"
// is not "has the session's streams".
func TestUnicastDialInVersion0(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	b, err := os.ReadFile("testdata/corpus/ffmpeg-opus.sdp")
	if err != nil {
		t.Fatal(err)
	}
	desc, err := sdp.Liberal(0).Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Import("ff", desc, Access{}); err != nil {
		t.Fatal(err)
	}
	u := e.peer(t, "udp")
	unicast := []byte("v=0\r\no=carol 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8\r\n")
	if call := u.dialIn(t, e.c.URI("ff"), unicast, nil); call.res.StatusCode != 200 {
		t.Fatalf("unicast offer: %d", call.res.StatusCode)
	}
	eventually(t, "a re-INVITE with the session's group", func() bool {
		n, _, _ := u.counts()
		return n >= 1 && strings.Contains(string(u.lastInvite().Body()), "c=IN IP4 239.255.12.1/1")
	})
	eventually(t, "the participant at the session's version", func() bool {
		ps, _ := e.c.Participants("ff")
		return len(ps) == 1 && ps[0].State == Joined && !ps[0].Behind && len(ps[0].Streams) == 1 && ps[0].Streams[0] == "accepted"
	})
}
