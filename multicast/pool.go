package multicast

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
)

// Pool is a named set of group addresses an [Allocator] hands out.
//
// An IPv4 pool is Prefix, or First to Last inside it. An IPv6 pool hands out
// group IDs (the low 32 bits) inside one /96: with a Prefix longer than /96,
// every ID of that prefix; with a /96 or shorter one, the dynamic IDs 0x80000000 to
// 0xfeffffff (RFC 3307 §4.3) under the prefix's own bits. Addresses for which
// IsReserved holds, the addresses in Exclude, and, for an IPv4 pool inside
// 239.0.0.0/8 whose Prefix is /16 or shorter, the highest /24 of the prefix
// (relative addresses, RFC 2365 §6.2) are never handed out.
type Pool struct {
	// Name identifies the pool in requests, leases and errors.
	Name string `json:"name"`
	// Prefix is the block of multicast addresses the pool lies in.
	Prefix netip.Prefix `json:"prefix"`
	// First and Last, when valid, narrow the pool to that inclusive range
	// of Prefix. For IPv6 they must lie in one /96.
	First netip.Addr `json:"first,omitzero"`
	Last  netip.Addr `json:"last,omitzero"`
	// TTL is the IPv4 TTL or IPv6 hop limit that sessions in this pool
	// use. Zero means 15.
	TTL uint8 `json:"ttl"`
	// Exclude lists more addresses never to hand out.
	Exclude []netip.Prefix `json:"exclude,omitempty"`
	// SourceSpecific marks an SSM pool: receivers join (S,G), and session
	// descriptions carry a=source-filter (RFC 4570).
	SourceSpecific bool `json:"source_specific,omitempty"`
}

// Family returns the family of the pool's prefix.
func (p Pool) Family() Family { return FamilyOf(p.Prefix.Addr()) }

// Contains reports whether a is one of the addresses the pool hands out.
func (p Pool) Contains(a netip.Addr) bool {
	c, err := compilePool(p)
	if err != nil {
		return false
	}
	_, ok := c.index(a)
	return ok
}

// Size returns how many addresses the pool can hand out, or 0 when the pool
// is not valid.
func (p Pool) Size() uint64 {
	c, err := compilePool(p)
	if err != nil {
		return 0
	}
	return c.size
}

// String returns the pool's name and prefix.
func (p Pool) String() string { return fmt.Sprintf("%s (%v)", p.Name, p.Prefix) }

// span is an inclusive range of low-32-bit values.
type span struct{ lo, hi uint32 }

// compiled is a pool reduced to the spans of low-32-bit values it hands out
// under a fixed upper part (zero for IPv4, the /96 for IPv6), indexed 0 to
// size-1 in address order.
type compiled struct {
	Pool
	v4    bool
	upper [12]byte // IPv6 only
	spans []span
	start []uint64 // start[i] is the index of spans[i].lo
	size  uint64
}

