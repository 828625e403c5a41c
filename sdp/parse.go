package sdp

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	psdp "github.com/pion/sdp/v3"
)

// MaxSize is the largest description Parse reads. SAP packets and SIP
// bodies are far smaller.
const MaxSize = 64 << 10

// line is one line of a description as read.
type line struct {
	n    int    // 1-based
	typ  byte   // the letter before '='
	val  string // after '='
	text string // the whole line
}

// positions records where Parse found the parts that Check reports on.
type positions struct {
	conn    int
	typ     int
	filters []int
	times   []int
	media   []mediaPos
}

type mediaPos struct {
	m, conn, dir, rtcp int
	rtpmaps            map[uint8]int
	filters            []int
}

func (p positions) clone() positions {
	c := p
	c.filters = append([]int(nil), p.filters...)
	c.times = append([]int(nil), p.times...)
	c.media = append([]mediaPos(nil), p.media...)
	return c
}

func (p positions) mediaAt(i int) mediaPos {
	if i < len(p.media) {
		return p.media[i]
	}
	return mediaPos{}
}

// Session-level order (RFC 8866 §5): v o s i u e p c b (t r* z?)+ k a, then m.
var sessionRank = map[byte]int{'v': 0, 'o': 1, 's': 2, 'i': 3, 'u': 4, 'e': 5, 'p': 6, 'c': 7, 'b': 8, 't': 9, 'r': 9, 'z': 9, 'k': 11, 'a': 12}

// Media-level order: m i c b k a.
var mediaRank = map[byte]int{'i': 1, 'c': 2, 'b': 3, 'k': 4, 'a': 5}

var repeatable = map[byte]bool{'e': true, 'p': true, 'b': true, 't': true, 'r': true, 'a': true}

var typeNames = map[byte]string{'v': "v= (version)", 'o': "o= (origin)", 's': "s= (session name)", 'i': "i= (information)",
	'u': "u= (URI)", 'e': "e= (email)", 'p': "p= (phone)", 'c': "c= (connection)", 'b': "b= (bandwidth)", 't': "t= (timing)",
	'r': "r= (repeat)", 'z': "z= (time zones)", 'k': "k= (key)", 'a': "a= (attribute)", 'm': "m= (media)"}

// scan splits b into lines and checks that each is a known <type>=<value>
// in the order RFC 8866 §5 gives.
func scan(b []byte) ([]line, error) {
	if len(b) > MaxSize {
		return nil, &SyntaxError{Err: fmt.Errorf("description is %d bytes, more than %d", len(b), MaxSize)}
	}
	// Trailing line ends are forgiven: some senders (sipp among them) end
	// the body with an empty line.
	text := strings.TrimRight(string(b), "\r\n")
	if strings.TrimSpace(text) == "" {
		return nil, &SyntaxError{Err: errors.New("empty description")}
	}
	var ls []line
	for i, t := range strings.Split(text, "\n") {
		t = strings.TrimSuffix(t, "\r")
		n := i + 1
		if t == "" {
			return nil, &SyntaxError{Line: n, Text: t, Err: errors.New("empty line")}
		}
		if len(t) < 2 || t[1] != '=' || typeNames[t[0]] == "" {
			return nil, &SyntaxError{Line: n, Text: t, Err: errors.New("want <type>=<value> with a type of v o s i u e p c b t r z k a m")}
		}
		if strings.ContainsAny(t, "\x00\r") {
			return nil, &SyntaxError{Line: n, Text: t, Err: errors.New("NUL or lone CR inside a line")}
		}
		ls = append(ls, line{n: n, typ: t[0], val: t[2:], text: t})
	}
	last := -1
	var seen [256]bool
	inMedia, haveT := false, false
	for i, l := range ls {
		bad := func(format string, args ...any) error {
			return &SyntaxError{Line: l.n, Text: l.text, Err: fmt.Errorf(format, args...)}
		}
		if i == 0 && l.typ != 'v' {
			return nil, bad("a description starts with v=0")
		}
		if l.typ == 'm' {
			if !haveT {
				return nil, bad("t= must come before the first m= (RFC 8866 §5)")
			}
			inMedia, last, seen = true, 0, [256]bool{}
			continue
		}
		rank := sessionRank[l.typ]
		if inMedia {
			r, ok := mediaRank[l.typ]
			if !ok {
				return nil, bad("%s is not allowed in a media description", typeNames[l.typ])
			}
			rank = r
		}
		if rank < last {
			return nil, bad("%s is out of order (RFC 8866 §5)", typeNames[l.typ])
		}
		if seen[l.typ] && !repeatable[l.typ] {
			if inMedia && l.typ == 'c' {
				return nil, bad("several c= in one media description are not supported; give one group with /<number of addresses>")
			}
			return nil, bad("%s may appear only once here", typeNames[l.typ])
		}
		if (l.typ == 'r' || l.typ == 'z') && !haveT {
			return nil, bad("%s must follow a t=", typeNames[l.typ])
		}
		if l.typ == 't' {
			haveT = true
		}
		seen[l.typ], last = true, rank
	}
	for _, need := range []byte{'o', 's', 't'} {
		found := false
		for _, l := range ls {
			found = found || l.typ == need
		}
		if !found {
			return nil, &SyntaxError{Err: fmt.Errorf("no %s line", typeNames[need])}
		}
	}
	return ls, nil
}

