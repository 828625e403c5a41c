package sdp

import (
	"fmt"
	"net/url"
	"strings"

	psdp "github.com/pion/sdp/v3"
)

// Marshal writes the description as text with CRLF line ends, through
// pion/sdp. The c= lines come from Connection.String, so the multicast
// suffixes are always right.
func (s *Session) Marshal() ([]byte, error) {
	pd := psdp.SessionDescription{
		Origin: psdp.Origin{
			Username: s.Origin.Username, SessionID: s.Origin.SessionID, SessionVersion: s.Origin.Version,
			NetworkType: "IN", AddressType: s.Origin.addrType(), UnicastAddress: s.Origin.address(),
		},
		SessionName:   psdp.SessionName(s.Name),
		TimeZones:     s.zones,
		EncryptionKey: s.key,
	}
	if pd.Origin.Username == "" {
		pd.Origin.Username = "-"
	}
	if s.Name == "" {
		pd.SessionName = " " // s= may not be empty; a space is the RFC 8866 §5.3 stand-in
	}
	if s.Info != "" {
		i := psdp.Information(s.Info)
		pd.SessionInformation = &i
	}
	if s.URI != "" {
		u, err := url.Parse(s.URI)
		if err != nil {
			return nil, fmt.Errorf("sdp: u=%s: %w", s.URI, err)
		}
		pd.URI = u
	}
	if s.Email != "" {
		e := psdp.EmailAddress(s.Email)
		pd.EmailAddress = &e
	}
	if s.Phone != "" {
		p := psdp.PhoneNumber(s.Phone)
		pd.PhoneNumber = &p
	}
	pd.ConnectionInformation = pionConn(s.Connection)
	pd.Bandwidth = pionBandwidths(s.Bandwidths)
	times := s.Times
	if len(times) == 0 {
		times = []Timing{{}}
	}
	for _, t := range times {
		td := psdp.TimeDescription{Timing: psdp.Timing{StartTime: t.Start, StopTime: t.Stop}}
		for _, r := range t.Repeats {
			td.RepeatTimes = append(td.RepeatTimes, psdp.RepeatTime{Interval: r.Interval, Duration: r.Duration, Offsets: r.Offsets})
		}
		pd.TimeDescriptions = append(pd.TimeDescriptions, td)
	}
	if s.Tool != "" {
		pd.Attributes = append(pd.Attributes, psdp.NewAttribute("tool", s.Tool))
	}
	if s.Type != "" {
		pd.Attributes = append(pd.Attributes, psdp.NewAttribute("type", s.Type))
	}
	for _, f := range s.SourceFilters {
		pd.Attributes = append(pd.Attributes, psdp.NewAttribute("source-filter", f.String()))
	}
	pd.Attributes = appendAttrs(pd.Attributes, s.Attributes)
	if s.Direction != "" {
		pd.Attributes = append(pd.Attributes, psdp.NewPropertyAttribute(string(s.Direction)))
	}
	for _, m := range s.Media {
		pd.MediaDescriptions = append(pd.MediaDescriptions, m.pion())
	}
	return pd.Marshal()
}

// String returns the marshalled description, or the error's text.
func (s *Session) String() string {
	b, err := s.Marshal()
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func (m *Media) pion() *psdp.MediaDescription {
	md := &psdp.MediaDescription{
		MediaName: psdp.MediaName{
			Media: m.Kind, Port: psdp.RangedPort{Value: int(m.Port)},
			Protos: strings.Split(m.Proto, "/"), Formats: m.Formats,
		},
		ConnectionInformation: pionConn(m.Connection),
		Bandwidth:             pionBandwidths(m.Bandwidths),
		EncryptionKey:         m.key,
	}
	if m.NumPorts > 0 {
		n := m.NumPorts
		md.MediaName.Port.Range = &n
	}
	if m.Title != "" {
		t := psdp.Information(m.Title)
		md.MediaTitle = &t
	}
	for _, r := range m.RTPMaps {
		md.Attributes = append(md.Attributes, psdp.NewAttribute("rtpmap", r.rtpmapValue()))
		if r.Params != "" {
			md.Attributes = append(md.Attributes, psdp.NewAttribute("fmtp", fmt.Sprintf("%d %s", r.Payload, r.Params)))
		}
	}
	if m.RTCP != nil {
		md.Attributes = append(md.Attributes, psdp.NewAttribute("rtcp", m.RTCP.String()))
	}
	for _, f := range m.SourceFilters {
		md.Attributes = append(md.Attributes, psdp.NewAttribute("source-filter", f.String()))
	}
	md.Attributes = appendAttrs(md.Attributes, m.Attributes)
	if m.Direction != "" {
		md.Attributes = append(md.Attributes, psdp.NewPropertyAttribute(string(m.Direction)))
	}
	return md
}

func appendAttrs(dst []psdp.Attribute, as []Attribute) []psdp.Attribute {
	for _, a := range as {
		if a.Flag {
			dst = append(dst, psdp.NewPropertyAttribute(a.Key))
		} else {
			dst = append(dst, psdp.NewAttribute(a.Key, a.Value))
		}
	}
	return dst
}

// pionConn hands pion the whole connection-address as one string, which
// pion writes as it is (it cannot be trusted with TTL and count: RFC 8866
// §5.7 puts a TTL before the count only for IPv4).
func pionConn(c *Connection) *psdp.ConnectionInformation {
	if c == nil {
		return nil
	}
	f := strings.SplitN(c.String(), " ", 3)
	return &psdp.ConnectionInformation{NetworkType: f[0], AddressType: f[1], Address: &psdp.Address{Address: f[2]}}
}

func pionBandwidths(bs []Bandwidth) []psdp.Bandwidth {
	var out []psdp.Bandwidth
	for _, b := range bs {
		t, exp := strings.CutPrefix(b.Type, "X-")
		out = append(out, psdp.Bandwidth{Experimental: exp, Type: t, Bandwidth: b.Value})
	}
	return out
}
