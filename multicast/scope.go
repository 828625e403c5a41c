package multicast

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
)

// Family is an IP version.
type Family uint8

// The address families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// String returns "ipv4" or "ipv6".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return fmt.Sprintf("Family(%d)", uint8(f))
}

// ParseFamily reads "4", "6", "ipv4", "ipv6", "ip4" or "ip6".
func ParseFamily(s string) (Family, error) {
	switch strings.ToLower(s) {
	case "4", "ipv4", "ip4", "inet":
		return IPv4, nil
	case "6", "ipv6", "ip6", "inet6":
		return IPv6, nil
	}
	return 0, fmt.Errorf("multicast: address family %q: want 4 or 6", s)
}

// FamilyOf returns the family of a.
func FamilyOf(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// Scope names a built-in pool of group addresses.
type Scope string

// The built-in scopes. Not every scope exists in both families: GLOP is
// IPv4 only; link, admin and site are IPv6 only.
const (
	ScopeLocal  Scope = "local"  // IPv4 239.255.0.0/16 (RFC 2365 §6.1); IPv6 ff15:: (site-local)
	ScopeOrg    Scope = "org"    // IPv4 239.192.0.0/14 (RFC 2365 §6.2); IPv6 ff18::
	ScopeGlobal Scope = "global" // IPv4 224.2.128.0/17 (RFC 2974 §3); IPv6 ff1e::
	ScopeSSM    Scope = "ssm"    // IPv4 232.0.0.0/8 (RFC 4607); IPv6 ff3X::/96
	ScopeGLOP   Scope = "glop"   // IPv4 233.X.Y.0/24 from an AS number (RFC 3180)
	ScopePrefix Scope = "prefix" // IPv4 234/8 (RFC 6034); IPv6 ff3X:00PL:<prefix>::/96 (RFC 3306)
	ScopeLink   Scope = "link"   // IPv6 ff12::
	ScopeAdmin  Scope = "admin"  // IPv6 ff14::
	ScopeSite   Scope = "site"   // IPv6 ff15::, the same pool as local
)

// Scopes lists the scopes ScopePool knows for f.
func Scopes(f Family) []Scope {
	if f == IPv4 {
		return []Scope{ScopeLocal, ScopeOrg, ScopeGlobal, ScopeSSM, ScopeGLOP, ScopePrefix}
	}
	return []Scope{ScopeLink, ScopeAdmin, ScopeLocal, ScopeSite, ScopeOrg, ScopeGlobal, ScopeSSM, ScopePrefix}
}

// ScopeOptions carries what some scopes need besides their name.
type ScopeOptions struct {
	// ASN is the 16-bit autonomous system number a GLOP pool is built from
	// (RFC 3180). Required for ScopeGLOP.
	ASN uint32

	// Unicast is the unicast prefix a ScopePrefix pool is built from: IPv4
	// /24 or shorter (RFC 6034: a /24 gives one group, a /16 gives 256), or
	// IPv6 /64 or shorter (RFC 3306). Required for ScopePrefix.
	Unicast netip.Prefix

	// IPv6Scope is the scope nibble of IPv6 SSM and unicast-prefix-based
	// pools (RFC 4291 §2.7). Zero means 0xe, global.
	IPv6Scope uint8
}

// Default TTLs and hop limits. The scope of an administratively scoped group
// is set by the routers at its boundary (RFC 2365); the TTL only has to be
// large enough to reach it.
const (
	ttlLocal  = 15
	ttlOrg    = 63
	ttlGlobal = 127
)

var v6ScopeNibble = map[Scope]uint8{
	ScopeLink: 0x2, ScopeAdmin: 0x4, ScopeLocal: 0x5, ScopeSite: 0x5, ScopeOrg: 0x8, ScopeGlobal: 0xe,
}

func hopLimit(nibble uint8) uint8 {
	switch {
	case nibble <= 0x2:
		return 1
	case nibble <= 0x5:
		return ttlLocal
	case nibble <= 0x8:
		return ttlOrg
	}
	return ttlGlobal
}

// ScopePool returns the built-in pool of family f for scope s. Its name is
// "<family>-<scope>", such as "ipv4-local" or "ipv6-ssm".
func ScopePool(f Family, s Scope, o ScopeOptions) (Pool, error) {
	name := f.String() + "-" + string(s)
	if s == ScopeSite {
		name = f.String() + "-local"
	}
	switch f {
	case IPv4:
		switch s {
		case ScopeLocal:
			return Pool{Name: name, Prefix: netip.MustParsePrefix("239.255.0.0/16"), TTL: ttlLocal}, nil
		case ScopeOrg:
			return Pool{Name: name, Prefix: netip.MustParsePrefix("239.192.0.0/14"), TTL: ttlOrg}, nil
		case ScopeGlobal:
			return Pool{Name: name, Prefix: netip.MustParsePrefix("224.2.128.0/17"), TTL: ttlGlobal}, nil
		case ScopeSSM:
			return Pool{Name: name, Prefix: netip.MustParsePrefix("232.0.0.0/8"), TTL: ttlGlobal, SourceSpecific: true}, nil
		case ScopeGLOP:
			// RFC 3180 §2: 233.X.Y.0/24 where X.Y is the AS number. AS 0 is
			// reserved, and 64512 and up would land in AD-HOC block III.
			if o.ASN == 0 || o.ASN >= 64512 {
				return Pool{}, fmt.Errorf("multicast: GLOP needs a public 16-bit AS number (1-64511), got %d", o.ASN)
			}
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{233, byte(o.ASN >> 8), byte(o.ASN), 0}), 24)
			return Pool{Name: name, Prefix: p, TTL: ttlGlobal}, nil
		case ScopePrefix:
			u := o.Unicast
			if !u.IsValid() || !u.Addr().Is4() || u.Bits() > 24 || u.Bits() < 1 {
				return Pool{}, fmt.Errorf("multicast: unicast-prefix-based IPv4 groups need an IPv4 unicast prefix of /24 or shorter (RFC 6034), got %v", u)
			}
			if u.Addr().IsMulticast() {
				return Pool{}, fmt.Errorf("multicast: %v is not a unicast prefix", u)
			}
			// RFC 6034 §3: 234, then the unicast prefix, then group bits.
			b := u.Masked().Addr().As4()
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{234, b[0], b[1], b[2]}), 8+u.Bits())
			return Pool{Name: name, Prefix: p.Masked(), TTL: ttlGlobal}, nil
		}
	case IPv6:
		nib := o.IPv6Scope
		if nib == 0 {
			nib = 0xe
		}
		if nib > 0xf {
			return Pool{}, fmt.Errorf("multicast: IPv6 scope %#x is not a nibble", nib)
		}
		if n, ok := v6ScopeNibble[s]; ok {
			var a [16]byte
			a[0], a[1] = 0xff, 0x10|n // transient, RFC 4291 §2.7
			return Pool{Name: name, Prefix: netip.PrefixFrom(netip.AddrFrom16(a), 16), TTL: hopLimit(n)}, nil
		}
		switch s {
		case ScopeSSM:
			var a [16]byte
			a[0], a[1] = 0xff, 0x30|nib // RFC 4607 §1: ff3X::/96
			return Pool{Name: name, Prefix: netip.PrefixFrom(netip.AddrFrom16(a), 96), TTL: hopLimit(nib), SourceSpecific: true}, nil
		case ScopePrefix:
			u := o.Unicast
			if !u.IsValid() || !u.Addr().Is6() || u.Addr().Is4In6() || u.Bits() > 64 || u.Bits() < 1 {
				return Pool{}, fmt.Errorf("multicast: unicast-prefix-based IPv6 groups need an IPv6 unicast prefix of /64 or shorter (RFC 3306), got %v", u)
			}
			if u.Addr().IsMulticast() {
				return Pool{}, fmt.Errorf("multicast: %v is not a unicast prefix", u)
			}
			// RFC 3306 §4: ff3X:00PL:<64-bit network prefix>:<32-bit group ID>.
			var a [16]byte
			a[0], a[1], a[3] = 0xff, 0x30|nib, byte(u.Bits())
			pb := u.Masked().Addr().As16()
			copy(a[4:12], pb[:8])
			return Pool{Name: name, Prefix: netip.PrefixFrom(netip.AddrFrom16(a), 96), TTL: hopLimit(nib)}, nil
		}
	default:
		return Pool{}, fmt.Errorf("multicast: unknown family %v", f)
	}
	return Pool{}, fmt.Errorf("multicast: scope %q does not exist for %v (want one of %s)", s, f, joinScopes(Scopes(f)))
}

