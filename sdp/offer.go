package sdp

import (
	"errors"
	"fmt"
	"slices"
)

// Offer/answer for multicast streams (RFC 3264). The edits below change a
// description the way §8 allows: the o= line stays the same but for its
// version, which goes up by exactly one; the number of m= lines never
// shrinks; a removed stream keeps its m= line with port 0.

// AddMedia adds m as a new stream: into the first slot whose port is 0
// (RFC 3264 §8.1 lets a new stream reuse it), or at the end. It bumps the
// version and returns the stream's index.
func (s *Session) AddMedia(m *Media) int { return s.AddMediaExcept(m, nil) }

// AddMediaExcept is AddMedia reusing no slot for which busy (when not
// nil) reports true: one whose stream some participant may still have
// (RFC 3264 §8: only a slot disabled for everyone is free).
func (s *Session) AddMediaExcept(m *Media, busy func(i int) bool) int {
	s.Origin.Version++
	for i, old := range s.Media {
		if old.Port == 0 && (busy == nil || !busy(i)) {
			s.Media[i] = m
			s.pos.media = nil
			return i
		}
	}
	s.Media = append(s.Media, m)
	return len(s.Media) - 1
}

// RemoveMedia removes stream i: its port becomes 0 and its attributes and
// bandwidth go (RFC 3264 §8.2); the m= line and its c= stay, so every
// participant still counts the same streams. It bumps the version.
func (s *Session) RemoveMedia(i int) error {
	if i < 0 || i >= len(s.Media) {
		return fmt.Errorf("%w: stream %d (the session has %d)", ErrNoStream, i, len(s.Media))
	}
	m := s.Media[i]
	if m.Port == 0 {
		return fmt.Errorf("%w: stream %d is already removed", ErrNoStream, i)
	}
	m.Port, m.NumPorts = 0, 0
	m.Bandwidths, m.RTPMaps, m.RTCP, m.SourceFilters, m.Attributes, m.Direction = nil, nil, nil, nil, nil, ""
	s.Origin.Version++
	return nil
}

// SetDirection changes stream i's direction and bumps the version.
func (s *Session) SetDirection(i int, d Direction) error {
	if i < 0 || i >= len(s.Media) || s.Media[i].Port == 0 {
		return fmt.Errorf("%w: no active stream %d", ErrNoStream, i)
	}
	if !isDirection(string(d)) {
		return fmt.Errorf("sdp: direction %q: want sendrecv, sendonly, recvonly or inactive", d)
	}
	s.Media[i].Direction = d
	s.Origin.Version++
	return nil
}

// CheckUpdate reports whether next may follow prev as a new offer in the
// same dialog (RFC 3264 §8): the same origin but a version one higher, at
// least as many m= lines, and each slot's kind kept unless the slot was
// at port 0.
func CheckUpdate(prev, next *Session) error {
	po, no := prev.Origin, next.Origin
	if po.Username != no.Username || po.SessionID != no.SessionID || po.address() != no.address() {
		return errors.New("sdp: o= changed other than its version (RFC 3264 §8)")
	}
	if no.Version != po.Version+1 {
		return fmt.Errorf("sdp: version went from %d to %d, want %d (RFC 3264 §8)", po.Version, no.Version, po.Version+1)
	}
	if len(next.Media) < len(prev.Media) {
		return fmt.Errorf("sdp: %d m= lines after %d: streams are removed with port 0, never dropped (RFC 3264 §8)", len(next.Media), len(prev.Media))
	}
	for i, m := range prev.Media {
		if m.Port != 0 && next.Media[i].Port != 0 && next.Media[i].Kind != m.Kind {
			return fmt.Errorf("sdp: stream %d changed from %s to %s without being removed first (RFC 3264 §8.3.3)", i, m.Kind, next.Media[i].Kind)
		}
	}
	return nil
}

// StreamState is what an answer did with one offered stream.
type StreamState int

// The stream states.
const (
	StreamAccepted StreamState = iota + 1
	StreamDeclined             // port 0 in the answer
	StreamInvalid              // the answer broke a rule for this stream
	StreamRemoved              // port 0 in the offer
)

func (s StreamState) String() string {
	switch s {
	case StreamAccepted:
		return "accepted"
	case StreamDeclined:
		return "declined"
	case StreamInvalid:
		return "invalid"
	case StreamRemoved:
		return "removed"
	}
	return fmt.Sprintf("StreamState(%d)", int(s))
}

// StreamResult is the outcome of one stream of an offer.
type StreamResult struct {
	Index int
	State StreamState
	Err   error // for StreamInvalid: the rule broken
}

// AnswerError says which rule an answer broke for which stream.
type AnswerError struct {
	Stream int    // -1 for the answer as a whole
	Rule   string // what the answer did, and the section
}

