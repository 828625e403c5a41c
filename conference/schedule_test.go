package conference

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"mcc/multicast"
	"mcc/sdp"
)

// fakeClock is a Clock that moves only when the test says.
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func (k *fakeClock) Now() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.t
}

func (k *fakeClock) After(d time.Duration) <-chan time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- k.t
		return ch
	}
	k.waiters = append(k.waiters, fakeWaiter{k.t.Add(d), ch})
	return ch
}

// set moves the clock to t and fires the waits that are over.
func (k *fakeClock) set(t time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.t = t
	kept := k.waiters[:0]
	for _, w := range k.waiters {
		if w.at.After(t) {
			kept = append(kept, w)
			continue
		}
		w.ch <- t
	}
	k.waiters = kept
}

// lectureRig is a controller on a fake clock with a lease store and a
// record store that outlive it, so that a test can restart it.
type lectureRig struct {
	t      *testing.T
	clk    *fakeClock
	leases *multicast.MemoryStore
	store  *memStore
	addr   string
	c      *Controller
	a      *multicast.Allocator
	m      *sdp.Manager
	pool   multicast.Pool
}

func (r *lectureRig) start() {
	r.t.Helper()
	a, err := multicast.NewAllocator(multicast.Config{Pools: []multicast.Pool{r.pool}, Store: r.leases, Now: r.clk.Now})
	if err != nil {
		r.t.Fatal(err)
	}
	m, _ := sdp.NewManager(sdp.ManagerConfig{Allocator: a, Origin: netip.MustParseAddr("127.0.0.1"), Now: r.clk.Now})
	c, err := New(Config{Listeners: []Listener{{Transport: "udp", Addr: r.addr}}, Manager: m, Store: r.store, Clock: r.clk})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() {
		c.Close()
		for k, n := range c.guard.rejections() {
			if k.Reason == "panic" && n > 0 {
				r.t.Errorf("the controller caught %d panics (see its log)", n)
			}
		}
	})
	if _, _, err := c.Restore(); err != nil {
		r.t.Fatal(err)
	}
	r.c, r.a, r.m = c, a, m
	if r.addr == "127.0.0.1:0" {
		r.addr = c.Addrs()[0].Addr
	}
}

// at moves the clock and has the scheduler look.
func (r *lectureRig) at(t time.Time) {
	r.clk.set(t)
	r.c.pokeSchedules()
}

func (r *lectureRig) ownLeases(id uint64) []multicast.Lease {
	var out []multicast.Lease
	for _, l := range r.a.Leases() {
		if l.Owner == sdp.SessionOwner(id) {
			out = append(out, l)
		}
	}
	return out
}

