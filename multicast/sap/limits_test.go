package sap

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"mcc/multicast"
	"mcc/sdp"
)

// desc is a session description with media streams, each at a layered c=
// of count groups starting at first+i*count, and pad bytes of a= lines.
// A zero count gives unicast streams, which hold no group.
func desc(id int, first netip.Addr, media, count, pad int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=flood %d 1 IN IP4 192.0.2.1\r\ns=Session %d\r\nt=0 0\r\n", id, id)
	g := first
	for i := range media {
		fmt.Fprintf(&b, "m=audio %d RTP/AVP 0\r\n", 16384+2*i)
		if count == 0 {
			b.WriteString("c=IN IP4 192.0.2.1\r\n")
			continue
		}
		fmt.Fprintf(&b, "c=IN IP4 %v/15/%d\r\n", g, count)
		for range count {
			g = g.Next()
		}
	}
	for b.Len() < pad {
		b.WriteString("a=tool:padding padding padding padding padding padding\r\n")
	}
	return b.String()
}

// packet is desc as a SAP announcement; its hash is derived from the
// session and version so that a change gets a new hash (RFC 2974 §5).
func packet(t testing.TB, id int, first netip.Addr, media, count, pad int) []byte {
	t.Helper()
	p := Packet{Hash: uint16(id%65000 + 1), Origin: netip.MustParseAddr("192.0.2.1"), Payload: []byte(desc(id, first, media, count, pad))}
	b, err := p.Encode(false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkBounds recounts what d holds from List and fails if any bound of
// cfg (defaults filled in) is passed.
func checkBounds(t testing.TB, d *Directory) {
	t.Helper()
	cfg := d.cfg
	var all tally
	per := map[netip.Prefix]tally{}
	for _, h := range d.List() {
		n := tallyOf(&h)
		all = all.plus(n)
		per[sourceKey(h.Source)] = per[sourceKey(h.Source)].plus(n)
		if len(h.Groups) != len(h.Ports) {
			t.Fatalf("%s: %d groups, %d ports", h.ID, len(h.Groups), len(h.Ports))
		}
	}
	if all.sessions > cfg.MaxSessions || all.groups > cfg.MaxGroups || all.bytes > cfg.MaxBytes {
		t.Fatalf("directory holds %+v, over its bounds %+v", all, cfg)
	}
	for k, n := range per {
		if n.sessions > cfg.MaxSessionsPerSource || n.groups > cfg.MaxGroupsPerSource || n.bytes > cfg.MaxBytesPerSource {
			t.Fatalf("source %v holds %+v, over its bounds %+v", k, n, cfg)
		}
	}
	d.mu.Lock()
	total := d.total
	d.mu.Unlock()
	if total != all {
		t.Fatalf("directory counts %+v, holds %+v", total, all)
	}
}

type step struct {
	from         string
	id, media, n int    // session, its streams and the count of each c=
	first        string // its first group
	pad          int
	want         Limit // 0 when the announcement is taken
}

func TestDirectoryLimits(t *testing.T) {
	tests := []struct {
		name  string
		cfg   DirectoryConfig
		steps []step
	}{
		{"sessions per source", DirectoryConfig{MaxSessionsPerSource: 2}, []step{
			{"192.0.2.1", 1, 1, 1, "239.255.1.1", 0, 0},
			{"192.0.2.1", 2, 1, 1, "239.255.1.2", 0, 0},
			{"192.0.2.1", 3, 1, 1, "239.255.1.3", 0, LimitSessionsPerSource},
			{"192.0.2.2", 3, 1, 1, "239.255.1.3", 0, 0},
			{"192.0.2.1", 1, 1, 1, "239.255.1.1", 0, 0}, // held already: refreshed
		}},
		{"groups per source, at the largest count", DirectoryConfig{MaxGroupsPerSource: 2 * sdp.MaxAddresses}, []step{
			{"192.0.2.1", 1, 2, sdp.MaxAddresses, "239.255.1.0", 0, 0},
			{"192.0.2.1", 2, 1, 1, "239.255.9.0", 0, LimitGroupsPerSource},
			{"192.0.2.1", 3, 1, 0, "", 0, 0}, // a session without groups still fits
			{"192.0.2.2", 2, 1, 1, "239.255.9.0", 0, 0},
			// A change that grows a held session past the bound is refused.
			{"192.0.2.2", 2, 3, sdp.MaxAddresses, "239.255.9.0", 0, LimitGroupsPerSource},
		}},
		{"bytes per source", DirectoryConfig{MaxBytesPerSource: 3000}, []step{
			{"192.0.2.1", 1, 1, 1, "239.255.1.1", 1400, 0},
			{"192.0.2.1", 2, 1, 1, "239.255.1.2", 1400, 0},
			{"192.0.2.1", 3, 1, 1, "239.255.1.3", 1400, LimitBytesPerSource},
			{"192.0.2.2", 3, 1, 1, "239.255.1.3", 1400, 0},
		}},
		{"sessions in all", DirectoryConfig{MaxSessions: 2}, []step{
			{"192.0.2.1", 1, 1, 1, "239.255.1.1", 0, 0},
			{"192.0.2.2", 2, 1, 1, "239.255.1.2", 0, 0},
			{"192.0.2.3", 3, 1, 1, "239.255.1.3", 0, LimitSessions},
			{"192.0.2.1", 1, 1, 1, "239.255.1.1", 0, 0},
			{"192.0.2.2", 2, 2, 1, "239.255.1.2", 0, 0}, // a change that adds a stream is no new session
		}},
		{"groups in all", DirectoryConfig{MaxGroups: 100}, []step{
			{"192.0.2.1", 1, 1, sdp.MaxAddresses, "239.255.1.0", 0, 0},
			{"192.0.2.2", 2, 1, 36, "239.255.2.0", 0, 0},
			{"192.0.2.3", 3, 1, 1, "239.255.3.0", 0, LimitGroups},
			{"192.0.2.2", 2, 1, 35, "239.255.2.0", 0, 0}, // shrinks: room for one
			{"192.0.2.3", 3, 1, 1, "239.255.3.0", 0, 0},
		}},
		{"bytes in all", DirectoryConfig{MaxBytes: 3000}, []step{
			{"192.0.2.1", 1, 1, 1, "239.255.1.1", 1400, 0},
			{"192.0.2.2", 2, 1, 1, "239.255.1.2", 1400, 0},
			{"192.0.2.3", 3, 1, 1, "239.255.1.3", 1400, LimitBytes},
		}},
		{"one IPv6 /64 is one source", DirectoryConfig{MaxSessionsPerSource: 1}, []step{
			{"2001:db8::1", 1, 1, 1, "239.255.1.1", 0, 0},
			{"2001:db8::2", 2, 1, 1, "239.255.1.2", 0, LimitSessionsPerSource},
			{"2001:db8:0:1::2", 2, 1, 1, "239.255.1.2", 0, 0},
			{"::ffff:192.0.2.1", 3, 1, 1, "239.255.1.3", 0, 0},
			{"192.0.2.1", 4, 1, 1, "239.255.1.4", 0, LimitSessionsPerSource},
		}},
		{"the same o= from another source is another session, counted there", DirectoryConfig{MaxSessionsPerSource: 1}, []step{
			{"192.0.2.1", 1, 1, 1, "239.255.1.1", 0, 0},
			{"192.0.2.2", 1, 1, 1, "239.255.1.1", 0, 0},                      // not a take-over of 192.0.2.1's
			{"192.0.2.1", 2, 1, 1, "239.255.1.2", 0, LimitSessionsPerSource}, // 192.0.2.1 still holds its own
			{"192.0.2.2", 3, 1, 1, "239.255.1.3", 0, LimitSessionsPerSource},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDirectory(tc.cfg)
			over := map[string]uint64{}
			taken := 0
			for i, s := range tc.steps {
				var first netip.Addr
				if s.first != "" {
					first = netip.MustParseAddr(s.first)
				}
				before := d.List()
				err := d.Handle(netip.MustParseAddr(s.from), sap, packet(t, s.id, first, s.media, s.n, s.pad))
				if s.want == 0 {
					if err != nil {
						t.Fatalf("step %d: Handle(%+v) = %v, want it taken", i, s, err)
					}
					taken++
				} else {
					le, ok := errors.AsType[*LimitError](err)
					if !ok || le.Limit != s.want || !errors.Is(err, ErrIgnored) {
						t.Fatalf("step %d: Handle(%+v) = %v, want a *LimitError for %v", i, s, err, s.want)
					}
					if le.Held+le.Asked <= le.Max {
						t.Fatalf("step %d: %v: %d held and %d asked fit under %d", i, err, le.Held, le.Asked, le.Max)
					}
					over[s.want.String()]++
					if after := d.List(); fmt.Sprint(after) != fmt.Sprint(before) {
						t.Fatalf("step %d: a refused announcement changed the directory:\n%v\n%v", i, before, after)
					}
				}
				checkBounds(t, d)
			}
			st := d.Stats()
			if st.Announcements != uint64(taken) || st.OverLimit != uint64(len(tc.steps)-taken) || st.Dropped != st.OverLimit || fmt.Sprint(st.OverLimitBy) != fmt.Sprint(over) {
				t.Fatalf("Stats = %+v, want %d announcements, over limit by %v", st, taken, over)
			}
		})
	}
}

func TestLimitErrorText(t *testing.T) {
	d := NewDirectory(DirectoryConfig{MaxGroupsPerSource: 64})
	from := netip.MustParseAddr("198.51.100.7")
	err := d.Handle(from, sap, packet(t, 7, netip.MustParseAddr("239.255.1.0"), 2, 64, 0))
	want := `sap: packet ignored: session "flood 7 192.0.2.1 198.51.100.7" from 198.51.100.7 would add 128 groups to the 0 source 198.51.100.7 holds, over its bound of 64 (groups_per_source)`
	if err == nil || err.Error() != want {
		t.Fatalf("Handle = %v\nwant %s", err, want)
	}
}

// TestDirectoryFullStillRefreshes: with every bound reached, the sessions
// held are still refreshed by their announcements, learn their interval
// and do not expire; only new sessions are refused.
func TestDirectoryFullStillRefreshes(t *testing.T) {
	clk := &clock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	d := NewDirectory(DirectoryConfig{Now: clk.now, MaxSessions: 3, MaxGroups: 3 * sdp.MaxAddresses})
	from := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}) }
	group := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{239, 255, byte(i), 0}) }
	for i := 1; i <= 3; i++ {
		if err := d.Handle(from(i), sap, packet(t, i, group(i), 1, sdp.MaxAddresses, 0)); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 { // 20 intervals of 300 s: well past the hour of RFC 2974 §3.2
		clk.t = clk.t.Add(300 * time.Second)
		for i := 1; i <= 3; i++ {
			if err := d.Handle(from(i), sap, packet(t, i, group(i), 1, sdp.MaxAddresses, 0)); err != nil {
				t.Fatalf("re-announcing held session %d: %v", i, err)
			}
		}
		if _, ok := errors.AsType[*LimitError](d.Handle(from(4), sap, packet(t, 4, group(4), 1, 1, 0))); !ok {
			t.Fatal("a new session was taken into a full directory")
		}
		if n := d.Expire(); n != 0 {
			t.Fatalf("%d re-announced sessions expired", n)
		}
	}
	for _, h := range d.List() {
		if h.Interval != 300*time.Second {
			t.Errorf("%s: interval %v, want 300s", h.ID, h.Interval)
		}
	}
	if st := d.Stats(); st.OverLimit != 20 || st.Announcements != 63 {
		t.Fatalf("Stats = %+v", st)
	}
}

