package sdp

import (
	"fmt"
	psdp "github.com/pion/sdp/v3"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Session is a session description (RFC 8866) as mcc needs it for
// multicast: typed fields for what mcc reads and writes, and the other
// attributes kept in order so that nothing read is lost.
type Session struct {
	// o=<username> <sess-id> <sess-version> IN <addrtype> <unicast-address> (RFC 8866 §5.2)
	Origin Origin
	// s=<session name> (§5.3)
	Name string
	// i=<session information> (§5.4)
	Info string
	// u=<uri> (§5.5)
	URI string
	// e=<email-address> and p=<phone-number> (§5.6)
	Email, Phone string
	// c= at session level (§5.7); nil when each medium has its own.
	Connection *Connection
	// b=<bwtype>:<bandwidth> (§5.8)
	Bandwidths []Bandwidth
	// t= and r= lines (§5.9, §5.10); at least one.
	Times []Timing
	// a=type:<type> (§6.9): broadcast, meeting, moderated, test or H332.
	Type string
	// a=tool:<name and version> (§6.3)
	Tool string
	// a=sendrecv, recvonly, sendonly or inactive at session level (§6.7).
	Direction Direction
	// a=source-filter at session level (RFC 4570).
	SourceFilters []SourceFilter
	// Attributes holds the other session-level a= lines, in order.
	Attributes []Attribute
	// Media holds one entry per m= line.
	Media []*Media
	// Warnings are what a liberal Parse took that RFC 8866 does not allow
	// (ParseOptions); nil for a strict one, and never marshalled.
	Warnings []Warning

	// Lines the pion model keeps that mcc does not interpret (z=, k=).
	zones []psdp.TimeZone
	key   *psdp.EncryptionKey

	pos positions // line numbers, set by Parse
}

// Origin is the o= line (RFC 8866 §5.2).
type Origin struct {
	Username  string
	SessionID uint64
	// Version goes up by one with every change (RFC 3264 §8).
	Version uint64
	// Addr is the originator's unicast address, or Host a domain name.
	Addr netip.Addr
	Host string
	// AddrType is "IP4" or "IP6"; derived from Addr when Addr is set.
	AddrType string
}

func (o Origin) addrType() string {
	if o.Addr.IsValid() {
		if o.Addr.Is4() {
			return "IP4"
		}
		return "IP6"
	}
	if o.AddrType == "" {
		return "IP4"
	}
	return o.AddrType
}

func (o Origin) address() string {
	if o.Addr.IsValid() {
		return o.Addr.String()
	}
	if o.Host == "" {
		return "0.0.0.0"
	}
	return o.Host
}

// Timing is a t= line with its r= lines. Times are NTP seconds (seconds
// since 1900); zero means unbounded.
type Timing struct {
	Start, Stop uint64
	Repeats     []Repeat
}

// Repeat is an r= line (RFC 8866 §5.10), in seconds.
type Repeat struct {
	Interval, Duration int64
	Offsets            []int64
}

// ntpOffset is the number of seconds from 1900 to 1970.
const ntpOffset = 2208988800

// NTPTime converts a time to NTP seconds; the zero time gives 0.
func NTPTime(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.Unix() + ntpOffset)
}

// FromNTP converts NTP seconds to a time; 0 gives the zero time.
func FromNTP(s uint64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(int64(s)-ntpOffset, 0).UTC()
}

// Bandwidth is a b= line (RFC 8866 §5.8, RFC 3890 TIAS).
type Bandwidth struct {
	Type  string // AS, CT, TIAS, RR, RS or X-...
	Value uint64
}

// Attribute is an a= line mcc does not interpret.
type Attribute struct {
	Key, Value string
	// Flag marks a property attribute, written without a colon.
	Flag bool
}

// Direction is a direction attribute (RFC 8866 §6.7). For a multicast
// stream it binds every participant (RFC 3264 §5.2): recvonly means that
// all of them, offerer and answerers, only receive.
type Direction string

// The direction attributes.
const (
	SendRecv Direction = "sendrecv"
	SendOnly Direction = "sendonly"
	RecvOnly Direction = "recvonly"
	Inactive Direction = "inactive"
)

func isDirection(s string) bool {
	switch Direction(s) {
	case SendRecv, SendOnly, RecvOnly, Inactive:
		return true
	}
	return false
}

