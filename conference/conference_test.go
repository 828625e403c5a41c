package conference

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"mcc/multicast"
	"mcc/sdp"
)

type env struct {
	c     *Controller
	m     *sdp.Manager
	a     *multicast.Allocator
	name  string
	sid   uint64
	host  string
	tls   *tls.Config
	peers []*peer
	pool  string
	// panics says the test makes the controller panic on purpose.
	panics bool
}

// newEnv starts a controller on host with the given transports and a
// conference "lecture" with an audio and a video stream.
func newEnv(t testing.TB, host string, transports ...string) *env {
	t.Helper()
	return newEnvWith(t, host, nil, transports...)
}

// newEnvWith is newEnv with a hook that may change the controller's
// configuration before it starts.
func newEnvWith(t testing.TB, host string, configure func(*Config), transports ...string) *env {
	t.Helper()
	family := multicast.IPv4
	if strings.Contains(host, ":") {
		family = multicast.IPv6
	}
	pool, _ := multicast.ScopePool(family, multicast.ScopeLocal, multicast.ScopeOptions{})
	a, err := multicast.NewAllocator(multicast.Config{Pools: []multicast.Pool{pool}})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := sdp.NewManager(sdp.ManagerConfig{Allocator: a, Origin: netip.MustParseAddr(host)})
	s, err := m.Create(sdp.SessionSpec{Name: "Lecture", Pool: pool.Name, Media: []sdp.MediaSpec{{Kind: "audio"}, {Kind: "video"}}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{m: m, a: a, name: "lecture", sid: s.Origin.SessionID, host: host, pool: pool.Name}
	var ls []Listener
	for _, tr := range transports {
		ls = append(ls, Listener{Transport: tr, Addr: net.JoinHostPort(host, "0")})
		if tr == "tls" {
			e.tls = testTLS(t)
		}
	}
	cfg := Config{Listeners: ls, Manager: m, TLS: e.tls}
	if configure != nil {
		configure(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		// A panic caught anywhere in the controller is a bug, even when
		// the test saw nothing of it.
		for r, n := range c.guard.rejections() {
			if r.Reason == "panic" && n > 0 && !e.panics {
				t.Errorf("the controller caught %d panics (see its log)", n)
			}
		}
	})
	e.c = c
	if _, err := c.Create(e.name, e.sid, Access{}); err != nil {
		t.Fatal(err)
	}
	return e
}

// withAccess creates another conference like the first, with access a, and
// makes it the env's conference: access is fixed when a conference is
// created, so a test that needs other rules takes a new one.
func (e *env) withAccess(t testing.TB, a Access) {
	t.Helper()
	s, err := e.m.Create(sdp.SessionSpec{Name: "Seminar", Pool: e.pool, Media: []sdp.MediaSpec{{Kind: "audio"}, {Kind: "video"}}})
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("seminar-%d", s.Origin.SessionID)
	if _, err := e.c.Create(name, s.Origin.SessionID, a); err != nil {
		t.Fatal(err)
	}
	e.name, e.sid = name, s.Origin.SessionID
}

func (e *env) peer(t testing.TB, transport string) *peer {
	p := newPeer(t, transport, e.host, e.tls)
	e.peers = append(e.peers, p)
	return p
}

// TestDialOutAddRemoveEnd is the main flow over UDP/IPv4: invite, add a
// stream for everyone, remove it, end the conference.
func TestDialOutAddRemoveEnd(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	ps, err := e.c.Invite(e.name, p.uri())
	if err != nil {
		t.Fatal(err)
	}
	got := waitState(t, e.c, e.name, ps[0].ID, Joined)
	if len(got.Streams) != 2 || got.Streams[0] != "accepted" || got.Streams[1] != "accepted" || got.Version != 1 {
		t.Fatalf("joined participant: %+v", got)
	}
	inv := p.lastInvite()
	offer, err := sdp.Parse(inv.Body())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range offer.Media {
		if m.Connection == nil || !m.Connection.IsMulticast() {
			t.Fatalf("the INVITE's streams must carry a media-level multicast c=:\n%s", inv.Body())
		}
	}
	eventually(t, "ACK", func() bool { _, acks, _ := p.counts(); return acks == 1 })

	ch, err := e.c.AddStream(ctxT(t), e.name, sdp.MediaSpec{Kind: "audio"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Stream != 2 || len(ch.Results) != 1 || len(ch.Results[0].Streams) != 3 || ch.Results[0].Streams[2] != "accepted" {
		t.Fatalf("AddStream = %+v", ch)
	}
	re, _ := sdp.Parse(p.lastInvite().Body())
	if err := sdp.CheckUpdate(offer, re); err != nil {
		t.Fatalf("the re-INVITE's offer is not a valid update: %v", err)
	}
	p.mu.Lock()
	dialogTag, _ := p.acks[0].To().Params.Get("tag")
	p.mu.Unlock()
	if to, _ := p.lastInvite().To().Params.Get("tag"); to != dialogTag || to == "" {
		t.Fatalf("re-INVITE To tag %q, want the dialog's %q", to, dialogTag)
	}
	if inv.CSeq().SeqNo+1 != p.lastInvite().CSeq().SeqNo {
		t.Fatalf("re-INVITE CSeq %d after %d", p.lastInvite().CSeq().SeqNo, inv.CSeq().SeqNo)
	}
	eventually(t, "ACK of the re-INVITE", func() bool { _, acks, _ := p.counts(); return acks == 2 })
	added := re.Media[2].Connection.Addr
	if _, ok := e.a.Lease(added); !ok {
		t.Fatalf("the new stream's group %v is not leased", added)
	}

	ch, err = e.c.RemoveStream(ctxT(t), e.name, 2)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Results[0].Streams[2] != "removed" || ch.Results[0].Version != 3 {
		t.Fatalf("RemoveStream = %+v", ch)
	}
	if _, ok := e.a.Lease(added); ok {
		t.Fatal("the removed stream's group is still leased after every participant moved on")
	}
	if err := e.c.Delete(ctxT(t), e.name); err != nil {
		t.Fatal(err)
	}
	if _, _, byes := p.counts(); byes != 1 {
		t.Fatalf("peer got %d BYEs after Delete, want 1", byes)
	}
	if n := len(e.a.Leases()); n != 0 {
		t.Fatalf("%d leases left after Delete", n)
	}
}

func testTLS(t testing.TB) *tls.Config {
	t.Helper()
	return selfSigned(t)
}

// TestInviteIntoExternalSession: a session mcc did not create (imported,
// or heard over SAP) is offered as it is, and cannot be changed.
func TestInviteIntoExternalSession(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	ext := sdp.MustParse("v=0\r\no=sdr 3929000000 7 IN IP4 192.0.2.50\r\ns=Mbone seminar\r\nt=0 0\r\nm=audio 23456 RTP/AVP 0\r\nc=IN IP4 224.2.200.10/127\r\n")
	if _, err := e.m.Import(ext); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Create("seminar", ext.Origin.SessionID, Access{}); err != nil {
		t.Fatal(err)
	}
	p := e.peer(t, "udp")
	ps, _ := e.c.Invite("seminar", p.uri())
	waitState(t, e.c, "seminar", ps[0].ID, Joined)
	offer, err := sdp.Parse(p.lastInvite().Body())
	if err != nil {
		t.Fatal(err)
	}
	if offer.Name != "Mbone seminar" || offer.Origin.SessionID != ext.Origin.SessionID || offer.Origin.Version != 7 ||
		offer.Media[0].Connection.String() != "IN IP4 224.2.200.10/127" {
		t.Fatalf("the offer is not the session's own description:\n%s", p.lastInvite().Body())
	}
	if _, err := e.c.AddStream(ctxT(t), "seminar", sdp.MediaSpec{Kind: "video"}); !errors.Is(err, sdp.ErrNotModifiable) {
		t.Fatalf("changing an external session: %v", err)
	}
}

// TestSessionConnectionOfferedPerMedium: an imported description with
// only a session-level c= (as Dante, VLC, PipeWire and ffmpeg write them)
// is offered with that c= in every m=, and none at session level: linphone
// joins only a group named at media level (RFC 8866 §5.7 makes the two
// forms the same session). Everything else is as imported.
func TestSessionConnectionOfferedPerMedium(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	ext := sdp.MustParse("v=0\r\no=- 1311738121 1311738121 IN IP4 192.0.2.7\r\ns=Stage box\r\nc=IN IP4 239.69.1.2/32\r\nt=0 0\r\n" +
		"a=clock-domain:PTPv2 0\r\nm=audio 5004 RTP/AVP 96\r\ni=Channels 1-2\r\na=rtpmap:96 L24/48000/2\r\na=ptime:1\r\n" +
		"a=ts-refclk:ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-34-56:0\r\na=mediaclk:direct=0\r\n" +
		"m=audio 5006 RTP/AVP 96\r\nc=IN IP4 239.69.1.3/32\r\na=rtpmap:96 L24/48000/2\r\n")
	if _, err := e.m.Import(ext); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Create("stage", ext.Origin.SessionID, Access{}); err != nil {
		t.Fatal(err)
	}
	p := e.peer(t, "udp")
	ps, _ := e.c.Invite("stage", p.uri())
	waitState(t, e.c, "stage", ps[0].ID, Joined)
	body := string(p.lastInvite().Body())
	offer, err := sdp.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if offer.Connection != nil {
		t.Errorf("the offer keeps a session-level c=:\n%s", body)
	}
	for i, want := range []string{"IN IP4 239.69.1.2/32", "IN IP4 239.69.1.3/32"} {
		if c := offer.Media[i].Connection; c == nil || c.String() != want {
			t.Errorf("m= %d: c= %v, want %s:\n%s", i, c, want, body)
		}
	}
	for _, kept := range []string{"a=clock-domain:PTPv2 0", "i=Channels 1-2", "a=ptime:1", "a=ts-refclk:ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-34-56:0", "a=mediaclk:direct=0",
		"o=- 1311738121 1311738121 IN IP4 192.0.2.7"} {
		if !strings.Contains(body, kept+"\r\n") {
			t.Errorf("the offer lost %q:\n%s", kept, body)
		}
	}
}
