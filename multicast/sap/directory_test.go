package sap

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"mcc/multicast"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func announce(t testing.TB, origin string, hash uint16, sdpText string, del bool) []byte {
	t.Helper()
	b, err := (&Packet{Delete: del, Hash: hash, Origin: netip.MustParseAddr(origin), Payload: []byte(sdpText)}).Encode(hash%2 == 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func lecture(version int, group string) string {
	return fmt.Sprintf("v=0\r\no=lecturer 3929000000 %d IN IP4 192.0.2.1\r\ns=Lecture\r\nt=0 0\r\nm=audio 16384 RTP/AVP 0\r\nc=IN IP4 %s/15\r\nm=video 16386 RTP/AVP 96\r\nc=IN IP4 239.255.7.8/15\r\na=rtpmap:96 H264/90000\r\n", version, group)
}

var (
	src = netip.MustParseAddr("192.0.2.1")
	sap = netip.MustParseAddr("239.255.255.255")
)

func TestDirectory(t *testing.T) {
	clk := &clock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	d := NewDirectory(DirectoryConfig{Now: clk.now})
	if err := d.Handle(src, sap, announce(t, "192.0.2.1", 11, lecture(1, "239.255.7.7"), false)); err != nil {
		t.Fatal(err)
	}
	l := d.List()
	if len(l) != 1 || l[0].Name != "Lecture" || len(l[0].Groups) != 2 || l[0].Groups[0].String() != "239.255.7.7" || l[0].Ports[1] != 16386 || l[0].SAPGroup != sap {
		t.Fatalf("heard: %+v", l)
	}
	// Heard again 300 s later: the interval is learnt.
	clk.t = clk.t.Add(300 * time.Second)
	d.Handle(src, sap, announce(t, "192.0.2.1", 11, lecture(1, "239.255.7.7"), false))
	if l = d.List(); l[0].Interval != 300*time.Second || !l[0].First.Before(l[0].Last) {
		t.Fatalf("interval: %+v", l[0])
	}
	// A changed description (new version, new hash) replaces the old.
	d.Handle(src, sap, announce(t, "192.0.2.1", 12, lecture(2, "239.255.7.9"), false))
	if l = d.List(); len(l) != 1 || l[0].Hash != 12 || l[0].Groups[0].String() != "239.255.7.9" {
		t.Fatalf("after a change: %+v", l)
	}
	// Deletions count only from the announcer, with the current hash.
	for _, tc := range []struct {
		from string
		hash uint16
	}{{"198.51.100.9", 12}, {"192.0.2.1", 11}} {
		if err := d.Handle(netip.MustParseAddr(tc.from), sap, announce(t, "192.0.2.1", tc.hash, lecture(2, "239.255.7.9"), true)); !errors.Is(err, ErrIgnored) {
			t.Fatalf("deletion from %s hash %d: %v", tc.from, tc.hash, err)
		}
	}
	if len(d.List()) != 1 {
		t.Fatal("a deletion from someone else took the session away")
	}
	if err := d.Handle(src, sap, announce(t, "192.0.2.1", 12, "", true)); err != nil || len(d.List()) != 0 {
		t.Fatalf("the announcer's deletion: %v, %d left", err, len(d.List()))
	}
	// Malformed and foreign packets are dropped and counted.
	for _, b := range [][]byte{{0x20}, {0x20, 0, 0, 1, 192, 0, 2, 1, 'x'}, announce(t, "192.0.2.1", 13, "v=0\r\nbroken\r\n", false)} {
		if err := d.Handle(src, sap, b); err == nil {
			t.Fatalf("a malformed packet was taken: %q", b)
		}
	}
	other, _ := (&Packet{Hash: 5, Origin: src, PayloadType: "application/x-other", Payload: []byte("x")}).Encode(false)
	if err := d.Handle(src, sap, other); !errors.Is(err, ErrIgnored) {
		t.Fatalf("non-SDP payload: %v", err)
	}
	st := d.Stats()
	if st.Announcements != 3 || st.Deletions != 1 || st.Malformed != 3 || st.Dropped != 6 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestDirectoryExpiry(t *testing.T) {
	clk := &clock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	d := NewDirectory(DirectoryConfig{Now: clk.now})
	d.Handle(src, sap, announce(t, "192.0.2.1", 11, lecture(1, "239.255.7.7"), false))
	// A session with an end time goes when it ends.
	ends := clk.t.Add(10 * time.Minute)
	timed := fmt.Sprintf("v=0\r\no=x 1 1 IN IP4 192.0.2.2\r\ns=Short\r\nt=0 %d\r\nm=audio 5004 RTP/AVP 0\r\nc=IN IP4 239.255.9.9/15\r\n", ends.Unix()+2208988800)
	d.Handle(netip.MustParseAddr("192.0.2.2"), sap, announce(t, "192.0.2.2", 21, timed, false))
	clk.t = clk.t.Add(11 * time.Minute)
	if n := d.Expire(); n != 1 || len(d.List()) != 1 || d.List()[0].Name != "Lecture" {
		t.Fatalf("after the end time: expired %d, %+v", n, d.List())
	}
	// Silent for 59 minutes: kept; for more than an hour: gone.
	clk.t = clk.t.Add(48 * time.Minute)
	if d.Expire() != 0 {
		t.Fatal("expired before an hour of silence")
	}
	clk.t = clk.t.Add(2 * time.Minute)
	if d.Expire() != 1 {
		t.Fatal("kept after an hour of silence")
	}
}

// TestAllocatorAvoidsHeardGroups: the allocator never leases a group the
// directory heard announced.
func TestAllocatorAvoidsHeardGroups(t *testing.T) {
	d := NewDirectory(DirectoryConfig{})
	pool := multicast.Pool{Name: "p", Prefix: netip.MustParsePrefix("239.255.7.6/31")} // 239.255.7.6 and .7
	a, err := multicast.NewAllocator(multicast.Config{Pools: []multicast.Pool{pool}, InUse: d})
	if err != nil {
		t.Fatal(err)
	}
	d.Handle(src, sap, announce(t, "192.0.2.1", 11, lecture(1, "239.255.7.7"), false))
	l, err := a.Allocate(multicast.Request{Pool: "p"})
	if err != nil || l.Group.String() != "239.255.7.6" {
		t.Fatalf("Allocate = %v, %v; want the group nobody announces", l.Group, err)
	}
	if _, err := a.Allocate(multicast.Request{Pool: "p"}); !errors.Is(err, multicast.ErrPoolExhausted) {
		t.Fatalf("the heard group was leased: %v", err)
	}
}

func TestDirectoryFull(t *testing.T) {
	d := NewDirectory(DirectoryConfig{MaxSessions: 1})
	d.Handle(src, sap, announce(t, "192.0.2.1", 11, lecture(1, "239.255.7.7"), false))
	other := "v=0\r\no=x 1 1 IN IP4 192.0.2.2\r\ns=Other\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\nc=IN IP4 239.255.9.9/15\r\n"
	if err := d.Handle(src, sap, announce(t, "192.0.2.1", 31, other, false)); !errors.Is(err, ErrIgnored) {
		t.Fatalf("over MaxSessions: %v", err)
	}
}

func sessions(b *testing.B, n int) [][]byte {
	pkts := make([][]byte, n)
	for i := range pkts {
		text := fmt.Sprintf("v=0\r\no=u %d 1 IN IP4 192.0.2.1\r\ns=Session %d\r\nt=0 0\r\nm=audio 16384 RTP/AVP 0\r\nc=IN IP4 239.255.%d.%d/15\r\n", i, i, i/256%256, i%256)
		pkts[i] = announce(b, "192.0.2.1", uint16(i|1), text, false)
	}
	return pkts
}

// BenchmarkHandle decodes and indexes announcements of 10,000 sessions.
func BenchmarkHandle(b *testing.B) {
	pkts := sessions(b, 10000)
	d := NewDirectory(DirectoryConfig{MaxGroups: 10000})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := d.Handle(floodSource(i%len(pkts)), sap, pkts[i%len(pkts)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "announcements/s")
}

// BenchmarkMemory10000 reports the heap that 10,000 heard sessions take.
func BenchmarkMemory10000(b *testing.B) {
	pkts := sessions(b, 10000)
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		d := NewDirectory(DirectoryConfig{MaxGroups: 10000})
		for i, p := range pkts {
			if err := d.Handle(floodSource(i), sap, p); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/10000, "B/session")
		runtime.KeepAlive(d)
	}
}

// TestDirectoryTakesPulseAudio: PulseAudio's module-rtp-send announces a
// group without a TTL, with LF line ends; the directory holds it, its
// group counted in use, at the TTL configured, and says why.
func TestDirectoryTakesPulseAudio(t *testing.T) {
	pa := "v=0\no=- 3983245322 0 IN IP4 192.0.2.9\ns=PulseAudio RTP Stream on box\nc=IN IP4 224.0.0.56\nt=3983245322 0\na=recvonly\nm=audio 46054 RTP/AVP 10\na=rtpmap:10 L16/44100/2\na=type:broadcast\n"
	for _, tc := range []struct {
		ttl  uint8
		want string
	}{{0, "taken as TTL 1"}, {4, "taken as TTL 4"}} {
		d := NewDirectory(DirectoryConfig{DefaultTTL: tc.ttl})
		pulse := netip.MustParseAddr("192.0.2.9")
		if err := d.Handle(pulse, netip.MustParseAddr("224.0.0.56"), announce(t, "192.0.2.9", 3, pa, false)); err != nil {
			t.Fatal(err)
		}
		l := d.List()
		if len(l) != 1 || len(l[0].Groups) != 1 || l[0].Groups[0].String() != "224.0.0.56" || len(l[0].Warnings) != 1 ||
			!strings.Contains(l[0].Warnings[0], "line 4") || !strings.Contains(l[0].Warnings[0], tc.want) {
			t.Fatalf("DefaultTTL %d: heard %+v", tc.ttl, l)
		}
	}
}

// TestDirectorySameOriginTwoSources: two ffmpeg hosts announce sessions
// with the same o= line (o=- 0 0 IN IP4 127.0.0.1, as ffmpeg writes it
// on loopback): the directory holds both, one per source, with both their
// groups in use; a deletion from one takes only its own.
func TestDirectorySameOriginTwoSources(t *testing.T) {
	d := NewDirectory(DirectoryConfig{})
	ff := func(group string) string {
		return "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 " + group + "/1\r\nt=0 0\r\na=tool:libavformat 61.7.100\r\nm=audio 5004 RTP/AVP 97\r\na=rtpmap:97 opus/48000/2\r\n"
	}
	a, b := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11")
	ffGroup := netip.MustParseAddr("224.2.127.254")
	if err := d.Handle(a, ffGroup, announce(t, "192.0.2.10", 1, ff("239.255.20.1"), false)); err != nil {
		t.Fatal(err)
	}
	if err := d.Handle(b, ffGroup, announce(t, "192.0.2.11", 2, ff("239.255.20.2"), false)); err != nil {
		t.Fatal(err)
	}
	l := d.List()
	if len(l) != 2 || l[0].ID == l[1].ID {
		t.Fatalf("heard: %+v", l)
	}
	inUse := d.GroupsInUse(netip.MustParsePrefix("239.255.0.0/16"))
	if len(inUse) != 2 {
		t.Fatalf("groups in use: %v, want both", inUse)
	}
	if err := d.Handle(a, ffGroup, announce(t, "192.0.2.10", 1, ff("239.255.20.1"), true)); err != nil {
		t.Fatal(err)
	}
	if l = d.List(); len(l) != 1 || l[0].Source != b || l[0].Groups[0].String() != "239.255.20.2" {
		t.Fatalf("after a's deletion: %+v", l)
	}
}