// Media is a media description: an m= line and the lines below it.
type Media struct {
	// m=<media> <port>[/<number of ports>] <proto> <fmt> ... (RFC 8866 §5.14)
	Kind     string // audio, video, text, application, message
	Port     uint16 // 0: the stream is removed or declined (RFC 3264 §8.2)
	NumPorts int    // 0 when absent
	Proto    string // RTP/AVP, RTP/AVPF, udp, ...
	Formats  []string
	// i= (§5.4)
	Title string
	// c= at media level (§5.7). mcc writes the group here: some clients
	// (linphone) join only a group given at media level.
	Connection *Connection
	// b= (§5.8)
	Bandwidths []Bandwidth
	// a=rtpmap and a=fmtp (§6.6, §6.15), in format order.
	RTPMaps []RTPMap
	// a=rtcp:<port> [IN <addrtype> <address>] (RFC 3605)
	RTCP *RTCP
	// a=sendrecv and friends (§6.7); "" when the medium has none.
	Direction Direction
	// a=source-filter at media level (RFC 4570).
	SourceFilters []SourceFilter
	// Attributes holds the other a= lines, in order.
	Attributes []Attribute

	key *psdp.EncryptionKey // k=, kept as read
}

// RTPMap is an a=rtpmap line with its a=fmtp parameters (RFC 8866 §6.6).
type RTPMap struct {
	Payload   uint8
	Encoding  string
	ClockRate uint32
	Channels  int    // 0 when absent
	Params    string // a=fmtp:<payload> <params>, "" when absent
}

// RTCP is an a=rtcp attribute (RFC 3605).
type RTCP struct {
	Port uint16
	Addr *Connection // nil when absent
}

// String returns the value of a=rtcp.
func (r RTCP) String() string {
	s := strconv.Itoa(int(r.Port))
	if r.Addr != nil {
		s += " " + r.Addr.String()
	}
	return s
}

// EffectiveConnection returns the medium's c=, or the session's.
func (s *Session) EffectiveConnection(m *Media) *Connection {
	if m.Connection != nil {
		return m.Connection
	}
	return s.Connection
}

// WithMediaConnections returns s with its session-level c= written into
// every m= that has none, and no session-level c= left: the same session
// (RFC 8866 §5.7: a session-level c= is each medium's default), in the
// form every receiver reads, since some user agents (linphone) join only
// a group named at media level. It returns s itself when there is nothing
// to move; the copy shares s's media that had their own c=.
func (s *Session) WithMediaConnections() *Session {
	if s.Connection == nil {
		return s
	}
	out := *s
	out.Connection = nil
	out.Media = make([]*Media, len(s.Media))
	for i, m := range s.Media {
		if m.Connection != nil {
			out.Media[i] = m
			continue
		}
		mc := *m
		c := *s.Connection
		mc.Connection = &c
		out.Media[i] = &mc
	}
	return &out
}

// EffectiveDirection returns the medium's direction, the session's, or
// sendrecv, the default (RFC 8866 §6.7).
func (s *Session) EffectiveDirection(m *Media) Direction {
	switch {
	case m.Direction != "":
		return m.Direction
	case s.Direction != "":
		return s.Direction
	}
	return SendRecv
}

// SourceFiltersFor returns the source filters that apply to the medium:
// its own, or else the session's (RFC 4570 §3.1).
func (s *Session) SourceFiltersFor(m *Media) []SourceFilter {
	if len(m.SourceFilters) > 0 {
		return m.SourceFilters
	}
	return s.SourceFilters
}

// SourcesFor returns the senders the medium's filters take for group g
// (incl) and refuse (excl), RFC 4570 §3: a receiver joins (S,G) for each
// included source, or g blocking the excluded ones.
func (s *Session) SourcesFor(m *Media, g netip.Addr) (incl, excl []netip.Addr) {
	for _, f := range s.SourceFiltersFor(m) {
		switch {
		case !f.Matches(g):
		case f.Mode == Include:
			incl = append(incl, f.Sources...)
		case f.Mode == Exclude:
			excl = append(excl, f.Sources...)
		}
	}
	return incl, excl
}