// TestDirectoryCopiesPayload: the directory keeps its own copy of the
// description, not a slice of the reader's buffer, which the next packet
// overwrites (issue 10).
func TestDirectoryCopiesPayload(t *testing.T) {
	d := NewDirectory(DirectoryConfig{})
	buf := make([]byte, MaxPayload)
	n := copy(buf, announce(t, "192.0.2.1", 11, lecture(1, "239.255.7.7"), false))
	if err := d.Handle(src, sap, buf[:n]); err != nil {
		t.Fatal(err)
	}
	copy(buf, bytes.Repeat([]byte{'X'}, n))
	if got := d.List()[0].SDP; string(got) != lecture(1, "239.255.7.7") {
		t.Fatalf("SDP after the buffer was reused = %q", got)
	}
	// The same description heard again is not copied again.
	first := d.List()[0].SDP
	d.Handle(src, sap, announce(t, "192.0.2.1", 11, lecture(1, "239.255.7.7"), false))
	if again := d.List()[0].SDP; &again[0] != &first[0] {
		t.Error("an unchanged description was copied again")
	}
}

// TestDeletionAmongSources: a deletion is looked for among its source's
// sessions only, and matches the exact address.
func TestDeletionAmongSources(t *testing.T) {
	d := NewDirectory(DirectoryConfig{})
	a, sibling := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	for i, from := range []netip.Addr{a, netip.MustParseAddr("192.0.2.9")} {
		if err := d.Handle(from, sap, packet(t, i, netip.AddrFrom4([4]byte{239, 255, byte(i), 1}), 1, 1, 0)); err != nil {
			t.Fatal(err)
		}
	}
	del := func(id int) []byte {
		b, _ := (&Packet{Delete: true, Hash: uint16(id%65000 + 1), Origin: netip.MustParseAddr("192.0.2.1")}).Encode(false)
		return b
	}
	for _, tc := range []struct {
		from netip.Addr
		id   int
		ok   bool
	}{{sibling, 0, false}, {netip.MustParseAddr("192.0.2.9"), 0, false}, {a, 1, false}, {a, 0, true}, {a, 0, false}} {
		err := d.Handle(tc.from, sap, del(tc.id))
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrIgnored)) {
			t.Errorf("deletion of %d from %v = %v, want ok %v", tc.id, tc.from, err, tc.ok)
		}
	}
	if l := d.List(); len(l) != 1 || l[0].Source.String() != "192.0.2.9" {
		t.Fatalf("left: %+v", l)
	}
	checkBounds(t, d)
}

