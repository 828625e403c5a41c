package multicast

import "sort"

// ival is an inclusive range of indexes.
type ival struct{ lo, hi uint64 }

// indexSet is a set of indexes kept as sorted, disjoint, non-adjacent
// ranges, so that a nearly full pool is a handful of ranges and the r-th
// free index is found without probing.
type indexSet struct {
	iv []ival
	n  uint64 // number of indexes in the set
}

// find returns the position of the first range that ends at or after x.
func (s *indexSet) find(x uint64) int {
	return sort.Search(len(s.iv), func(i int) bool { return s.iv[i].hi >= x })
}

func (s *indexSet) has(x uint64) bool {
	i := s.find(x)
	return i < len(s.iv) && s.iv[i].lo <= x
}

// add puts x in the set and reports whether it was absent.
func (s *indexSet) add(x uint64) bool {
	i := s.find(x)
	if i < len(s.iv) && s.iv[i].lo <= x {
		return false
	}
	left := i > 0 && s.iv[i-1].hi+1 == x
	right := i < len(s.iv) && s.iv[i].lo == x+1
	switch {
	case left && right:
		s.iv[i-1].hi = s.iv[i].hi
		s.iv = append(s.iv[:i], s.iv[i+1:]...)
	case left:
		s.iv[i-1].hi = x
	case right:
		s.iv[i].lo = x
	default:
		s.iv = append(s.iv, ival{})
		copy(s.iv[i+1:], s.iv[i:])
		s.iv[i] = ival{x, x}
	}
	s.n++
	return true
}

// remove takes x out of the set and reports whether it was present.
func (s *indexSet) remove(x uint64) bool {
	i := s.find(x)
	if i == len(s.iv) || s.iv[i].lo > x {
		return false
	}
	v := s.iv[i]
	switch {
	case v.lo == v.hi:
		s.iv = append(s.iv[:i], s.iv[i+1:]...)
	case x == v.lo:
		s.iv[i].lo++
	case x == v.hi:
		s.iv[i].hi--
	default:
		s.iv[i].hi = x - 1
		s.iv = append(s.iv, ival{})
		copy(s.iv[i+2:], s.iv[i+1:])
		s.iv[i+1] = ival{x + 1, v.hi}
	}
	s.n--
	return true
}

// nthFree returns the r-th (from 0) index not in the set. The caller keeps r
// below the number of free indexes.
func (s *indexSet) nthFree(r uint64) uint64 {
	var used uint64
	for _, v := range s.iv {
		if r+used < v.lo {
			break
		}
		used += v.hi - v.lo + 1
	}
	return r + used
}

func (s *indexSet) clone() *indexSet {
	return &indexSet{iv: append([]ival(nil), s.iv...), n: s.n}
}
