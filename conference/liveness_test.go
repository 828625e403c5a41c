package conference

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

// TestVanishedParticipantIsEnded: a participant whose host goes silent
// (no BYE) is probed with in-dialog OPTIONS and, answering none, is
// failed with the reason within two probe intervals; one that answers
// stays joined through several. Before, it stayed joined forever.
func TestVanishedParticipantIsEnded(t *testing.T) {
	const interval = 600 * time.Millisecond
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.ProbeInterval = interval }, "udp")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone, stays := newPeerConn(t, pc), e.peer(t, "udp")
	ps, err := e.c.Invite(e.name, gone.uri(), stays.uri())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		waitState(t, e.c, e.name, p.ID, Joined)
	}
	pc.Close() // the host vanishes: what mcc sends is dropped
	vanished := time.Now()
	got := waitState(t, e.c, e.name, ps[0].ID, Failed)
	took := time.Since(vanished)
	if !strings.Contains(got.Reason, "OPTIONS") {
		t.Fatalf("failed with %q, want the probe named", got.Reason)
	}
	// Two intervals, and the liveness loop's tick, and the test's poll.
	if took > 2*interval+interval/10+100*time.Millisecond {
		t.Fatalf("found gone after %v, want within two probe intervals (%v)", took, 2*interval)
	}
	time.Sleep(3 * interval)
	for _, p := range func() []Participant { ps, _ := e.c.Participants(e.name); return ps }() {
		if p.ID == ps[1].ID && p.State != Joined {
			t.Fatalf("the participant that answers its probes was ended: %+v", p)
		}
	}
	if m := e.c.Metrics(); m.ProbesAnswered == 0 || m.ProbesUnanswered == 0 {
		t.Fatalf("probes answered %d, unanswered %d: want both counted", m.ProbesAnswered, m.ProbesUnanswered)
	}
}

// TestVanishedNeverDelaysChange: with participants gone silent among
// live ones and two fan-out slots, a change reaches every live one; the
// vanished hold a slot for T1 each, not for their re-INVITE's 32 s.
func TestVanishedNeverDelaysChange(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.Fanout = 2; c.ProbeInterval = -1 }, "udp")
	var live, gone []string
	var conns []net.PacketConn
	for i := range 12 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := newPeerConn(t, pc)
		ps, err := e.c.Invite(e.name, p.uri())
		if err != nil {
			t.Fatal(err)
		}
		waitState(t, e.c, e.name, ps[0].ID, Joined)
		if i%3 == 0 {
			gone = append(gone, ps[0].ID)
			conns = append(conns, pc)
		} else {
			live = append(live, ps[0].ID)
		}
	}
	for _, pc := range conns {
		pc.Close()
	}
	start := time.Now()
	ch, err := e.c.AddStream(now(), e.name, sdp.MediaSpec{Kind: "audio"})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range live {
		ackedVersion(t, e.c, e.name, id, ch.Version)
	}
	// Four vanished on two slots hold them for 2·T1 in all; 32 s each
	// would be a minute.
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the live participants had the change after %v", took)
	}
	for _, id := range gone {
		for _, p := range func() []Participant { ps, _ := e.c.Participants(e.name); return ps }() {
			if p.ID == id && p.Acked == ch.Version {
				t.Fatalf("a vanished participant acknowledged the change: %+v", p)
			}
		}
	}
}

