package reception

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"mcc/multicast"
)

// Stream is one RTP stream a Probe receives: a group and port, the
// sources of its RFC 4570 filter (empty: any source), and the RTP clock
// rate of its payload (for jitter in seconds; 0 if unknown).
type Stream struct {
	Index   int
	Group   netip.Addr
	Port    int
	Sources []netip.Addr
	// Excluded are the sources of an RFC 4570 excl filter: the group is
	// joined any-source, blocking these.
	Excluded  []netip.Addr
	ClockRate int
}

// Limits on what one stream keeps: senders past MaxSenders are counted
// and not tracked (a flood of SSRCs must not grow the probe without end).
const MaxSenders = 64

// Probe joins streams and keeps a Sender per SSRC of each.
type Probe struct {
	ifi     *net.Interface
	streams []*watch
	now     func() time.Time
}

type watch struct {
	Stream
	conn *multicast.GroupConn
	err  error // why the join failed; the stream is then not watched

	mu       sync.Mutex // guards the fields below
	senders  map[uint32]*tracked
	order    []uint32 // SSRCs in the order first heard
	invalid  uint64   // datagrams that are not RTP
	overflow uint64   // packets of SSRCs past MaxSenders
}

type tracked struct {
	Sender
	source  netip.Addr
	seenAt  time.Time // its last packet, taken or not
	firstAt time.Time // its first
}

// Listen joins every stream on ifi (nil: the system's choice), with a
// source-specific join per source when the stream names sources. A
// stream whose join fails is kept with its error, so that a report says
// why it hears nothing; Listen fails only when no stream could be
// joined.
func Listen(ifi *net.Interface, streams []Stream) (*Probe, error) {
	p := &Probe{ifi: ifi, now: time.Now}
	joined := 0
	var errs []error
	for _, s := range streams {
		w := &watch{Stream: s, senders: map[uint32]*tracked{}}
		w.err = w.join(ifi)
		if w.err == nil {
			joined++
		} else {
			errs = append(errs, w.err)
		}
		p.streams = append(p.streams, w)
	}
	if joined == 0 {
		p.Close()
		if len(errs) == 0 {
			return nil, errors.New("reception: no stream to receive")
		}
		return nil, errors.Join(errs...)
	}
	return p, nil
}

func (w *watch) join(ifi *net.Interface) error {
	if !w.Group.IsMulticast() {
		return fmt.Errorf("reception: stream %d: %v is not a multicast group", w.Index, w.Group)
	}
	if w.Port <= 0 || w.Port > 65535 {
		return fmt.Errorf("reception: stream %d: port %d", w.Index, w.Port)
	}
	c, err := multicast.ListenGroup(multicast.FamilyOf(w.Group), w.Port)
	if err != nil {
		return fmt.Errorf("reception: stream %d: %w", w.Index, err)
	}
	switch {
	case len(w.Sources) == 0 && multicast.IsSourceSpecific(w.Group):
		// RFC 4607 §1: an SSM channel is (S,G); a host does not join an
		// SSM group any-source (RFC 4604 §2.2.1).
		err = fmt.Errorf("%v is a source-specific group, and the description names no source for it (a=source-filter, RFC 4570)", w.Group)
	case len(w.Sources) == 0:
		err = c.Join(ifi, w.Group)
		for _, src := range w.Excluded {
			if err == nil {
				err = c.BlockSource(ifi, w.Group, src)
			}
		}
	default:
		for _, src := range w.Sources {
			if err = c.JoinSource(ifi, w.Group, src); err != nil {
				break
			}
		}
	}
	if err != nil {
		c.Close()
		return fmt.Errorf("reception: stream %d: %w", w.Index, err)
	}
	w.conn = c
	return nil
}

// Run reads every joined stream until ctx ends, then closes the sockets.
func (p *Probe) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range p.streams {
		if w.conn != nil {
			wg.Go(func() { w.read(p.now) })
		}
	}
	<-ctx.Done()
	p.Close()
	wg.Wait()
}

