package sap

import (
	"fmt"
	"net/netip"
)

// The SAP groups (RFC 2974 §3, RFC 2365 §6.2).
var (
	GlobalGroup = netip.MustParseAddr("224.2.127.254")
	LocalGroup  = netip.MustParseAddr("239.255.255.255") // IPv4 local scope, 239.255.0.0/16
	OrgGroup    = netip.MustParseAddr("239.195.255.255") // organisation-local, 239.192.0.0/14
	// LinkGroup is where PipeWire's and PulseAudio's SAP modules announce
	// and listen (224.0.0.56, in the link-local block), outside RFC 2974's
	// scheme.
	LinkGroup = netip.MustParseAddr("224.0.0.56")
)

var (
	localScope = netip.MustParsePrefix("239.255.0.0/16")
	orgScope   = netip.MustParsePrefix("239.192.0.0/14")
	adminScope = netip.MustParsePrefix("239.0.0.0/8")
)

// GroupFor returns the SAP group a session on group g is announced to: an
// announcement has the scope of the session it announces (RFC 2974 §3).
// IPv4 administratively scoped sessions go to the highest address of their
// scope, other IPv4 sessions to 224.2.127.254, and IPv6 sessions to
// ff0X::2:7ffe with X the session's scope.
func GroupFor(g netip.Addr) (netip.Addr, error) {
	g = g.Unmap()
	if !g.IsMulticast() {
		return netip.Addr{}, fmt.Errorf("sap: %v is not a multicast group", g)
	}
	if g.Is4() {
		switch {
		case localScope.Contains(g):
			return LocalGroup, nil
		case orgScope.Contains(g):
			return OrgGroup, nil
		case adminScope.Contains(g):
			return netip.Addr{}, fmt.Errorf("sap: %v is in an administrative scope other than local and organisation-local; its SAP group is the highest address of that zone", g)
		}
		return GlobalGroup, nil
	}
	b := g.As16()
	scope := b[1] & 0x0f
	if scope == 0 || scope == 0xf {
		return netip.Addr{}, fmt.Errorf("sap: %v has a reserved scope", g)
	}
	var a [16]byte
	a[0], a[1] = 0xff, scope
	a[13], a[14], a[15] = 0x02, 0x7f, 0xfe
	return netip.AddrFrom16(a), nil
}