// floodSource is the n-th of many IPv4 sources (10.0.0.0/8).
func floodSource(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
}

// floodGroup spreads sessions over the local scope, below its relative
// range 239.255.255.0/24 (RFC 2365 §6.1): 254 slots of 256 groups.
func floodGroup(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{239, 255, byte(n % 254), 0})
}

// flood hands d n announcements from n sources, as the kind says, and
// returns how long it took.
func flood(t testing.TB, d *Directory, n int, kind string) {
	t.Helper()
	for i := range n {
		var b []byte
		switch kind {
		case "max count": // four streams of sdp.MaxAddresses groups: 256
			b = packet(t, i, floodGroup(i), 4, sdp.MaxAddresses, 0)
		case "one group":
			b = packet(t, i, floodGroup(i).Next(), 1, 1, 0)
		case "no group, 1.7 kB": // what costs memory without holding a group: MaxBytes/MaxSessions each
			b = packet(t, i, netip.Addr{}, 1, 0, 1700)
		}
		d.Handle(floodSource(i), sap, b)
	}
}

// TestFloodLeavesThePoolAllocatable: 100,000 fake announcements from as
// many sources, with counts at sdp.MaxAddresses, hold no more than
// DefaultMaxGroups groups, and an allocator over the directory still
// hands out every other address of the local scope. The floods of other
// kinds are five times smaller under the race detector or -short, and
// fill the pool only in part (filling it takes seconds under -race).
func TestFloodLeavesThePoolAllocatable(t *testing.T) {
	local, err := multicast.ScopePool(multicast.IPv4, multicast.ScopeLocal, multicast.ScopeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"max count", "one group", "no group, 1.7 kB"} {
		t.Run(kind, func(t *testing.T) {
			n := 100000
			if kind != "max count" && (raceEnabled || testing.Short()) {
				n = 20000
			}
			d := NewDirectory(DirectoryConfig{})
			flood(t, d, n, kind)
			checkBounds(t, d)
			st := d.Stats()
			if st.Announcements+st.OverLimit != uint64(n) || st.Malformed != 0 {
				t.Fatalf("Stats = %+v after %d announcements", st, n)
			}
			inUse := d.GroupsInUse(local.Prefix)
			distinct := map[netip.Addr]bool{}
			for _, g := range inUse {
				distinct[g] = true
			}
			held := len(distinct)
			if len(inUse) > DefaultMaxGroups {
				t.Fatalf("%d groups of the local scope held, bound %d", held, DefaultMaxGroups)
			}
			a, err := multicast.NewAllocator(multicast.Config{Pools: []multicast.Pool{local}, InUse: d})
			if err != nil {
				t.Fatal(err)
			}
			free := int(local.Size()) - held
			if kind != "max count" {
				free = min(free, 1000)
			}
			ls, err := a.AllocateN(multicast.Request{Pool: local.Name}, free)
			if err != nil {
				t.Fatalf("AllocateN(%d of %d) over a flooded directory: %v", free, local.Size(), err)
			}
			for _, l := range ls {
				if distinct[l.Group] {
					t.Fatalf("leased %v, which the directory holds", l.Group)
				}
			}
			if kind == "max count" {
				if _, err := a.Allocate(multicast.Request{Pool: local.Name}); !errors.Is(err, multicast.ErrPoolExhausted) {
					t.Fatalf("a group the directory holds was leased: %v", err)
				}
			}
			t.Logf("%d announcements: %d taken, %d over a bound %v; %d distinct groups held, %d of %d addresses free, %d allocated",
				n, st.Announcements, st.OverLimit, st.OverLimitBy, held, int(local.Size())-held, local.Size(), len(ls))
		})
	}
}