// TestDialInSessionTimer: a dial-in that asks for a session timer gets
// it (RFC 4028 §9: it refreshes, Require: timer), an interval below
// mcc's Min-SE gets 422 (§8.1), and a session its caller stops
// refreshing is ended with BYE before it expires (§10).
func TestDialInSessionTimer(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.minSE = time.Second; c.ProbeInterval = -1 }, "udp")
	p := e.peer(t, "udp")
	small := p.dialIn(t, e.c.URI(e.name), nil, nil, sip.NewHeader("Supported", "timer"), sip.NewHeader("Session-Expires", "0"))
	if small.res.StatusCode != 200 || small.res.GetHeader("Session-Expires") != nil {
		// 0 is no interval: no timer, no 422.
		t.Fatalf("Session-Expires 0: %d %v", small.res.StatusCode, small.res.GetHeader("Session-Expires"))
	}
	p2 := e.peer(t, "udp")
	tooSmall := p2.dialIn(t, e.c.URI(e.name), nil, nil, sip.NewHeader("Supported", "timer"), sip.NewHeader("Session-Expires", "1;refresher=uac"), sip.NewHeader("Min-SE", "1"))
	if tooSmall.res.StatusCode != 200 {
		t.Fatalf("Session-Expires at Min-SE: %d", tooSmall.res.StatusCode)
	}
	e2 := newEnvWith(t, "127.0.0.1", func(c *Config) { c.minSE = 2 * time.Second; c.ProbeInterval = -1 }, "udp")
	p3 := e2.peer(t, "udp")
	refused := p3.dialIn(t, e2.c.URI(e2.name), nil, nil, sip.NewHeader("Supported", "timer"), sip.NewHeader("Session-Expires", "1"))
	if refused.res.StatusCode != 422 {
		t.Fatalf("Session-Expires below Min-SE: %d, want 422", refused.res.StatusCode)
	}
	if h := refused.res.GetHeader("Min-SE"); h == nil || h.Value() != "2" {
		t.Fatalf("422 Min-SE %v, want 2", h)
	}
	answer := func(offer *sdp.Session) []byte {
		b, _ := sdp.Answer(offer, sdp.Origin{Username: "bob", SessionID: 9, Version: 1, Host: "bob.example"}).Marshal()
		return b
	}
	p4 := e2.peer(t, "udp")
	cl := p4.dialIn(t, e2.c.URI(e2.name), nil, answer, sip.NewHeader("Supported", "timer"), sip.NewHeader("Session-Expires", "3"))
	if cl.res.StatusCode != 200 {
		t.Fatalf("dial-in with a timer: %d", cl.res.StatusCode)
	}
	se, refresher, ok := sessionExpiresOf(cl.res)
	if !ok || se != 3*time.Second || refresher != "uac" || cl.res.GetHeader("Require") == nil || cl.res.GetHeader("Require").Value() != "timer" {
		t.Fatalf("200 Session-Expires %v %q %v, Require %v", se, refresher, ok, cl.res.GetHeader("Require"))
	}
	ps, _ := e2.c.Participants(e2.name)
	start := time.Now()
	got := waitState(t, e2.c, e2.name, ps[0].ID, Failed)
	took := time.Since(start)
	if !strings.Contains(got.Reason, "expired") {
		t.Fatalf("ended with %q", got.Reason)
	}
	// 3 s less a third of it, with the loop's tick.
	if took < 1500*time.Millisecond || took > 3*time.Second {
		t.Fatalf("ended after %v, want about 2 s (before the 3 s session expires)", took)
	}
	eventually(t, "the BYE", func() bool { _, _, byes := p4.counts(); return byes == 1 })
}

// TestDialOutSessionTimer: mcc's INVITE asks for a session timer; a
// participant that makes mcc the refresher gets re-INVITEs at half the
// interval with the same description (RFC 3264 §8: the version does
// not move); a 422 is retried with its Min-SE and the next CSeq (RFC
// 4028 §7.3).
func TestDialOutSessionTimer(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.minSE = time.Second; c.SessionExpires = 2 * time.Second; c.ProbeInterval = -1 }, "udp")
	p := e.peer(t, "udp")
	var n atomic.Int32
	p.answerWith(func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session) {
		if n.Add(1) == 1 {
			return 422, nil
		}
		return 200, nil
	})
	p.mu.Lock()
	p.extra = func(req *sip.Request, code int) []sip.Header {
		if code == 422 {
			return []sip.Header{sip.NewHeader("Min-SE", "3")}
		}
		se, _, _ := sessionExpiresOf(req)
		return []sip.Header{sip.NewHeader("Session-Expires", seconds(se)+";refresher=uac"), sip.NewHeader("Require", "timer")}
	}
	p.mu.Unlock()
	ps, err := e.c.Invite(e.name, p.uri())
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	p.mu.Lock()
	first, retry := p.invites[0], p.invites[1]
	p.mu.Unlock()
	if !supportsTimer(first) || first.GetHeader("Min-SE") == nil {
		t.Fatalf("the INVITE does not ask for a session timer:\n%s", first)
	}
	if se, _, _ := sessionExpiresOf(retry); se < 3*time.Second || retry.CSeq().SeqNo != first.CSeq().SeqNo+1 || retry.CallID().Value() != first.CallID().Value() {
		t.Fatalf("after the 422: Session-Expires %v, CSeq %d after %d", se, retry.CSeq().SeqNo, first.CSeq().SeqNo)
	}
	// The interval is what the 422 made mcc ask for, not its default.
	e.c.mu.Lock()
	var d *dialog
	for _, x := range e.c.dialogs {
		d = x
	}
	e.c.mu.Unlock()
	d.mu.Lock()
	iv := d.timer.interval
	d.mu.Unlock()
	if iv != 3*time.Second {
		t.Fatalf("session interval %v after a 422 with Min-SE 3 and a 200 with 3 s, want 3 s", iv)
	}
	eventually(t, "a refresh re-INVITE", func() bool { n, _, _ := p.counts(); return n >= 3 })
	refresh := p.lastInvite()
	if _, ok := refresh.To().Params.Get("tag"); !ok {
		t.Fatal("the refresh is not in the dialog")
	}
	a, _ := sdp.Parse(retry.Body())
	b, _ := sdp.Parse(refresh.Body())
	if a.Origin.Version != b.Origin.Version || a.String() != b.String() {
		t.Fatalf("the refresh changed the description:\n%s\nthen\n%s", a, b)
	}
	if se, r, _ := sessionExpiresOf(refresh); se != 3*time.Second || r != "uac" {
		t.Fatalf("refresh Session-Expires %v;refresher=%s", se, r)
	}
	if got := waitState(t, e.c, e.name, ps[0].ID, Joined); got.Acked == 0 {
		t.Fatalf("after its refresh: %+v", got)
	}
}
