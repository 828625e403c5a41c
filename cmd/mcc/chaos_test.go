package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mcc/conference"
	"mcc/conference/conferencetest"
	"mcc/internal/api"
	"mcc/multicast"
	"mcc/sdp"
)

// mediaOf is what a participant receives of a description: per stream,
// its port, group and direction.
func mediaOf(s *sdp.Session) string {
	var b strings.Builder
	for _, m := range s.Media {
		c := s.EffectiveConnection(m)
		g := ""
		if c != nil {
			g = c.Addr.String()
		}
		fmt.Fprintf(&b, "%s %d %s %s|", m.Kind, m.Port, g, s.EffectiveDirection(m))
	}
	return b.String()
}

// TestChaos: 200 participants on loopback, 5% of their datagrams lost
// both ways; 10% vanish after joining; 10% answer re-INVITEs with 491 or
// with 500 and Retry-After at random; 20 changes issued concurrently from
// 4 API clients, with one kill -9 of the daemon in the middle and a
// restart on the same data and SIP port. Throughout (sampled every
// 200 ms while the daemon answers), no group a live participant receives
// is released; at the end every live participant receives the session's
// latest description and every vanished one is ended. (A group cannot be
// leased twice: the allocator keys its leases by group, and its own tests
// show a leased group is never handed out.)
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute or two of chaos")
	}
	data := t.TempDir()
	sipAddr := fmt.Sprintf("udp:127.0.0.1:%d", freeUDPPort(t))
	flags := []string{"--probe-interval", "10s"}
	var kill atomic.Value
	kill.Store(serveWith(t, data, sipAddr, flags...))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	client := func() *api.Client {
		cl, err := api.Discover("", "", data)
		if err != nil {
			return nil
		}
		return cl
	}
	cl := client()
	if err := cl.Do(ctx, "POST", "/v1/sessions", api.SessionRequest{Name: "lecture", Media: []string{"audio", "video"}}, nil); err != nil {
		t.Fatal(err)
	}

	const n = 200
	parts := make([]*conferencetest.Participant, n)
	var uris []string
	for i := range n {
		o := conferencetest.Options{Loss: 0.05, Seed: uint64(i) + 1}
		if i%10 == 1 {
			o.Refuse = 0.3
		}
		parts[i] = conferencetest.StartWith(t, o)
		uris = append(uris, parts[i].URI)
	}
	if err := cl.Do(ctx, "POST", "/v1/sessions/lecture/participants", api.InviteRequest{URIs: uris}, nil); err != nil {
		t.Fatal(err)
	}
	byURI := func() map[string]conference.Participant {
		var ps []conference.Participant
		c := client()
		if c == nil || c.Do(ctx, "GET", "/v1/sessions/lecture/participants", nil, &ps) != nil {
			return nil
		}
		out := map[string]conference.Participant{}
		for _, p := range ps {
			if old, ok := out[p.URI]; !ok || old.State >= conference.Declined {
				out[p.URI] = p
			}
		}
		return out
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		ps, joined := byURI(), 0
		for i := range n {
			if ps[parts[i].URI].State == conference.Joined && parts[i].Current() != nil {
				joined++
			}
		}
		if joined == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d joined in 90 s", joined, n)
		}
	}
	var vanished []int
	for i := range n {
		if i%10 == 0 {
			parts[i].Vanish()
			vanished = append(vanished, i)
		}
	}
	isVanished := func(i int) bool { return i%10 == 0 }

	// The sampler: the leases first, then what the live participants
	// receive. A group a participant receives that is not leased, but was
	// in an earlier sample, was released while in use (one not leased
	// yet is a stream added after the leases were read).
	var violations []string
	var vmu sync.Mutex
	samplerDone := make(chan struct{})
	stopSampler := make(chan struct{})
	samples := 0
	began := time.Now()
	var applied atomic.Int32
	everLeased := map[netip.Addr]bool{}
	go func() {
		defer close(samplerDone)
		for {
			select {
			case <-stopSampler:
				return
			case <-time.After(200 * time.Millisecond):
			}
			c := client()
			var ls []multicast.Lease
			if c == nil || c.Do(ctx, "GET", "/v1/leases", nil, &ls) != nil {
				continue // the daemon is down, or starting
			}
			leased := map[netip.Addr]bool{}
			vmu.Lock()
			for _, l := range ls {
				leased[l.Group] = true
			}
			for i, p := range parts {
				if isVanished(i) {
					continue
				}
				for _, g := range p.Groups() {
					if !leased[g] && everLeased[g] {
						cur := p.Current()
						log := p.Log()
						violations = append(violations, fmt.Sprintf("%v released while participant %d receives it (at %v, %d changes made; it has o= version %d; its last INVITEs %v)",
							g, i, time.Since(began).Round(time.Millisecond), applied.Load(), cur.Origin.Version, log[max(0, len(log)-3):]))
					}
				}
			}
			for g := range leased {
				everLeased[g] = true
			}
			samples++
			vmu.Unlock()
		}
	}()

	// 20 changes from 4 clients at once; the 10th kills the daemon.
	var killOnce sync.Once
	var wg sync.WaitGroup
	for k := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(k), 99))
			for done := 0; done < 5; {
				if ctx.Err() != nil {
					t.Error("the changes did not get through in time")
					return
				}
				c := client()
				if c == nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				var err error
				switch x := r.IntN(10); {
				case x < 6:
					err = c.Do(ctx, "POST", "/v1/sessions/lecture/streams", api.StreamRequest{Kind: []string{"audio", "video", "text"}[r.IntN(3)]}, nil)
				case x < 8:
					err = c.Do(ctx, "PATCH", "/v1/sessions/lecture/streams/0", api.StreamRequest{Direction: []string{"sendrecv", "recvonly"}[r.IntN(2)]}, nil)
				default:
					var b []byte
					if err = c.Do(ctx, "GET", "/v1/sessions/lecture/sdp", nil, &b); err == nil {
						s, perr := sdp.Parse(b)
						var active []int
						for i, m := range s.Media {
							if perr == nil && i >= 2 && m.Port != 0 {
								active = append(active, i)
							}
						}
						if len(active) == 0 {
							continue
						}
						err = c.Do(ctx, "DELETE", fmt.Sprintf("/v1/sessions/lecture/streams/%d", active[r.IntN(len(active))]), nil, nil)
					}
				}
				if err != nil {
					time.Sleep(100 * time.Millisecond) // down, or the stream went meanwhile
					continue
				}
				done++
				time.Sleep(time.Duration(50+r.IntN(200)) * time.Millisecond) // the fan-outs overlap, and one is out at the kill
				if applied.Add(1) == 10 {
					killOnce.Do(func() {
						kill.Load().(func(syscall.Signal))(syscall.SIGKILL)
						t.Logf("kill -9 after %d changes, at %v", applied.Load(), time.Since(began).Round(time.Millisecond))
						kill.Store(serveWith(t, data, sipAddr, flags...))
					})
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	cl = client()
	var b []byte
	if err := cl.Do(ctx, "GET", "/v1/sessions/lecture/sdp", nil, &b); err != nil {
		t.Fatal(err)
	}
	latest, err := sdp.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	want := mediaOf(latest)
	start := time.Now()
	var liveDone time.Duration
	var behind, alive []string
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		behind, alive = behind[:0], alive[:0]
		ps := byURI()
		for i, p := range parts {
			if isVanished(i) {
				if st := ps[p.URI].State; st < conference.Declined {
					alive = append(alive, fmt.Sprintf("%d (%v)", i, st))
				}
				continue
			}
			if cur := p.Current(); cur == nil || mediaOf(cur) != want {
				behind = append(behind, fmt.Sprintf("%d (%+v)", i, ps[p.URI]))
			}
		}
		if len(behind) == 0 && liveDone == 0 {
			liveDone = time.Since(start)
		}
		if len(behind) == 0 && len(alive) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("2 minutes after the last change: %d live participants do not receive version %d: %v; %d vanished ones are not ended: %v",
				len(behind), latest.Origin.Version, behind, len(alive), alive)
		}
	}
	t.Logf("every live participant received version %d %v after the last change; all %d vanished were ended after %v", latest.Origin.Version, liveDone, len(vanished), time.Since(start))
	close(stopSampler)
	<-samplerDone
	vmu.Lock()
	defer vmu.Unlock()
	if samples < 10 {
		t.Fatalf("only %d samples of the leases", samples)
	}
	for _, v := range violations {
		t.Error(v)
	}
	t.Logf("%d samples of the leases and of what %d live participants receive", samples, n-len(vanished))
}
