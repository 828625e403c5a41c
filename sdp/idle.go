package sdp

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"

	"mcc/multicast"
)

// A scheduled session (RFC 8866 §5.9-§5.11) holds its groups only while
// one of its intervals is near or in progress: between two of them it is
// idle. An idle session keeps its description, groups and all, but leases
// none of them, so the allocator may hand them to someone else meanwhile;
// Wake leases them again (the same groups when they are still free) and
// Rest gives them back. The conference layer's scheduler decides when.

// Idle reports whether session id is idle: it holds no lease, and is not
// to be announced.
func (m *Manager) Idle(id uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.sessions[id]
	return e != nil && e.idle
}

// Wake leases the groups of session id's streams until until: each the
// same group and port as its description has, when the group is free,
// else a new one, and then the description changes (its version goes up)
// and changed is true. A session that is awake already has its leases
// moved to end at until. Only a session mcc owns can be woken.
func (m *Manager) Wake(id uint64, until time.Time) (s *Session, changed bool, err error) {
	s, changed, err = m.wake(id, until)
	if err == nil {
		m.notify(id)
	}
	return s, changed, err
}

func (m *Manager) wake(id uint64, until time.Time) (*Session, bool, error) {
	if !until.After(m.cfg.Now()) {
		return nil, false, fmt.Errorf("sdp: wake session %d until %v, which has passed", id, until.Format(time.RFC3339))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.owned(id)
	if err != nil {
		return nil, false, err
	}
	owner := SessionOwner(e.desc.Origin.SessionID)
	next := e.desc.Clone()
	changed := false
	var errs []error
	taken := map[netip.Addr]multicast.Lease{} // what this wake leased, given back when it fails
	undo := func() {
		for g := range taken {
			if err := m.cfg.Allocator.ReleaseOwned(g, owner); err != nil && !errors.Is(err, multicast.ErrNotLeased) {
				errs = append(errs, err)
			}
		}
	}
	for _, md := range next.Media {
		if md.Port == 0 || md.Connection == nil {
			continue
		}
		g := md.Connection.Addr
		if l, ok := e.leases[g]; ok {
			if !l.End.Equal(until) {
				nl, err := m.cfg.Allocator.RenewOwned(g, owner, until)
				if err == nil {
					e.leases[g] = nl
					continue
				}
				if !errors.Is(err, multicast.ErrNotLeased) {
					undo()
					return nil, false, errors.Join(append(errs, err)...)
				}
				delete(e.leases, g) // it ended, and may be someone else's now: taken again below
			} else {
				continue
			}
		}
		req := multicast.Request{Pool: e.pool, Owner: owner, End: until}
		l, err := m.cfg.Allocator.Claim(req, g, md.Port)
		if errors.Is(err, multicast.ErrTaken) || errors.Is(err, multicast.ErrUnknownPool) || errors.Is(err, multicast.ErrNotInPool) {
			// Someone has it now (or the pool changed): a new group,
			// which the next offer and announcement carry.
			l, err = m.cfg.Allocator.Allocate(req)
			if err == nil {
				moveStream(md, l)
				changed = true
			}
		}
		if err != nil {
			undo()
			return nil, false, errors.Join(append(errs, fmt.Errorf("sdp: wake session %d: lease a group for %s: %w", id, md.Kind, err))...)
		}
		taken[l.Group] = l
	}
	if changed {
		if next.Origin.Version == math.MaxUint64 {
			undo()
			return nil, false, errors.Join(append(errs, fmt.Errorf("sdp: session %d: version is at its maximum", id))...)
		}
		next.Origin.Version++
		if err := restorable(next); err != nil {
			undo()
			return nil, false, errors.Join(append(errs, err)...)
		}
		e.desc = next
	}
	for g, l := range taken {
		e.leases[g] = l
	}
	e.idle, e.until = false, until
	return e.desc.Clone(), changed, nil
}

// moveStream puts md on the group of l, with its port, TTL and source
// filter.
func moveStream(md *Media, l multicast.Lease) {
	old := md.Connection.Addr
	md.Connection = &Connection{Addr: l.Group}
	if l.Group.Is4() {
		md.Connection.TTL = l.TTL
	}
	md.Port = l.Port
	md.SourceFilters = slices.Clone(md.SourceFilters)
	for i := range md.SourceFilters {
		if md.SourceFilters[i].Dest == old {
			md.SourceFilters[i].Dest = l.Group
		}
	}
}

// Rest gives back every lease of session id, which becomes idle (see
// Idle) until Wake. Resting an idle session does nothing.
func (m *Manager) Rest(id uint64) error {
	m.mu.Lock()
	e, err := m.owned(id)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	was := e.idle
	err = m.releaseAll(e)
	e.idle, e.until = true, time.Time{}
	m.mu.Unlock()
	if !was {
		m.notify(id)
	}
	return err
}