// Close leaves every group; a running Run returns once ctx ends.
func (p *Probe) Close() {
	for _, w := range p.streams {
		if w.conn != nil {
			w.conn.Close()
		}
	}
}

func (w *watch) read(now func() time.Time) {
	buf := make([]byte, 65536)
	for {
		n, src, _, err := w.conn.ReadFrom(buf)
		if errors.Is(err, multicast.ErrNotJoined) {
			continue
		}
		if err != nil {
			return // closed
		}
		w.take(buf[:n], src.Addr(), now())
	}
}

// take counts one datagram of the stream.
func (w *watch) take(b []byte, src netip.Addr, at time.Time) {
	h, ok := ParseRTP(b)
	w.mu.Lock()
	defer w.mu.Unlock()
	if !ok {
		w.invalid++
		return
	}
	s := w.senders[h.SSRC]
	if s == nil {
		if len(w.senders) >= MaxSenders && !w.evict(at) {
			w.overflow++
			return
		}
		s = &tracked{Sender: Sender{SSRC: h.SSRC, ClockRate: w.ClockRate}, firstAt: at}
		w.senders[h.SSRC] = s
		w.order = append(w.order, h.SSRC)
	}
	s.source, s.seenAt = src, at
	s.Update(h.Seq, h.Timestamp, at, len(b))
}

// Entries that give their slot to a new sender when the table is full:
// one still on probation after probationLimit, else the one heard least
// recently, if that was idleLimit ago (a sender that restarted takes a
// new SSRC, RFC 3550 §8, and stray one-packet SSRCs must not blind the
// probe to real ones).
const (
	probationLimit = 2 * time.Second
	idleLimit      = 10 * time.Second
	trickle        = 50
)

// evict frees one slot, and reports whether it could; w.mu is held.
func (w *watch) evict(now time.Time) bool {
	var idle uint32
	var idleAt time.Time
	for ssrc, s := range w.senders {
		if s.Received == 0 && now.Sub(s.firstAt) >= probationLimit { // however often it sends out of sequence
			w.drop(ssrc)
			return true
		}
		// A trickle (fewer than trickle packets, none for 2 s) is no
		// stream: real senders send tens of packets a second.
		if s.Received < trickle && now.Sub(s.seenAt) >= probationLimit {
			w.drop(ssrc)
			return true
		}
		if s.Received > 0 && (idleAt.IsZero() || s.Last.Before(idleAt)) {
			idle, idleAt = ssrc, s.Last
		}
	}
	if !idleAt.IsZero() && now.Sub(idleAt) >= idleLimit {
		w.drop(idle)
		return true
	}
	return false
}

func (w *watch) drop(ssrc uint32) {
	delete(w.senders, ssrc)
	w.order = slices.DeleteFunc(w.order, func(x uint32) bool { return x == ssrc })
}

// Header is the part of an RTP header (RFC 3550 §5.1) reception needs.
type Header struct {
	PayloadType uint8
	Seq         uint16
	Timestamp   uint32
	SSRC        uint32
}

// ParseRTP reads the fixed RTP header of b; false when b is not an RTP
// packet: shorter than its header (with CSRCs and extension), not
// version 2, or an RTCP packet sent to the RTP port (its second byte in
// 192-223, the range RFC 5761 §4 keeps for RTCP: SR, RR, SDES, BYE, APP,
// and RFC 4585's feedback and RFC 3611's XR).
func ParseRTP(b []byte) (Header, bool) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return Header{}, false
	}
	if pt := b[1]; pt >= 192 && pt <= 223 {
		return Header{}, false
	}
	n := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 { // extension: 4 bytes of header, then its words
		if len(b) < n+4 {
			return Header{}, false
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:]))
	}
	if len(b) < n {
		return Header{}, false
	}
	if b[0]&0x20 != 0 { // padding: the last byte counts it, header excluded
		if p := int(b[len(b)-1]); p == 0 || n+p > len(b) {
			return Header{}, false
		}
	}
	return Header{
		PayloadType: b[1] & 0x7f,
		Seq:         binary.BigEndian.Uint16(b[2:]),
		Timestamp:   binary.BigEndian.Uint32(b[4:]),
		SSRC:        binary.BigEndian.Uint32(b[8:]),
	}, true
}

