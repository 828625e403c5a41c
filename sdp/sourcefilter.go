package sdp

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// FilterMode is the first token of a=source-filter.
type FilterMode string

// The filter modes of RFC 4570 §3.
const (
	Include FilterMode = "incl"
	Exclude FilterMode = "excl"
)

// SourceFilter is an a=source-filter attribute (RFC 4570 §3):
//
//	a=source-filter: <filter-mode> <nettype> <address-types> <dest-address> <src-list>
//
// It says which senders a receiver takes (incl) or refuses (excl) for a
// group; SSM sessions carry an incl filter naming their source.
type SourceFilter struct {
	Mode FilterMode
	// AddrType is "IP4", "IP6" or "*" (both).
	AddrType string
	// Dest is the group the filter applies to; the zero Addr stands for
	// "*", every c= address of its level.
	Dest netip.Addr
	// Sources are the unicast senders, at least one.
	Sources []netip.Addr
}

// String returns the attribute value without "source-filter:", with the
// leading space RFC 4570's examples use: " incl IN IP4 232.3.4.5 192.0.2.10".
func (f SourceFilter) String() string {
	var b strings.Builder
	b.WriteByte(' ')
	b.WriteString(string(f.Mode))
	b.WriteString(" IN ")
	b.WriteString(f.AddrType)
	b.WriteByte(' ')
	if f.Dest.IsValid() {
		b.WriteString(f.Dest.String())
	} else {
		b.WriteByte('*')
	}
	for _, s := range f.Sources {
		b.WriteByte(' ')
		b.WriteString(s.String())
	}
	return b.String()
}

// Matches reports whether the filter applies to group g.
func (f SourceFilter) Matches(g netip.Addr) bool {
	if f.Dest.IsValid() {
		return f.Dest == g
	}
	return f.AddrType == "*" || (f.AddrType == "IP4") == g.Is4()
}

// ParseSourceFilter reads the value of an a=source-filter attribute.
func ParseSourceFilter(s string) (SourceFilter, error) {
	f := strings.Fields(s)
	if len(f) < 5 {
		return SourceFilter{}, errors.New("want \"<incl|excl> IN <IP4|IP6|*> <dest-address|*> <source>...\" (RFC 4570 §3)")
	}
	var sf SourceFilter
	switch m := FilterMode(f[0]); m {
	case Include, Exclude:
		sf.Mode = m
	default:
		return SourceFilter{}, fmt.Errorf("filter mode %q: want incl or excl", f[0])
	}
	if f[1] != "IN" {
		return SourceFilter{}, fmt.Errorf("network type %q: only IN is defined", f[1])
	}
	switch f[2] {
	case "IP4", "IP6", "*":
		sf.AddrType = f[2]
	default:
		return SourceFilter{}, fmt.Errorf("address type %q: want IP4, IP6 or *", f[2])
	}
	fits := func(a netip.Addr) bool {
		return sf.AddrType == "*" || (sf.AddrType == "IP4") == a.Is4()
	}
	if f[3] != "*" {
		d, err := netip.ParseAddr(f[3])
		if err != nil || d.Zone() != "" || d.Is4In6() {
			return SourceFilter{}, fmt.Errorf("destination %q: want an IP address or * (domain names are not supported)", f[3])
		}
		if !fits(d) {
			return SourceFilter{}, fmt.Errorf("destination %v is not of address type %s", d, sf.AddrType)
		}
		sf.Dest = d
	}
	seen := map[netip.Addr]bool{}
	for _, src := range f[4:] {
		a, err := netip.ParseAddr(src)
		if err != nil || a.Zone() != "" || a.Is4In6() {
			return SourceFilter{}, fmt.Errorf("source %q: want an IP address (domain names are not supported)", src)
		}
		if !fits(a) {
			return SourceFilter{}, fmt.Errorf("source %v is not of address type %s", a, sf.AddrType)
		}
		if a.IsMulticast() || a.IsUnspecified() {
			return SourceFilter{}, fmt.Errorf("source %v must be a unicast sender address", a)
		}
		if seen[a] {
			return SourceFilter{}, fmt.Errorf("source %v is listed twice", a)
		}
		seen[a] = true
		sf.Sources = append(sf.Sources, a)
	}
	return sf, nil
}
