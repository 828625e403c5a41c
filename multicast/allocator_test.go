package multicast

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }

func smallPool(name, prefix string) Pool {
	return Pool{Name: name, Prefix: netip.MustParsePrefix(prefix), TTL: 4}
}

func newTestAllocator(t testing.TB, cfg Config) *Allocator {
	t.Helper()
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(7, 11))
	}
	a, err := NewAllocator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestFillPool leases every address of pools of several shapes, checks each
// is granted exactly once and lies in its pool, then expects
// ErrPoolExhausted with the pool's name.
func TestFillPool(t *testing.T) {
	pools := []Pool{
		smallPool("v4", "239.7.7.0/24"),
		{Name: "split", Prefix: netip.MustParsePrefix("239.7.8.0/24"), Exclude: []netip.Prefix{netip.MustParsePrefix("239.7.8.64/26"), netip.MustParsePrefix("239.7.8.7/32")}},
		smallPool("v6", "ff15::7:0/118"),
		{Name: "glop", Prefix: netip.MustParsePrefix("233.22.30.0/24")},
		{Name: "sap-neighbour", Prefix: netip.MustParsePrefix("224.2.127.0/24")},
	}
	a := newTestAllocator(t, Config{Pools: pools, PortMin: 20000, PortMax: 29999})
	for _, p := range pools {
		t.Run(p.Name, func(t *testing.T) {
			size := p.Size()
			seen := map[netip.Addr]bool{}
			for i := range size {
				l, err := a.Allocate(Request{Pool: p.Name, Owner: "fill"})
				if err != nil {
					t.Fatalf("allocation %d of %d: %v", i+1, size, err)
				}
				if seen[l.Group] {
					t.Fatalf("%v granted twice", l.Group)
				}
				seen[l.Group] = true
				if !p.Contains(l.Group) || IsReserved(l.Group) {
					t.Fatalf("%v is not an address of %v", l.Group, p)
				}
				if l.Port%2 != 0 || l.Port < 20000 || l.Port > 29998 {
					t.Fatalf("port %d is not an even port of the range", l.Port)
				}
			}
			_, err := a.Allocate(Request{Pool: p.Name})
			if !errors.Is(err, ErrPoolExhausted) || !strings.Contains(err.Error(), p.Name) {
				t.Fatalf("Allocate on a full pool = %v, want ErrPoolExhausted naming %s", err, p.Name)
			}
			if leased, total, _ := a.Usage(p.Name); leased != total || total != size {
				t.Errorf("Usage = %d/%d, want %d/%d", leased, total, size, size)
			}
		})
	}
}

func TestPortsUniqueWhileFree(t *testing.T) {
	a := newTestAllocator(t, Config{Pools: []Pool{smallPool("p", "239.7.7.0/24")}, PortMin: 5000, PortMax: 5019})
	ports := map[uint16]int{}
	for range 10 {
		l, err := a.Allocate(Request{Pool: "p"})
		if err != nil {
			t.Fatal(err)
		}
		ports[l.Port]++
	}
	if len(ports) != 10 {
		t.Fatalf("10 leases over 10 port pairs used %d distinct ports: %v", len(ports), ports)
	}
	// Past the range, ports are shared (the groups differ).
	l, err := a.Allocate(Request{Pool: "p"})
	if err != nil || l.Port < 5000 || l.Port > 5018 {
		t.Fatalf("Allocate past the port range = %+v, %v", l, err)
	}
}

func TestInUseSourceAvoided(t *testing.T) {
	var heard InUseSet
	pool := smallPool("p", "239.7.7.0/28") // 16 addresses
	for i := range 15 {
		heard.Add(netip.AddrFrom4([4]byte{239, 7, 7, byte(i)}), time.Time{})
	}
	a := newTestAllocator(t, Config{Pools: []Pool{pool}, InUse: &heard})
	for range 50 {
		l, err := a.Allocate(Request{Pool: "p"})
		if err != nil {
			t.Fatal(err)
		}
		if want := netip.MustParseAddr("239.7.7.15"); l.Group != want {
			t.Fatalf("got %v, want the one address nobody uses, %v", l.Group, want)
		}
		if err := a.Release(l.Group); err != nil {
			t.Fatal(err)
		}
	}
	heard.Add(netip.MustParseAddr("239.7.7.15"), time.Time{})
	if _, err := a.Allocate(Request{Pool: "p"}); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("every address heard: Allocate = %v, want ErrPoolExhausted", err)
	}
	heard.Remove(netip.MustParseAddr("239.7.7.3"))
	if l, err := a.Allocate(Request{Pool: "p"}); err != nil || l.Group != netip.MustParseAddr("239.7.7.3") {
		t.Fatalf("Allocate = %v, %v; want 239.7.7.3", l.Group, err)
	}
}

