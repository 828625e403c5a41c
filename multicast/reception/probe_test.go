package reception

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"mcc/internal/peertest"
	"mcc/multicast"
)

func rtpPacket(ssrc uint32, seq uint16, ts uint32, payload int) []byte {
	b := make([]byte, 12+payload)
	b[0], b[1] = 0x80, 0
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	return b
}

func TestParseRTP(t *testing.T) {
	good := rtpPacket(0x01020304, 7, 160, 160)
	withCSRC := append([]byte{0x82, 8}, good[2:12]...)
	withCSRC = append(withCSRC, make([]byte, 8+20)...)
	ext := append([]byte{0x90, 8}, good[2:12]...)
	ext = append(ext, 0xbe, 0xde, 0, 1, 1, 2, 3, 4)
	padded := append([]byte{0xa0, 0}, good[2:]...)
	padded[len(padded)-1] = 4
	badPad := append([]byte{0xa0, 0}, good[2:12]...)
	badPad = append(badPad, 200)
	rtcpSR := []byte{0x80, 200, 0, 6, 1, 2, 3, 4, 0, 0, 0, 0}
	for _, c := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"plain", good, true},
		{"two CSRCs", withCSRC, true},
		{"extension", ext, true},
		{"extension cut", ext[:14], false},
		{"padding", padded, true},
		{"padding past the header", badPad, false},
		{"short", good[:11], false},
		{"version 1", append([]byte{0x40}, good[1:]...), false},
		{"CSRCs cut", withCSRC[:19], false},
		{"RTCP on the RTP port (RFC 5761)", rtcpSR, false},
		{"RTCP feedback on the RTP port (RFC 4585)", []byte{0x81, 205, 0, 3, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0}, false},
		{"RTCP XR on the RTP port (RFC 3611)", []byte{0x80, 207, 0, 2, 1, 2, 3, 4, 0, 0, 0, 0}, false},
	} {
		h, ok := ParseRTP(c.b)
		if ok != c.ok {
			t.Errorf("%s: ok %v, want %v", c.name, ok, c.ok)
		}
		if ok && (h.SSRC != 0x01020304 || h.Seq != 7 || h.Timestamp != 160) {
			t.Errorf("%s: %+v", c.name, h)
		}
	}
}

func FuzzParseRTP(f *testing.F) {
	f.Add(rtpPacket(1, 2, 3, 160))
	f.Add([]byte{0x90, 8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0xff, 0xff})
	f.Add([]byte{0xbf, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		w := &watch{senders: map[uint32]*tracked{}}
		w.take(b, netip.MustParseAddr("127.0.0.1"), time.Unix(0, 0))
		if _, ok := ParseRTP(b); ok != (w.invalid == 0) {
			t.Fatalf("ParseRTP and take disagree on %x", b)
		}
	})
}

// TestProbe runs TestProbeChild in a network namespace of its own, where
// multicast cannot leave the machine.
func TestProbe(t *testing.T) { peertest.InOwnNetns(t, "TestProbeChild", "MCC_RECEPTION_NETNS") }

