package multicast

import (
	"net/netip"
	"testing"
)

// FuzzPool builds custom pools from arbitrary prefixes, ranges and
// exclusions. A pool either is refused or hands out only addresses of its
// prefix that are neither reserved nor excluded, with index and address
// mapping one to one.
func FuzzPool(f *testing.F) {
	f.Add("239.255.0.0/16", "", "", "239.255.1.0/24", uint64(0), uint64(7))
	f.Add("224.2.127.0/24", "", "", "", uint64(3), uint64(200))
	f.Add("ff15::/16", "", "", "", uint64(1), uint64(99999))
	f.Add("ff3e:30:2001:db8::/96", "ff3e:30:2001:db8::8000:0", "ff3e:30:2001:db8::8000:ff", "ff3e:30:2001:db8::8000:10/124", uint64(0), uint64(5))
	f.Add("232.0.0.0/8", "", "", "", uint64(255), uint64(1<<20))
	f.Fuzz(func(t *testing.T, prefix, first, last, exclude string, i, j uint64) {
		pre, err := netip.ParsePrefix(prefix)
		if err != nil {
			return
		}
		p := Pool{Name: "f", Prefix: pre}
		p.First, _ = netip.ParseAddr(first)
		p.Last, _ = netip.ParseAddr(last)
		if x, err := netip.ParsePrefix(exclude); err == nil {
			p.Exclude = []netip.Prefix{x}
		}
		c, err := compilePool(p)
		if err != nil {
			return
		}
		for _, k := range []uint64{0, i % c.size, j % c.size, c.size - 1} {
			a := c.at(k)
			if !pre.Contains(a) || !a.IsMulticast() || IsReserved(a) {
				t.Fatalf("%v: index %d is %v, outside the prefix or reserved", p, k, a)
			}
			for _, x := range p.Exclude {
				if x.Contains(a) {
					t.Fatalf("%v: index %d is the excluded %v", p, k, a)
				}
			}
			if back, ok := c.index(a); !ok || back != k {
				t.Fatalf("%v: index(at(%d) = %v) = %d, %v", p, k, a, back, ok)
			}
		}
	})
}