// TestFloodFromOneSource: one source cannot take more than its share.
func TestFloodFromOneSource(t *testing.T) {
	d := NewDirectory(DirectoryConfig{})
	from := netip.MustParseAddr("198.51.100.1")
	for i := range 2000 {
		d.Handle(from, sap, packet(t, i, floodGroup(i), 1, sdp.MaxAddresses, 0))
	}
	checkBounds(t, d)
	st := d.Stats()
	if want := uint64(DefaultMaxGroupsPerSource / sdp.MaxAddresses); st.Announcements != want || st.OverLimitBy[LimitGroupsPerSource.String()] != 2000-want {
		t.Fatalf("Stats = %+v, want %d taken", st, want)
	}
	// Others still get in.
	if err := d.Handle(netip.MustParseAddr("198.51.100.2"), sap, packet(t, 99999, floodGroup(7), 1, 1, 0)); err != nil {
		t.Fatal(err)
	}
}

func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// rss returns the resident set of the process in bytes, or 0 where
// /proc/self/status is not there.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkFlood100000 reports the heap a directory holds after 100,000
// fake announcements from as many sources, and the process's RSS growth.
func BenchmarkFlood100000(b *testing.B) {
	for _, kind := range []string{"max count", "one group", "no group, 1.7 kB"} {
		b.Run(strings.ReplaceAll(kind, " ", "_"), func(b *testing.B) {
			for b.Loop() {
				heap0, rss0 := heapInuse(), rss()
				d := NewDirectory(DirectoryConfig{})
				flood(b, d, 100000, kind)
				heap1, rss1 := heapInuse(), rss()
				b.ReportMetric(float64(heap1-heap0)/(1<<20), "heap-MiB")
				b.ReportMetric(float64(int64(rss1)-int64(rss0))/(1<<20), "rss-growth-MiB")
				b.ReportMetric(float64(len(d.List())), "sessions")
				runtime.KeepAlive(d)
			}
		})
	}
}

