package conference

import (
	"context"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

// stressFor is how long TestStressOneConference runs its load; MCC_STRESS
// (a Go duration) changes it.
func stressFor() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("MCC_STRESS")); err == nil && d > 0 {
		return d
	}
	if testing.Short() {
		return 3 * time.Second
	}
	return 30 * time.Second
}

// watchdog fails the test, with every goroutine's stack, when one of the
// calls it makes every half second does not return within stall: a call
// about the conference must never hang, whatever the load does.
func watchdog(t *testing.T, stall time.Duration, calls map[string]func()) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			for name, f := range calls {
				returned := make(chan struct{})
				go func() { defer close(returned); f() }()
				select {
				case <-returned:
				case <-time.After(stall):
					buf := make([]byte, 8<<20)
					n := runtime.Stack(buf, true)
					t.Errorf("%s did not return within %v: stalled. Goroutines:\n%s", name, stall, buf[:n])
					return
				}
			}
		}
	})
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// TestStressOneConference runs, on one conference and under -race,
// concurrent changes from two clients, participants' own re-INVITEs
// (holds and resumes) crossing mcc's, BYEs and dial-ins again, removals
// and invitations, and the conference deleted and created again, for
// 30 s, with a watchdog that fails the test on any call that stalls for
// 5 s. At the end every participant still in the conference has its
// latest description or has ended.
func TestStressOneConference(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) {
		c.Fanout = 8
		c.ProbeInterval = time.Second
		c.RingTimeout = 2 * time.Second
	}, "udp")
	ctx, cancel := context.WithTimeout(context.Background(), stressFor())
	defer cancel()
	name := e.name
	var outPeers []*peer
	for range 8 {
		outPeers = append(outPeers, e.peer(t, "udp"))
	}
	for _, p := range outPeers {
		if _, err := e.c.Invite(name, p.uri()); err != nil {
			t.Fatal(err)
		}
	}
	stop := watchdog(t, 5*time.Second, map[string]func(){
		"Participants": func() { e.c.Participants(name) },
		"List":         func() { e.c.List() },
		"Metrics":      func() { e.c.Metrics() },
		"Session":      func() { e.c.Session(name) },
		// A change takes the conference's lock and settles: it must not
		// wait on a dialog.
		"SetDirection": func() { e.c.SetDirection(now(), name, 0, sdp.SendRecv) },
	})
	defer stop()

	var ops atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	// Two clients changing the media, without waiting.
	for i := range 2 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 1))
			for n := 0; n < 5000 && ctx.Err() == nil; n++ {
				var err error
				switch r.IntN(3) {
				case 0:
					_, err = e.c.AddStream(now(), name, sdp.MediaSpec{Kind: "audio"})
				case 1:
					_, err = e.c.RemoveStream(now(), name, 1+r.IntN(3)) // stream 0 stays: with none, everyone gets BYE
				default:
					_, err = e.c.SetDirection(now(), name, 0, []sdp.Direction{sdp.SendRecv, sdp.RecvOnly}[r.IntN(2)])
				}
				_ = err // a stream already removed, a conference being made again
				ops.Add(1)
				time.Sleep(time.Duration(r.IntN(40)) * time.Millisecond)
			}
		})
	}
	// Anonymous dial-ins that hold and resume by re-INVITE, hang up and
	// dial in again.
	for i := range 4 {
		p := e.peer(t, "udp")
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 2))
			for n := 0; n < 1000 && ctx.Err() == nil; n++ {
				cl := stressDialIn(ctx, p, e.c.URI(name))
				if cl == nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				for k := 0; k < 1+r.IntN(6) && ctx.Err() == nil; k++ {
					cl.cseq++
					if r.IntN(2) == 0 {
						stressReinvite(ctx, p, cl, r.IntN(2) == 0)
					} else {
						time.Sleep(time.Duration(r.IntN(100)) * time.Millisecond)
					}
					ops.Add(1)
				}
				cl.cseq++
				stressDo(ctx, p, p.inDialog(cl, sip.BYE, cl.cseq, nil))
				ops.Add(1)
			}
		})
	}
	// An operator removing participants and inviting them again, and
	// now and then deleting the conference and making it again.
	wg.Go(func() {
		r := rand.New(rand.NewPCG(3, 3))
		for n := 0; n < 2000 && ctx.Err() == nil; n++ {
			time.Sleep(time.Duration(50+r.IntN(150)) * time.Millisecond)
			if r.IntN(15) == 0 {
				e.c.Delete(context.Background(), name)
				s, err := e.m.Create(sdp.SessionSpec{Name: "Lecture", Pool: "ipv4-local", Media: []sdp.MediaSpec{{Kind: "audio"}, {Kind: "video"}}})
				if err == nil {
					_, err = e.c.Create(name, s.Origin.SessionID, Access{})
				}
				if err != nil {
					t.Errorf("create the conference again: %v", err)
					return
				}
				for _, p := range outPeers {
					e.c.Invite(name, p.uri())
				}
				ops.Add(1)
				continue
			}
			ps, _ := e.c.Participants(name)
			if len(ps) > 0 {
				x := ps[r.IntN(len(ps))]
				if !x.DialIn {
					if x.State < Declined {
						e.c.Remove(name, x.ID)
					}
					e.c.Invite(name, x.URI)
				}
			}
			ops.Add(1)
		}
	})
	wg.Wait()
	stop() // its changes too: what follows checks a quiet conference
	t.Logf("%d operations in %v (load for %v)", ops.Load(), time.Since(began), stressFor())

	// Quiet now: everyone still in the conference converges or ends.
	desc, err := e.c.Session(name)
	if err != nil {
		t.Fatal(err)
	}
	wait, cancelWait := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancelWait()
	quiet := time.Now()
	go func() {
		for wait.Err() == nil {
			time.Sleep(5 * time.Second)
			ps, _ := e.c.Participants(name)
			for _, p := range ps {
				if p.State < Declined && (p.State != Joined || p.Acked != desc.Origin.Version) {
					t.Logf("after %v: %+v", time.Since(quiet), p)
				}
			}
		}
	}()
	ch, err := e.c.Progress(wait, name, desc.Origin.Version)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("converged %v after the load stopped", time.Since(quiet))
	if !ch.Done {
		for _, p := range ch.Results {
			t.Logf("%+v", p)
		}
		t.Fatalf("the conference did not converge on version %d once the load stopped", desc.Origin.Version)
	}
	joined := 0
	for _, p := range ch.Results {
		if p.State != Joined {
			continue
		}
		joined++
		if p.Acked != desc.Origin.Version && !p.Behind {
			t.Errorf("joined participant on version %d of %d, not shown behind: %+v", p.Acked, desc.Origin.Version, p)
		}
	}
	if joined == 0 {
		for _, p := range ch.Results {
			t.Logf("%+v", p)
		}
		t.Fatal("no participant is joined at the end: the load tested nothing")
	}
	t.Logf("%d joined at version %d", joined, desc.Origin.Version)

	// One more change, with no load to cross it: every joined participant
	// takes it (none is left behind by the storm, nor without a worker).
	final, cancelFinal := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancelFinal()
	last, err := e.c.AddStream(final, name, sdp.MediaSpec{Kind: "text"})
	if err != nil || !last.Done {
		t.Fatalf("the last change: %+v, %v", last, err)
	}
	for _, p := range last.Results {
		if p.State == Joined && (p.Acked != last.Version || p.Behind) {
			t.Errorf("after a quiet change, a joined participant is on version %d of %d: %+v", p.Acked, last.Version, p)
		}
	}
}

