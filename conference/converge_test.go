package conference

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

// now is a context that is done already: a change returns as soon as it
// is applied.
func now() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// acked waits until participant id has acknowledged version v.
func ackedVersion(t *testing.T, c *Controller, conf, id string, v uint64) Participant {
	t.Helper()
	var got Participant
	eventually(t, fmt.Sprintf("%s to acknowledge version %d", id, v), func() bool {
		ps, _ := c.Participants(conf)
		for _, p := range ps {
			if p.ID == id {
				got = p
				return p.State == Joined && p.Acked >= v && !p.Behind
			}
		}
		return false
	})
	return got
}

func streamsOf(t *testing.T, req *sip.Request) int {
	t.Helper()
	s, err := sdp.Parse(req.Body())
	if err != nil {
		t.Fatal(err)
	}
	return len(s.Media)
}

// TestJoinWhileRingingConverges: a stream added while a participant is
// still being invited reaches it once it joins. Before, the change skipped
// every participant that was not joined, and the join never compared its
// version with the session's: it stayed on the old description.
func TestJoinWhileRingingConverges(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	release := make(chan struct{})
	var first atomic.Bool
	p.answerWith(func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session) {
		if first.CompareAndSwap(false, true) {
			<-release // the invitation is answered after the change
		}
		return 200, nil
	})
	ps, err := e.c.Invite(e.name, p.uri())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the INVITE", func() bool { n, _, _ := p.counts(); return n == 1 })
	ch, err := e.c.AddStream(now(), e.name, sdp.MediaSpec{Kind: "audio"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Done {
		t.Fatalf("the change is done while its participant is still invited: %+v", ch)
	}
	close(release)
	got := ackedVersion(t, e.c, e.name, ps[0].ID, ch.Version)
	if len(got.Streams) != 3 {
		t.Fatalf("joined with %v, want the added stream too", got.Streams)
	}
	if n := streamsOf(t, p.lastInvite()); n != 3 {
		t.Fatalf("the last offer has %d streams, want 3", n)
	}
	if ch, _ := e.c.Progress(ctxT(t), e.name, ch.Version); !ch.Done {
		t.Fatalf("the change is not done once everyone has it: %+v", ch)
	}
}

// TestDialInDuringChangeConverges: a dial-in whose ACK comes after a
// change joins on the description of its 200, then is brought up.
func TestDialInDuringChangeConverges(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	cl := p.dialInNoACK(t, e.c.URI(e.name), nil)
	if cl.res.StatusCode != 200 {
		t.Fatalf("dial-in: %d", cl.res.StatusCode)
	}
	offer, _ := sdp.Parse(cl.res.Body())
	ch, err := e.c.AddStream(now(), e.name, sdp.MediaSpec{Kind: "text"})
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := sdp.Answer(offer, sdp.Origin{Username: "bob", SessionID: 7, Version: 1, Host: "bob.example"}).Marshal()
	p.ack(t, cl, 1, answer)
	ps, _ := e.c.Participants(e.name)
	got := ackedVersion(t, e.c, e.name, ps[0].ID, ch.Version)
	if len(got.Streams) != 3 {
		t.Fatalf("dial-in has %v, want the added stream too", got.Streams)
	}
}

// TestRemovedGroupLivesWhileUsed: a participant that refuses the
// re-INVITE removing a stream still receives its group, so the group
// stays leased until that participant is gone. Before, it was released
// as soon as the fan-out returned.
func TestRemovedGroupLivesWhileUsed(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	good, stubborn := e.peer(t, "udp"), e.peer(t, "udp")
	stubborn.answerWith(func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session) {
		if _, ok := req.To().Params.Get("tag"); ok {
			return 488, nil // keeps what it has
		}
		return 200, nil
	})
	ps, err := e.c.Invite(e.name, good.uri(), stubborn.uri())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		waitState(t, e.c, e.name, p.ID, Joined)
	}
	desc, _ := e.c.Session(e.name)
	g := desc.Media[1].Connection.Addr
	ch, err := e.c.RemoveStream(ctxT(t), e.name, 1)
	if err != nil || !ch.Done {
		t.Fatalf("RemoveStream = %+v, %v", ch, err)
	}
	for _, r := range ch.Results {
		if r.ID == ps[1].ID && !r.Behind {
			t.Fatalf("the participant that refused is not shown behind: %+v", r)
		}
		if r.ID == ps[0].ID && (r.Behind || r.Acked != ch.Version) {
			t.Fatalf("the participant that accepted: %+v", r)
		}
	}
	if _, ok := e.a.Lease(g); !ok {
		t.Fatal("the removed stream's group was released while a participant still has it")
	}
	if err := e.c.Remove(e.name, ps[1].ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the group to be released once its last holder is gone", func() bool {
		_, ok := e.a.Lease(g)
		return !ok
	})
}