func TestExpiryRenewRelease(t *testing.T) {
	clk := newClock()
	a := newTestAllocator(t, Config{Pools: []Pool{smallPool("p", "239.7.7.0/30")}, Now: clk.Now, DefaultLease: time.Hour})
	var ls []Lease
	for range 4 {
		l, err := a.Allocate(Request{Pool: "p", Owner: "s1"})
		if err != nil {
			t.Fatal(err)
		}
		if !l.End.Equal(clk.Now().Add(time.Hour)) || l.Owner != "s1" || l.TTL != 4 {
			t.Fatalf("lease %+v", l)
		}
		ls = append(ls, l)
	}
	if _, err := a.Allocate(Request{Pool: "p"}); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("full: %v", err)
	}
	// Renew one for a day, release another; after an hour and a minute
	// the two untouched ones have expired.
	if _, err := a.Renew(ls[0].Group, clk.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ls[1].Group); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ls[1].Group); !errors.Is(err, ErrNotLeased) {
		t.Fatalf("second Release = %v, want ErrNotLeased", err)
	}
	clk.Add(61 * time.Minute)
	got := map[netip.Addr]bool{}
	for range 3 {
		l, err := a.Allocate(Request{Pool: "p", Duration: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		got[l.Group] = true
	}
	if got[ls[0].Group] {
		t.Fatalf("renewed lease %v was handed out again", ls[0].Group)
	}
	if len(a.Leases()) != 4 {
		t.Fatalf("Leases() = %d, want 4", len(a.Leases()))
	}
	if _, err := a.Renew(netip.MustParseAddr("239.9.9.9"), clk.Now().Add(time.Hour)); !errors.Is(err, ErrNotLeased) {
		t.Fatalf("Renew of a free group = %v", err)
	}
	if _, err := a.Allocate(Request{Pool: "p", End: clk.Now().Add(-time.Second)}); err == nil {
		t.Fatal("a lease that ends in the past was granted")
	}
	if _, err := a.Allocate(Request{Pool: "nope"}); !errors.Is(err, ErrUnknownPool) || !strings.Contains(err.Error(), "have p") {
		t.Fatalf("unknown pool: %v", err)
	}
}

// TestConcurrentAllocate fills a pool from many goroutines at once (run
// with -race): every address once, then exhaustion for all.
func TestConcurrentAllocate(t *testing.T) {
	pool := smallPool("p", "239.7.0.0/22") // 1024
	a := newTestAllocator(t, Config{Pools: []Pool{pool}, Rand: nil})
	var (
		mu       sync.Mutex
		seen     = map[netip.Addr]int{}
		released = map[netip.Addr]bool{} // each address is given back once at most, so the pool fills
		wg       sync.WaitGroup
		full     int
	)
	for range 16 {
		wg.Go(func() {
			for {
				l, err := a.Allocate(Request{Pool: "p"})
				if errors.Is(err, ErrPoolExhausted) {
					mu.Lock()
					full++
					mu.Unlock()
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[l.Group]++
				giveBack := l.Group.As4()[3]%5 == 0 && !released[l.Group]
				released[l.Group] = true
				mu.Unlock()
				if giveBack { // some go back and are taken again
					if err := a.Release(l.Group); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					seen[l.Group]--
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if full != 16 {
		t.Fatalf("%d goroutines saw the pool full, want 16", full)
	}
	var held int
	for g, n := range seen {
		if n > 1 {
			t.Errorf("%v held %d times", g, n)
		}
		held += n
	}
	if uint64(held) != pool.Size() || len(a.Leases()) != held {
		t.Fatalf("held %d, leases %d, pool %d", held, len(a.Leases()), pool.Size())
	}
}

type failingStore struct {
	MemoryStore
	fail bool
}

func (s *failingStore) PutLeases(ls []Lease) error {
	if s.fail {
		return errors.New("disk full")
	}
	return s.MemoryStore.PutLeases(ls)
}

func TestStoreFailureGrantsNothing(t *testing.T) {
	st := &failingStore{fail: true}
	a := newTestAllocator(t, Config{Pools: []Pool{smallPool("p", "239.7.7.0/31")}, Store: st})
	if _, err := a.AllocateN(Request{Pool: "p"}, 2); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("AllocateN = %v, want the store's error", err)
	}
	if n, _, _ := a.Usage("p"); n != 0 || len(a.Leases()) != 0 {
		t.Fatalf("a failed write left %d addresses taken", n)
	}
	st.fail = false
	if ls, err := a.AllocateN(Request{Pool: "p"}, 2); err != nil || len(ls) != 2 {
		t.Fatalf("after the store recovers: %v, %v", ls, err)
	}
}

func TestRestartFromStore(t *testing.T) {
	clk := newClock()
	st := new(MemoryStore)
	pools := []Pool{smallPool("p", "239.7.7.0/29")}
	a := newTestAllocator(t, Config{Pools: pools, Store: st, Now: clk.Now})
	long, err := a.AllocateN(Request{Pool: "p", Duration: 48 * time.Hour}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AllocateN(Request{Pool: "p", Duration: time.Hour}, 2); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Hour)
	b := newTestAllocator(t, Config{Pools: pools, Store: st, Now: clk.Now})
	if got := b.Leases(); len(got) != 3 {
		t.Fatalf("after restart %d leases, want the 3 unexpired", len(got))
	}
	stored, _ := st.LoadLeases()
	if len(stored) != 3 {
		t.Fatalf("store keeps %d leases, want 3", len(stored))
	}
	rest, err := b.AllocateN(Request{Pool: "p"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range rest {
		for _, o := range long {
			if l.Group == o.Group {
				t.Fatalf("%v granted again after restart", l.Group)
			}
		}
	}
}

// TestClaim: a group that is free is leased again with its port, as a
// scheduled session takes its groups back at each interval; one leased,
// heard in use, outside the pool or ended already is refused.
func TestClaim(t *testing.T) {
	clk := newClock()
	var heard InUseSet
	store := &MemoryStore{}
	a := newTestAllocator(t, Config{Pools: []Pool{smallPool("p", "239.7.7.0/30")}, Now: clk.Now, InUse: &heard, Store: store, DefaultLease: time.Hour})
	l, err := a.Allocate(Request{Pool: "p", Owner: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Claim(Request{Pool: "p", Owner: "s2"}, l.Group, 0); !errors.Is(err, ErrTaken) {
		t.Fatalf("Claim of a leased group = %v, want ErrTaken", err)
	}
	if err := a.Release(l.Group); err != nil {
		t.Fatal(err)
	}
	end := clk.Now().Add(90 * time.Minute)
	got, err := a.Claim(Request{Pool: "p", Owner: "s1", End: end}, l.Group, l.Port)
	if err != nil || got.Group != l.Group || got.Port != l.Port || !got.End.Equal(end) || got.Owner != "s1" {
		t.Fatalf("Claim = %+v, %v; want %v port %d until %v", got, err, l.Group, l.Port, end)
	}
	if stored, _ := store.LoadLeases(); len(stored) != 1 || stored[0] != got {
		t.Fatalf("store holds %+v, want the claimed lease", stored)
	}
	// Every other group taken by Allocate, none is the claimed one.
	for range 3 {
		o, err := a.Allocate(Request{Pool: "p"})
		if err != nil || o.Group == l.Group {
			t.Fatalf("Allocate after Claim = %+v, %v", o, err)
		}
	}
	free := netip.MustParseAddr("239.7.7.3")
	if err := a.Release(free); err != nil {
		t.Fatal(err)
	}
	heard.Add(free, time.Time{})
	if _, err := a.Claim(Request{Pool: "p"}, free, 0); !errors.Is(err, ErrTaken) {
		t.Fatalf("Claim of a group heard in use = %v, want ErrTaken", err)
	}
	heard.Remove(free)
	if _, err := a.Claim(Request{Pool: "p", End: clk.Now()}, free, 0); err == nil {
		t.Fatal("Claim of a lease that ends now was granted")
	}
	if _, err := a.Claim(Request{Pool: "p"}, netip.MustParseAddr("239.8.0.1"), 0); err == nil || errors.Is(err, ErrTaken) {
		t.Fatalf("Claim outside the pool = %v", err)
	}
	if _, err := a.Claim(Request{Pool: "q"}, free, 0); !errors.Is(err, ErrUnknownPool) {
		t.Fatalf("Claim in an unknown pool = %v", err)
	}
	if l, err := a.Claim(Request{Pool: "p"}, free, 5001); err != nil || l.Port%2 != 0 {
		t.Fatalf("Claim with an odd port = %+v, %v; want an even one drawn", l, err)
	}
}

// TestOwnedReleaseRenew: a lease that ended and went to another owner is
// not the first owner's to release or renew.
func TestOwnedReleaseRenew(t *testing.T) {
	clk := newClock()
	a := newTestAllocator(t, Config{Pools: []Pool{smallPool("p", "239.7.7.0/32")}, Now: clk.Now, DefaultLease: time.Hour})
	l, err := a.Allocate(Request{Pool: "p", Owner: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.RenewOwned(l.Group, "s1", clk.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	clk.Add(3 * time.Hour) // s1's lease ends; s2 takes the group
	l2, err := a.Allocate(Request{Pool: "p", Owner: "s2"})
	if err != nil || l2.Group != l.Group {
		t.Fatalf("s2: %+v %v", l2, err)
	}
	if _, err := a.RenewOwned(l.Group, "s1", clk.Now().Add(time.Hour)); !errors.Is(err, ErrNotLeased) {
		t.Fatalf("s1 renews s2's lease: %v", err)
	}
	if err := a.ReleaseOwned(l.Group, "s1"); !errors.Is(err, ErrNotLeased) {
		t.Fatalf("s1 releases s2's lease: %v", err)
	}
	if got, ok := a.Lease(l.Group); !ok || got.Owner != "s2" || !got.End.Equal(l2.End) {
		t.Fatalf("s2's lease is now %+v %v", got, ok)
	}
	if err := a.ReleaseOwned(l.Group, "s2"); err != nil {
		t.Fatal(err)
	}
}