var (
	pionToken = regexp.MustCompile("`([^`]*)`")
	pionPos   = regexp.MustCompile(`at pos (\d+)`)
)

// locate finds the line a pion error is about: by the offset it gives into
// the text Parse handed it (each line plus CRLF), or by the value it quotes.
func locate(ls []line, err error) *SyntaxError {
	msg := strings.TrimPrefix(err.Error(), "sdp: ")
	if m := pionPos.FindStringSubmatch(msg); m != nil {
		off, _ := strconv.Atoi(m[1])
		for _, l := range ls {
			if off < len(l.text)+2 {
				return &SyntaxError{Line: l.n, Text: l.text, Err: errors.New(msg)}
			}
			off -= len(l.text) + 2
		}
	}
	if m := pionToken.FindStringSubmatch(err.Error()); m != nil && m[1] != "" {
		tok := strings.TrimPrefix(m[1], "b=")
		for _, l := range ls {
			if strings.Contains(l.val, tok) {
				return &SyntaxError{Line: l.n, Text: l.text, Err: errors.New(msg)}
			}
		}
	}
	return &SyntaxError{Err: errors.New(msg)}
}

// Parse reads a session description. It returns a *SyntaxError naming the
// line and the rule for the first problem found.
func Parse(b []byte) (*Session, error) { return ParseOptions{}.Parse(b) }

// DefaultTTL is the TTL mcc takes an IPv4 group written without one at,
// where it reads what other tools wrote (imports, SAP, lint) and nothing
// else is configured: 1 keeps what follows the description on the link,
// as PulseAudio's sender, which writes no TTL, does by default.
const DefaultTTL = 1

// Liberal is how mcc reads what other tools wrote: an IPv4 group without
// a TTL is taken at ttl (DefaultTTL when 0), with a warning.
func Liberal(ttl uint8) ParseOptions { return ParseOptions{DefaultTTL: cmp.Or(ttl, DefaultTTL)} }

// ParseOptions is how liberal a Parse is with what other tools write. The
// zero value is Parse: every rule of RFC 8866 holds.
type ParseOptions struct {
	// DefaultTTL, when not zero, is the TTL an IPv4 multicast c= without
	// one is taken with (RFC 8866 §5.7 wants one; PulseAudio writes
	// none), with a warning on the Session. Zero refuses such a c=.
	DefaultTTL uint8
}

// Warning is something a liberal Parse took that RFC 8866 does not allow,
// and what it made of it.
type Warning struct {
	Line int    // 1-based
	Text string // the line as read
	Msg  string
}

func (w Warning) String() string { return fmt.Sprintf("line %d %q: %s", w.Line, w.Text, w.Msg) }

