package multicast

import (
	"math/rand/v2"
	"testing"
)

// TestIndexSetModel drives an indexSet and a map with the same random
// operations and compares them after each.
func TestIndexSetModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const size = 200
	var s indexSet
	m := map[uint64]bool{}
	for step := range 20000 {
		x := r.Uint64N(size)
		if r.IntN(3) == 0 {
			if got, want := s.remove(x), m[x]; got != want {
				t.Fatalf("step %d: remove(%d) = %v, want %v", step, x, got, want)
			}
			delete(m, x)
		} else {
			if got, want := s.add(x), !m[x]; got != want {
				t.Fatalf("step %d: add(%d) = %v, want %v", step, x, got, want)
			}
			m[x] = true
		}
		if s.n != uint64(len(m)) {
			t.Fatalf("step %d: n = %d, want %d", step, s.n, len(m))
		}
		for i := 1; i < len(s.iv); i++ {
			if s.iv[i-1].hi+1 >= s.iv[i].lo {
				t.Fatalf("step %d: ranges %v and %v touch", step, s.iv[i-1], s.iv[i])
			}
		}
		if step%97 == 0 {
			var free []uint64
			for i := range uint64(size) {
				if s.has(i) != m[i] {
					t.Fatalf("step %d: has(%d) = %v", step, i, s.has(i))
				}
				if !m[i] {
					free = append(free, i)
				}
			}
			for rank, want := range free {
				if got := s.nthFree(uint64(rank)); got != want {
					t.Fatalf("step %d: nthFree(%d) = %d, want %d", step, rank, got, want)
				}
			}
		}
	}
}