// StreamReport is what a receiver heard of one stream.
type StreamReport struct {
	Index   int          `json:"index"`
	Group   netip.Addr   `json:"group"`
	Port    int          `json:"port"`
	Sources []netip.Addr `json:"sources,omitempty"`
	// Error says why the stream could not be joined.
	Error string `json:"error,omitempty"`
	// Invalid counts datagrams that were not RTP; Overflow packets of
	// SSRCs past MaxSenders.
	Invalid  uint64         `json:"invalid,omitempty"`
	Overflow uint64         `json:"overflow,omitempty"`
	Senders  []SenderReport `json:"senders"`
}

// SenderReport is what a receiver heard of one sender (SSRC) of a
// stream, in RFC 3550 §6.4.1's terms.
type SenderReport struct {
	SSRC   uint32     `json:"ssrc"`
	Source netip.Addr `json:"source,omitzero"`
	// Packets were received; Expected from the first to the highest
	// sequence number; Lost the difference (A.3).
	Packets  uint64 `json:"packets"`
	Expected uint64 `json:"expected"`
	Lost     uint64 `json:"lost"`
	// Loss is Lost over Expected; IntervalLoss the fraction lost since
	// the previous report (A.3's fraction lost).
	Loss         float64 `json:"loss"`
	IntervalLoss float64 `json:"interval_loss"`
	Reordered    uint64  `json:"reordered,omitempty"`
	Duplicates   uint64  `json:"duplicates,omitempty"`
	// JitterMS is the interarrival jitter (A.8) in milliseconds; 0 when
	// the clock rate is unknown.
	JitterMS float64 `json:"jitter_ms"`
	// RateBPS is the mean bit rate, headers included.
	RateBPS float64 `json:"rate_bps"`
	// LastAgeMS is how long ago the last packet came.
	LastAgeMS int64 `json:"last_age_ms"`
}

// RateText writes a bit rate for people: "71 kb/s", "1.5 Mb/s"; "-" for
// none measured yet.
func RateText(bps float64) string {
	switch {
	case bps >= 1e6:
		return strconv.FormatFloat(bps/1e6, 'f', 1, 64) + " Mb/s"
	case bps >= 1e3:
		return strconv.FormatFloat(bps/1e3, 'f', 0, 64) + " kb/s"
	case bps > 0:
		return strconv.FormatFloat(bps, 'f', 0, 64) + " b/s"
	}
	return "-"
}

// Report returns what each stream has heard so far, and starts a new
// interval for IntervalLoss.
func (p *Probe) Report() []StreamReport {
	now := p.now()
	out := make([]StreamReport, 0, len(p.streams))
	for _, w := range p.streams {
		r := StreamReport{Index: w.Index, Group: w.Group, Port: w.Port, Sources: slices.Clone(w.Sources), Senders: []SenderReport{}}
		if w.err != nil {
			r.Error = w.err.Error()
		}
		w.mu.Lock()
		r.Invalid, r.Overflow = w.invalid, w.overflow
		for _, ssrc := range w.order {
			s := w.senders[ssrc]
			if s.Received == 0 {
				continue // still on probation
			}
			r.Senders = append(r.Senders, s.report(now))
		}
		w.mu.Unlock()
		out = append(out, r)
	}
	return out
}

func (s *tracked) report(now time.Time) SenderReport {
	return SenderReport{
		SSRC: s.SSRC, Source: s.source,
		Packets: s.Received, Expected: s.Expected(), Lost: s.Lost(),
		Loss: s.LossFraction(), IntervalLoss: s.Interval(),
		Reordered: s.Reordered, Duplicates: s.Duplicates,
		JitterMS:  float64(s.JitterDuration()) / float64(time.Millisecond),
		RateBPS:   s.Rate(),
		LastAgeMS: now.Sub(s.Last).Milliseconds(),
	}
}
