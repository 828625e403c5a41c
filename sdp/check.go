package sdp

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"mcc/multicast"
)

// Problem is a rule a parsed description breaks. Warnings are advice; a
// description with only warnings is valid.
type Problem struct {
	SyntaxError
	Warning bool
}

func (p *Problem) Error() string {
	if p.Warning {
		return "warning: " + p.SyntaxError.Error()
	}
	return p.SyntaxError.Error()
}

// The session types of RFC 8866 §6.9.
var sessionTypes = map[string]bool{"broadcast": true, "meeting": true, "moderated": true, "test": true, "H332": true}

// IsSSM reports whether g is a source-specific multicast group (RFC 4607).
func IsSSM(g netip.Addr) bool { return g.IsMulticast() && multicast.IsSourceSpecific(g) }

// Check returns what s breaks beyond the syntax that Parse enforces. Line
// numbers are those Parse read; they are zero for a description built in
// code.
func (s *Session) Check() []*Problem {
	var ps []*Problem
	report := func(n int, warn bool, format string, args ...any) {
		ps = append(ps, &Problem{SyntaxError{Line: n, Err: fmt.Errorf(format, args...)}, warn})
	}
	if s.Type != "" && !sessionTypes[s.Type] {
		report(s.pos.typ, true, "session type %q is not one of broadcast, meeting, moderated, test, H332 (RFC 8866 §6.9)", s.Type)
	}
	for i, t := range s.Times {
		if t.Stop != 0 && t.Stop < t.Start {
			report(posAt(s.pos.times, i), false, "stop time is before start time (RFC 8866 §5.9)")
		}
	}
	for i, f := range s.SourceFilters {
		s.checkFilter(f, s.Connection, posAt(s.pos.filters, i), report)
	}
	for i, m := range s.Media {
		mp := s.pos.mediaAt(i)
		what := describer{m, i} // formatted only when a problem is reported
		c := s.EffectiveConnection(m)
		if c == nil {
			report(mp.m, false, "%s has no c= line, and the session has none either (RFC 8866 §5.7)", what)
		}
		if m.Port == 0 {
			continue
		}
		if m.Connection == nil && c != nil && c.IsMulticast() {
			report(mp.m, true, "%s takes its group from the session-level c=; some clients (linphone) join only a group given at media level", what)
		}
		if c != nil && c.IsMulticast() && IsSSM(c.Addr) && len(s.SourceFiltersFor(m)) == 0 {
			report(mp.conn, true, "%s uses SSM group %v but names no source: add a=source-filter: incl (RFC 4570, RFC 4607)", what, c.Addr)
		}
		for k, f := range m.SourceFilters {
			s.checkFilter(f, c, posAt(mp.filters, k), report)
		}
		isRTP := len(m.Proto) >= 3 && m.Proto[:3] == "RTP"
		if isRTP && m.Port%2 == 1 {
			report(mp.m, true, "%s: RTP should use an even port, RTCP the next (RFC 3550 §11)", what)
		}
		if m.RTCP != nil && c != nil && c.IsMulticast() && m.RTCP.Addr != nil && m.RTCP.Addr.Addr != c.Addr {
			report(mp.rtcp, true, "%s sends RTCP to %v, not to its group %v", what, m.RTCP.Addr.Addr, c.Addr)
		}
		seen := map[string]bool{}
		for _, f := range m.Formats {
			if seen[f] {
				report(mp.m, false, "%s lists format %s twice", what, f)
			}
			seen[f] = true
			if !isRTP {
				continue
			}
			pt, err := strconv.Atoi(f)
			if err != nil || pt < 0 || pt > 127 {
				report(mp.m, false, "%s: RTP format %q is not a payload type 0-127", what, f)
				continue
			}
			if _, ok := m.RTPMap(f); !ok && pt >= 96 {
				report(mp.m, false, "%s: dynamic payload type %d has no a=rtpmap (RFC 8866 §6.6)", what, pt)
			}
		}
		for _, r := range m.RTPMaps {
			if !seen[strconv.Itoa(int(r.Payload))] {
				report(mp.rtpmaps[r.Payload], false, "%s: a=rtpmap for payload type %d, which the m= line does not list", what, r.Payload)
			}
		}
	}
	return ps
}

// describer formats "stream 1 (video 16386 RTP/AVP)" when printed.
type describer struct {
	m *Media
	i int
}

func (d describer) String() string { return d.m.describe(d.i) }

func posAt(ns []int, i int) int {
	if i < len(ns) {
		return ns[i]
	}
	return 0
}

func (s *Session) checkFilter(f SourceFilter, c *Connection, n int, report func(int, bool, string, ...any)) {
	if !f.Dest.IsValid() || c == nil {
		return
	}
	if c.Contains(f.Dest) { // compares with the ends of the range, never expands it
		return
	}
	if s.Connection != nil && s.Connection.Addr == f.Dest {
		return
	}
	for _, m := range s.Media {
		if m.Connection != nil && m.Connection.Addr == f.Dest && c == s.Connection {
			return // a session-level filter may name any medium's group
		}
	}
	report(n, false, "source filter destination %v is not a c= address of its level (RFC 4570 §3)", f.Dest)
}

// Lint parses b as mcc reads what other tools wrote (Liberal, at
// DefaultTTL) and checks it: the parse error if there is one, otherwise
// what the parse took with a warning, then every problem Check finds.
func Lint(b []byte) []*Problem { return Liberal(0).Lint(b) }

// Lint is Lint as o reads: what o takes that RFC 8866 does not allow
// comes first, as warnings.
func (o ParseOptions) Lint(b []byte) []*Problem {
	s, err := o.Parse(b)
	if err != nil {
		var se *SyntaxError
		if errors.As(err, &se) {
			return []*Problem{{SyntaxError: *se}}
		}
		return []*Problem{{SyntaxError: SyntaxError{Err: err}}}
	}
	var ps []*Problem
	for _, w := range s.Warnings {
		ps = append(ps, &Problem{SyntaxError: SyntaxError{Line: w.Line, Text: w.Text, Err: errors.New(w.Msg)}, Warning: true})
	}
	ps = append(ps, s.Check()...)
	for _, p := range ps {
		p.Text = lineText(b, p.Line)
	}
	return ps
}

// Line returns the text of line n of b, for messages.
func lineText(b []byte, n int) string {
	ls, _ := splitLines(b)
	if n < 1 || n > len(ls) {
		return ""
	}
	return ls[n-1]
}
