package sap

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"mcc/sdp"
)

// A Profile is how an announcement is written and sent so that one
// family of listeners takes it: the SAP group, how often, the line
// endings, the payload type and the order of the lines. RFC 2974 is the
// default; the others follow what each ecosystem's own announcer does,
// since that is what its listeners are known to take. docs/sap-profiles.md
// gives the source of every figure.
type Profile struct {
	Name string
	// Group4 is the SAP group of IPv4 sessions. Unset means the
	// session's scope's (GroupFor, RFC 2974 §3). IPv6 sessions always go
	// to ff0X::2:7ffe of their scope.
	Group4 netip.Addr
	// Interval is the time between announcements of a session. Zero
	// means RFC 2974 §3.1's (at least 300 s). A fixed interval is still
	// stretched when the group's announcements would otherwise pass the
	// bandwidth limit, and carries a random offset of up to a tenth.
	Interval time.Duration
	// LF ends lines with LF alone instead of CRLF.
	LF bool
	// PayloadType is the MIME type written before the description
	// (RFC 2974 §5). Every profile writes application/sdp: RFC 2974
	// allows leaving it out, but aes67-linux-daemon drops such packets.
	PayloadType string
	// IPv4Only refuses IPv6 sessions: the listener reads IPv4 SAP only.
	IPv4Only bool
	// DanteOrder writes one c= at session level when every stream has
	// the same one, and each stream's attributes in the order Dante
	// Controller needs: direction, rtpmap, fmtp, source-filter, ssrc,
	// ptime, framecount, ts-refclk, mediaclk, then the rest as they were.
	DanteOrder bool
	// Doc says in a line who the profile is for.
	Doc string
}

// Profiles are the announce profiles mcc knows, by name.
var Profiles = []Profile{
	{Name: "rfc2974", PayloadType: SDPType,
		Doc: "RFC 2974: the session's scope's group, every 300 s or more; sdr, and any listener of every group"},
	{Name: "aes67", Group4: LocalGroup, Interval: 30 * time.Second, PayloadType: SDPType, IPv4Only: true, DanteOrder: true,
		Doc: "AES67 and Dante: 239.255.255.255 every 30 s, IPv4, session-level c=, Dante Controller's line order"},
	{Name: "pipewire", Group4: LinkGroup, Interval: 5 * time.Second, LF: true, PayloadType: SDPType, DanteOrder: true,
		Doc: "PipeWire's module-rtp-sap: 224.0.0.56 every 5 s, LF, its line order"},
	{Name: "pulseaudio", Group4: LinkGroup, Interval: 5 * time.Second, LF: true, PayloadType: SDPType,
		Doc: "PulseAudio's module-rtp-recv: 224.0.0.56 every 5 s, LF (16.1 refuses CRLF)"},
	{Name: "vlc", Interval: 5 * time.Second, PayloadType: SDPType,
		Doc: "VLC's SAP discovery: the session's scope's group every 5 s"},
	{Name: "ffmpeg", Group4: GlobalGroup, Interval: 5 * time.Second, PayloadType: SDPType,
		Doc: "ffmpeg's SAP demuxer: 224.2.127.254 every 5 s"},
}

// DefaultProfile is the profile of a session that names none.
const DefaultProfile = "rfc2974"

// ProfileByName returns the profile called name; "dante" is aes67.
func ProfileByName(name string) (Profile, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "dante" {
		n = "aes67"
	}
	for _, p := range Profiles {
		if p.Name == n {
			return p, nil
		}
	}
	return Profile{}, fmt.Errorf("sap: no announce profile %q; want one of %s", name, strings.Join(ProfileNames(), ", "))
}

// ProfileNames lists the profiles' names.
func ProfileNames() []string {
	var out []string
	for _, p := range Profiles {
		out = append(out, p.Name)
	}
	return out
}

// ParseProfiles reads a comma-separated list of profile names.
func ParseProfiles(list string) ([]Profile, error) {
	return ProfilesNamed(strings.Split(list, ","))
}

