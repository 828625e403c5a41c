package conference

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

// bobAnswer answers an offer as a participant that takes every stream.
func bobAnswer(o *sdp.Session) []byte {
	b, _ := sdp.Answer(o, sdp.Origin{Username: "bob", SessionID: 7, Version: 1, Host: "bob.example"}).Marshal()
	return b
}

// TestOfferlessDialInKeepsGroupUntilACK: a dial-in without an offer has
// mcc's offer in its 200; a stream removed before its ACK keeps its group
// leased until the participant has answered and moved on, since it may
// take it. Before, the group was released while the 200 waited for its
// ACK.
func TestOfferlessDialInKeepsGroupUntilACK(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	cl := p.dialInNoACK(t, e.c.URI(e.name), nil)
	if cl.res.StatusCode != 200 {
		t.Fatalf("dial-in: %d", cl.res.StatusCode)
	}
	offer, _ := sdp.Parse(cl.res.Body())
	g := offer.EffectiveConnection(offer.Media[1]).Addr
	ch, err := e.c.RemoveStream(now(), e.name, 1)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, ok := e.a.Lease(g); !ok {
		t.Fatalf("group %v released while the 200 offering it waits for its ACK", g)
	}
	p.ack(t, cl, 1, bobAnswer(offer))
	ps, _ := e.c.Participants(e.name)
	ackedVersion(t, e.c, e.name, ps[0].ID, ch.Version)
	eventually(t, "the group to go once the participant moved on", func() bool { _, ok := e.a.Lease(g); return !ok })
}

// TestRequireTimer: mcc does session timers, so a request that requires
// them is served (RFC 3261 §8.2.2.3 allows 420 only for what the UAS does
// not support). Before, mcc advertised timer and refused Require: timer.
func TestRequireTimer(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	cl := p.dialIn(t, e.c.URI(e.name), nil, bobAnswer, sip.NewHeader("Supported", "timer"),
		sip.NewHeader("Session-Expires", "1800;refresher=uac"), sip.NewHeader("Require", "timer"))
	if cl.res.StatusCode != 200 {
		t.Fatalf("dial-in with Require: timer: %d %s", cl.res.StatusCode, cl.res.Reason)
	}
}

// TestHugeSessionExpiresLowered: an interval beyond what mcc asks for is
// lowered in the 200 (RFC 4028 §9 lets the UAS lower it), so no caller
// can turn its dialog's liveness off.
func TestHugeSessionExpiresLowered(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	cl := p.dialIn(t, e.c.URI(e.name), nil, bobAnswer, sip.NewHeader("Supported", "timer"),
		sip.NewHeader("Session-Expires", "4294967295;refresher=uac"))
	se, refresher, ok := sessionExpiresOf(cl.res)
	if cl.res.StatusCode != 200 || !ok || se != defaultSessionExpires || refresher != "uac" {
		t.Fatalf("200 %d with Session-Expires %v;refresher=%s", cl.res.StatusCode, se, refresher)
	}
}

// TestRefreshAfterRefusedChange: when mcc refreshes the session of a
// participant that refused the latest change, the refresh re-offers what
// the participant has, and it stays. Before, the refresh re-sent the
// refused offer until the session expired and the participant was hung
// up.
func TestRefreshAfterRefusedChange(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.minSE = time.Second; c.SessionExpires = 3 * time.Second; c.ProbeInterval = -1 }, "udp")
	p := e.peer(t, "udp")
	var refreshes atomic.Int32
	p.answerWith(func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session) {
		if len(offer.Media) > 2 {
			return 488, nil
		}
		if _, ok := req.To().Params.Get("tag"); ok {
			refreshes.Add(1)
		}
		return 200, nil
	})
	p.mu.Lock()
	p.extra = func(req *sip.Request, code int) []sip.Header {
		if code != 200 {
			return nil
		}
		se, _, _ := sessionExpiresOf(req)
		return []sip.Header{sip.NewHeader("Session-Expires", seconds(se)+";refresher=uac"), sip.NewHeader("Require", "timer")}
	}
	p.mu.Unlock()
	ps, _ := e.c.Invite(e.name, p.uri())
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	if ch, err := e.c.AddStream(ctxT(t), e.name, sdp.MediaSpec{Kind: "audio"}); err != nil || !ch.Results[0].Behind {
		t.Fatalf("the refused change: %+v, %v", ch, err)
	}
	time.Sleep(4 * time.Second) // past the 3 s interval
	got, _ := e.c.Participants(e.name)
	if got[0].State != Joined || refreshes.Load() == 0 {
		t.Fatalf("after a refused change and a session interval: %+v, %d refreshes accepted", got[0], refreshes.Load())
	}
}

// TestRetryAfterZeroIsPaced: a participant that answers every re-INVITE
// with 500 and Retry-After: 0 is not sent them in a loop.
func TestRetryAfterZeroIsPaced(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	ps, _ := e.c.Invite(e.name, p.uri())
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	var n atomic.Int32
	p.handleInvites(func(req *sip.Request, tx sip.ServerTransaction) {
		n.Add(1)
		res := sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil)
		res.AppendHeader(sip.NewHeader("Retry-After", "0"))
		tx.Respond(res)
	})
	ch, err := e.c.AddStream(ctxT(t), e.name, sdp.MediaSpec{Kind: "audio"})
	if err != nil || !ch.Done || !ch.Results[0].Behind {
		t.Fatalf("AddStream = %+v, %v", ch, err)
	}
	if got := n.Load(); got != 1+maxRetriesAfter {
		t.Fatalf("%d re-INVITEs, want the first and %d retries", got, maxRetriesAfter)
	}
}

// TestWorkerSurvivesPanic: a panic in a participant's worker (recovered
// by the controller's barrier) leaves neither the participant without a
// worker nor the fan-out without its slot: the next change reaches it,
// with one slot in all.
func TestWorkerSurvivesPanic(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.Fanout = 1 }, "udp")
	e.panics = true // on purpose, below
	p := e.peer(t, "udp")
	ps, _ := e.c.Invite(e.name, p.uri())
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	var n atomic.Int32
	attemptHook = func() {
		if n.Add(1) == 1 {
			panic("a bad answer, say")
		}
	}
	defer func() { attemptHook = nil }()
	e.c.AddStream(now(), e.name, sdp.MediaSpec{Kind: "audio"})
	eventually(t, "the panic", func() bool { return n.Load() >= 1 })
	ch, err := e.c.AddStream(ctxT(t), e.name, sdp.MediaSpec{Kind: "text"})
	if err != nil || !ch.Done || ch.Results[0].Acked != ch.Version {
		t.Fatalf("the change after a panic: %+v, %v", ch, err)
	}
}
