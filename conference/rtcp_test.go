package conference

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/pion/rtcp"

	"mcc/multicast/reception"
	"mcc/sdp"
)

// TestRTCPTaken: a compound RR with an SDES CNAME from a receiver's host
// becomes its row in the matrix (fraction lost over 256, jitter from
// timestamp units at the stream's clock rate, a negative cumulative loss
// as 0); an SR becomes the stream's sender; what does not parse is
// counted and dropped.
func TestRTCPTaken(t *testing.T) {
	r := newLectureRig(t, time.Now())
	if _, err := r.c.CreateSession("lab", sdp.SessionSpec{Name: "Lab", Pool: r.pool.Name, Media: []sdp.MediaSpec{{Kind: "audio"}}}, Access{}); err != nil {
		t.Fatal(err)
	}
	m := &rtcpMonitor{c: r.c, conns: nil, joined: map[rtcpJoin][]rtcpStream{}, reports: map[string]*rtcpReporter{}}
	want := m.wanted()
	if len(want) != 1 {
		t.Fatalf("RTCP groups wanted: %+v", want)
	}
	var streams []rtcpStream
	for j, ss := range want {
		streams = ss
		m.joined[j] = ss
		if j.port != ss[0].port+1 || j.group != ss[0].group || ss[0].clockRate != 8000 {
			t.Fatalf("RTCP of %+v at %+v", ss[0], j)
		}
	}
	host := netip.MustParseAddr("10.0.0.7")
	rr, _ := rtcp.Marshal([]rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: 99, Reports: []rtcp.ReceptionReport{
			{SSRC: 0xaa, FractionLost: 64, TotalLost: 12, Jitter: 80},
			{SSRC: 0xbb, TotalLost: 0xffffff}, // -1: a duplicate more than lost
		}},
		&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 99, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "room1@10.0.0.7"}}}}},
	})
	sr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.SenderReport{SSRC: 0xaa, PacketCount: 500, OctetCount: 80000}})
	now := r.clk.Now()
	m.take(rr, host, streams, now)
	m.take(sr, netip.MustParseAddr("10.0.0.1"), streams, now)
	m.take([]byte{0x81, 201, 0, 9, 1}, host, streams, now)
	mat, err := r.c.Reception("lab")
	if err != nil {
		t.Fatal(err)
	}
	if len(mat.Streams) != 1 || len(mat.Streams[0].Receivers) != 1 || len(mat.Streams[0].Senders) != 1 {
		t.Fatalf("matrix %+v", mat)
	}
	cell := mat.Streams[0].Receivers[0]
	if cell.Receiver != "room1@10.0.0.7" || cell.Kind != ReceiverRTCP || cell.Addrs[0] != host || cell.Silent || len(cell.Senders) != 2 {
		t.Fatalf("the receiver: %+v", cell)
	}
	a, b := cell.Senders[0], cell.Senders[1]
	if a.SSRC != 0xaa || a.IntervalLoss != 0.25 || a.Lost != 12 || a.JitterMS != 10 || b.Lost != 0 {
		t.Fatalf("its blocks: %+v, %+v", a, b)
	}
	if s := mat.Streams[0].Senders[0]; s.SSRC != 0xaa || s.Packets != 500 || s.Octets != 80000 || s.Source.String() != "10.0.0.1" {
		t.Fatalf("the sender: %+v", s)
	}
	if st := r.c.ReceptionStats(); st.RTCPPackets != 2 || st.RTCPMalformed != 1 {
		t.Fatalf("stats %+v", st)
	}

	// One host that changes its CNAME with every packet, and names a new
	// SSRC in each, stays one row with its first name, keeps at most 64
	// sources, and still updates those it has; probes keep their own
	// budget of receivers.
	for i := range 300 {
		pkt, _ := rtcp.Marshal([]rtcp.Packet{
			&rtcp.ReceiverReport{SSRC: 99, Reports: []rtcp.ReceptionReport{{SSRC: uint32(0x1000 + i)}, {SSRC: 0xaa, FractionLost: 128}}},
			&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 99, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "churn" + strconv.Itoa(i)}}}}},
		})
		m.take(pkt, host, streams, now.Add(time.Duration(i+1)*time.Second))
	}
	for i := range maxReceivers {
		m.take(rr, netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), streams, now)
	}
	if err := r.c.Report("lab", ReceiverReport{Receiver: "room-12", Kind: ReceiverProbe}); err != nil {
		t.Fatalf("a probe after %d RTCP reporters: %v", maxReceivers+1, err)
	}
	mat, _ = r.c.Reception("lab")
	var rows []ReceiverCell
	for _, c := range mat.Streams[0].Receivers {
		if len(c.Addrs) > 0 && c.Addrs[0] == host {
			rows = append(rows, c)
		}
	}
	if len(rows) != 1 || rows[0].Receiver != "room1@10.0.0.7" || len(rows[0].Senders) != reception.MaxSenders {
		t.Fatalf("the churning host's rows: %+v", rows)
	}
	for _, x := range rows[0].Senders {
		if x.SSRC == 0xaa && x.IntervalLoss != 0.5 {
			t.Fatalf("a kept source was not updated: %+v", x)
		}
	}
	// A host that says BYE (RFC 3550 §6.6) is no receiver any more.
	bye, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 99}, &rtcp.Goodbye{Sources: []uint32{99}}})
	m.take(bye, host, streams, now.Add(500*time.Second))
	mat, _ = r.c.Reception("lab")
	for _, c := range mat.Streams[0].Receivers {
		if len(c.Addrs) > 0 && c.Addrs[0] == host {
			t.Fatalf("the host that said BYE still has a row: %+v", c)
		}
	}

	// More than two a second from one host are dropped and counted.
	later := now.Add(400 * time.Second)
	for i := range 10 {
		m.take(rr, host, streams, later.Add(time.Duration(i)*10*time.Millisecond))
	}
	if st := r.c.ReceptionStats(); st.RTCPLimited != 9 {
		t.Fatalf("%d of 10 packets in 100 ms dropped, want 9", st.RTCPLimited)
	}
}

func FuzzRTCP(f *testing.F) {
	rr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2, FractionLost: 3}}},
		&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 1, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "a@b"}}}}}})
	sr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.SenderReport{SSRC: 2, PacketCount: 1, Reports: []rtcp.ReceptionReport{{SSRC: 3}}}, &rtcp.Goodbye{Sources: []uint32{2}}})
	f.Add(rr)
	f.Add(sr)
	f.Add([]byte{0x80, 200, 0, 0})
	// A controller with no conference: what a packet says reaches
	// Report, which finds no conference; the parsing and the reading of
	// blocks are what is under test.
	c := &Controller{conferences: map[string]*Conference{}}
	streams := []rtcpStream{{conf: "lab", group: netip.MustParseAddr("239.1.1.1"), port: 5004, clockRate: 8000}}
	f.Fuzz(func(t *testing.T, b []byte) {
		m := &rtcpMonitor{c: c, joined: map[rtcpJoin][]rtcpStream{{streams[0].group, 5005}: streams}, reports: map[string]*rtcpReporter{}}
		m.take(b, netip.MustParseAddr("10.0.0.7"), streams, time.Unix(0, 0))
		for _, r := range m.reports {
			rep := r.report("lab", m.streamsOf("lab"), time.Unix(1, 0))
			if err := checkReport(&rep); err != nil {
				t.Fatalf("the report of %x breaks a bound: %v", b, err)
			}
		}
	})
}