func compilePool(p Pool) (*compiled, error) {
	if p.Name == "" {
		return nil, fmt.Errorf("multicast: a pool needs a name")
	}
	if !p.Prefix.IsValid() {
		return nil, fmt.Errorf("multicast: pool %s: invalid prefix", p.Name)
	}
	pre := p.Prefix.Masked()
	a := pre.Addr()
	if a.Is4In6() {
		return nil, fmt.Errorf("multicast: pool %s: use a plain IPv4 prefix, not %v", p.Name, pre)
	}
	if !a.IsMulticast() || !prefixRange(pre).last.IsMulticast() {
		return nil, fmt.Errorf("multicast: pool %s: %v is not a multicast prefix", p.Name, pre)
	}
	c := &compiled{Pool: p, v4: a.Is4()}
	if c.TTL == 0 {
		c.TTL = ttlLocal
	}
	var lo, hi uint32
	if c.v4 {
		r := prefixRange(pre)
		lo, hi = low32(r.first), low32(r.last)
	} else {
		b := a.As16()
		copy(c.upper[:], b[:12])
		if pre.Bits() > 96 {
			r := prefixRange(pre)
			lo, hi = low32(r.first), low32(r.last)
		} else {
			lo, hi = groupIDFirst, groupIDLast
		}
	}
	if p.First.IsValid() || p.Last.IsValid() {
		if !p.First.IsValid() || !p.Last.IsValid() || p.Last.Less(p.First) {
			return nil, fmt.Errorf("multicast: pool %s: first and last must both be set, first before last", p.Name)
		}
		for _, x := range []netip.Addr{p.First, p.Last} {
			if x.BitLen() != a.BitLen() || !pre.Contains(x) || (!c.v4 && upperOf(x) != c.upper) {
				return nil, fmt.Errorf("multicast: pool %s: %v is outside %v", p.Name, x, pre)
			}
		}
		lo, hi = max(lo, low32(p.First)), min(hi, low32(p.Last))
		if lo > hi {
			return nil, fmt.Errorf("multicast: pool %s: %v-%v holds no usable address", p.Name, p.First, p.Last)
		}
	}
	spans := []span{{lo, hi}}
	cut := func(r addrRange) {
		if r.first.BitLen() != a.BitLen() {
			return
		}
		first, last := c.addr(0), c.addr(0xffffffff)
		if c.v4 {
			first, last = netip.AddrFrom4([4]byte{}), netip.AddrFrom4([4]byte{255, 255, 255, 255})
		}
		if r.last.Less(first) || last.Less(r.first) {
			return
		}
		if r.first.Less(first) {
			r.first = first
		}
		if last.Less(r.last) {
			r.last = last
		}
		spans = subtract(spans, low32(r.first), low32(r.last))
	}
	for _, r := range reserved {
		cut(r)
	}
	for _, x := range p.Exclude {
		cut(prefixRange(x))
	}
	if c.v4 && netip.MustParsePrefix("239.0.0.0/8").Contains(a) && pre.Bits() <= 16 {
		last := prefixRange(pre).last.As4()
		last[3] = 0
		cut(prefixRange(netip.PrefixFrom(netip.AddrFrom4(last), 24)))
	}
	c.spans = spans
	for _, s := range spans {
		c.start = append(c.start, c.size)
		c.size += uint64(s.hi-s.lo) + 1
	}
	if c.size == 0 {
		return nil, fmt.Errorf("multicast: pool %s: every address of %v is reserved or excluded", p.Name, pre)
	}
	return c, nil
}

func upperOf(a netip.Addr) (u [12]byte) {
	b := a.As16()
	copy(u[:], b[:12])
	return u
}

// subtract removes [lo,hi] from the sorted, disjoint spans.
func subtract(spans []span, lo, hi uint32) []span {
	var out []span
	for _, s := range spans {
		if hi < s.lo || lo > s.hi {
			out = append(out, s)
			continue
		}
		if s.lo < lo {
			out = append(out, span{s.lo, lo - 1})
		}
		if hi < s.hi {
			out = append(out, span{hi + 1, s.hi})
		}
	}
	return out
}

// addr returns the address whose low 32 bits are v.
func (c *compiled) addr(v uint32) netip.Addr {
	if c.v4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], v)
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	copy(b[:12], c.upper[:])
	binary.BigEndian.PutUint32(b[12:], v)
	return netip.AddrFrom16(b)
}

// at returns the address with index i (i < size).
func (c *compiled) at(i uint64) netip.Addr {
	k := sort.Search(len(c.start), func(k int) bool { return c.start[k] > i }) - 1
	return c.addr(c.spans[k].lo + uint32(i-c.start[k]))
}

// index returns the index of a, and whether the pool hands a out.
func (c *compiled) index(a netip.Addr) (uint64, bool) {
	a = a.Unmap()
	if a.Is4() != c.v4 || (!c.v4 && upperOf(a) != c.upper) {
		return 0, false
	}
	v := low32(a)
	k := sort.Search(len(c.spans), func(k int) bool { return c.spans[k].hi >= v })
	if k == len(c.spans) || c.spans[k].lo > v {
		return 0, false
	}
	return c.start[k] + uint64(v-c.spans[k].lo), true
}