// TestChangeOutlivesItsWait: with one fan-out slot and a slow first
// participant, a change whose wait ends first still reaches everyone.
// Before, the fan-out ran under the request's context: when it ran out,
// the remaining participants were never updated, and the API answered 400.
func TestChangeOutlivesItsWait(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.Fanout = 1 }, "udp")
	var ids []string
	for i := range 3 {
		p := e.peer(t, "udp")
		if i == 0 {
			p.answerWith(func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session) {
				if _, ok := req.To().Params.Get("tag"); ok {
					time.Sleep(1500 * time.Millisecond)
				}
				return 200, nil
			})
		}
		ps, err := e.c.Invite(e.name, p.uri())
		if err != nil {
			t.Fatal(err)
		}
		waitState(t, e.c, e.name, ps[0].ID, Joined)
		ids = append(ids, ps[0].ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	ch, err := e.c.AddStream(ctx, e.name, sdp.MediaSpec{Kind: "audio"})
	if err != nil {
		t.Fatalf("a wait that ends first is an error: %v", err)
	}
	if ch.Done || len(ch.Results) != 3 {
		t.Fatalf("after 300 ms: %+v", ch)
	}
	for _, id := range ids {
		ackedVersion(t, e.c, e.name, id, ch.Version)
	}
}

// TestChangesCoalesce: changes made while a participant's re-INVITE is
// out reach it in one more re-INVITE, to the latest version.
func TestChangesCoalesce(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	ps, _ := e.c.Invite(e.name, p.uri())
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	p.answerWith(func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session) {
		time.Sleep(300 * time.Millisecond)
		return 200, nil
	})
	var last Change
	for range 5 {
		ch, err := e.c.AddStream(now(), e.name, sdp.MediaSpec{Kind: "audio"})
		if err != nil {
			t.Fatal(err)
		}
		last = ch
	}
	got := ackedVersion(t, e.c, e.name, ps[0].ID, last.Version)
	if len(got.Streams) != 7 {
		t.Fatalf("streams %v, want 7", got.Streams)
	}
	// The invitation, the first change's re-INVITE (which may carry
	// more of them, when they came before it went), and at most one for
	// the others.
	if n, _, _ := p.counts(); n < 2 || n > 3 {
		t.Fatalf("%d INVITEs for 5 changes, want 2 or 3", n)
	}
	if streamsOf(t, p.lastInvite()) != 7 {
		t.Fatal("the last re-INVITE is not the latest version")
	}
}