// TestScheduledLecture runs a weekly lecture on a clock the test moves:
// created idle (no lease, dial-ins get 480 with Retry-After), awake with
// its own groups 15 minutes ahead, its invite list dialed at the start
// (the speaker sendrecv, the listener recvonly), a restart in the middle
// that dials nobody again, BYE to everyone at the end and the leases
// gone, then the same next week.
func TestScheduledLecture(t *testing.T) {
	mon := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	pool, _ := multicast.ScopePool(multicast.IPv4, multicast.ScopeLocal, multicast.ScopeOptions{})
	r := &lectureRig{t: t, clk: &fakeClock{t: mon}, leases: &multicast.MemoryStore{}, store: newMemStore(), addr: "127.0.0.1:0", pool: pool}
	r.start()
	speaker, listener := newPeer(t, "udp", "127.0.0.1", nil), newPeer(t, "udp", "127.0.0.1", nil)

	sch, err := sdp.ParseSchedule("2026-12-07 10:00", "", "weekly 1h", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	in, err := r.c.CreateScheduled("lecture", sdp.SessionSpec{Name: "Lecture", Pool: pool.Name, Schedule: sch,
		Media: []sdp.MediaSpec{{Kind: "audio"}}}, Access{},
		[]Invitee{{URI: speaker.uri(), Role: RoleSpeaker}, {URI: listener.uri(), Role: RoleListener}})
	if err != nil {
		t.Fatal(err)
	}
	id := in.SessionID
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	if in.Schedule == nil || in.Schedule.Next == nil || !in.Schedule.Next.Start.Equal(start) || in.Schedule.OnAir != nil || len(in.Schedule.Invitees) != 2 {
		t.Fatalf("created: schedule %+v", in.Schedule)
	}
	desc, _ := r.m.Get(id)
	group := desc.Media[0].Connection.Addr
	if !r.m.Idle(id) || len(r.ownLeases(id)) != 0 {
		t.Fatalf("two hours ahead: idle %v, leases %+v", r.m.Idle(id), r.ownLeases(id))
	}
	if !strings.Contains(string(mustMarshal(t, desc)), "r=604800 3600 0") {
		t.Fatalf("description:\n%s", mustMarshal(t, desc))
	}
	caller := newPeer(t, "udp", "127.0.0.1", nil)
	res := caller.dialInNoACK(t, r.c.URI("lecture"), nil).res
	if ra := res.GetHeader("Retry-After"); res.StatusCode != 480 || ra == nil || ra.Value() != "6300" {
		t.Fatalf("dial-in two hours ahead: %d, Retry-After %v", res.StatusCode, ra)
	}
	if _, err := r.c.Invite("lecture", caller.uri()); err == nil {
		t.Fatal("an invitation between intervals was sent")
	}

	// 09:45: awake, its own group leased until the end, nobody dialed.
	r.at(start.Add(-15 * time.Minute))
	eventually(t, "the session awake", func() bool { return !r.m.Idle(id) })
	ls := r.ownLeases(id)
	if len(ls) != 1 || ls[0].Group != group || !ls[0].End.Equal(start.Add(time.Hour+scheduleHold)) {
		t.Fatalf("leases at 09:45: %+v (group %v)", ls, group)
	}
	if n, _, _ := speaker.counts(); n != 0 {
		t.Fatalf("the speaker was dialed %d times before the start", n)
	}

	// 10:00: the invite list is dialed, each with its role.
	r.at(start)
	joined := func(want int) []Participant {
		var ps []Participant
		eventually(t, "the invitees joined", func() bool {
			ps, _ = r.c.Participants("lecture")
			n := 0
			for _, p := range ps {
				if p.State == Joined {
					n++
				}
			}
			return n == want
		})
		return ps
	}
	joined(2)
	if !strings.Contains(string(speaker.lastInvite().Body()), "a=sendrecv") || !strings.Contains(string(listener.lastInvite().Body()), "a=recvonly") {
		t.Fatalf("offers:\nspeaker\n%s\nlistener\n%s", speaker.lastInvite().Body(), listener.lastInvite().Body())
	}

	// 10:30: mcc restarts; nobody is dialed again.
	r.at(start.Add(30 * time.Minute))
	r.c.Close()
	r.start()
	if got, _ := r.c.Get("lecture"); got.Schedule == nil || got.Schedule.OnAir == nil || !got.Schedule.OnAir.Start.Equal(start) {
		t.Fatalf("after the restart: %+v", got.Schedule)
	}
	r.at(start.Add(31 * time.Minute))
	joined(2)
	if n, _, _ := speaker.counts(); n != 1 {
		t.Fatalf("the speaker had %d INVITEs after the restart, want the first alone", n)
	}

	// 11:00: everyone gets BYE, the leases go.
	r.at(start.Add(time.Hour))
	eventually(t, "BYE to both", func() bool {
		_, _, a := speaker.counts()
		_, _, b := listener.counts()
		return a == 1 && b == 1
	})
	eventually(t, "the session at rest", func() bool { return r.m.Idle(id) && len(r.ownLeases(id)) == 0 })

	// Next Monday, the same again, on the same group.
	next := start.Add(7 * 24 * time.Hour)
	r.at(next.Add(-15 * time.Minute))
	eventually(t, "awake next week", func() bool { return !r.m.Idle(id) })
	if ls := r.ownLeases(id); len(ls) != 1 || ls[0].Group != group {
		t.Fatalf("next week's leases: %+v", ls)
	}
	r.at(next)
	eventually(t, "dialed again next week", func() bool {
		a, _, _ := speaker.counts()
		b, _, _ := listener.counts()
		return a == 2 && b == 2
	})
}

func mustMarshal(t *testing.T, s *sdp.Session) []byte {
	t.Helper()
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newLectureRig starts a rig at t.
func newLectureRig(t *testing.T, at time.Time) *lectureRig {
	pool, _ := multicast.ScopePool(multicast.IPv4, multicast.ScopeLocal, multicast.ScopeOptions{})
	r := &lectureRig{t: t, clk: &fakeClock{t: at}, leases: &multicast.MemoryStore{}, store: newMemStore(), addr: "127.0.0.1:0", pool: pool}
	r.start()
	return r
}

// TestScheduleEdges: two intervals that overlap (r= with two offsets)
// are one stretch on air, with nobody hung up or dialed twice; a
// schedule with a stop alone (t=0 STOP) dials its invitees at once; a
// participant that never answers its BYE does not hold up the others',
// and keeps the groups leased until it is answered or times out; after
// the schedule's end a dial-in gets 410.
func TestScheduleEdges(t *testing.T) {
	mon := time.Date(2026, 12, 7, 9, 50, 0, 0, time.UTC)
	t.Run("overlap", func(t *testing.T) {
		r := newLectureRig(t, mon)
		p := newPeer(t, "udp", "127.0.0.1", nil)
		start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
		// 10:00-11:00 and 10:30-11:30, weekly.
		sch := sdp.Schedule{Periods: []sdp.Period{{Start: start, Repeats: []sdp.Repetition{{Every: 7 * 24 * time.Hour, For: time.Hour, Offsets: []time.Duration{0, 30 * time.Minute}}}}}}
		if _, err := r.c.CreateScheduled("lecture", sdp.SessionSpec{Name: "Lecture", Pool: r.pool.Name, Schedule: sch, Media: []sdp.MediaSpec{{Kind: "audio"}}},
			Access{}, []Invitee{{URI: p.uri()}}); err != nil {
			t.Fatal(err)
		}
		r.at(start)
		eventually(t, "the invitee joined", func() bool { a, b, _ := p.counts(); return a == 1 && b == 1 })
		r.at(start.Add(time.Hour)) // the first interval ends inside the second
		r.at(start.Add(time.Hour + time.Minute))
		time.Sleep(100 * time.Millisecond)
		if invites, _, byes := p.counts(); invites != 1 || byes != 0 {
			t.Fatalf("at 11:01, inside the second interval: %d INVITEs, %d BYEs", invites, byes)
		}
		r.at(start.Add(90 * time.Minute))
		eventually(t, "BYE at 11:30", func() bool { _, _, b := p.counts(); return b == 1 })
	})
	t.Run("short gap", func(t *testing.T) {
		r := newLectureRig(t, mon)
		p := newPeer(t, "udp", "127.0.0.1", nil)
		a := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
		// 10:00-10:50, then 11:00-12:00: the second's lead begins before the first ends.
		sch := sdp.Schedule{Periods: []sdp.Period{{Start: a, Stop: a.Add(50 * time.Minute)}, {Start: a.Add(time.Hour), Stop: a.Add(2 * time.Hour)}}}
		in, err := r.c.CreateScheduled("lecture", sdp.SessionSpec{Name: "Lecture", Pool: r.pool.Name, Schedule: sch, Media: []sdp.MediaSpec{{Kind: "audio"}}},
			Access{}, []Invitee{{URI: p.uri()}})
		if err != nil {
			t.Fatal(err)
		}
		r.at(a)
		eventually(t, "the invitee joined", func() bool { n, _, _ := p.counts(); return n == 1 })
		before := r.ownLeases(in.SessionID)
		r.at(a.Add(50 * time.Minute))
		eventually(t, "BYE at 10:50", func() bool { _, _, b := p.counts(); return b == 1 })
		eventually(t, "the lease moved to the second's end", func() bool {
			ls := r.ownLeases(in.SessionID)
			return len(ls) == 1 && ls[0].Group == before[0].Group && ls[0].Start.Equal(before[0].Start) && ls[0].End.Equal(a.Add(2*time.Hour+scheduleHold))
		})
		if r.m.Idle(in.SessionID) {
			t.Fatal("resting between two intervals closer than the lead")
		}
		r.at(a.Add(time.Hour))
		eventually(t, "dialed for the second", func() bool { n, _, _ := p.counts(); return n == 2 })
	})
	t.Run("early dial-in", func(t *testing.T) {
		r := newLectureRig(t, mon) // inside the lead of 10:00
		sp, other := newPeer(t, "udp", "127.0.0.1", nil), newPeer(t, "udp", "127.0.0.1", nil)
		start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
		sch := sdp.Schedule{Periods: []sdp.Period{{Start: start, Stop: start.Add(time.Hour)}}}
		// The speaker written as people paste it, in angle brackets.
		if _, err := r.c.CreateScheduled("lecture", sdp.SessionSpec{Name: "Lecture", Pool: r.pool.Name, Schedule: sch, Media: []sdp.MediaSpec{{Kind: "audio"}}},
			Access{}, []Invitee{{URI: "<" + sp.uri() + ">", Role: RoleSpeaker}, {URI: " " + other.uri()}}); err != nil {
			t.Fatal(err)
		}
		if cl := sp.dialIn(t, r.c.URI("lecture"), nil, echo); cl.res.StatusCode != 200 {
			t.Fatalf("a dial-in in the lead: %d", cl.res.StatusCode)
		}
		r.at(start)
		eventually(t, "the other invitee dialed", func() bool { n, _, _ := other.counts(); return n == 1 })
		time.Sleep(100 * time.Millisecond)
		if n, _, _ := sp.counts(); n != 0 {
			t.Fatalf("the speaker, in since the lead, got %d INVITEs at the start", n)
		}
		if err := r.c.SetInvitees("lecture", []Invitee{{URI: "sip:a@host name"}}); err == nil {
			t.Fatal("an invitee with a space in its host was taken")
		}
	})
	t.Run("stop only", func(t *testing.T) {
		r := newLectureRig(t, mon)
		p := newPeer(t, "udp", "127.0.0.1", nil)
		stop := mon.Add(time.Hour)
		sch := sdp.Schedule{Periods: []sdp.Period{{Stop: stop}}}
		if _, err := r.c.CreateScheduled("lecture", sdp.SessionSpec{Name: "Lecture", Pool: r.pool.Name, Schedule: sch, Media: []sdp.MediaSpec{{Kind: "audio"}}},
			Access{}, []Invitee{{URI: p.uri()}}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the invitee dialed at once", func() bool { a, _, _ := p.counts(); return a == 1 })
		r.at(stop)
		eventually(t, "BYE at the stop", func() bool { _, _, b := p.counts(); return b == 1 })
	})
	t.Run("unanswered BYE", func(t *testing.T) {
		r := newLectureRig(t, mon)
		mute, p := newPeer(t, "udp", "127.0.0.1", nil), newPeer(t, "udp", "127.0.0.1", nil)
		start, stop := mon.Add(10*time.Minute), mon.Add(70*time.Minute)
		sch := sdp.Schedule{Periods: []sdp.Period{{Start: start, Stop: stop}}}
		in, err := r.c.CreateScheduled("lecture", sdp.SessionSpec{Name: "Lecture", Pool: r.pool.Name, Schedule: sch, Media: []sdp.MediaSpec{{Kind: "audio"}}},
			Access{}, []Invitee{{URI: mute.uri()}, {URI: p.uri()}})
		if err != nil {
			t.Fatal(err)
		}
		r.at(start)
		eventually(t, "both joined", func() bool { a, _, _ := mute.counts(); b, _, _ := p.counts(); return a == 1 && b == 1 })
		time.Sleep(100 * time.Millisecond) // their ACKs
		mute.mu.Lock()
		mute.mute = true // never answers its BYE
		mute.mu.Unlock()
		r.at(stop)
		eventually(t, "the other's BYE", func() bool { _, _, b := p.counts(); return b == 1 })
		// The groups stay while a BYE is unanswered: a participant may
		// still be in them (it rests once Timer F ends it, 32 s).
		time.Sleep(200 * time.Millisecond)
		if _, _, mb := mute.counts(); mb != 1 || r.m.Idle(in.SessionID) || len(r.ownLeases(in.SessionID)) != 1 {
			t.Fatalf("with a BYE unanswered: %d BYEs, idle %v, leases %+v", mb, r.m.Idle(in.SessionID), r.ownLeases(in.SessionID))
		}
		caller := newPeer(t, "udp", "127.0.0.1", nil)
		if res := caller.dialInNoACK(t, r.c.URI("lecture"), nil).res; res.StatusCode != 410 || res.GetHeader("Retry-After") != nil {
			t.Fatalf("a dial-in after the schedule's end: %d %v", res.StatusCode, res.GetHeader("Retry-After"))
		}
	})
}
