package store

import (
	"net/netip"
	"sync"
	"testing"

	"mcc/multicast"
)

// persisted returns an allocator over the organisation-local pool that
// keeps its leases in a fresh store.
func persisted(b *testing.B) (*multicast.Allocator, multicast.Pool) {
	b.Helper()
	db, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	org, _ := multicast.ScopePool(multicast.IPv4, multicast.ScopeOrg, multicast.ScopeOptions{})
	a, err := multicast.NewAllocator(multicast.Config{Pools: []multicast.Pool{org}, Store: db})
	if err != nil {
		b.Fatal(err)
	}
	return a, org
}

// BenchmarkAllocatePersisted is one allocation per op, written to the
// bbolt file (synced) before it is granted.
func BenchmarkAllocatePersisted(b *testing.B) {
	a, org := persisted(b)
	for b.Loop() {
		if _, err := a.Allocate(multicast.Request{Pool: org.Name}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAllocatePersistedBatch100 leases 100 groups in one write per
// op, as "mcc alloc --count 100" does.
func BenchmarkAllocatePersistedBatch100(b *testing.B) {
	a, org := persisted(b)
	for b.Loop() {
		if _, err := a.AllocateN(multicast.Request{Pool: org.Name}, 100); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "leases/s")
}

// BenchmarkAllocatePersistedParallel has 8 goroutines allocate at once.
func BenchmarkAllocatePersistedParallel(b *testing.B) {
	a, org := persisted(b)
	var mu sync.Mutex
	seen := map[netip.Addr]bool{}
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l, err := a.Allocate(multicast.Request{Pool: org.Name})
			if err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			if seen[l.Group] {
				b.Errorf("%v granted twice", l.Group)
			}
			seen[l.Group] = true
			mu.Unlock()
		}
	})
}
