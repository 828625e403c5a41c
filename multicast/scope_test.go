package multicast

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func mustPool(t testing.TB, f Family, s Scope, o ScopeOptions) Pool {
	t.Helper()
	p, err := ScopePool(f, s, o)
	if err != nil {
		t.Fatalf("ScopePool(%v, %v) = %v", f, s, err)
	}
	return p
}

func TestScopeEdges(t *testing.T) {
	unicast24 := ScopeOptions{Unicast: netip.MustParsePrefix("192.0.2.0/24")}
	unicast16 := ScopeOptions{Unicast: netip.MustParsePrefix("198.51.0.0/16")}
	unicast6 := ScopeOptions{Unicast: netip.MustParsePrefix("2001:db8:beef::/48")}
	tests := []struct {
		f     Family
		s     Scope
		o     ScopeOptions
		in    []string // handed out
		out   []string // never handed out
		size  uint64
		ttl   uint8
		first string
	}{
		{IPv4, ScopeLocal, ScopeOptions{}, []string{"239.255.0.0", "239.255.254.255"},
			[]string{"239.255.255.0", "239.255.255.254", "239.255.255.255", "239.254.255.255"}, 65536 - 256, 15, ""},
		{IPv4, ScopeOrg, ScopeOptions{}, []string{"239.192.0.0", "239.195.254.255"},
			[]string{"239.195.255.255", "239.195.255.0", "239.191.255.255", "239.196.0.0"}, 4*65536 - 256, 63, ""},
		{IPv4, ScopeGlobal, ScopeOptions{}, []string{"224.2.128.0", "224.2.255.255"},
			[]string{"224.2.127.254", "224.2.127.255", "224.3.0.0"}, 32768, 127, ""},
		{IPv4, ScopeSSM, ScopeOptions{}, []string{"232.0.1.0", "232.255.255.255"},
			[]string{"232.0.0.0", "232.0.0.1", "232.0.0.255", "233.0.0.1"}, 1<<24 - 256, 127, ""},
		{IPv4, ScopeGLOP, ScopeOptions{ASN: 5662}, []string{"233.22.30.0", "233.22.30.255"},
			[]string{"233.22.31.0", "233.22.29.255"}, 256, 127, ""},
		{IPv4, ScopePrefix, unicast24, []string{"234.192.0.2"}, []string{"234.192.0.3", "234.192.0.1"}, 1, 127, ""},
		{IPv4, ScopePrefix, unicast16, []string{"234.198.51.0", "234.198.51.255"}, []string{"234.198.52.0"}, 256, 127, ""},
		{IPv6, ScopeLink, ScopeOptions{}, []string{"ff12::8000:0", "ff12::feff:ffff"},
			[]string{"ff12::7fff:ffff", "ff12::ff00:0", "ff12::1:ff00:1", "ff02::1"}, groupIDLast - groupIDFirst + 1, 1, ""},
		{IPv6, ScopeSite, ScopeOptions{}, []string{"ff15::8000:1"}, []string{"ff05::2:7ffe", "ff15::1"}, groupIDLast - groupIDFirst + 1, 15, ""},
		{IPv6, ScopeGlobal, ScopeOptions{}, []string{"ff1e::9abc:def0"}, []string{"ff1e::ffff:ffff", "ff1e:0:0:1::8000:0"}, groupIDLast - groupIDFirst + 1, 127, ""},
		{IPv6, ScopeSSM, ScopeOptions{}, []string{"ff3e::8000:0", "ff3e::feff:ffff"}, []string{"ff3e::1", "ff35::8000:0"}, groupIDLast - groupIDFirst + 1, 127, ""},
		{IPv6, ScopeSSM, ScopeOptions{IPv6Scope: 5}, []string{"ff35::8000:0"}, []string{"ff3e::8000:0"}, groupIDLast - groupIDFirst + 1, 15, ""},
		{IPv6, ScopePrefix, unicast6, []string{"ff3e:30:2001:db8:beef::8000:1"}, []string{"ff3e:30:2001:db8:beef::1", "ff3e:40:2001:db8:beef::8000:1"}, groupIDLast - groupIDFirst + 1, 127, ""},
	}
	for _, tc := range tests {
		t.Run(tc.f.String()+"-"+string(tc.s), func(t *testing.T) {
			p := mustPool(t, tc.f, tc.s, tc.o)
			c, err := compilePool(p)
			if err != nil {
				t.Fatal(err)
			}
			if c.size != tc.size {
				t.Errorf("size = %d, want %d", c.size, tc.size)
			}
			if p.TTL != tc.ttl {
				t.Errorf("TTL = %d, want %d", p.TTL, tc.ttl)
			}
			for _, s := range tc.in {
				if !p.Contains(netip.MustParseAddr(s)) {
					t.Errorf("%v does not hand out %s", p, s)
				}
			}
			for _, s := range tc.out {
				if p.Contains(netip.MustParseAddr(s)) {
					t.Errorf("%v hands out %s", p, s)
				}
			}
			// The first and last index map to addresses inside the pool,
			// and index and at are inverse.
			for _, i := range []uint64{0, c.size / 2, c.size - 1} {
				a := c.at(i)
				j, ok := c.index(a)
				if !ok || j != i {
					t.Errorf("index(at(%d) = %v) = %d, %v", i, a, j, ok)
				}
				if IsReserved(a) {
					t.Errorf("at(%d) = %v is reserved", i, a)
				}
			}
		})
	}
}

