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
	r.t.Cleanup(func() { c.Close() })
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
