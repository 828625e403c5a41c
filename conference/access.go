package conference

import (
	"net"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// admit applies conference access to a dial-in. It returns nil when the
// caller may join, else the response to send (a refusal, see guard.go):
// 403 for a source or From that is not allowed, 401 with digest
// challenges, or 400 for credentials whose uri is not the Request-URI.
func (c *Controller) admit(conf *Conference, req *sip.Request) *refusal {
	a := &conf.access
	if len(a.Sources) > 0 && !fromSources(a.Sources, req) {
		return forbidden("the conference does not take calls from this address")
	}
	switch a.Mode {
	case Anyone:
		return nil
	case AllowList:
		// The From header is the caller's claim (RFC 3261 §8.1.1.3): see
		// Access, and Sources.
		if from := req.From(); from != nil && allowed(a.Allow, from.Address) {
			return nil
		}
		return forbidden("not on the conference's access list")
	case Digest:
		realm := a.Realm
		if realm == "" {
			realm = conf.name
		}
		return conf.nonces.authenticate(a, realm, req)
	}
	return forbidden("unknown access mode")
}

func forbidden(why string) *refusal {
	return &refusal{Code: sip.StatusForbidden, Reason: "Forbidden", Warning: why}
}

// allowed reports whether the From URI from is on the allow list.
func allowed(allow []string, from sip.Uri) bool {
	user := strings.ToLower(from.User + "@" + from.Host)
	host := strings.ToLower(strings.Trim(from.Host, "[]"))
	for _, s := range allow {
		s = strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(s, "sip:"), "sips:"))
		if s == user || s == host || s == strings.ToLower(from.Host) {
			return true
		}
	}
	return false
}

// fromSources reports whether the packets of req came from one of
// prefixes. It looks at the transport's source address only, never at Via
// (sipgo's req.Source falls back on it): a request whose source is unknown
// is not from any of them.
func fromSources(prefixes []netip.Prefix, req *sip.Request) bool {
	addr, ok := packetSource(req.MessageData.Source())
	if !ok {
		return false
	}
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// packetSource reads the host of a "host:port" source, without zone and
// with an IPv4-mapped IPv6 address as IPv4.
func packetSource(src string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(src); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	host, _, err := net.SplitHostPort(src)
	if err != nil {
		host = src
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}