// Parse reads a description as o allows.
func (o ParseOptions) Parse(b []byte) (*Session, error) {
	ls, err := scan(b)
	if err != nil {
		return nil, err
	}
	if ls[0].val != "0" {
		return nil, &SyntaxError{Line: 1, Text: ls[0].text, Err: errors.New("only version 0 is defined (RFC 8866 §5.1)")}
	}
	var pd psdp.SessionDescription
	// pion wants CRLF line ends and a final one, and knows only the
	// protos registered with IANA in upper case: an m= with another
	// (the Mbone's "udp wb", "MP2T/H2221/UDP") reaches it as UDP, and its
	// own proto is put back after (RFC 8866 §5.14: a proto is a token).
	var norm bytes.Buffer
	protos := map[int]string{} // by m= ordinal
	nm := 0
	for _, l := range ls {
		text := l.text
		if l.typ == 'm' {
			// Only a line of single-space fields, as RFC 8866 §5.14 writes
			// it; another goes to pion as it is, and pion decides.
			if f := strings.Split(l.val, " "); len(f) >= 3 && !slices.Contains(f, "") && !strings.ContainsAny(l.val, "\t") && !pionProto(f[2]) {
				for p := range strings.SplitSeq(f[2], "/") {
					if !isToken(p) {
						return nil, &SyntaxError{Line: l.n, Text: l.text, Err: fmt.Errorf("proto %q: want tokens separated by / (RFC 8866 §5.14, §9)", f[2])}
					}
				}
				protos[nm] = f[2]
				f[2] = "UDP"
				text = "m=" + strings.Join(f, " ")
			}
			nm++
		}
		norm.WriteString(text)
		norm.WriteString("\r\n")
	}
	if err := pd.UnmarshalString(norm.String()); err != nil {
		return nil, locate(ls, err)
	}
	s, err := build(&pd, ls, &o)
	if err != nil {
		return nil, err
	}
	for i, p := range protos {
		s.Media[i].Proto = p
	}
	return s, nil
}

// connection reads c= line l, taking an IPv4 group without a TTL at
// o.DefaultTTL, with a warning, when o allows it.
func (o *ParseOptions) connection(l line, level Level, warn *[]Warning) (Connection, error) {
	c, err := ParseConnection(l.val, level)
	if errors.Is(err, errNoTTL) && o.DefaultTTL != 0 {
		if c, err = ParseConnection(l.val+"/"+strconv.Itoa(int(o.DefaultTTL)), level); err == nil {
			*warn = append(*warn, Warning{Line: l.n, Text: l.text,
				Msg: fmt.Sprintf("an IPv4 group without a TTL (RFC 8866 §5.7 wants one): taken as TTL %d", o.DefaultTTL)})
		}
	}
	return c, err
}

// pionProtos are the proto parts pion reads (those registered with IANA).
var pionProtos = map[string]bool{"UDP": true, "RTP": true, "AVP": true, "SAVP": true, "SAVPF": true, "TLS": true, "DTLS": true,
	"SCTP": true, "AVPF": true, "TCP": true, "MSRP": true, "BFCP": true, "UDT": true, "IX": true, "MRCPv2": true, "FEC": true}

// pionProto reports whether pion reads proto as it is.
func pionProto(proto string) bool {
	for p := range strings.SplitSeq(proto, "/") {
		if !pionProtos[p] {
			return false
		}
	}
	return true
}

// MustParse is Parse for constants and tests: it panics on error.
func MustParse(s string) *Session {
	sd, err := Parse([]byte(s))
	if err != nil {
		panic(err)
	}
	return sd
}

// lineIndex walks the scanned lines alongside the pion model.
type lineIndex struct {
	session []line   // lines before the first m=
	media   [][]line // lines of each media description, m= first
}

func index(ls []line) lineIndex {
	var x lineIndex
	for _, l := range ls {
		switch {
		case l.typ == 'm':
			x.media = append(x.media, []line{l})
		case len(x.media) > 0:
			x.media[len(x.media)-1] = append(x.media[len(x.media)-1], l)
		default:
			x.session = append(x.session, l)
		}
	}
	return x
}