func joinScopes(ss []Scope) string {
	var b strings.Builder
	for i, s := range ss {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(s))
	}
	return b.String()
}

// DefaultPools returns the pools an allocator has when its configuration
// names none: every built-in scope that needs no options, in both families.
func DefaultPools() []Pool {
	var ps []Pool
	for _, f := range []Family{IPv4, IPv6} {
		for _, s := range Scopes(f) {
			if s == ScopeGLOP || s == ScopePrefix || s == ScopeSite {
				continue
			}
			p, err := ScopePool(f, s, ScopeOptions{})
			if err != nil {
				panic(err) // the built-in table is wrong
			}
			ps = append(ps, p)
		}
	}
	return ps
}

// addrRange is an inclusive range of addresses of one family.
type addrRange struct{ first, last netip.Addr }

func prefixRange(p netip.Prefix) addrRange {
	p = p.Masked()
	first := p.Addr()
	b := first.AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	last, _ := netip.AddrFromSlice(b)
	return addrRange{first, last}
}

func rangeOf(first, last string) addrRange {
	return addrRange{netip.MustParseAddr(first), netip.MustParseAddr(last)}
}

// reserved lists the blocks no pool hands out (RFC 5771 §3 and §4, RFC 2365
// §6.2, RFC 2974 §3, RFC 4607 §1, RFC 4291 §2.7).
var reserved = []addrRange{
	rangeOf("224.0.0.0", "224.0.255.255"),           // local and internetwork control, AD-HOC I
	rangeOf("224.1.0.0", "224.1.255.255"),           // reserved
	rangeOf("224.2.127.254", "224.2.127.254"),       // SAP (RFC 2974)
	rangeOf("224.3.0.0", "224.4.255.255"),           // AD-HOC II
	rangeOf("225.0.0.0", "231.255.255.255"),         // reserved
	rangeOf("232.0.0.0", "232.0.0.255"),             // SSM, reserved by IANA
	rangeOf("233.252.0.0", "233.255.255.255"),       // AD-HOC III, MCAST-TEST-NET
	rangeOf("235.0.0.0", "238.255.255.255"),         // reserved
	rangeOf("239.195.255.0", "239.195.255.255"),     // relative addresses of the organisation-local scope
	rangeOf("239.255.255.0", "239.255.255.255"),     // relative addresses of the local scope
	prefixRange(netip.MustParsePrefix("ff00::/12")), // permanent (well-known) groups
	prefixRange(netip.MustParsePrefix("ff10::/16")), // scope 0, reserved
	prefixRange(netip.MustParsePrefix("ff1f::/16")), // scope f, reserved
	prefixRange(netip.MustParsePrefix("ff30::/16")),
	prefixRange(netip.MustParsePrefix("ff3f::/16")),
}