// Clone returns a deep copy of s.
func (s *Session) Clone() *Session {
	c := *s
	c.Connection = cloneConn(s.Connection)
	c.Bandwidths = append([]Bandwidth(nil), s.Bandwidths...)
	c.Times = make([]Timing, len(s.Times))
	for i, t := range s.Times {
		c.Times[i] = Timing{Start: t.Start, Stop: t.Stop}
		for _, r := range t.Repeats {
			c.Times[i].Repeats = append(c.Times[i].Repeats, Repeat{r.Interval, r.Duration, append([]int64(nil), r.Offsets...)})
		}
	}
	c.SourceFilters = cloneFilters(s.SourceFilters)
	c.Attributes = append([]Attribute(nil), s.Attributes...)
	c.Media = make([]*Media, len(s.Media))
	for i, m := range s.Media {
		c.Media[i] = m.Clone()
	}
	c.pos = s.pos.clone()
	return &c
}

// Clone returns a deep copy of m.
func (m *Media) Clone() *Media {
	c := *m
	c.Formats = append([]string(nil), m.Formats...)
	c.Connection = cloneConn(m.Connection)
	c.Bandwidths = append([]Bandwidth(nil), m.Bandwidths...)
	c.RTPMaps = append([]RTPMap(nil), m.RTPMaps...)
	if m.RTCP != nil {
		r := *m.RTCP
		r.Addr = cloneConn(m.RTCP.Addr)
		c.RTCP = &r
	}
	c.SourceFilters = cloneFilters(m.SourceFilters)
	c.Attributes = append([]Attribute(nil), m.Attributes...)
	return &c
}

func cloneConn(c *Connection) *Connection {
	if c == nil {
		return nil
	}
	x := *c
	return &x
}

func cloneFilters(fs []SourceFilter) []SourceFilter {
	if fs == nil {
		return nil
	}
	out := make([]SourceFilter, len(fs))
	for i, f := range fs {
		out[i] = f
		out[i].Sources = append([]netip.Addr(nil), f.Sources...)
	}
	return out
}

// RTPMap returns the rtpmap of payload type pt.
func (m *Media) RTPMap(pt string) (RTPMap, bool) {
	for _, r := range m.RTPMaps {
		if strconv.Itoa(int(r.Payload)) == pt {
			return r, true
		}
	}
	return RTPMap{}, false
}

// String describes the medium in a few words, for messages:
// "stream 1 (video 16386 RTP/AVP)".
func (m *Media) describe(i int) string {
	return fmt.Sprintf("stream %d (%s %d %s)", i, m.Kind, m.Port, m.Proto)
}

func (r RTPMap) rtpmapValue() string {
	s := fmt.Sprintf("%d %s/%d", r.Payload, r.Encoding, r.ClockRate)
	if r.Channels > 0 {
		s += "/" + strconv.Itoa(r.Channels)
	}
	return s
}

func parseRTPMap(v string) (RTPMap, error) {
	pt, rest, ok := strings.Cut(v, " ")
	if !ok {
		return RTPMap{}, fmt.Errorf("want \"<payload type> <encoding>/<clock rate>[/<channels>]\"")
	}
	p, err := strconv.ParseUint(pt, 10, 8)
	if err != nil || p > 127 || !isDigits(pt) {
		return RTPMap{}, fmt.Errorf("payload type %q: want 0-127", pt)
	}
	parts := strings.Split(strings.TrimSpace(rest), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" {
		return RTPMap{}, fmt.Errorf("%q: want <encoding>/<clock rate>[/<channels>]", rest)
	}
	rate, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil || rate == 0 {
		return RTPMap{}, fmt.Errorf("clock rate %q: want a positive whole number", parts[1])
	}
	r := RTPMap{Payload: uint8(p), Encoding: parts[0], ClockRate: uint32(rate)}
	if len(parts) == 3 {
		ch, err := strconv.Atoi(parts[2])
		if err != nil || ch < 1 {
			return RTPMap{}, fmt.Errorf("channels %q: want a positive whole number", parts[2])
		}
		r.Channels = ch
	}
	return r, nil
}

func parseRTCP(v string) (*RTCP, error) {
	port, rest, _ := strings.Cut(v, " ")
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || !isDigits(port) {
		return nil, fmt.Errorf("port %q: want 0-65535", port)
	}
	r := &RTCP{Port: uint16(p)}
	if rest != "" {
		c, err := ParseConnection(rest, MediaLevel)
		if err != nil {
			return nil, err
		}
		r.Addr = &c
	}
	return r, nil
}