// attrLines returns the a= lines of a section, in order, and checks that
// each names its attribute with a token (RFC 8866 §9).
func attrLines(ls []line) ([]line, error) {
	var out []line
	for _, l := range ls {
		if l.typ != 'a' {
			continue
		}
		key, _, _ := strings.Cut(l.val, ":")
		if !isToken(key) {
			return nil, &SyntaxError{Line: l.n, Text: l.text, Err: errors.New("an attribute needs a name made of token characters (RFC 8866 §9)")}
		}
		out = append(out, l)
	}
	return out, nil
}

// cutAttr splits an a= value into name and value. "a=x:" counts as the
// property attribute "a=x": a value is never empty (RFC 8866 §9).
func cutAttr(v string) (key, val string, hasVal bool) {
	key, val, hasVal = strings.Cut(v, ":")
	return key, val, hasVal && val != ""
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune("\"(),/:;<=>?@[]{}", r) {
			return false
		}
	}
	return true
}

func first(ls []line, typ byte) line {
	for _, l := range ls {
		if l.typ == typ {
			return l
		}
	}
	return line{}
}

func build(pd *psdp.SessionDescription, ls []line, opts *ParseOptions) (*Session, error) {
	x := index(ls)
	s := &Session{Name: string(pd.SessionName), zones: pd.TimeZones, key: pd.EncryptionKey}
	if s.Name == " " {
		s.Name = "" // the stand-in for no name (RFC 8866 §5.3)
	}
	o := pd.Origin
	ol := first(x.session, 'o')
	if f := strings.Split(ol.val, " "); len(f) != 6 || slices.Contains(f, "") {
		return nil, &SyntaxError{Line: ol.n, Text: ol.text, Err: errors.New("want o=<username> <sess-id> <sess-version> IN IP4|IP6 <address>, six fields with single spaces (RFC 8866 §5.2)")}
	}
	if strings.ContainsFunc(ol.val, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		// Each field is a non-ws-string (§9): no tab, no control character.
		return nil, &SyntaxError{Line: ol.n, Text: ol.text, Err: errors.New("o= fields are visible characters: no tab or control character (RFC 8866 §5.2, §9)")}
	}
	for _, l := range x.session {
		if l.typ != 't' {
			continue
		}
		f := strings.Split(l.val, " ")
		if len(f) != 2 || !isDigits(f[0]) || !isDigits(f[1]) {
			return nil, &SyntaxError{Line: l.n, Text: l.text, Err: errors.New("want t=<start> <stop> in NTP seconds (RFC 8866 §5.9)")}
		}
	}
	s.Origin = Origin{Username: o.Username, SessionID: o.SessionID, Version: o.SessionVersion, AddrType: o.AddressType}
	if o.NetworkType != "IN" || (o.AddressType != "IP4" && o.AddressType != "IP6") {
		return nil, &SyntaxError{Line: ol.n, Text: ol.text, Err: errors.New("origin must be IN IP4 or IN IP6 (RFC 8866 §5.2)")}
	}
	if a, err := netip.ParseAddr(o.UnicastAddress); err == nil {
		if (o.AddressType == "IP4") != a.Is4() {
			return nil, &SyntaxError{Line: ol.n, Text: ol.text, Err: fmt.Errorf("%v is not an %s address", a, o.AddressType)}
		}
		s.Origin.Addr = a
	} else if isDomainName(o.UnicastAddress) || o.UnicastAddress == "-" {
		s.Origin.Host = o.UnicastAddress
	} else {
		return nil, &SyntaxError{Line: ol.n, Text: ol.text, Err: fmt.Errorf("%q is neither an address nor a domain name", o.UnicastAddress)}
	}
	if pd.SessionInformation != nil {
		s.Info = string(*pd.SessionInformation)
	}
	if l := first(x.session, 'u'); l.n != 0 {
		if u, err := url.Parse(l.val); err != nil || u.String() != l.val || strings.ContainsAny(l.val, " \t") {
			return nil, &SyntaxError{Line: l.n, Text: l.text, Err: errors.New("not a URI (RFC 8866 §5.5, RFC 3986)")}
		}
		s.URI = l.val
	}
	if pd.EmailAddress != nil {
		s.Email = string(*pd.EmailAddress)
	}
	if pd.PhoneNumber != nil {
		s.Phone = string(*pd.PhoneNumber)
	}
	if l := first(x.session, 'c'); l.n != 0 {
		c, err := opts.connection(l, SessionLevel, &s.Warnings)
		if err != nil {
			return nil, &SyntaxError{Line: l.n, Text: l.text, Err: err}
		}
		s.Connection, s.pos.conn = &c, l.n
	}
	s.Bandwidths = bandwidths(pd.Bandwidth)
	for _, l := range x.session {
		if l.typ == 't' {
			s.pos.times = append(s.pos.times, l.n)
		}
	}
	for _, td := range pd.TimeDescriptions {
		t := Timing{Start: td.Timing.StartTime, Stop: td.Timing.StopTime}
		for _, r := range td.RepeatTimes {
			t.Repeats = append(t.Repeats, Repeat{r.Interval, r.Duration, append([]int64(nil), r.Offsets...)})
		}
		s.Times = append(s.Times, t)
	}
	sattrs, err := attrLines(x.session)
	if err != nil {
		return nil, err
	}
	for _, l := range sattrs {
		key, val, hasVal := cutAttr(l.val)
		bad := func(err error) error { return &SyntaxError{Line: l.n, Text: l.text, Err: err} }
		switch {
		case key == "type" && hasVal && s.Type == "":
			s.Type, s.pos.typ = val, l.n
		case key == "tool" && hasVal && s.Tool == "":
			s.Tool = val
		case !hasVal && isDirection(key):
			if s.Direction != "" {
				return nil, bad(errors.New("a second direction attribute"))
			}
			s.Direction = Direction(key)
		case key == "source-filter" && hasVal:
			f, err := ParseSourceFilter(val)
			if err != nil {
				return nil, bad(err)
			}
			s.SourceFilters = append(s.SourceFilters, f)
			s.pos.filters = append(s.pos.filters, l.n)
		default:
			s.Attributes = append(s.Attributes, Attribute{Key: key, Value: val, Flag: !hasVal})
		}
	}
	if len(pd.MediaDescriptions) != len(x.media) {
		return nil, &SyntaxError{Err: fmt.Errorf("read %d media descriptions, found %d m= lines", len(pd.MediaDescriptions), len(x.media))}
	}
	for i, md := range pd.MediaDescriptions {
		m, pos, err := buildMedia(md, x.media[i], opts, &s.Warnings)
		if err != nil {
			return nil, err
		}
		s.Media = append(s.Media, m)
		s.pos.media = append(s.pos.media, pos)
	}
	return s, nil
}

