package sdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
)

// Level says where a line stands: before the first m= or inside a media
// description. Some rules differ between the two.
type Level int

// The levels.
const (
	SessionLevel Level = iota + 1
	MediaLevel
)

// Connection is a c= line, with the multicast suffixes read into fields:
//
//	c=<nettype> <addrtype> <connection-address>   (RFC 8866 §5.7)
//	IPv4 multicast: <base>/<ttl>[/<number of addresses>]
//	IPv6 multicast: <base>[/<number of addresses>]
//
// The zero Connection is not valid; see IsValid.
type Connection struct {
	// Addr is the address, or the first of Count consecutive groups.
	Addr netip.Addr
	// Host is a domain name, set instead of Addr for a unicast c= that
	// names one. AddrType says its family.
	Host     string
	AddrType string // "IP4" or "IP6"; derived from Addr when Addr is set
	// TTL is the time to live of an IPv4 multicast address (0-255). IPv6
	// never carries one.
	TTL uint8
	// Count is the number of consecutive groups (layered encodings), at
	// media level only, at most MaxAddresses. 0 and 1 both mean one; 1 is
	// written only if it was read. Len, Last, Contains and All read the
	// range without expanding it.
	Count int
}

// IsValid reports whether c holds an address or a host name.
func (c Connection) IsValid() bool { return c.Addr.IsValid() || c.Host != "" }

// IsMulticast reports whether c is a multicast address.
func (c Connection) IsMulticast() bool { return c.Addr.IsValid() && c.Addr.IsMulticast() }

// MaxAddresses is the largest number of addresses a c= line may name.
//
// The count exists for layered (hierarchical) encodings, each layer sent to
// its own group (RFC 8866 §5.7), and layered codings have few layers:
// receiver-driven layered multicast was run with up to eight, and H.264
// SVC addresses at most 8 dependency layers times 8 temporal levels, 64
// in all (ITU-T H.264 Annex G, 3 bits each for dependency_id and
// temporal_id). 64 leaves room for any of these. A larger count is a
// mistake or an attack: a stranger's single line must not make a reader
// reserve thousands of groups, so [ParseConnection] refuses it, and no
// caller ever expands more than MaxAddresses groups.
const MaxAddresses = 64

// Len returns how many groups c names: Count, or 1 when Count is 0, or 0
// when c holds no address.
func (c Connection) Len() int {
	if !c.Addr.IsValid() {
		return 0
	}
	return max(c.Count, 1)
}

// Last returns the last of the Len groups from Addr, computed without
// walking them. It is the zero Addr when c holds no address or when the
// count runs past the end of the address space (which ParseConnection
// never lets through).
func (c Connection) Last() netip.Addr {
	if !c.Addr.IsValid() {
		return netip.Addr{}
	}
	last, ok := addAddr(c.Addr, uint64(c.Len()-1))
	if !ok {
		return netip.Addr{}
	}
	return last
}

// Contains reports whether a is one of the groups c names, by comparing
// it with the ends of the range.
func (c Connection) Contains(a netip.Addr) bool {
	last := c.Last()
	return last.IsValid() && a.BitLen() == c.Addr.BitLen() && a.Zone() == c.Addr.Zone() &&
		c.Addr.Compare(a) <= 0 && a.Compare(last) <= 0
}

// All yields the groups c names, in order. It yields at most
// MaxAddresses of them, and stops at the end of the address space, even
// for a Connection built in code with a larger Count.
func (c Connection) All() iter.Seq[netip.Addr] {
	return func(yield func(netip.Addr) bool) {
		a := c.Addr
		for range min(c.Len(), MaxAddresses) {
			if !a.IsValid() || !yield(a) {
				return
			}
			a = a.Next()
		}
	}
}

// addAddr returns a+n, or false when that passes the end of a's address
// space.
func addAddr(a netip.Addr, n uint64) (netip.Addr, bool) {
	if a.Is4() {
		if n > math.MaxUint32 {
			return netip.Addr{}, false
		}
		b := a.As4()
		u := uint64(binary.BigEndian.Uint32(b[:])) + n
		if u > math.MaxUint32 {
			return netip.Addr{}, false
		}
		binary.BigEndian.PutUint32(b[:], uint32(u))
		return netip.AddrFrom4(b), true
	}
	b := a.As16()
	lo, carry := bits.Add64(binary.BigEndian.Uint64(b[8:]), n, 0)
	hi, carry := bits.Add64(binary.BigEndian.Uint64(b[:8]), 0, carry)
	if carry != 0 {
		return netip.Addr{}, false
	}
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b).WithZone(a.Zone()), true
}

func (c Connection) addrType() string {
	switch {
	case c.Addr.Is4():
		return "IP4"
	case c.Addr.Is6():
		return "IP6"
	}
	return c.AddrType
}

// String returns the c= value, without "c=": "IN IP4 224.2.1.1/127/3".
func (c Connection) String() string {
	var b strings.Builder
	b.WriteString("IN ")
	b.WriteString(c.addrType())
	b.WriteByte(' ')
	if !c.Addr.IsValid() {
		b.WriteString(c.Host)
		return b.String()
	}
	b.WriteString(c.Addr.String())
	if c.IsMulticast() && c.Addr.Is4() {
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(int(c.TTL)))
	}
	if c.Count > 1 || (c.Count == 1 && c.IsMulticast()) {
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(c.Count))
	}
	return b.String()
}