// TestBehindAfterGlares: a participant that answers every re-INVITE with
// 491 is shown behind, with why, once the attempts run out; the next
// change tries again and reaches it. Before, mcc gave up silently.
func TestBehindAfterGlares(t *testing.T) {
	if testing.Short() {
		t.Skip("some 15 s of §14.1 back-offs")
	}
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	ps, _ := e.c.Invite(e.name, p.uri())
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	var glare atomic.Bool
	glare.Store(true)
	p.answerWith(func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session) {
		if glare.Load() {
			return 491, nil
		}
		return 200, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	ch, err := e.c.AddStream(ctx, e.name, sdp.MediaSpec{Kind: "audio"})
	if err != nil || !ch.Done {
		t.Fatalf("AddStream = %+v, %v", ch, err)
	}
	r := ch.Results[0]
	if !r.Behind || r.Acked == ch.Version || r.State != Joined {
		t.Fatalf("after %d glares: %+v", maxGlares, r)
	}
	if n, _, _ := p.counts(); n != 1+maxGlares {
		t.Fatalf("%d INVITEs, want the invitation and %d re-INVITEs", n, maxGlares)
	}
	glare.Store(false)
	ch, err = e.c.AddStream(ctxT(t), e.name, sdp.MediaSpec{Kind: "text"})
	if err != nil || !ch.Done || ch.Results[0].Behind || ch.Results[0].Acked != ch.Version {
		t.Fatalf("the next change: %+v, %v", ch, err)
	}
}

// TestRestartACKsPendingReinvite: a re-INVITE whose 200 came after a
// kill -9 is ACKed by the restarted mcc when the 200 is sent again
// (§13.2.2.4). Before, the saved dialog lacked that CSeq and the 200 was
// never ACKed, so the participant gave up on the dialog.
func TestRestartACKsPendingReinvite(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	peer := rawUDP(t, "127.0.0.1:0")
	paddr := peer.LocalAddr().String()
	desc, _ := e.c.Session(e.name)
	body, _ := desc.Marshal()
	const pending = 12
	err := e.c.RestoreParticipant(SavedParticipant{Conference: e.name, ID: newID(), URI: "sip:p@" + paddr,
		CallID: "pending-call", Owner: true, Transport: "UDP", Local: "sip:lecture@127.0.0.1", LocalTag: "ours",
		Remote: "sip:p@127.0.0.1", RemoteTag: "theirs", LocalCSeq: pending, RemoteTarget: "sip:p@" + paddr,
		Offered: body, Version: desc.Origin.Version, Acked: desc.Origin.Version, Pending: pending, LastACK: pending - 1,
		Streams: []string{"accepted", "accepted"}})
	if err != nil {
		t.Fatal(err)
	}
	e.c.Resume()
	ok := msg("SIP/2.0 200 OK", []string{
		"Via: SIP/2.0/UDP " + e.c.Addrs()[0].Addr + ";branch=z9hG4bKgone",
		"To: <sip:p@127.0.0.1>;tag=theirs",
		"From: <sip:lecture@127.0.0.1>;tag=ours",
		"Call-ID: pending-call",
		fmt.Sprintf("CSeq: %d INVITE", pending),
		"Contact: <sip:p@" + paddr + ">",
		"Content-Length: 0",
	}, "")
	dst, _ := net.ResolveUDPAddr("udp", e.c.Addrs()[0].Addr)
	if _, err := peer.WriteTo([]byte(ok), dst); err != nil {
		t.Fatal(err)
	}
	ack := readSIP(peer, "ACK ", 3*time.Second)
	if ack == nil {
		t.Fatal("the 200 of the re-INVITE in flight at the kill was not ACKed after the restart")
	}
	if cs := ack.(*sip.Request).CSeq(); cs.SeqNo != pending || cs.MethodName != sip.ACK {
		t.Fatalf("ACK with CSeq %v, want %d ACK", cs, pending)
	}
}

// TestRestoredBehindConverges: a participant restored behind the
// session's description (the process stopped during a fan-out) is
// re-INVITEd to it by Resume, in its own dialog.
func TestRestoredBehindConverges(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	old, _ := e.c.Session(e.name)
	body, _ := old.Marshal()
	if _, err := e.c.AddStream(now(), e.name, sdp.MediaSpec{Kind: "audio"}); err != nil {
		t.Fatal(err)
	}
	id := newID()
	err := e.c.RestoreParticipant(SavedParticipant{Conference: e.name, ID: id, URI: p.uri(),
		CallID: "behind-call", Owner: true, Transport: "UDP", Local: "sip:lecture@127.0.0.1", LocalTag: "ours",
		Remote: "sip:alice@127.0.0.1", RemoteTag: p.tag, LocalCSeq: 4, RemoteTarget: p.uri(),
		Offered: body, Version: old.Origin.Version, Acked: old.Origin.Version, Streams: []string{"accepted", "accepted"}})
	if err != nil {
		t.Fatal(err)
	}
	e.c.Resume()
	now, _ := e.c.Session(e.name)
	got := ackedVersion(t, e.c, e.name, id, now.Origin.Version)
	if len(got.Streams) != 3 {
		t.Fatalf("restored participant has %v after Resume", got.Streams)
	}
	inv := p.lastInvite()
	if inv.CallID().Value() != "behind-call" || inv.CSeq().SeqNo <= 4 {
		t.Fatalf("re-INVITE %s CSeq %d, want the saved dialog's, above 4", inv.CallID().Value(), inv.CSeq().SeqNo)
	}
}

// TestConcurrentChangesConverge: changes from several goroutines at once
// leave every participant on the latest version, each version given out
// once.
func TestConcurrentChangesConverge(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	var ids []string
	for range 5 {
		p := e.peer(t, "udp")
		ps, _ := e.c.Invite(e.name, p.uri())
		ids = append(ids, ps[0].ID)
	}
	for _, id := range ids {
		waitState(t, e.c, e.name, id, Joined)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[uint64]bool{}
	for i := range 4 {
		wg.Go(func() {
			for j := range 5 {
				var ch Change
				var err error
				if (i+j)%2 == 0 {
					ch, err = e.c.AddStream(now(), e.name, sdp.MediaSpec{Kind: "audio"})
				} else {
					ch, err = e.c.SetDirection(now(), e.name, 0, []sdp.Direction{sdp.SendRecv, sdp.RecvOnly}[j%2])
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[ch.Version] {
					t.Errorf("version %d given to two changes", ch.Version)
				}
				seen[ch.Version] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	v, _ := e.c.Session(e.name)
	ch, err := e.c.Progress(ctxT(t), e.name, v.Origin.Version)
	if err != nil || !ch.Done {
		t.Fatalf("Progress = %+v, %v", ch, err)
	}
	for _, r := range ch.Results {
		if r.Acked != v.Origin.Version || r.Behind {
			t.Errorf("%s: acknowledged %d, want %d", r.ID, r.Acked, v.Origin.Version)
		}
	}
}

// TestAbandonedDialInWakesWait: a dial-in that never ACKs its 200 is
// forgotten after 64·T1; a change's wait that was waiting for it is done
// then, not at its own end.
func TestAbandonedDialInWakesWait(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.ackWait = 300 * time.Millisecond }, "udp")
	p := e.peer(t, "udp")
	if cl := p.dialInNoACK(t, e.c.URI(e.name), nil); cl.res.StatusCode != 200 {
		t.Fatalf("dial-in: %d", cl.res.StatusCode)
	}
	// No ACK: the dial-in waits for one.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	ch, err := e.c.AddStream(ctx, e.name, sdp.MediaSpec{Kind: "audio"})
	if err != nil || !ch.Done {
		t.Fatalf("AddStream = %+v, %v", ch, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the wait ended %v after the change, not when the dial-in was forgotten", took)
	}
}

// TestRejoinProfile: a user agent that leaves its group on a re-INVITE
// (linphone, told by its User-Agent) gets a change as a BYE and a new
// INVITE with the latest description, and is shown joined at the new
// version; another user agent gets a re-INVITE in the same dialog.
func TestRejoinProfile(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	lp, other := e.peer(t, "udp"), e.peer(t, "udp")
	lp.mu.Lock()
	lp.extra = func(req *sip.Request, code int) []sip.Header {
		return []sip.Header{sip.NewHeader("User-Agent", "Linphonec/5.1.65 (belle-sip/5.1.64)")}
	}
	lp.mu.Unlock()
	ps, err := e.c.Invite(e.name, lp.uri(), other.uri())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		waitState(t, e.c, e.name, p.ID, Joined)
	}
	first, otherFirst := lp.lastInvite().CallID().Value(), other.lastInvite().CallID().Value()
	ch, err := e.c.AddStream(ctxT(t), e.name, sdp.MediaSpec{Kind: "text"})
	if err != nil || !ch.Done {
		t.Fatalf("the change: %+v %v", ch, err)
	}
	for _, r := range ch.Results {
		if r.State != Joined || r.Acked != ch.Version {
			t.Fatalf("after the change: %+v", r)
		}
	}
	invites, _, byes := lp.counts()
	last := lp.lastInvite()
	if invites != 2 || byes != 1 || last.CallID().Value() == first || last.GetHeader("To") == nil || strings.Contains(last.To().Value(), "tag=") ||
		!strings.Contains(string(last.Body()), "m=text") {
		t.Fatalf("linphone: %d INVITEs, %d BYEs; the last INVITE:\n%v", invites, byes, last)
	}
	if invites, _, byes := other.counts(); invites != 2 || byes != 0 || other.lastInvite().CallID().Value() != otherFirst {
		t.Fatalf("the other: %d INVITEs, %d BYEs, not a re-INVITE in its dialog", invites, byes)
	}
}

// TestRejoinAnsweredWrongly: a linphone whose answer breaks a rule on one
// stream is rejoined once with that stream offered at port 0, and not
// again in a loop: at most two INVITEs and one BYE, still joined.
func TestRejoinAnsweredWrongly(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	lp := e.peer(t, "udp")
	lp.mu.Lock()
	lp.extra = func(req *sip.Request, code int) []sip.Header {
		return []sip.Header{sip.NewHeader("User-Agent", "Linphonec/5.1.65")}
	}
	lp.mu.Unlock()
	lp.answerWith(func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session) {
		a := sdp.Answer(offer, sdp.Origin{Username: "l", SessionID: 7, Version: 1, Host: "l.example"})
		if offer.Media[1].Port != 0 {
			a.Media[1].Port = offer.Media[1].Port + 2 // moves the video port: breaks RFC 3264 §6.2
		}
		return 200, a
	})
	ps, err := e.c.Invite(e.name, lp.uri())
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	time.Sleep(2 * time.Second)
	invites, _, byes := lp.counts()
	if invites > 2 || byes > 1 {
		t.Fatalf("%d INVITEs and %d BYEs in 2 s: a loop", invites, byes)
	}
	if invites == 2 && !strings.Contains(string(lp.lastInvite().Body()), "m=video 0 ") {
		t.Fatalf("the rejoin offers the stream answered wrongly again:\n%s", lp.lastInvite().Body())
	}
	if p := waitState(t, e.c, e.name, ps[0].ID, Joined); p.State != Joined {
		t.Fatalf("after: %+v", p)
	}
}

// TestRejoinDialIn: linphone dialling in with a unicast offer is answered
// with its stream accepted inactive on a placeholder (it hangs up on a
// port-0 answer), then, once it ACKs, brought in by BYE and an INVITE with
// the session's multicast offer to its Contact, which it joins.
func TestRejoinDialIn(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	lp := e.peer(t, "udp")
	unicast := []byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=Talk\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7078 RTP/AVP 0 8\r\na=rtpmap:8 PCMA/8000\r\n")
	cl := lp.dialIn(t, e.c.URI(e.name), unicast, nil, sip.NewHeader("User-Agent", "Unknown"))
	if cl.res.StatusCode != 200 {
		t.Fatalf("dial-in: %d", cl.res.StatusCode)
	}
	ans, err := sdp.Parse(cl.res.Body())
	if err != nil {
		t.Fatal(err)
	}
	m := ans.Media[0]
	if m.Port != 9 || m.Direction != sdp.Inactive || len(m.Formats) != 1 || m.Formats[0] != "0" || m.Connection == nil || m.Connection.IsMulticast() {
		t.Fatalf("the placeholder answer:\n%s", cl.res.Body())
	}
	if _, err := sdp.CheckAnswer(sdp.MustParse(string(unicast)), ans); err != nil {
		t.Fatalf("the placeholder breaks RFC 3264 §6: %v", err)
	}
	eventually(t, "the BYE and the INVITE of the rejoin", func() bool {
		invites, _, byes := lp.counts()
		return invites == 1 && byes == 1
	})
	inv := lp.lastInvite()
	offer, err := sdp.Parse(inv.Body())
	if err != nil || offer.Media[0].Connection == nil || !offer.Media[0].Connection.IsMulticast() {
		t.Fatalf("the rejoin's INVITE:\n%s", inv.Body())
	}
	if inv.CallID().Value() == cl.req.CallID().Value() {
		t.Fatal("the rejoin's INVITE is in the placeholder's dialog")
	}
	in, _ := e.c.Get(e.name)
	eventually(t, "joined on the session's streams", func() bool {
		in, _ = e.c.Get(e.name)
		return len(in.Participants) == 1 && in.Participants[0].State == Joined && in.Participants[0].Acked == in.Version
	})
}
