package multicast

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

var pool4096 = Pool{Name: "p4096", Prefix: netip.MustParsePrefix("239.20.0.0/20"), TTL: 15}

// BenchmarkAllocateRelease is the steady state of a busy allocator: one
// allocation and one release per op, in memory, with 10,000 leases held.
func BenchmarkAllocateRelease(b *testing.B) {
	org, _ := ScopePool(IPv4, ScopeOrg, ScopeOptions{})
	a := newTestAllocator(b, Config{Pools: []Pool{org}})
	if _, err := a.AllocateN(Request{Pool: org.Name}, 10000); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		l, err := a.Allocate(Request{Pool: org.Name})
		if err != nil {
			b.Fatal(err)
		}
		if err := a.Release(l.Group); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFill4096 fills a 4,096-address pool to 100% per op, checks
// every address is granted once, and reports the time the last
// allocation took, when only one address is left.
func BenchmarkFill4096(b *testing.B) {
	var last time.Duration
	for b.Loop() {
		a := newTestAllocator(b, Config{Pools: []Pool{pool4096}, Rand: rand.New(rand.NewPCG(rand.Uint64(), 1))})
		seen := make(map[netip.Addr]bool, 4096)
		for i := range 4096 {
			t0 := time.Now()
			l, err := a.Allocate(Request{Pool: pool4096.Name})
			if i == 4095 {
				last += time.Since(t0)
			}
			if err != nil || seen[l.Group] {
				b.Fatalf("allocation %d: %v %v", i, l.Group, err)
			}
			seen[l.Group] = true
		}
		if _, err := a.Allocate(Request{Pool: pool4096.Name}); err == nil {
			b.Fatal("a full pool granted one more")
		}
	}
	b.ReportMetric(float64(last.Nanoseconds())/float64(b.N), "ns/last-alloc")
}

// probeAllocator is sdr's way (generate_ids.c): draw a random address,
// retry while it is taken. It is here only as the reference the allocator
// is measured against.
type probeAllocator struct {
	r    *rand.Rand
	size uint32
	used map[uint32]bool
}

func (p *probeAllocator) allocate() (uint32, int) {
	for tries := 1; ; tries++ {
		i := p.r.Uint32N(p.size)
		if !p.used[i] {
			p.used[i] = true
			return i, tries
		}
	}
}

// BenchmarkFill4096RandomProbe is the reference for BenchmarkFill4096.
func BenchmarkFill4096RandomProbe(b *testing.B) {
	var last time.Duration
	var lastTries int
	for b.Loop() {
		p := &probeAllocator{r: rand.New(rand.NewPCG(rand.Uint64(), 1)), size: 4096, used: map[uint32]bool{}}
		for i := range 4096 {
			t0 := time.Now()
			_, tries := p.allocate()
			if i == 4095 {
				last += time.Since(t0)
				lastTries += tries
			}
		}
	}
	b.ReportMetric(float64(last.Nanoseconds())/float64(b.N), "ns/last-alloc")
	b.ReportMetric(float64(lastTries)/float64(b.N), "probes/last-alloc")
}
