package sdp

import (
	"net/netip"
	"testing"
	"time"

	"mcc/multicast"
)

// TestIdleWakeRest: a session created idle leases nothing; Wake takes its
// own groups back until the interval's end; Rest gives them back; a group
// someone took meanwhile is replaced by a new one, with its source
// filter, in a new version; an idle session's new stream leases nothing;
// Save and Restore keep the state; RenewLeases stays within the interval.
func TestIdleWakeRest(t *testing.T) {
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	pool := multicast.Pool{Name: "ssm", Prefix: netip.MustParsePrefix("232.1.2.0/29"), TTL: 8, SourceSpecific: true}
	a, err := multicast.NewAllocator(multicast.Config{Pools: []multicast.Pool{pool}, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(ManagerConfig{Allocator: a, Origin: netip.MustParseAddr("192.0.2.1"), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("192.0.2.10")
	s, err := m.Create(SessionSpec{Name: "Lecture", Pool: "ssm", Sources: []netip.Addr{src}, Idle: true,
		Media: []MediaSpec{{Kind: "audio"}, {Kind: "video"}}})
	if err != nil {
		t.Fatal(err)
	}
	id := s.Origin.SessionID
	if !m.Idle(id) || len(a.Leases()) != 0 {
		t.Fatalf("created idle: Idle %v, leases %+v", m.Idle(id), a.Leases())
	}
	until := now.Add(2 * time.Hour)
	w, changed, err := m.Wake(id, until)
	if err != nil || changed || m.Idle(id) {
		t.Fatalf("Wake = changed %v, %v; idle %v", changed, err, m.Idle(id))
	}
	for i, md := range w.Media {
		l, ok := a.Lease(md.Connection.Addr)
		if !ok || l.Port != md.Port || !l.End.Equal(until) || l.Owner != SessionOwner(id) || md.Connection.Addr != s.Media[i].Connection.Addr {
			t.Fatalf("stream %d after Wake: %v port %d, lease %+v %v", i, md.Connection.Addr, md.Port, l, ok)
		}
	}
	// Waking again moves the leases' end.
	later := until.Add(time.Hour)
	if _, changed, err := m.Wake(id, later); err != nil || changed {
		t.Fatalf("second Wake: %v %v", changed, err)
	}
	if l, _ := a.Lease(w.Media[0].Connection.Addr); !l.End.Equal(later) {
		t.Fatalf("lease end %v, want %v", l.End, later)
	}
	// Renewal keeps within the interval.
	if _, err := m.RenewLeases(24 * 365 * time.Hour); err != nil {
		t.Fatal(err)
	}
	if l, _ := a.Lease(w.Media[0].Connection.Addr); l.End.After(later) {
		t.Fatalf("renewed past the interval: %v", l.End)
	}
	if err := m.Rest(id); err != nil || !m.Idle(id) || len(a.Leases()) != 0 {
		t.Fatalf("Rest: %v, idle %v, leases %+v", err, m.Idle(id), a.Leases())
	}
	// While it rests, someone takes its audio group.
	audio := w.Media[0].Connection.Addr
	if _, err := a.Claim(multicast.Request{Pool: "ssm", Owner: "someone"}, audio, 0); err != nil {
		t.Fatal(err)
	}
	// And a stream added while idle leases nothing.
	if _, _, err := m.AddStream(id, MediaSpec{Kind: "text"}); err != nil {
		t.Fatal(err)
	}
	if len(a.Leases()) != 1 {
		t.Fatalf("an idle session's new stream leased: %+v", a.Leases())
	}
	saved, err := m.Save(id)
	if err != nil || !saved.Idle {
		t.Fatalf("Save: %+v %v", saved, err)
	}
	m.Forget(id)
	if _, err := m.Restore(saved, a.Leases()); err != nil || !m.Idle(id) {
		t.Fatalf("Restore: %v, idle %v", err, m.Idle(id))
	}
	before, _ := m.Get(id)
	w2, changed, err := m.Wake(id, now.Add(time.Hour))
	if err != nil || !changed || w2.Origin.Version != before.Origin.Version+1 {
		t.Fatalf("Wake with a group taken: changed %v, %v, version %d after %d", changed, err, w2.Origin.Version, before.Origin.Version)
	}
	md := w2.Media[0]
	if md.Connection.Addr == audio || len(md.SourceFilters) != 1 || md.SourceFilters[0].Dest != md.Connection.Addr || md.SourceFilters[0].Sources[0] != src {
		t.Fatalf("audio moved to %v with filters %+v", md.Connection.Addr, md.SourceFilters)
	}
	for _, md := range w2.Media {
		if l, ok := a.Lease(md.Connection.Addr); !ok || l.Owner != SessionOwner(id) || l.Port != md.Port {
			t.Fatalf("stream %s on %v: lease %+v %v", md.Kind, md.Connection.Addr, l, ok)
		}
	}
	// A wake that cannot lease everything leases nothing.
	if err := m.Rest(id); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := a.Allocate(multicast.Request{Pool: "ssm", Owner: "filler"}); err != nil {
			break
		}
	}
	// Its first group is free again, the others not, nor any other.
	first := w2.Media[0].Connection.Addr
	if err := a.Release(first); err != nil {
		t.Fatal(err)
	}
	held := len(a.Leases())
	if _, _, err := m.Wake(id, now.Add(time.Hour)); err == nil {
		t.Fatal("Wake with the pool full")
	}
	if _, ok := a.Lease(first); ok || len(a.Leases()) != held || !m.Idle(id) {
		t.Fatalf("failed Wake kept %v: %d leases (had %d), idle %v", first, len(a.Leases()), held, m.Idle(id))
	}
	if _, _, err := m.Wake(id, now.Add(-time.Second)); err == nil {
		t.Fatal("Wake until a time past")
	}
}