// TestProbeChild: two senders (two sources, two SSRCs) send to a group,
// one dropping every 20th packet; a probe joined any-source hears both
// and counts the loss exactly, one joined source-specific to the first
// source hears that one alone. IPv4 on loopback, IPv6 on a veth pair.
func TestProbeChild(t *testing.T) {
	if os.Getenv("MCC_RECEPTION_NETNS") == "" {
		t.Skip("the body of TestProbe; runs only in the namespace that test creates")
	}
	for _, c := range [][]string{
		{"link", "set", "lo", "up"}, {"route", "add", "224.0.0.0/4", "dev", "lo"},
		{"addr", "add", "127.0.0.2/8", "dev", "lo"},
		{"link", "add", "mcc0", "type", "veth", "peer", "name", "mcc1"},
		{"link", "set", "mcc0", "up"}, {"link", "set", "mcc1", "up"},
		{"-6", "addr", "add", "fd00:97::1/64", "dev", "mcc0", "nodad"},
		{"-6", "addr", "add", "fd00:97::2/64", "dev", "mcc0", "nodad"},
	} {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", c, err, out)
		}
	}
	lo, _ := net.InterfaceByName("lo")
	veth, _ := net.InterfaceByName("mcc0")
	for _, c := range []struct {
		name       string
		ifi        *net.Interface
		asm, ssm   netip.Addr
		src1, src2 string
	}{
		{"ipv4", lo, netip.MustParseAddr("239.255.7.1"), netip.MustParseAddr("232.7.7.1"), "127.0.0.1", "127.0.0.2"},
		{"ipv6", veth, netip.MustParseAddr("ff15::7:1"), netip.MustParseAddr("ff35::7:1"), "fd00:97::1", "fd00:97::2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s1, s2 := netip.MustParseAddr(c.src1), netip.MustParseAddr(c.src2)
			p, err := Listen(c.ifi, []Stream{
				{Index: 0, Group: c.asm, Port: 17000, ClockRate: 8000},
				{Index: 1, Group: c.ssm, Port: 17002, Sources: []netip.Addr{s1}, ClockRate: 8000},
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { p.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()

			send := func(from netip.Addr) *multicast.GroupConn {
				s, err := multicast.ListenGroupAt(netip.AddrPortFrom(from, 0))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				s.SetInterface(c.ifi)
				s.SetLoopback(true)
				s.SetTTL(1)
				return s
			}
			a, b := send(s1), send(s2)
			for seq := range 400 {
				for _, g := range []struct {
					addr netip.Addr
					port int
				}{{c.asm, 17000}, {c.ssm, 17002}} {
					if seq%20 != 10 {
						a.WriteTo(rtpPacket(1, uint16(seq+65000), uint32(seq*160), 160), g.addr, g.port)
					}
					b.WriteTo(rtpPacket(2, uint16(seq), uint32(seq*160), 160), g.addr, g.port)
				}
				if seq%10 == 0 {
					time.Sleep(2 * time.Millisecond) // within the socket buffer
				}
			}
			a.WriteTo([]byte("not rtp"), c.asm, 17000)
			time.Sleep(100 * time.Millisecond)
			rep := p.Report()
			if len(rep) != 2 || rep[0].Error != "" || rep[1].Error != "" {
				t.Fatalf("report %+v", rep)
			}
			asm, ssm := rep[0], rep[1]
			if len(asm.Senders) != 2 || asm.Invalid != 1 {
				t.Fatalf("any-source stream heard %+v", asm)
			}
			one, two := asm.Senders[0], asm.Senders[1]
			if one.SSRC != 1 || one.Source != s1 || one.Packets != 379 || one.Expected != 399 || one.Lost != 20 || one.Loss != 20.0/399 {
				t.Errorf("the lossy sender (every 20th packet dropped, across a sequence wrap): %+v", one)
			}
			if two.SSRC != 2 || two.Source != s2 || two.Packets != 399 || two.Lost != 0 {
				t.Errorf("the other sender: %+v", two)
			}
			if one.RateBPS <= 0 || one.LastAgeMS < 50 || one.LastAgeMS > 5000 {
				t.Errorf("rate %v, last packet %d ms ago", one.RateBPS, one.LastAgeMS)
			}
			if len(ssm.Senders) != 1 || ssm.Senders[0].Source != s1 || ssm.Senders[0].Packets != 379 {
				t.Fatalf("the source-specific stream (%v, %v) heard %+v", s1, c.ssm, ssm.Senders)
			}
			// The first packet of each sender is its probation (RFC 3550
			// A.1): 399 expected from the second, 20 of them dropped.
			// A second report starts a new interval: nothing was lost since.
			if again := p.Report(); again[0].Senders[0].IntervalLoss != 0 || rep[0].Senders[0].IntervalLoss != 20.0/399 {
				t.Errorf("interval loss %v then %v, want 20/399 then 0", rep[0].Senders[0].IntervalLoss, again[0].Senders[0].IntervalLoss)
			}
		})
	}
}

func TestListenErrors(t *testing.T) {
	if _, err := Listen(nil, nil); err == nil {
		t.Error("no stream: no error")
	}
	_, err := Listen(nil, []Stream{{Group: netip.MustParseAddr("10.0.0.1"), Port: 5004}})
	if err == nil || !strings.Contains(err.Error(), "not a multicast group") {
		t.Errorf("a unicast group: %v", err)
	}
}

// TestSenderBound: at most MaxSenders SSRCs are kept; past that a new
// one is counted over, until the one-packet strays have been on
// probation for 2 s: then they give their slots to real senders, and a
// sender silent for 10 s gives its own.
func TestSenderBound(t *testing.T) {
	w := &watch{senders: map[uint32]*tracked{}}
	src := netip.MustParseAddr("127.0.0.1")
	at := time.Unix(0, 0)
	for ssrc := range uint32(MaxSenders + 10) {
		w.take(rtpPacket(ssrc, 1, 0, 10), src, at)
	}
	if len(w.senders) != MaxSenders || w.overflow != 10 {
		t.Fatalf("%d senders kept, %d counted over", len(w.senders), w.overflow)
	}
	at = at.Add(3 * time.Second)
	for seq := range uint16(100) {
		w.take(rtpPacket(0x1234, seq, uint32(seq)*160, 160), src, at.Add(time.Duration(seq)*20*time.Millisecond))
	}
	if s := w.senders[0x1234]; s == nil || s.Received != 99 {
		t.Fatalf("a real sender after 64 strays: %+v", s)
	}
	// Fill the table with senders that pass probation, then go quiet.
	for ssrc := range uint32(MaxSenders) {
		for seq := range uint16(3) {
			w.take(rtpPacket(0x10000+ssrc, seq, 0, 10), src, at.Add(4*time.Second))
		}
	}
	if w.take(rtpPacket(0x99, 1, 0, 10), src, at.Add(5*time.Second)); w.senders[0x99] != nil {
		t.Fatal("a new sender took the slot of one heard a second ago")
	}
	if w.take(rtpPacket(0x99, 1, 0, 10), src, at.Add(20*time.Second)); w.senders[0x99] == nil {
		t.Fatal("a new sender found no slot among senders silent for 15 s")
	}
	if len(w.senders) > MaxSenders || len(w.order) != len(w.senders) {
		t.Fatalf("%d senders, %d in order", len(w.senders), len(w.order))
	}
}

// BenchmarkTake is the probe's work per packet once the socket has
// delivered it: the RTP header read and the sender's statistics (RFC 3550
// A.1, A.8), for one sender. bench/probe-cpu.sh measures the whole
// process against ffmpeg receiving the same stream.
func BenchmarkTake(b *testing.B) {
	w := &watch{Stream: Stream{ClockRate: 8000}, senders: map[uint32]*tracked{}}
	src := netip.MustParseAddr("192.0.2.1")
	pkt := rtpPacket(7, 0, 0, 160)
	at := time.Unix(0, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		binary.BigEndian.PutUint32(pkt[4:], uint32(i*160))
		w.take(pkt, src, at.Add(time.Duration(i)*20*time.Millisecond))
	}
}