func stressDo(ctx context.Context, p *peer, req *sip.Request) *sip.Response {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := p.cl.Do(ctx, req)
	if err != nil {
		return nil
	}
	return res
}

// stressDialIn dials in without an offer and answers mcc's in the ACK.
func stressDialIn(ctx context.Context, p *peer, uri string) *call {
	var target sip.Uri
	if sip.ParseUri(uri, &target) != nil {
		return nil
	}
	req := sip.NewRequest(sip.INVITE, target)
	cl := &call{p: p, req: req, fromTag: sip.GenerateTagN(8), cseq: 1}
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "anon", Host: "example.org"}, Params: sip.NewParams()}
	from.Params.Add("tag", cl.fromTag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: target})
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	req.AppendHeader(p.contactHeader())
	res := stressDo(ctx, p, req)
	if res == nil || res.StatusCode != 200 {
		return nil
	}
	cl.toTag, _ = res.To().Params.Get("tag")
	if res.Contact() == nil {
		return nil
	}
	cl.target = res.Contact().Address
	offer, err := sdp.Parse(res.Body())
	if err != nil {
		return nil
	}
	b, _ := sdp.Answer(offer, sdp.Origin{Username: "anon", SessionID: 5, Version: 1, Host: "anon.example"}).Marshal()
	p.cl.WriteRequest(p.inDialog(cl, sip.ACK, 1, b))
	cl.res = res
	return cl
}

// stressReinvite sends the participant's own re-INVITE: a hold (every
// stream inactive) or a resume, from what mcc last offered.
func stressReinvite(ctx context.Context, p *peer, cl *call, hold bool) {
	offer, err := sdp.Parse(cl.res.Body())
	if err != nil {
		return
	}
	o := sdp.Answer(offer, sdp.Origin{Username: "anon", SessionID: 5, Version: uint64(cl.cseq), Host: "anon.example"})
	if hold {
		for _, m := range o.Media {
			if m.Port != 0 {
				m.Direction = sdp.Inactive
			}
		}
	}
	b, _ := o.Marshal()
	res := stressDo(ctx, p, p.inDialog(cl, sip.INVITE, cl.cseq, b))
	if res != nil && res.IsSuccess() {
		p.cl.WriteRequest(p.inDialog(cl, sip.ACK, cl.cseq, nil))
		cl.res = res
	}
}
