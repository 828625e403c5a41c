package reception

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

// feed sends n packets of 20 ms PCMU (160 timestamp units) from seq
// start, skipping those drop says, each arriving at its send time plus
// delay(i).
func feed(s *Sender, start uint16, n int, drop func(i int) bool, delay func(i int) time.Duration) {
	for i := 0; i < n; i++ {
		if drop != nil && drop(i) {
			continue
		}
		d := time.Duration(0)
		if delay != nil {
			d = delay(i)
		}
		s.Update(start+uint16(i), uint32(i*160), t0.Add(time.Duration(i)*20*time.Millisecond+d), 172)
	}
}

func TestLossAndWrap(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start uint16
		n     int
		drop  func(int) bool
		lost  uint64
	}{
		{"none", 100, 1000, nil, 0},
		{"every 20th", 100, 1000, func(i int) bool { return i%20 == 10 }, 50},
		{"across the wrap", 65000, 1000, func(i int) bool { return i%20 == 10 }, 50},
		{"a burst of 30", 5, 500, func(i int) bool { return i >= 200 && i < 230 }, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Sender{SSRC: 1, ClockRate: 8000}
			feed(s, tc.start, tc.n, tc.drop, nil)
			// The first packet is the new source's probation (A.1): not counted.
			if s.Expected() != uint64(tc.n-1) || s.Lost() != tc.lost {
				t.Fatalf("expected %d lost %d, want %d and %d", s.Expected(), s.Lost(), tc.n-1, tc.lost)
			}
			if s.Reordered != 0 || s.Duplicates != 0 || s.Jitter() != 0 {
				t.Fatalf("reordered %d duplicates %d jitter %d", s.Reordered, s.Duplicates, s.Jitter())
			}
		})
	}
}

func TestReorderAndDuplicates(t *testing.T) {
	s := &Sender{SSRC: 1, ClockRate: 8000}
	for _, seq := range []uint16{10, 11, 12, 14, 13, 15, 15, 16, 12, 17} {
		s.Update(seq, uint32(seq)*160, t0, 100)
	}
	// 11 to 17 expected, all came; 13 late; 15 and 12 twice.
	if s.Expected() != 7 || s.Lost() != 0 || s.Reordered != 1 || s.Duplicates != 2 || s.Received != 7 {
		t.Fatalf("expected %d lost %d reordered %d duplicates %d received %d", s.Expected(), s.Lost(), s.Reordered, s.Duplicates, s.Received)
	}
}

func TestRestartedSender(t *testing.T) {
	s := &Sender{SSRC: 1}
	feed(s, 1000, 50, nil, nil)
	// A jump of 30000: junk once, a restart when the next follows it.
	if s.Update(31000, 0, t0, 100) {
		t.Fatal("a single far jump was taken")
	}
	if !s.Update(31001, 160, t0, 100) {
		t.Fatal("the restarted sender's second packet was not taken")
	}
	if s.Lost() != 0 {
		t.Fatalf("lost %d after a restart", s.Lost())
	}
}

// TestJitter: a constant delay is no jitter; a delay that alternates
// between 0 and 10 ms converges on 10 ms (80 units at 8 kHz), as RFC
// 3550 A.8's estimator does.
func TestJitter(t *testing.T) {
	s := &Sender{SSRC: 1, ClockRate: 8000}
	feed(s, 0, 500, nil, func(int) time.Duration { return 35 * time.Millisecond })
	if s.Jitter() != 0 {
		t.Fatalf("constant delay: jitter %d", s.Jitter())
	}
	s = &Sender{SSRC: 1, ClockRate: 8000}
	feed(s, 0, 500, nil, func(i int) time.Duration { return time.Duration(i%2) * 10 * time.Millisecond })
	if j := s.Jitter(); j < 78 || j > 80 || math.Abs(s.JitterDuration().Seconds()-0.010) > 0.0003 {
		t.Fatalf("alternating 10 ms: jitter %d units, %v", j, s.JitterDuration())
	}
	if r := s.Rate(); math.Abs(r-172*8*50) > 200 {
		t.Fatalf("rate %.0f bit/s, want about %d", r, 172*8*50)
	}
}

func TestInterval(t *testing.T) {
	s := &Sender{SSRC: 1}
	feed(s, 0, 101, func(i int) bool { return i%10 == 5 }, nil)
	if f := s.Interval(); math.Abs(f-0.1) > 0.001 {
		t.Fatalf("first interval: %.3f lost", f)
	}
	feed(s, 101, 100, nil, nil)
	if f := s.Interval(); f != 0 {
		t.Fatalf("a clean interval: %.3f lost", f)
	}
}

func FuzzSender(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 0, 3, 255, 255, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &Sender{SSRC: 1, ClockRate: 90000}
		for i := 0; i+1 < len(b); i += 2 {
			seq := uint16(b[i])<<8 | uint16(b[i+1])
			s.Update(seq, uint32(i)*3000, t0.Add(time.Duration(i)*time.Millisecond), 1200)
		}
		if s.Lost() > s.Expected() || s.Received > uint64(len(b)) || s.LossFraction() < 0 || s.LossFraction() > 1 {
			t.Fatalf("expected %d lost %d received %d", s.Expected(), s.Lost(), s.Received)
		}
	})
}
