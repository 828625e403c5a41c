package multicast

import (
	"net/netip"
	"sync"
	"time"
)

// Lease records that a group, with an RTP port pair, belongs to an owner
// until End. The zero Lease is not valid; see IsValid.
type Lease struct {
	// Group is the leased group address.
	Group netip.Addr `json:"group"`
	// Port is the even RTP port; RTCP uses Port+1 (RFC 3550 §11).
	Port uint16 `json:"port"`
	// Pool names the pool the group came from.
	Pool string `json:"pool"`
	// TTL is the IPv4 TTL or IPv6 hop limit of the pool.
	TTL uint8 `json:"ttl"`
	// SourceSpecific is set for groups of an SSM pool.
	SourceSpecific bool `json:"source_specific,omitempty"`
	// Owner says who holds the lease, such as a session ID.
	Owner string `json:"owner,omitempty"`
	// Start is when the lease was granted; End is when it expires.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// IsValid reports whether l holds a group.
func (l Lease) IsValid() bool { return l.Group.IsValid() }

// Expired reports whether the lease has ended at now.
func (l Lease) Expired(now time.Time) bool { return !now.Before(l.End) }

// LeaseStore keeps leases across restarts. Each call is atomic: after a
// crash either all of its changes are there or none are.
type LeaseStore interface {
	// LoadLeases returns every stored lease.
	LoadLeases() ([]Lease, error)
	// PutLeases creates or replaces leases, keyed by group.
	PutLeases(ls []Lease) error
	// DeleteLeases removes the leases of the groups; absent ones are ignored.
	DeleteLeases(groups []netip.Addr) error
}

// InUseSource reports groups that others already use, such as the groups of
// sessions heard over SAP, so that the allocator keeps clear of them.
type InUseSource interface {
	// GroupsInUse returns the groups in use inside p.
	GroupsInUse(p netip.Prefix) []netip.Addr
}

// MemoryStore is a LeaseStore that keeps nothing across restarts. The zero
// value is ready to use.
type MemoryStore struct {
	mu sync.Mutex // guards the fields below
	m  map[netip.Addr]Lease
}

var _ LeaseStore = (*MemoryStore)(nil)

// LoadLeases implements LeaseStore.
func (s *MemoryStore) LoadLeases() ([]Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := make([]Lease, 0, len(s.m))
	for _, l := range s.m {
		ls = append(ls, l)
	}
	return ls, nil
}

// PutLeases implements LeaseStore.
func (s *MemoryStore) PutLeases(ls []Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[netip.Addr]Lease)
	}
	for _, l := range ls {
		s.m[l.Group] = l
	}
	return nil
}

// DeleteLeases implements LeaseStore.
func (s *MemoryStore) DeleteLeases(groups []netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range groups {
		delete(s.m, g)
	}
	return nil
}

// InUseSet is an InUseSource fed by hand: a set of groups, each in use until
// a time. It is safe for concurrent use; the zero value is ready to use.
type InUseSet struct {
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	mu sync.Mutex // guards the fields below
	m  map[netip.Addr]time.Time
}

var _ InUseSource = (*InUseSet)(nil)

// Add marks g in use until the given time; a zero time means until Remove.
func (s *InUseSet) Add(g netip.Addr, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[netip.Addr]time.Time)
	}
	s.m[g.Unmap()] = until
}

// Remove forgets g.
func (s *InUseSet) Remove(g netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, g.Unmap())
}

// GroupsInUse implements InUseSource.
func (s *InUseSet) GroupsInUse(p netip.Prefix) []netip.Addr {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []netip.Addr
	for g, until := range s.m {
		if !until.IsZero() && !t.Before(until) {
			delete(s.m, g)
			continue
		}
		if p.Contains(g) {
			out = append(out, g)
		}
	}
	return out
}