// errNoTTL marks an IPv4 group without a TTL, which a liberal Parse takes
// (ParseOptions.DefaultTTL). It adds nothing to the message.
var errNoTTL = noTTL{}

type noTTL struct{}

func (noTTL) Error() string { return "" }

// ParseConnection reads a c= value (without "c=") found at the given level.
func ParseConnection(s string, level Level) (Connection, error) {
	f := strings.Fields(s)
	if len(f) != 3 || strings.Join(f, " ") != s {
		return Connection{}, errors.New("want \"IN IP4|IP6 <address>\" with single spaces")
	}
	if f[0] != "IN" {
		return Connection{}, fmt.Errorf("network type %q: only IN is defined (RFC 8866 §5.7)", f[0])
	}
	at := f[1]
	if at != "IP4" && at != "IP6" {
		return Connection{}, fmt.Errorf("address type %q: want IP4 or IP6", at)
	}
	parts := strings.Split(f[2], "/")
	var c Connection
	c.AddrType = at
	a, err := netip.ParseAddr(parts[0])
	if err != nil || a.Zone() != "" {
		if !isDomainName(parts[0]) {
			return Connection{}, fmt.Errorf("%q is neither an %s address nor a domain name", parts[0], at)
		}
		if len(parts) > 1 {
			return Connection{}, errors.New("a domain name takes no /ttl or /number suffix")
		}
		c.Host = parts[0]
		return c, nil
	}
	// RFC 5118 §4.9: an IPv4-mapped IPv6 address is a valid IP6 unicast
	// address; as IP4, or as a group, it is written the IPv4 way.
	if a.Is4In6() && (at == "IP4" || a.IsMulticast()) {
		return Connection{}, fmt.Errorf("%v: write an IPv4 address as IP4", a)
	}
	if (at == "IP4") != a.Is4() {
		return Connection{}, fmt.Errorf("%v is not an %s address", a, at)
	}
	c.Addr = a
	nums := parts[1:]
	if !a.IsMulticast() {
		if len(nums) > 0 {
			return Connection{}, fmt.Errorf("unicast address %v takes no slash suffix (RFC 8866 §5.7)", a)
		}
		return c, nil
	}
	if a.Is4() {
		if len(nums) == 0 {
			return Connection{}, fmt.Errorf("IPv4 multicast address %v needs a TTL: %v/<ttl> (RFC 8866 §5.7)%w", a, a, errNoTTL)
		}
		ttl, err := strconv.ParseUint(nums[0], 10, 8)
		if err != nil || !isDigits(nums[0]) {
			return Connection{}, fmt.Errorf("TTL %q: want a whole number from 0 to 255", nums[0])
		}
		c.TTL = uint8(ttl)
		nums = nums[1:]
	}
	switch len(nums) {
	case 0:
	case 1:
		n, err := parseCount(nums[0])
		if err != nil {
			if a.Is6() && len(parts) == 2 {
				return Connection{}, fmt.Errorf("%q after an IPv6 group is a number of addresses, not a TTL: IPv6 has none (RFC 8866 §5.7); %v", nums[0], err)
			}
			return Connection{}, err
		}
		if level == SessionLevel && n > 1 {
			return Connection{}, errors.New("a number of addresses is allowed at media level only (RFC 8866 §5.7)")
		}
		c.Count = n
		// The last address is computed, never walked to: n is at most
		// MaxAddresses, but no loop here depends on it.
		if last, ok := addAddr(a, uint64(n-1)); !ok || !last.IsMulticast() {
			return Connection{}, fmt.Errorf("%d addresses from %v run out of the multicast range", n, a)
		}
	default:
		if a.Is6() {
			return Connection{}, fmt.Errorf("IPv6 multicast address %v takes no TTL, only /<number of addresses> (RFC 8866 §5.7)", a)
		}
		return Connection{}, errors.New("too many slash-separated fields: want <address>/<ttl>[/<number>]")
	}
	return c, nil
}

// parseCount reads the <number of addresses> of a c= line: a whole number
// from 1 to MaxAddresses (RFC 8866 §5.7).
func parseCount(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if !isDigits(s) || (err != nil && !errors.Is(err, strconv.ErrRange)) || n == 0 {
		return 0, fmt.Errorf("number of addresses %q: want a whole number from 1 to %d", s, MaxAddresses)
	}
	if err != nil || n > MaxAddresses {
		return 0, fmt.Errorf("number of addresses %s is more than %d: layered encodings use a few groups (RFC 8866 §5.7), so mcc refuses more", s, MaxAddresses)
	}
	return int(n), nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// isDomainName reports whether s looks like an FQDN (RFC 1035 letters,
// digits, hyphens and dots, with a letter somewhere).
func isDomainName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	letter := false
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
				letter = true
			case r >= '0' && r <= '9', r == '-':
			default:
				return false
			}
		}
	}
	return letter
}