// ProfilesNamed returns the profiles of names, each once, in the order
// first named. An empty or unknown name is an error.
func ProfilesNamed(names []string) ([]Profile, error) {
	var out []Profile
	for _, n := range names {
		if strings.TrimSpace(n) == "" {
			return nil, fmt.Errorf("sap: an empty announce profile name in %q; want one or more of %s, comma-separated", strings.Join(names, ","), strings.Join(ProfileNames(), ", "))
		}
		p, err := ProfileByName(n)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(out, func(q Profile) bool { return q.Name == p.Name }) {
			out = append(out, p)
		}
	}
	return out, nil
}

// merge is one announcement that p's listeners and q's both take, for
// two profiles that send to the same SAP group: LF if either needs it
// (every listener here reads LF), Dante's order if either needs it (no
// listener minds it), the shorter fixed interval, IPv4 only if either is.
func (p Profile) merge(q Profile) Profile {
	m := p
	m.Name = p.Name + "+" + q.Name
	m.LF = p.LF || q.LF
	m.DanteOrder = p.DanteOrder || q.DanteOrder
	m.IPv4Only = p.IPv4Only || q.IPv4Only
	if q.Interval > 0 && (m.Interval == 0 || q.Interval < m.Interval) {
		m.Interval = q.Interval
	}
	if m.PayloadType == "" {
		m.PayloadType = q.PayloadType
	}
	return m
}

// group returns the SAP group a session on group g goes to.
func (p Profile) group(g netip.Addr) (netip.Addr, error) {
	if g.Is4() && p.Group4.IsValid() {
		return p.Group4, nil
	}
	if g.Is6() && p.IPv4Only {
		return netip.Addr{}, fmt.Errorf("sap: the %s profile announces IPv4 sessions only", p.Name)
	}
	return GroupFor(g)
}

// Format writes desc as p's listeners take it.
func (p Profile) Format(desc *sdp.Session) ([]byte, error) {
	if p.DanteOrder {
		desc = sessionConnection(desc)
	}
	body, err := desc.Marshal()
	if err != nil {
		return nil, err
	}
	if p.DanteOrder {
		body = danteOrder(body)
	}
	if p.LF {
		body = bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))
	}
	return body, nil
}

// sessionConnection returns desc with one session-level c= when every
// stream has the same one (RFC 8866 §5.7: a media-level c= overrides the
// session's, so the two forms say the same), as Dante and PipeWire write
// it; otherwise desc.
func sessionConnection(desc *sdp.Session) *sdp.Session {
	var c *sdp.Connection
	for _, m := range desc.Media {
		mc := desc.EffectiveConnection(m)
		if mc == nil || c != nil && *mc != *c {
			return desc
		}
		c = mc
	}
	if c == nil {
		return desc
	}
	out := desc.Clone()
	cc := *c
	out.Connection = &cc
	for _, m := range out.Media {
		m.Connection = nil
	}
	return out
}

// danteRank is the place of a media-level attribute in the order PipeWire
// writes since Dante Controller was found to refuse any other (PipeWire
// module-rtp-sap.c make_sdp, commit 39d6e40ab); -1 for the rest, which
// follow in the order they had.
func danteRank(line string) int {
	key, _, _ := strings.Cut(strings.TrimRight(strings.TrimPrefix(line, "a="), "\r\n"), ":")
	switch key {
	case "recvonly", "sendonly", "sendrecv", "inactive":
		return 0
	case "rtpmap":
		return 1
	case "fmtp":
		return 2
	case "source-filter":
		return 3
	case "ssrc":
		return 4
	case "ptime":
		return 5
	case "framecount":
		return 6
	case "ts-refclk":
		return 7
	case "mediaclk":
		return 8
	}
	return 9
}

// danteOrder reorders each media section's a= lines by danteRank, keeping
// the order of lines of the same rank; the other lines (i=, c=, b=, k=)
// keep their place before the attributes, as RFC 8866 §5 orders them.
func danteOrder(body []byte) []byte {
	lines := strings.SplitAfter(string(body), "\n")
	var out strings.Builder
	inMedia := false
	var attrs []string
	flush := func() {
		slices.SortStableFunc(attrs, func(a, b string) int { return danteRank(a) - danteRank(b) })
		for _, a := range attrs {
			out.WriteString(a)
		}
		attrs = attrs[:0]
	}
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "m="):
			flush()
			inMedia = true
			out.WriteString(l)
		case inMedia && strings.HasPrefix(l, "a="):
			attrs = append(attrs, l)
		default:
			out.WriteString(l)
		}
	}
	flush()
	return []byte(out.String())
}
