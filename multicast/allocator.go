package multicast

import (
	"cmp"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Config configures an Allocator.
type Config struct {
	// Pools are the pools to allocate from. Nil means DefaultPools.
	Pools []Pool
	// Store keeps leases across restarts. Nil means a MemoryStore.
	Store LeaseStore
	// InUse reports groups used by others. Nil means none.
	InUse InUseSource
	// PortMin and PortMax bound the RTP ports handed out; RTP gets an even
	// port, RTCP the next. Zero means 16384 and 32767.
	PortMin, PortMax uint16
	// DefaultLease is how long a lease lasts when a request sets no end.
	// Zero means 24 hours.
	DefaultLease time.Duration
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// Rand is the source of randomness, used under the allocator's lock.
	// Nil means a ChaCha8 generator seeded from crypto/rand.
	Rand *rand.Rand
}

// Request asks for one lease.
type Request struct {
	// Pool names the pool to draw from.
	Pool string
	// Owner is recorded in the lease.
	Owner string
	// End is when the lease expires. If zero, the lease lasts Duration, or
	// Config.DefaultLease when that is zero too.
	End      time.Time
	Duration time.Duration
}

// Allocator hands out group addresses and RTP ports from pools, and keeps
// their leases. It is safe for concurrent use.
type Allocator struct {
	cfg    Config
	pools  []*compiled
	byName map[string]*compiled

	mu       sync.Mutex // guards the fields below
	used     map[*compiled]*indexSet
	leases   map[netip.Addr]Lease
	ports    indexSet // pair indexes with refs > 0
	portRefs map[uint16]int
	next     time.Time // earliest lease end
}

// NewAllocator checks cfg, loads the stored leases and returns an
// allocator. Leases that have already ended are dropped from the store.
func NewAllocator(cfg Config) (*Allocator, error) {
	if cfg.Pools == nil {
		cfg.Pools = DefaultPools()
	}
	if cfg.Store == nil {
		cfg.Store = new(MemoryStore)
	}
	if cfg.PortMin == 0 && cfg.PortMax == 0 {
		cfg.PortMin, cfg.PortMax = 16384, 32767
	}
	cfg.PortMin += cfg.PortMin % 2
	if cfg.PortMax < cfg.PortMin+1 {
		return nil, fmt.Errorf("multicast: port range %d-%d holds no even/odd pair", cfg.PortMin, cfg.PortMax)
	}
	if cfg.DefaultLease == 0 {
		cfg.DefaultLease = 24 * time.Hour
	}
	if cfg.DefaultLease < 0 {
		return nil, fmt.Errorf("multicast: negative default lease %v", cfg.DefaultLease)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		var seed [32]byte
		crand.Read(seed[:])
		cfg.Rand = rand.New(rand.NewChaCha8(seed))
	}
	cfg.Pools = slices.Clone(cfg.Pools)
	a := &Allocator{
		cfg:      cfg,
		byName:   make(map[string]*compiled),
		used:     make(map[*compiled]*indexSet),
		leases:   make(map[netip.Addr]Lease),
		portRefs: make(map[uint16]int),
	}
	for _, p := range cfg.Pools {
		c, err := compilePool(p)
		if err != nil {
			return nil, err
		}
		if _, dup := a.byName[p.Name]; dup {
			return nil, fmt.Errorf("multicast: two pools are named %q", p.Name)
		}
		a.pools = append(a.pools, c)
		a.byName[p.Name] = c
		a.used[c] = new(indexSet)
	}
	stored, err := cfg.Store.LoadLeases()
	if err != nil {
		return nil, fmt.Errorf("multicast: load leases: %w", err)
	}
	now := cfg.Now()
	var ended []netip.Addr
	for _, l := range stored {
		if l.Expired(now) {
			ended = append(ended, l.Group)
			continue
		}
		a.leases[l.Group] = l
		a.take(l.Group, l.Port)
		a.noteEnd(l.End)
	}
	if len(ended) > 0 {
		if err := cfg.Store.DeleteLeases(ended); err != nil {
			return nil, fmt.Errorf("multicast: drop ended leases: %w", err)
		}
	}
	return a, nil
}

// Pools returns the allocator's pools.
func (a *Allocator) Pools() []Pool { return slices.Clone(a.cfg.Pools) }

// Pool returns the pool with the given name.
func (a *Allocator) Pool(name string) (Pool, bool) {
	c, ok := a.byName[name]
	if !ok {
		return Pool{}, false
	}
	return c.Pool, true
}

// PoolFor returns the first pool that hands out g.
func (a *Allocator) PoolFor(g netip.Addr) (Pool, bool) {
	for _, c := range a.pools {
		if _, ok := c.index(g); ok {
			return c.Pool, true
		}
	}
	return Pool{}, false
}

// Usage returns how many addresses of the named pool are leased and how
// many it has in all.
func (a *Allocator) Usage(pool string) (leased, size uint64, err error) {
	c, ok := a.byName[pool]
	if !ok {
		return 0, 0, fmt.Errorf("%w %q", ErrUnknownPool, pool)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.used[c].n, c.size, nil
}

// take marks g and its port as used. Called with a.mu held.
func (a *Allocator) take(g netip.Addr, port uint16) {
	for _, c := range a.pools {
		if i, ok := c.index(g); ok {
			a.used[c].add(i)
		}
	}
	if port != 0 {
		a.portRefs[port]++
		if a.portRefs[port] == 1 && port >= a.cfg.PortMin && port < a.cfg.PortMax {
			a.ports.add(uint64(port-a.cfg.PortMin) / 2)
		}
	}
}

// free undoes take. Called with a.mu held.
func (a *Allocator) free(g netip.Addr, port uint16) {
	for _, c := range a.pools {
		if i, ok := c.index(g); ok {
			a.used[c].remove(i)
		}
	}
	if port != 0 && a.portRefs[port] > 0 {
		a.portRefs[port]--
		if a.portRefs[port] == 0 {
			delete(a.portRefs, port)
			if port >= a.cfg.PortMin && port < a.cfg.PortMax {
				a.ports.remove(uint64(port-a.cfg.PortMin) / 2)
			}
		}
	}
}

func (a *Allocator) noteEnd(t time.Time) {
	if a.next.IsZero() || t.Before(a.next) {
		a.next = t
	}
}

// Allocate leases one group of req.Pool with an RTP port pair. The lease is
// in the store before it is returned. It returns an error wrapping
// ErrUnknownPool or ErrPoolExhausted, or the store's error.
func (a *Allocator) Allocate(req Request) (Lease, error) {
	ls, err := a.AllocateN(req, 1)
	if err != nil {
		return Lease{}, err
	}
	return ls[0], nil
}

// AllocateN leases n distinct groups of req.Pool in one store write: all of
// them, or none with an error as for Allocate.
func (a *Allocator) AllocateN(req Request, n int) ([]Lease, error) {
	c, ok := a.byName[req.Pool]
	if !ok {
		return nil, fmt.Errorf("%w %q (have %s)", ErrUnknownPool, req.Pool, a.poolNames())
	}
	if n < 1 {
		return nil, fmt.Errorf("multicast: asked for %d leases", n)
	}
	if err := a.Expire(); err != nil {
		return nil, err
	}
	var others []netip.Addr
	if a.cfg.InUse != nil {
		others = a.cfg.InUse.GroupsInUse(c.Prefix)
	}
	now := a.cfg.Now()
	end := req.End
	if end.IsZero() {
		d := req.Duration
		if d <= 0 {
			d = a.cfg.DefaultLease
		}
		end = now.Add(d)
	}
	if !end.After(now) {
		return nil, fmt.Errorf("multicast: lease would end at %v, before it starts", end.Format(time.RFC3339))
	}

	a.mu.Lock()
	used := a.used[c]
	if len(others) > 0 {
		used = used.clone()
		for _, g := range others {
			if i, ok := c.index(g); ok {
				used.add(i)
			}
		}
	}
	if c.size-used.n < uint64(n) {
		free := c.size - used.n
		a.mu.Unlock()
		return nil, fmt.Errorf("multicast: pool %s: %d of %d addresses leased or in use, %d free, %d asked: %w",
			c.Name, c.size-free, c.size, free, n, ErrPoolExhausted)
	}
	ls := make([]Lease, n)
	for k := range ls {
		i := used.nthFree(a.cfg.Rand.Uint64N(c.size - used.n))
		g := c.at(i)
		if used != a.used[c] {
			used.add(i) // the shared set gets it through take
		}
		port := a.pickPort()
		a.take(g, port)
		ls[k] = Lease{Group: g, Port: port, Pool: c.Name, TTL: c.TTL, SourceSpecific: c.SourceSpecific,
			Owner: req.Owner, Start: now, End: end}
	}
	a.mu.Unlock()

	err := a.cfg.Store.PutLeases(ls)

	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range ls {
		if err != nil {
			a.free(l.Group, l.Port)
			continue
		}
		a.leases[l.Group] = l
		a.noteEnd(l.End)
	}
	if err != nil {
		return nil, fmt.Errorf("multicast: store lease: %w", err)
	}
	return ls, nil
}

// Claim leases group g of req.Pool with RTP port port, when g is free:
// neither leased nor in use (Config.InUse). A session that gave its
// groups back between two of its scheduled intervals takes the same ones
// again, so that its description need not change. It returns an error
// wrapping ErrTaken when g is not free, ErrUnknownPool, or the store's
// error; port 0 draws one as Allocate does.
func (a *Allocator) Claim(req Request, g netip.Addr, port uint16) (Lease, error) {
	g = g.Unmap()
	c, ok := a.byName[req.Pool]
	if !ok {
		return Lease{}, fmt.Errorf("%w %q (have %s)", ErrUnknownPool, req.Pool, a.poolNames())
	}
	i, ok := c.index(g)
	if !ok {
		return Lease{}, fmt.Errorf("multicast: claim %v: not in pool %s (%v): %w", g, c.Name, c.Prefix, ErrNotInPool)
	}
	if err := a.Expire(); err != nil {
		return Lease{}, err
	}
	if a.cfg.InUse != nil && slices.Contains(a.cfg.InUse.GroupsInUse(c.Prefix), g) {
		return Lease{}, fmt.Errorf("claim %v: in use by a session mcc heard or imported: %w", g, ErrTaken)
	}
	now := a.cfg.Now()
	end := req.End
	if end.IsZero() {
		end = now.Add(cmp.Or(max(req.Duration, 0), a.cfg.DefaultLease))
	}
	if !end.After(now) {
		return Lease{}, fmt.Errorf("multicast: lease would end at %v, before it starts", end.Format(time.RFC3339))
	}
	a.mu.Lock()
	if a.used[c].has(i) {
		a.mu.Unlock()
		return Lease{}, fmt.Errorf("claim %v: %w", g, ErrTaken)
	}
	if port == 0 || port%2 != 0 {
		port = a.pickPort()
	}
	a.take(g, port)
	l := Lease{Group: g, Port: port, Pool: c.Name, TTL: c.TTL, SourceSpecific: c.SourceSpecific, Owner: req.Owner, Start: now, End: end}
	a.mu.Unlock()

	err := a.cfg.Store.PutLeases([]Lease{l})

	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.free(g, port)
		return Lease{}, fmt.Errorf("multicast: store lease: %w", err)
	}
	a.leases[g] = l
	a.noteEnd(end)
	return l, nil
}

// pickPort draws an even port uniformly among the pairs no lease uses; when
// every pair is in use it draws among all pairs, which is safe because the
// groups differ. Called with a.mu held.
func (a *Allocator) pickPort() uint16 {
	pairs := uint64(a.cfg.PortMax-a.cfg.PortMin+1) / 2
	var i uint64
	if a.ports.n < pairs {
		i = a.ports.nthFree(a.cfg.Rand.Uint64N(pairs - a.ports.n))
	} else {
		i = a.cfg.Rand.Uint64N(pairs)
	}
	return a.cfg.PortMin + uint16(2*i)
}

func (a *Allocator) poolNames() string {
	var s string
	for i, c := range a.pools {
		if i > 0 {
			s += ", "
		}
		s += c.Name
	}
	return s
}

// Lease returns the lease of g.
func (a *Allocator) Lease(g netip.Addr) (Lease, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	l, ok := a.leases[g.Unmap()]
	return l, ok
}

// Leases returns every lease, ordered by pool and group.
func (a *Allocator) Leases() []Lease {
	a.mu.Lock()
	ls := make([]Lease, 0, len(a.leases))
	for _, l := range a.leases {
		ls = append(ls, l)
	}
	a.mu.Unlock()
	slices.SortFunc(ls, func(x, y Lease) int {
		if x.Pool != y.Pool {
			if x.Pool < y.Pool {
				return -1
			}
			return 1
		}
		return x.Group.Compare(y.Group)
	})
	return ls
}

// Renew moves the end of g's lease. It returns ErrNotLeased when g has no
// lease.
func (a *Allocator) Renew(g netip.Addr, end time.Time) (Lease, error) {
	return a.renew(g, end, nil)
}

// RenewOwned is Renew of a lease owner holds: a lease of g that ended
// and went to someone else meanwhile is theirs, and ErrNotLeased.
func (a *Allocator) RenewOwned(g netip.Addr, owner string, end time.Time) (Lease, error) {
	return a.renew(g, end, &owner)
}

func (a *Allocator) renew(g netip.Addr, end time.Time, owner *string) (Lease, error) {
	g = g.Unmap()
	if !end.After(a.cfg.Now()) {
		return Lease{}, fmt.Errorf("multicast: renew %v: end %v has passed", g, end.Format(time.RFC3339))
	}
	a.mu.Lock()
	l, ok := a.leases[g]
	if !ok || owner != nil && l.Owner != *owner {
		a.mu.Unlock()
		return Lease{}, fmt.Errorf("renew %v: %w", g, ErrNotLeased)
	}
	l.End = end
	a.mu.Unlock()
	if err := a.cfg.Store.PutLeases([]Lease{l}); err != nil {
		return Lease{}, fmt.Errorf("multicast: renew %v: %w", g, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := a.leases[g]; !ok || cur.Owner != l.Owner || !cur.Start.Equal(l.Start) { // released meanwhile, maybe leased again
		return Lease{}, fmt.Errorf("renew %v: %w", g, ErrNotLeased)
	}
	a.leases[g] = l
	a.noteEnd(end)
	return l, nil
}

// Release gives g's lease back. It returns ErrNotLeased when g has none.
func (a *Allocator) Release(g netip.Addr) error { return a.release(g, nil) }

// ReleaseOwned is Release of a lease owner holds: a lease of g that ended
// and went to someone else meanwhile is theirs, and ErrNotLeased.
func (a *Allocator) ReleaseOwned(g netip.Addr, owner string) error { return a.release(g, &owner) }

func (a *Allocator) release(g netip.Addr, owner *string) error {
	g = g.Unmap()
	a.mu.Lock()
	l, ok := a.leases[g]
	if !ok || owner != nil && l.Owner != *owner {
		a.mu.Unlock()
		return fmt.Errorf("release %v: %w", g, ErrNotLeased)
	}
	return a.drop([]Lease{l})
}

// drop removes leases from the store, then frees them. Called with a.mu
// held; returns with it released.
func (a *Allocator) drop(ls []Lease) error {
	gs := make([]netip.Addr, len(ls))
	for i, l := range ls {
		delete(a.leases, l.Group) // still taken: nobody gets it until the store forgets it
		gs[i] = l.Group
	}
	a.mu.Unlock()
	err := a.cfg.Store.DeleteLeases(gs)
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range ls {
		if err != nil {
			a.leases[l.Group] = l
			a.noteEnd(l.End)
			continue
		}
		a.free(l.Group, l.Port)
	}
	if err != nil {
		return fmt.Errorf("multicast: delete leases: %w", err)
	}
	return nil
}

// Expire drops the leases that have ended. Allocate calls it, so a pool
// never looks full because of ended leases.
func (a *Allocator) Expire() error {
	now := a.cfg.Now()
	a.mu.Lock()
	if a.next.IsZero() || now.Before(a.next) {
		a.mu.Unlock()
		return nil
	}
	var ended []Lease
	a.next = time.Time{}
	for _, l := range a.leases {
		if l.Expired(now) {
			ended = append(ended, l)
		} else {
			a.noteEnd(l.End)
		}
	}
	if len(ended) == 0 {
		a.mu.Unlock()
		return nil
	}
	return a.drop(ended)
}
