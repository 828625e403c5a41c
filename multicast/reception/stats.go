package reception

import (
	"time"
)

// The sequence-number rules of RFC 3550 Appendix A.1.
const (
	maxDropout    = 3000 // a jump ahead this large or more is a restart, not loss
	maxMisorder   = 100  // a packet this far behind is late, not a restart
	minSequential = 2    // packets in sequence before a new source counts
	seqMod        = 1 << 16
)

// Sender is what a receiver has seen of one RTP sender (one SSRC) on one
// stream: RFC 3550's per-source state (§6.4.1, Appendix A.1, A.3, A.8).
// The zero Sender is ready for its first packet. It is not safe for
// concurrent use.
type Sender struct {
	SSRC uint32
	// ClockRate is the RTP timestamp rate of the payload, for jitter in
	// seconds; 0 leaves Jitter in timestamp units only.
	ClockRate int

	// Received counts the packets taken (after probation), Bytes their
	// RTP payload and header bytes; Reordered those that came after a
	// later one; Duplicates those whose sequence number came before.
	Received, Bytes, Reordered, Duplicates uint64

	// First and Last are the arrival times of the first and the last
	// packet taken.
	First, Last time.Time

	probation                int
	maxSeq                   uint16
	cycles                   uint32 // shifted count of sequence number wraps
	baseSeq                  uint32
	badSeq                   uint32
	started                  bool
	ref                      time.Time // arrival of the first packet: the origin of the arrival clock
	jitter                   float64   // in timestamp units (A.8)
	transit                  int64
	haveTransit              bool
	recent                   [64]uint32 // extended sequence numbers of recent packets, for duplicates
	recentN                  int
	expectedPrior, recvPrior uint64
}

// Update takes one packet: its sequence number and RTP timestamp, when
// it arrived, and its size. It reports whether the packet was taken
// (false while a new sender is on probation, or for a jump RFC 3550 A.1
// deems invalid until it repeats).
func (s *Sender) Update(seq uint16, ts uint32, arrival time.Time, size int) bool {
	if !s.started {
		s.started = true
		s.initSeq(seq)
		s.maxSeq = seq - 1
		s.probation = minSequential
	}
	if s.ref.IsZero() {
		s.ref = arrival
	}
	ok, ext, late := s.updateSeq(seq)
	if !ok {
		return false
	}
	if s.seen(ext) {
		s.Duplicates++
		return true
	}
	if late {
		s.Reordered++
	}
	s.remember(ext)
	s.Received++
	s.Bytes += uint64(size)
	if s.First.IsZero() {
		s.First = arrival
	}
	if arrival.After(s.Last) {
		s.Last = arrival
	}
	if s.ClockRate > 0 {
		// A.8: transit time in timestamp units; the jitter is the
		// smoothed absolute difference of successive transits.
		arr := int64(float64(arrival.Sub(s.ref)) * float64(s.ClockRate) / float64(time.Second))
		transit := arr - int64(ts)
		if s.haveTransit {
			d := transit - s.transit
			if d < 0 {
				d = -d
			}
			s.jitter += (float64(d) - s.jitter) / 16
		}
		s.transit, s.haveTransit = transit, true
	}
	return true
}

func (s *Sender) initSeq(seq uint16) {
	s.baseSeq = uint32(seq)
	s.maxSeq = seq
	s.badSeq = seqMod + 1 // so seq == badSeq is false
	s.cycles = 0
	s.recentN = 0
}

// updateSeq is RFC 3550 A.1's update_seq. It returns whether the packet
// counts, its extended sequence number, and whether it came after a later
// one.
func (s *Sender) updateSeq(seq uint16) (ok bool, ext uint32, late bool) {
	udelta := seq - s.maxSeq
	if s.probation > 0 {
		// A new source is valid once minSequential packets come in order.
		if seq == s.maxSeq+1 {
			s.probation--
			s.maxSeq = seq
			if s.probation == 0 {
				s.initSeq(seq)
				return true, uint32(seq), false
			}
		} else {
			s.probation = minSequential - 1
			s.maxSeq = seq
		}
		return false, 0, false
	}
	switch {
	case udelta < maxDropout:
		// In order, with a gap allowed.
		if seq < s.maxSeq {
			s.cycles += seqMod // wrapped
		}
		s.maxSeq = seq
		return true, s.cycles + uint32(seq), false
	case udelta <= seqMod-maxMisorder:
		// A very large jump: a restarted sender, or junk. It is taken
		// only when the next packet follows it.
		if uint32(seq) == s.badSeq {
			s.initSeq(seq)
			return true, uint32(seq), false
		}
		s.badSeq = (uint32(seq) + 1) & (seqMod - 1)
		return false, 0, false
	}
	// Behind the highest: late, maybe from before the last wrap.
	ext = s.cycles + uint32(seq)
	if seq > s.maxSeq && s.cycles >= seqMod {
		ext -= seqMod
	}
	return true, ext, true
}

func (s *Sender) seen(ext uint32) bool {
	for i := 0; i < s.recentN && i < len(s.recent); i++ {
		if s.recent[i] == ext {
			return true
		}
	}
	return false
}

func (s *Sender) remember(ext uint32) {
	s.recent[s.recentN%len(s.recent)] = ext
	s.recentN++
}

// Expected is how many packets the sender sent from the first taken to
// the highest sequence number seen (A.3).
func (s *Sender) Expected() uint64 {
	if !s.started || s.Received == 0 {
		return 0
	}
	ext := uint64(s.cycles) + uint64(s.maxSeq)
	return ext - uint64(s.baseSeq) + 1
}

// Lost is Expected less Received, never below zero (duplicates and late
// packets can make the difference negative; A.3 clamps it in reports).
func (s *Sender) Lost() uint64 {
	e := s.Expected()
	if e <= s.Received {
		return 0
	}
	return e - s.Received
}

// LossFraction is the share of expected packets lost, 0 to 1.
func (s *Sender) LossFraction() float64 {
	e := s.Expected()
	if e == 0 {
		return 0
	}
	return float64(s.Lost()) / float64(e)
}

// Interval returns the fraction lost since the last call (A.3's
// fraction lost of an RTCP report interval), and resets that interval.
func (s *Sender) Interval() float64 {
	expected, received := s.Expected(), s.Received
	de, dr := expected-s.expectedPrior, received-s.recvPrior
	s.expectedPrior, s.recvPrior = expected, received
	if de == 0 || dr >= de {
		return 0
	}
	return float64(de-dr) / float64(de)
}

// Jitter is the interarrival jitter (A.8), in RTP timestamp units.
func (s *Sender) Jitter() uint32 { return uint32(s.jitter) }

// JitterDuration is the interarrival jitter as a duration; 0 when the
// clock rate is unknown.
func (s *Sender) JitterDuration() time.Duration {
	if s.ClockRate <= 0 {
		return 0
	}
	return time.Duration(s.jitter / float64(s.ClockRate) * float64(time.Second))
}

// Rate is the mean bit rate from the first packet to the last.
func (s *Sender) Rate() float64 {
	d := s.Last.Sub(s.First)
	if d <= 0 {
		return 0
	}
	return float64(s.Bytes*8) / d.Seconds()
}