func TestScopeErrors(t *testing.T) {
	tests := []struct {
		f    Family
		s    Scope
		o    ScopeOptions
		want string
	}{
		{IPv4, ScopeGLOP, ScopeOptions{}, "AS number"},
		{IPv4, ScopeGLOP, ScopeOptions{ASN: 64512}, "AS number"},
		{IPv4, ScopePrefix, ScopeOptions{}, "/24 or shorter"},
		{IPv4, ScopePrefix, ScopeOptions{Unicast: netip.MustParsePrefix("192.0.2.0/25")}, "/24 or shorter"},
		{IPv6, ScopePrefix, ScopeOptions{Unicast: netip.MustParsePrefix("2001:db8::/96")}, "/64 or shorter"},
		{IPv6, ScopeGLOP, ScopeOptions{ASN: 1}, "does not exist for ipv6"},
		{IPv4, ScopeLink, ScopeOptions{}, "does not exist for ipv4"},
		{IPv4, "galaxy", ScopeOptions{}, "want one of local, org"},
	}
	for _, tc := range tests {
		_, err := ScopePool(tc.f, tc.s, tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ScopePool(%v, %q, %+v) = %v, want error containing %q", tc.f, tc.s, tc.o, err, tc.want)
		}
	}
}

func TestCustomPools(t *testing.T) {
	tests := []struct {
		name string
		p    Pool
		size uint64
		err  string
	}{
		{"admin /16 keeps its top /24", Pool{Name: "x", Prefix: netip.MustParsePrefix("239.1.0.0/16")}, 65536 - 256, ""},
		{"small admin pool", Pool{Name: "x", Prefix: netip.MustParsePrefix("239.1.2.0/24")}, 256, ""},
		{"range", Pool{Name: "x", Prefix: netip.MustParsePrefix("239.1.0.0/16"), First: netip.MustParseAddr("239.1.0.10"), Last: netip.MustParseAddr("239.1.0.19")}, 10, ""},
		{"exclude", Pool{Name: "x", Prefix: netip.MustParsePrefix("239.1.2.0/24"), Exclude: []netip.Prefix{netip.MustParsePrefix("239.1.2.0/25")}}, 128, ""},
		{"inside reserved", Pool{Name: "x", Prefix: netip.MustParsePrefix("224.0.0.0/24")}, 0, "reserved or excluded"},
		{"overlapping SAP group", Pool{Name: "x", Prefix: netip.MustParsePrefix("224.2.127.0/24")}, 255, ""},
		{"v6 short prefix uses dynamic IDs", Pool{Name: "x", Prefix: netip.MustParsePrefix("ff15::/16")}, groupIDLast - groupIDFirst + 1, ""},
		{"v6 /112", Pool{Name: "x", Prefix: netip.MustParsePrefix("ff15::1:0/112")}, 65536, ""},
		{"v6 permanent", Pool{Name: "x", Prefix: netip.MustParsePrefix("ff05::/16")}, 0, "reserved or excluded"},
		{"unicast", Pool{Name: "x", Prefix: netip.MustParsePrefix("10.0.0.0/8")}, 0, "not a multicast prefix"},
		{"no name", Pool{Prefix: netip.MustParsePrefix("239.1.0.0/16")}, 0, "needs a name"},
		{"range outside", Pool{Name: "x", Prefix: netip.MustParsePrefix("239.1.0.0/16"), First: netip.MustParseAddr("239.2.0.0"), Last: netip.MustParseAddr("239.2.0.9")}, 0, "outside"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := compilePool(tc.p)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("compilePool = %v, want error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.size != tc.size {
				t.Errorf("size = %d, want %d", c.size, tc.size)
			}
		})
	}
	if (Pool{Name: "x", Prefix: netip.MustParsePrefix("224.2.127.0/24")}).Contains(netip.MustParseAddr("224.2.127.254")) {
		t.Error("a custom pool hands out the SAP group")
	}
}

func TestDefaultPoolsCompile(t *testing.T) {
	if _, err := NewAllocator(Config{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range DefaultPools() {
		if p.Size() == 0 {
			t.Errorf("%v is empty", p)
		}
	}
}

func TestParseFamily(t *testing.T) {
	for in, want := range map[string]Family{"4": IPv4, "ipv6": IPv6, "IP6": IPv6} {
		if f, err := ParseFamily(in); err != nil || f != want {
			t.Errorf("ParseFamily(%q) = %v, %v", in, f, err)
		}
	}
	if _, err := ParseFamily("5"); err == nil || errors.Is(err, ErrPoolExhausted) {
		t.Errorf("ParseFamily(5) = %v", err)
	}
}

func TestIsSourceSpecific(t *testing.T) {
	for a, want := range map[string]bool{
		"232.1.2.3": true, "239.255.1.1": false, "233.252.0.1": false,
		"ff3e::8000:1": true, "ff35::1": true, "ff3e:30:2001:db8::1": false, "ff0e::1": false, "ff15::1": false,
	} {
		if got := IsSourceSpecific(netip.MustParseAddr(a)); got != want {
			t.Errorf("IsSourceSpecific(%s) = %v", a, got)
		}
	}
}