func (e *AnswerError) Error() string {
	if e.Stream < 0 {
		return "sdp: answer: " + e.Rule
	}
	return fmt.Sprintf("sdp: answer, stream %d: %s", e.Stream, e.Rule)
}

// CheckAnswer checks an answer against the offer it answers (RFC 3264 §6).
// For each stream it says whether the participant accepted it, declined it
// (port 0), or broke a rule: an accepted multicast stream must keep the
// offer's address, TTL, port and direction and use a subset of its formats
// (§6.2). The error joins an *AnswerError per rule broken; a stream that
// breaks one counts as StreamInvalid, and the caller treats it as declined.
func CheckAnswer(offer, answer *Session) ([]StreamResult, error) {
	if len(answer.Media) != len(offer.Media) {
		return nil, &AnswerError{Stream: -1, Rule: fmt.Sprintf("%d m= lines for the offer's %d: the counts must match (RFC 3264 §6)", len(answer.Media), len(offer.Media))}
	}
	var errs []error
	res := make([]StreamResult, len(offer.Media))
	for i, om := range offer.Media {
		am := answer.Media[i]
		res[i] = StreamResult{Index: i, State: StreamAccepted}
		fail := func(format string, args ...any) {
			if res[i].State == StreamInvalid {
				return // the first rule broken is enough
			}
			e := &AnswerError{Stream: i, Rule: fmt.Sprintf(format, args...)}
			res[i] = StreamResult{Index: i, State: StreamInvalid, Err: e}
			errs = append(errs, e)
		}
		switch {
		case om.Port == 0:
			res[i].State = StreamRemoved
			if am.Port != 0 {
				fail("port %d for a stream the offer removed: it must stay 0 (RFC 3264 §6)", am.Port)
			}
			continue
		case am.Port == 0:
			res[i].State = StreamDeclined
			continue
		}
		if am.Kind != om.Kind {
			fail("media %s for an offered %s (RFC 3264 §6)", am.Kind, om.Kind)
		}
		if am.Proto != om.Proto {
			fail("transport %s for an offered %s (RFC 3264 §6)", am.Proto, om.Proto)
		}
		var common []string
		for _, f := range am.Formats {
			if slices.Contains(om.Formats, f) {
				common = append(common, f)
			} else {
				fail("format %s was not offered: a multicast answer uses a subset of the offer's formats (RFC 3264 §6.2)", f)
			}
		}
		if len(common) == 0 && res[i].State != StreamInvalid {
			fail("no offered format (RFC 3264 §6)")
		}
		oc, ac := offer.EffectiveConnection(om), answer.EffectiveConnection(am)
		if oc == nil || !oc.IsMulticast() {
			continue // a unicast stream: the multicast rules do not apply
		}
		switch {
		case ac == nil:
			fail("no c= line for the group")
		case ac.Addr != oc.Addr || ac.Host != "":
			fail("address %s for the offered group %v: an accepted multicast stream keeps the offer's address (RFC 3264 §6.2)", connAddr(ac), oc.Addr)
		case oc.Addr.Is4() && ac.TTL != oc.TTL:
			fail("TTL %d for the offered %d: the connection address must be the offer's (RFC 3264 §6.2)", ac.TTL, oc.TTL)
		case max(ac.Count, 1) != max(oc.Count, 1):
			fail("%d addresses for the offered %d (RFC 3264 §6.2)", max(ac.Count, 1), max(oc.Count, 1))
		}
		if am.Port != om.Port {
			fail("port %d for the offered %d: an accepted multicast stream keeps the offer's port (RFC 3264 §6.2)", am.Port, om.Port)
		}
		if ad, od := answer.EffectiveDirection(am), offer.EffectiveDirection(om); ad != od {
			fail("direction %s for the offered %s: a multicast answer repeats the offer's (RFC 3264 §6.2)", ad, od)
		}
		for _, ob := range om.Bandwidths {
			for _, ab := range am.Bandwidths {
				if ab.Type == ob.Type && ab.Value != ob.Value {
					fail("b=%s:%d for the offered %d: bandwidth must equal the offer's (RFC 3264 §6.2)", ab.Type, ab.Value, ob.Value)
				}
			}
		}
	}
	return res, errors.Join(errs...)
}

func connAddr(c *Connection) string {
	if c.Addr.IsValid() {
		return c.Addr.String()
	}
	return c.Host
}

// Answer builds the answer a participant that accepts every stream gives
// to a multicast offer (RFC 3264 §6.2): the same streams, addresses, ports
// and directions. It is what mcc answers to a dial-in offer that matches a
// session, and what tests use as a well-behaved peer.
func Answer(offer *Session, origin Origin) *Session {
	a := offer.Clone()
	a.Origin = origin
	return a
}