// hugeCount is the announcement of issue 8: one c= line with a count of
// 9*10^18, which used to be walked address by address.
var hugeCount = "v=0\r\no=x 1 1 IN IP4 192.0.2.1\r\ns=Huge\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\nc=IN IP4 224.0.0.1/15/9000000000000000000\r\n"

// TestHugeCountAnnouncement: the announcement is refused as malformed, at
// the cost of one with a count of 65, holding nothing.
func TestHugeCountAnnouncement(t *testing.T) {
	d := NewDirectory(DirectoryConfig{})
	huge := announce(t, "192.0.2.1", 12, hugeCount, false)
	err := d.Handle(src, sap, huge)
	if se, ok := errors.AsType[*sdp.SyntaxError](err); !ok || se.Line != 6 || !strings.Contains(err.Error(), "more than 64") {
		t.Fatalf("Handle = %v, want the syntax error of line 6", err)
	}
	if st := d.Stats(); st.Malformed != 1 || len(d.List()) != 0 {
		t.Fatalf("Stats = %+v, %d sessions", st, len(d.List()))
	}
	above := announce(t, "192.0.2.1", 12, strings.Replace(hugeCount, "9000000000000000000", "65", 1), false)
	n := testing.AllocsPerRun(20, func() { d.Handle(src, sap, huge) })
	m := testing.AllocsPerRun(20, func() { d.Handle(src, sap, above) })
	if n > m+2 { // slack for the race detector's sync.Pool
		t.Errorf("Handle allocates %v times for a count of 9*10^18, %v for 65", n, m)
	}
}