func bandwidths(bs []psdp.Bandwidth) []Bandwidth {
	var out []Bandwidth
	for _, b := range bs {
		t := b.Type
		if b.Experimental {
			t = "X-" + t
		}
		out = append(out, Bandwidth{Type: t, Value: b.Bandwidth})
	}
	return out
}

func buildMedia(md *psdp.MediaDescription, ls []line, opts *ParseOptions, warn *[]Warning) (*Media, mediaPos, error) {
	ml := ls[0]
	pos := mediaPos{m: ml.n, rtpmaps: map[uint8]int{}}
	bad := func(l line, err error) (*Media, mediaPos, error) {
		return nil, pos, &SyntaxError{Line: l.n, Text: l.text, Err: err}
	}
	mn := md.MediaName
	if mn.Port.Value < 0 || mn.Port.Value > 65535 {
		return bad(ml, fmt.Errorf("port %d: want 0-65535", mn.Port.Value))
	}
	if len(mn.Formats) == 0 {
		return bad(ml, errors.New("an m= line needs at least one format (RFC 8866 §5.14)"))
	}
	m := &Media{Kind: mn.Media, Port: uint16(mn.Port.Value), Proto: strings.Join(mn.Protos, "/"),
		Formats: append([]string(nil), mn.Formats...), key: md.EncryptionKey}
	if mn.Port.Range != nil {
		if *mn.Port.Range < 1 {
			return bad(ml, fmt.Errorf("number of ports %d: want 1 or more", *mn.Port.Range))
		}
		m.NumPorts = *mn.Port.Range
	}
	if md.MediaTitle != nil {
		m.Title = string(*md.MediaTitle)
	}
	if l := first(ls, 'c'); l.n != 0 {
		c, err := opts.connection(l, MediaLevel, warn)
		if err != nil {
			return bad(l, err)
		}
		m.Connection, pos.conn = &c, l.n
	}
	m.Bandwidths = bandwidths(md.Bandwidth)
	fmtp := map[uint8]string{}
	var fmtpLine = map[uint8]line{}
	attrs, err := attrLines(ls)
	if err != nil {
		return nil, pos, err
	}
	for _, l := range attrs {
		key, val, hasVal := cutAttr(l.val)
		switch {
		case key == "rtpmap" && hasVal:
			r, err := parseRTPMap(val)
			if err != nil {
				return bad(l, err)
			}
			if _, dup := pos.rtpmaps[r.Payload]; dup {
				return bad(l, fmt.Errorf("a second rtpmap for payload type %d", r.Payload))
			}
			pos.rtpmaps[r.Payload] = l.n
			m.RTPMaps = append(m.RTPMaps, r)
		case key == "fmtp" && hasVal:
			pt, params, _ := strings.Cut(val, " ")
			p, err := strconv.ParseUint(pt, 10, 8)
			if err != nil || p > 127 {
				// Not an RTP payload type: kept as an ordinary attribute.
				continue
			}
			if _, dup := fmtp[uint8(p)]; dup {
				return bad(l, fmt.Errorf("a second fmtp for payload type %d", p))
			}
			fmtp[uint8(p)], fmtpLine[uint8(p)] = params, l
		}
	}
	for i := range m.RTPMaps {
		if p, ok := fmtp[m.RTPMaps[i].Payload]; ok {
			m.RTPMaps[i].Params = p
			delete(fmtp, m.RTPMaps[i].Payload)
		}
	}
	for _, l := range attrs {
		key, val, hasVal := cutAttr(l.val)
		switch {
		case key == "rtpmap" && hasVal:
		case key == "fmtp" && hasVal:
			pt, _, _ := strings.Cut(val, " ")
			if p, err := strconv.ParseUint(pt, 10, 8); err == nil && p <= 127 {
				if _, left := fmtp[uint8(p)]; !left {
					continue // folded into its rtpmap
				}
			}
			m.Attributes = append(m.Attributes, Attribute{Key: key, Value: val})
		case key == "rtcp" && hasVal:
			if m.RTCP != nil {
				return bad(l, errors.New("a second rtcp attribute"))
			}
			r, err := parseRTCP(val)
			if err != nil {
				return bad(l, fmt.Errorf("rtcp: %w (RFC 3605)", err))
			}
			m.RTCP, pos.rtcp = r, l.n
		case !hasVal && isDirection(key):
			if m.Direction != "" {
				return bad(l, errors.New("a second direction attribute"))
			}
			m.Direction, pos.dir = Direction(key), l.n
		case key == "source-filter" && hasVal:
			f, err := ParseSourceFilter(val)
			if err != nil {
				return bad(l, err)
			}
			m.SourceFilters = append(m.SourceFilters, f)
			pos.filters = append(pos.filters, l.n)
		default:
			m.Attributes = append(m.Attributes, Attribute{Key: key, Value: val, Flag: !hasVal})
		}
	}
	return m, pos, nil
}

func splitLines(b []byte) ([]string, bool) {
	ls := strings.Split(strings.TrimRight(string(b), "\r\n"), "\n")
	for i := range ls {
		ls[i] = strings.TrimSuffix(ls[i], "\r")
	}
	return ls, true
}