// IsReserved reports whether a is in a block that no pool hands out.
func IsReserved(a netip.Addr) bool {
	a = a.Unmap()
	for _, r := range reserved {
		if r.first.BitLen() == a.BitLen() && r.first.Compare(a) <= 0 && a.Compare(r.last) <= 0 {
			return true
		}
	}
	return false
}

// IPv6 dynamic group IDs (RFC 3307 §4.3) without those whose Ethernet
// mapping (33:33:ff:...) collides with solicited-node groups.
const (
	groupIDFirst = 0x80000000
	groupIDLast  = 0xfeffffff
)

func low32(a netip.Addr) uint32 {
	if a.Is4() {
		b := a.As4()
		return binary.BigEndian.Uint32(b[:])
	}
	b := a.As16()
	return binary.BigEndian.Uint32(b[12:])
}

// IsSourceSpecific reports whether g is in a source-specific range,
// where a receiver joins (S,G) channels and never the group alone: IPv4
// 232.0.0.0/8 (RFC 4607 §1), IPv6 FF3x::/32 (RFC 4607 §1, RFC 3306 §6:
// plen 0; a unicast-prefix-based FF3x:00PL:... group is any-source).
func IsSourceSpecific(g netip.Addr) bool {
	g = g.Unmap()
	if g.Is4() {
		return g.As4()[0] == 232
	}
	b := g.As16()
	return b[0] == 0xff && b[1]&0xf0 == 0x30 && b[3] == 0
}