// FuzzDirectory hands the directory a packet from two sources, then the
// same packet as a deletion, and checks that no bound is ever passed and
// that the counters add up.
func FuzzDirectory(f *testing.F) {
	f.Add(announce(f, "192.0.2.1", 11, lecture(1, "239.255.7.7"), false), uint8(0))
	f.Add(announce(f, "192.0.2.1", 12, hugeCount, false), uint8(1))
	f.Add(announce(f, "192.0.2.1", 13, strings.Replace(hugeCount, "9000000000000000000", "64", 1), false), uint8(2))
	f.Add(packet(f, 1, netip.MustParseAddr("239.255.1.0"), 4, sdp.MaxAddresses, 0), uint8(3))
	f.Add(packet(f, 2, netip.MustParseAddr("ff15::1"), 1, 0, 1500), uint8(4))
	f.Add(announce(f, "2001:db8::1", 14, desc(3, netip.MustParseAddr("239.255.2.0"), 2, 3, 0), false), uint8(5))
	f.Fuzz(func(t *testing.T, b []byte, who uint8) {
		d := NewDirectory(DirectoryConfig{MaxSessions: 2, MaxSessionsPerSource: 1, MaxGroups: 100, MaxGroupsPerSource: 64, MaxBytes: 4000, MaxBytesPerSource: 2000})
		sources := []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, who}), netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: who})}
		for _, from := range sources {
			d.Handle(from, sap, b)
			checkBounds(t, d)
		}
		if len(b) > 0 {
			del := bytes.Clone(b)
			del[0] |= 0x04 // T: the same packet as a deletion
			d.Handle(sources[0], sap, del)
			checkBounds(t, d)
		}
		st := d.Stats()
		if st.OverLimit > st.Dropped || st.Malformed > st.Dropped || st.Announcements+st.Deletions+st.Dropped != uint64(len(sources))+min(uint64(len(b)), 1) {
			t.Fatalf("Stats = %+v", st)
		}
		var by uint64
		for _, n := range st.OverLimitBy {
			by += n
		}
		if by != st.OverLimit || len(d.List()) > 2 {
			t.Fatalf("Stats = %+v, %d sessions", st, len(d.List()))
		}
	})
}
