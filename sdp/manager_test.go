package sdp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"mcc/multicast"
)

func newManager(t *testing.T, pools ...multicast.Pool) (*Manager, *multicast.Allocator) {
	t.Helper()
	a, err := multicast.NewAllocator(multicast.Config{Pools: pools})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(ManagerConfig{Allocator: a, Origin: netip.MustParseAddr("192.0.2.1")})
	if err != nil {
		t.Fatal(err)
	}
	return m, a
}

func scope(t *testing.T, f multicast.Family, s multicast.Scope) multicast.Pool {
	t.Helper()
	p, err := multicast.ScopePool(f, s, multicast.ScopeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestManagerLifecycle(t *testing.T) {
	local := scope(t, multicast.IPv4, multicast.ScopeLocal)
	m, a := newManager(t, local)
	s, err := m.Create(SessionSpec{Name: "Seminar", Pool: local.Name, Media: []MediaSpec{{Kind: "audio"}, {Kind: "video"}}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Origin.Version != 1 || len(s.Media) != 2 || s.Type != "broadcast" || s.Tool != "mcc" {
		t.Fatalf("created: %s", s)
	}
	for i, md := range s.Media {
		c := md.Connection
		if c == nil || !local.Contains(c.Addr) || c.TTL != local.TTL || md.Port%2 != 0 || md.Direction != RecvOnly {
			t.Fatalf("stream %d: %+v %+v", i, md, c)
		}
		if l, ok := a.Lease(c.Addr); !ok || l.Port != md.Port {
			t.Fatalf("stream %d's group %v holds no lease with its port", i, c.Addr)
		}
	}
	// The text is valid, with no warnings, and reads back the same.
	out, _ := s.Marshal()
	if ps := Lint(out); len(ps) != 0 {
		t.Fatalf("Lint of a created session = %v\n%s", ps, out)
	}
	id := s.Origin.SessionID

	s2, i, err := m.AddStream(id, MediaSpec{Kind: "audio", Direction: SendRecv})
	if err != nil || i != 2 || s2.Origin.Version != 2 {
		t.Fatalf("AddStream = %d, %v (version %d)", i, err, s2.Origin.Version)
	}
	if err := CheckUpdate(s, s2); err != nil {
		t.Fatal(err)
	}
	removed := s2.Media[1].Connection.Addr
	s3, err := m.RemoveStream(id, 1)
	if err != nil || s3.Media[1].Port != 0 || s3.Origin.Version != 3 {
		t.Fatalf("RemoveStream = %v", err)
	}
	if _, ok := a.Lease(removed); !ok {
		t.Fatal("the removed stream's group was released before Settle")
	}
	// A participant still has it: it stays leased.
	if left, err := m.Settle(id, func(g netip.Addr) bool { return g == removed }); err != nil || left != 1 {
		t.Fatalf("Settle with the group in use = %d, %v; want 1 kept", left, err)
	}
	if _, ok := a.Lease(removed); !ok {
		t.Fatal("Settle released a group still in use")
	}
	if left, err := m.Settle(id, func(netip.Addr) bool { return false }); err != nil || left != 0 {
		t.Fatalf("Settle = %d, %v", left, err)
	}
	if _, ok := a.Lease(removed); ok {
		t.Fatal("Settle kept the removed stream's group")
	}
	// A new stream reuses the port-0 slot.
	s4, i, err := m.AddStream(id, MediaSpec{Kind: "video"})
	if err != nil || i != 1 || len(s4.Media) != 3 {
		t.Fatalf("AddStream after a removal: slot %d of %d, %v", i, len(s4.Media), err)
	}
	if ls, _ := m.Leases(id); len(ls) != 3 {
		t.Fatalf("session holds %d leases, want 3", len(ls))
	}
	if _, err := m.SetDirection(id, 0, SendOnly); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(id); err != nil {
		t.Fatal(err)
	}
	if n := len(a.Leases()); n != 0 {
		t.Fatalf("%d leases left after Delete", n)
	}
	if _, err := m.Get(id); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("Get after Delete = %v", err)
	}
}

func TestManagerIPv6AndSSM(t *testing.T) {
	site := scope(t, multicast.IPv6, multicast.ScopeSite)
	ssm := scope(t, multicast.IPv4, multicast.ScopeSSM)
	m, _ := newManager(t, site, ssm)
	stop := time.Now().Add(2 * time.Hour)
	s, err := m.Create(SessionSpec{Name: "v6", Pool: site.Name, Type: "meeting", Stop: stop, Media: []MediaSpec{{Kind: "audio"}}})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Media[0].Connection
	if !c.Addr.Is6() || c.String() != "IN IP6 "+c.Addr.String() || s.Media[0].Direction != SendRecv {
		t.Fatalf("IPv6 stream: %s", s)
	}
	if got := FromNTP(s.Times[0].Stop); !got.Equal(stop.Truncate(time.Second)) {
		t.Fatalf("t= stop %v, want %v", got, stop)
	}
	if _, err := m.Create(SessionSpec{Pool: ssm.Name, Media: []MediaSpec{{Kind: "audio"}}}); err == nil || !strings.Contains(err.Error(), "source-specific") {
		t.Fatalf("SSM without a source: %v", err)
	}
	src := netip.MustParseAddr("192.0.2.10")
	s, err = m.Create(SessionSpec{Pool: ssm.Name, Sources: []netip.Addr{src}, Media: []MediaSpec{{Kind: "audio"}}})
	if err != nil {
		t.Fatal(err)
	}
	md := s.Media[0]
	if len(md.SourceFilters) != 1 || md.SourceFilters[0].Dest != md.Connection.Addr || md.SourceFilters[0].Sources[0] != src || !IsSSM(md.Connection.Addr) {
		t.Fatalf("SSM stream: %s", s)
	}
	out, _ := s.Marshal()
	if ps := Lint(out); len(ps) != 0 {
		t.Fatalf("Lint = %v\n%s", ps, out)
	}
}

func TestManagerFailureLeasesNothing(t *testing.T) {
	tiny := multicast.Pool{Name: "tiny", Prefix: netip.MustParsePrefix("239.9.9.0/31"), TTL: 1}
	m, a := newManager(t, tiny)
	_, err := m.Create(SessionSpec{Pool: "tiny", Media: []MediaSpec{{Kind: "audio"}, {Kind: "video"}, {Kind: "audio"}}})
	if !errors.Is(err, multicast.ErrPoolExhausted) {
		t.Fatalf("three streams from a pool of two: %v", err)
	}
	if n := len(a.Leases()); n != 0 || len(m.List()) != 0 {
		t.Fatalf("a failed Create left %d leases, %d sessions", n, len(m.List()))
	}
	if _, err := m.Create(SessionSpec{Pool: "tiny", Media: []MediaSpec{{Kind: "application"}}}); err == nil || !strings.Contains(err.Error(), "no default format") {
		t.Fatalf("application without formats: %v", err)
	}
	if _, err := m.Create(SessionSpec{Pool: "nope"}); !errors.Is(err, multicast.ErrUnknownPool) {
		t.Fatalf("unknown pool: %v", err)
	}
}

func TestManagerExternal(t *testing.T) {
	m, _ := newManager(t, scope(t, multicast.IPv4, multicast.ScopeLocal))
	ext := MustParse(string(must(os.ReadFile("testdata/rfc4570-ssm-layered.sdp"))))
	s, err := m.Import(ext)
	if err != nil {
		t.Fatal(err)
	}
	id := s.Origin.SessionID
	if _, _, err := m.AddStream(id, MediaSpec{Kind: "audio"}); !errors.Is(err, ErrNotModifiable) {
		t.Fatalf("AddStream on an imported session = %v, want ErrNotModifiable", err)
	}
	if _, err := m.RemoveStream(id, 0); !errors.Is(err, ErrNotModifiable) {
		t.Fatalf("RemoveStream on an imported session = %v", err)
	}
	if _, err := m.Import(ext); err == nil {
		t.Fatal("the same session imported twice")
	}
	if l := m.List(); len(l) != 1 || !l[0].External {
		t.Fatalf("List = %+v", l)
	}
	if err := m.Delete(id); err != nil {
		t.Fatal(err)
	}
}

// TestRenewLeases: a session without a stop time keeps its groups past the
// default lease; one with a stop time is renewed up to it only.
func TestRenewLeases(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	local := scope(t, multicast.IPv4, multicast.ScopeLocal)
	a, err := multicast.NewAllocator(multicast.Config{Pools: []multicast.Pool{local}, Now: clock, DefaultLease: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewManager(ManagerConfig{Allocator: a, Origin: netip.MustParseAddr("192.0.2.1"), Now: clock})
	forever, err := m.Create(SessionSpec{Name: "series", Pool: local.Name, Media: []MediaSpec{{Kind: "audio"}}})
	if err != nil {
		t.Fatal(err)
	}
	stop := now.Add(30 * time.Hour)
	short, err := m.Create(SessionSpec{Name: "talk", Pool: local.Name, Stop: stop, Media: []MediaSpec{{Kind: "audio"}}})
	if err != nil {
		t.Fatal(err)
	}
	g1, g2 := forever.Media[0].Connection.Addr, short.Media[0].Connection.Addr
	for day := 0; day < 40; day++ { // forty days, renewing every ten minutes would; hourly is enough here
		for range 24 {
			now = now.Add(time.Hour)
			if _, err := m.RenewLeases(24 * time.Hour); err != nil {
				t.Fatal(err)
			}
			a.Expire()
		}
		if _, ok := a.Lease(g1); !ok {
			t.Fatalf("day %d: the open-ended session lost its group", day)
		}
	}
	if _, ok := a.Lease(g2); ok {
		t.Fatal("the session that stopped kept its group")
	}
	if l, _ := m.Leases(forever.Origin.SessionID); len(l) != 1 || !l[0].End.After(now) {
		t.Fatalf("the manager's copy of the lease: %+v", l)
	}
}

// TestManagerSessionIDsNeverReused: sessions created and deleted within
// one second each get their own ID (RFC 8866 §5.2), and so does one after
// a restore.
func TestManagerSessionIDsNeverReused(t *testing.T) {
	pool := scope(t, multicast.IPv4, multicast.ScopeLocal)
	m, _ := newManager(t, pool)
	now := time.Unix(1_800_000_000, 0)
	m.cfg.Now = func() time.Time { return now }
	seen := map[uint64]bool{}
	for range 5 {
		s, err := m.Create(SessionSpec{Name: "x", Pool: pool.Name, Media: []MediaSpec{{Kind: "audio"}}})
		if err != nil {
			t.Fatal(err)
		}
		if seen[s.Origin.SessionID] {
			t.Fatalf("session ID %d given out twice", s.Origin.SessionID)
		}
		seen[s.Origin.SessionID] = true
		saved, _ := m.Save(s.Origin.SessionID)
		if err := m.Delete(s.Origin.SessionID); err != nil {
			t.Fatal(err)
		}
		// A restored session counts too.
		m2, _ := newManager(t, pool)
		m2.cfg.Now = m.cfg.Now
		if _, err := m2.Restore(saved, nil); err != nil {
			t.Fatal(err)
		}
		s2, err := m2.Create(SessionSpec{Name: "y", Pool: pool.Name, Media: []MediaSpec{{Kind: "audio"}}})
		if err != nil || s2.Origin.SessionID <= s.Origin.SessionID {
			t.Fatalf("after restoring %d, Create gave %d (%v)", s.Origin.SessionID, s2.Origin.SessionID, err)
		}
	}
}

// TestManagerAddStreamMustRestore: a stream that would make the
// description too large to read back is refused and leases nothing.
func TestManagerAddStreamMustRestore(t *testing.T) {
	pool := scope(t, multicast.IPv4, multicast.ScopeLocal)
	m, a := newManager(t, pool)
	s, err := m.Create(SessionSpec{Name: "big", Pool: pool.Name, Media: []MediaSpec{{Kind: "audio"}}})
	if err != nil {
		t.Fatal(err)
	}
	var last *Session
	for i := 0; ; i++ {
		next, _, err := m.AddStream(s.Origin.SessionID, MediaSpec{Kind: "audio"})
		if err != nil {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "restart") && !strings.Contains(err.Error(), "bytes") {
				t.Fatalf("stream %d refused with %v, want ErrInvalid naming the size", i, err)
			}
			break
		}
		if i > 2000 {
			t.Fatal("2,000 streams added and none refused")
		}
		last = next
	}
	got, _ := m.Get(s.Origin.SessionID)
	if got.Origin.Version != last.Origin.Version || len(got.Media) != len(last.Media) {
		t.Fatalf("the refused stream changed the session: version %d, %d streams; want %d, %d",
			got.Origin.Version, len(got.Media), last.Origin.Version, len(last.Media))
	}
	if n := len(a.Leases()); n != len(got.Media) {
		t.Fatalf("%d leases for %d streams", n, len(got.Media))
	}
	saved, _ := m.Save(s.Origin.SessionID)
	if _, err := Parse(saved.SDP); err != nil {
		t.Fatalf("the saved description does not read back: %v", err)
	}
}

// TestRestoreKeepsRetiringGroups: after a restart, a removed stream's
// group that is still leased, and a lease of the session the saved
// description does not name (taken for a change that never reached it),
// are kept for Settle to decide from the restored participants, which
// releases them once nothing uses them.
func TestRestoreKeepsRetiringGroups(t *testing.T) {
	local := scope(t, multicast.IPv4, multicast.ScopeLocal)
	m, a := newManager(t, local)
	s, err := m.Create(SessionSpec{Name: "lecture", Pool: local.Name, Media: []MediaSpec{{Kind: "audio"}, {Kind: "video"}}})
	if err != nil {
		t.Fatal(err)
	}
	id := s.Origin.SessionID
	old := s.Media[1].Connection.Addr
	if _, err := m.RemoveStream(id, 1); err != nil {
		t.Fatal(err)
	}
	saved, err := m.Save(id)
	if err != nil {
		t.Fatal(err)
	}
	// A lease taken for a change the saved description never had.
	stray, err := a.Allocate(multicast.Request{Pool: local.Name, Owner: fmt.Sprintf("session %d", id)})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := NewManager(ManagerConfig{Allocator: a, Origin: netip.MustParseAddr("192.0.2.1")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Restore(saved, a.Leases()); err != nil {
		t.Fatal(err)
	}
	for _, g := range []netip.Addr{old, stray.Group} {
		if _, ok := a.Lease(g); !ok {
			t.Fatalf("Restore released %v before anyone could say it is in use", g)
		}
	}
	if left, err := m2.Settle(id, func(g netip.Addr) bool { return g == old }); err != nil || left != 1 {
		t.Fatalf("Settle = %d, %v; want the group in use kept", left, err)
	}
	if _, ok := a.Lease(stray.Group); ok {
		t.Fatal("the lease nothing uses is still held")
	}
	if left, err := m2.Settle(id, nil); err != nil || left != 0 {
		t.Fatalf("Settle = %d, %v", left, err)
	}
	if _, ok := a.Lease(old); ok {
		t.Fatal("the group no one uses is still leased")
	}
}

// TestAddStreamSkipsRetiringSlot: a removed stream's m= slot is reused by
// a new stream only once its group is released; until then a
// participant may still have that stream (RFC 3264 §8).
func TestAddStreamSkipsRetiringSlot(t *testing.T) {
	local := scope(t, multicast.IPv4, multicast.ScopeLocal)
	m, _ := newManager(t, local)
	s, err := m.Create(SessionSpec{Name: "lecture", Pool: local.Name, Media: []MediaSpec{{Kind: "audio"}, {Kind: "video"}}})
	if err != nil {
		t.Fatal(err)
	}
	id := s.Origin.SessionID
	if _, err := m.RemoveStream(id, 1); err != nil {
		t.Fatal(err)
	}
	if _, i, err := m.AddStream(id, MediaSpec{Kind: "text"}); err != nil || i != 2 {
		t.Fatalf("AddStream while slot 1's group retires: slot %d, %v; want a new slot, 2", i, err)
	}
	if _, err := m.Settle(id, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m.RemoveStream(id, 2); err != nil {
		t.Fatal(err)
	}
	if _, i, err := m.AddStream(id, MediaSpec{Kind: "text"}); err != nil || i != 1 {
		t.Fatalf("AddStream once slot 1's group is released: slot %d, %v; want 1", i, err)
	}
}

// TestManagerWatch: a watcher hears of every change to a session, after
// it is made (so Get sees it), and nothing once stopped.
func TestManagerWatch(t *testing.T) {
	local := scope(t, multicast.IPv4, multicast.ScopeLocal)
	m, _ := newManager(t, local)
	var got []string
	stop := m.Watch(func(id uint64) {
		s, err := m.Get(id)
		if err != nil {
			got = append(got, "gone")
			return
		}
		got = append(got, fmt.Sprint(s.Origin.Version))
	})
	s, err := m.Create(SessionSpec{Name: "lecture", Pool: local.Name, Media: []MediaSpec{{Kind: "audio"}}})
	if err != nil {
		t.Fatal(err)
	}
	id := s.Origin.SessionID
	m.AddStream(id, MediaSpec{Kind: "video"})
	m.SetDirection(id, 1, SendRecv)
	m.RemoveStream(id, 1)
	m.RemoveStream(id, 1) // refused: no change, nothing heard
	m.Delete(id)
	stop()
	if _, err := m.Create(SessionSpec{Name: "after", Pool: local.Name, Media: []MediaSpec{{Kind: "audio"}}}); err != nil {
		t.Fatal(err)
	}
	if want := "1 2 3 4 gone"; strings.Join(got, " ") != want {
		t.Fatalf("heard %q, want %q", strings.Join(got, " "), want)
	}
}

// TestImportSameOrigin: ffmpeg writes o=- 0 0 IN IP4 <its address> for
// every session it sends. Two such sessions, with other groups, are both
// held, the second by an ID of the Manager's own, with their o= lines as
// written; the same description again is refused; each comes back by its
// ID after a restart.
func TestImportSameOrigin(t *testing.T) {
	m, a := newManager(t)
	ffmpeg := func(group string, port int) *Session {
		return MustParse(fmt.Sprintf("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 %s/1\r\nt=0 0\r\na=tool:libavformat 61.7.100\r\nm=audio %d RTP/AVP 97\r\nb=AS:128\r\na=rtpmap:97 opus/48000/2\r\n", group, port))
	}
	id1, _, err := m.ImportSession(ffmpeg("239.255.10.1", 5004))
	if err != nil || id1 != 0 {
		t.Fatalf("first: %d %v, want ID 0 (its o=)", id1, err)
	}
	id2, d2, err := m.ImportSession(ffmpeg("239.255.10.2", 5004))
	if err != nil || id2 < firstImportID || d2.Origin.SessionID != 0 {
		t.Fatalf("second: ID %d, o= %d, %v", id2, d2.Origin.SessionID, err)
	}
	if _, _, err := m.ImportSession(ffmpeg("239.255.10.2", 5004)); !errors.Is(err, ErrSessionExists) {
		t.Fatalf("the second again: %v, want ErrSessionExists", err)
	}
	id3, _, err := m.ImportSession(ffmpeg("239.255.10.2", 5006)) // another port: another stream
	if err != nil || id3 == id2 || id3 < firstImportID {
		t.Fatalf("third: %d %v", id3, err)
	}
	var saved []Saved
	for _, id := range []uint64{id1, id2, id3} {
		s, err := m.Save(id)
		if err != nil {
			t.Fatal(err)
		}
		saved = append(saved, s)
	}
	m2, err := NewManager(ManagerConfig{Allocator: a, Origin: netip.MustParseAddr("192.0.2.1")})
	if err != nil {
		t.Fatal(err)
	}
	descs, errs := m2.RestoreAll(saved)
	for i, id := range []uint64{id1, id2, id3} {
		if errs[i] != nil || saved[i].IDOf(descs[i]) != id {
			t.Fatalf("restore %d: %v, ID %d, want %d", i, errs[i], saved[i].IDOf(descs[i]), id)
		}
		d, err := m2.Get(id)
		if err != nil || !m2.External(id) || d.Origin.SessionID != 0 {
			t.Fatalf("after the restart, %d: %v %v", id, d, err)
		}
	}
}

// TestImportCopyOfOwnSession: a copy of one of mcc's own descriptions
// (mcc session sdp, or its own SAP announcement heard back) is that
// session: refused. An imported session restored under an o= ID that is
// also the owner of mcc's own leases takes none of them. A description
// imported again after the one held at its o= ID went is still refused.
func TestImportCopyOfOwnSession(t *testing.T) {
	local := scope(t, multicast.IPv4, multicast.ScopeLocal)
	m, a := newManager(t, local)
	own, err := m.Create(SessionSpec{Name: "lecture", Pool: local.Name, Media: []MediaSpec{{Kind: "audio"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.ImportSession(own.Clone()); !errors.Is(err, ErrSessionExists) {
		t.Fatalf("import of mcc's own description: %v, want ErrSessionExists", err)
	}
	// As read back from its text (mcc session sdp | mcc session import -).
	if _, _, err := m.ImportSession(MustParse(string(must(own.Marshal())))); !errors.Is(err, ErrSessionExists) {
		t.Fatalf("import of mcc's own description, parsed: %v, want ErrSessionExists", err)
	}
	// Another tool's session that took its ID from the same second of the
	// clock (PipeWire writes o=root <NTP seconds> 0 IN IP4 ...) is another
	// session: imported under an ID of the Manager's own.
	other := own.Clone()
	other.Origin.Username, other.Origin.Addr = "root", netip.MustParseAddr("10.98.0.2")
	other.Media[0].Connection = &Connection{Addr: netip.MustParseAddr("239.255.55.1"), TTL: 1}
	if id, _, err := m.ImportSession(other); err != nil || id < firstImportID {
		t.Fatalf("another tool's session with mcc's ID: %d, %v", id, err)
	} else if err := m.Delete(id); err != nil {
		t.Fatal(err)
	}
	// A saved external whose o= ID is the own session's: it takes no lease.
	ext := own.Clone()
	ext.Origin.Username = "someone"
	saved := []Saved{{ID: firstImportID + 7, SDP: must(ext.Marshal()), External: true}}
	ownSaved, _ := m.Save(own.Origin.SessionID)
	m2, _ := NewManager(ManagerConfig{Allocator: a, Origin: netip.MustParseAddr("192.0.2.1")})
	if _, errs := m2.RestoreAll(append(saved, ownSaved)); errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if ls, _ := m2.Leases(firstImportID + 7); len(ls) != 0 {
		t.Fatalf("the restored external holds %v", ls)
	}
	if err := m2.Delete(firstImportID + 7); err != nil {
		t.Fatal(err)
	}
	if ls, _ := m2.Leases(own.Origin.SessionID); len(ls) != 1 || len(a.Leases()) != 1 {
		t.Fatalf("mcc's own session after the external's delete: %v, %d leases", ls, len(a.Leases()))
	}
	// Held at 0 and at 2^52: the first goes, the second is imported again.
	ff := func(g string) *Session {
		return MustParse("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 " + g + "/1\r\nt=0 0\r\nm=audio 5004 RTP/AVP 97\r\na=rtpmap:97 opus/48000/2\r\n")
	}
	id0, _, _ := m.ImportSession(ff("239.255.40.1"))
	if _, _, err := m.ImportSession(ff("239.255.40.2")); err != nil {
		t.Fatal(err)
	}
	m.Delete(id0)
	if _, _, err := m.ImportSession(ff("239.255.40.2")); !errors.Is(err, ErrSessionExists) {
		t.Fatalf("the second imported again: %v, want ErrSessionExists", err)
	}
}

// TestRestoreKeepsAnnounceProfiles: the SAP profiles a session was made
// with survive a restart, through the JSON the daemon stores.
func TestRestoreKeepsAnnounceProfiles(t *testing.T) {
	local := scope(t, multicast.IPv4, multicast.ScopeLocal)
	m, a := newManager(t, local)
	s, err := m.Create(SessionSpec{Name: "stage", Pool: local.Name, Media: []MediaSpec{{Kind: "audio"}}, Announce: []string{"pulseaudio", "aes67"}})
	if err != nil {
		t.Fatal(err)
	}
	id := s.Origin.SessionID
	plain, err := m.Create(SessionSpec{Name: "plain", Pool: local.Name, Media: []MediaSpec{{Kind: "audio"}}})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := NewManager(ManagerConfig{Allocator: a, Origin: netip.MustParseAddr("192.0.2.1")})
	if err != nil {
		t.Fatal(err)
	}
	for _, sid := range []uint64{id, plain.Origin.SessionID} {
		saved, err := m.Save(sid)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(saved)
		if err != nil {
			t.Fatal(err)
		}
		var back Saved
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if _, err := m2.Restore(back, a.Leases()); err != nil {
			t.Fatal(err)
		}
	}
	if got := m2.Announce(id); !slices.Equal(got, []string{"pulseaudio", "aes67"}) {
		t.Fatalf("restored profiles %q", got)
	}
	if got := m2.Announce(plain.Origin.SessionID); got != nil {
		t.Fatalf("a session made without profiles came back with %q", got)
	}
	if _, err := m.Create(SessionSpec{Name: "bad", Pool: local.Name, Media: []MediaSpec{{Kind: "audio"}}, Announce: []string{"a\r\nb"}}); err == nil {
		t.Fatal("a profile name with CRLF was taken")
	}
}

// TestReplaceExternal: an announcer's new description of an imported
// session keeps each stream in its slot (RFC 3264 §8), the ones it
// dropped at port 0; the same text again is no change; another session's
// is refused; mcc counts the version itself.
func TestReplaceExternal(t *testing.T) {
	local := scope(t, multicast.IPv4, multicast.ScopeLocal)
	m, _ := newManager(t, local)
	head := "v=0\r\no=- 0 0 IN IP4 192.0.2.9\r\ns=Relay\r\nt=0 0\r\n"
	audio := "m=audio 5004 RTP/AVP 0\r\nc=IN IP4 239.255.9.1/8\r\n"
	video := "m=video 5006 RTP/AVP 96\r\nc=IN IP4 239.255.9.2/8\r\na=rtpmap:96 H264/90000\r\n"
	id, _, err := m.ImportSession(MustParse(head + audio + video))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReplaceExternal(id, MustParse(head+audio+video)); !errors.Is(err, ErrUnchanged) {
		t.Fatalf("the same text: %v, want ErrUnchanged", err)
	}
	// The audio dropped: the video stays in its slot, the audio at port 0.
	s, err := m.ReplaceExternal(id, MustParse(head+video))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Media) != 2 || s.Media[0].Kind != "audio" || s.Media[0].Port != 0 || s.Media[1].Kind != "video" || s.Media[1].Port != 5006 || s.Origin.Version != 1 {
		t.Fatalf("after the audio went:\n%s", must(s.Marshal()))
	}
	// The audio back on another group, and a text stream: the audio takes
	// its own slot again (same kind, its place), the text comes after.
	text := "m=text 5008 RTP/AVP 98\r\nc=IN IP4 239.255.9.4/8\r\na=rtpmap:98 t140/1000\r\n"
	s, err = m.ReplaceExternal(id, MustParse(head+strings.Replace(audio, "239.255.9.1", "239.255.9.3", 1)+video+text))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Media) != 3 || s.Media[0].Connection.Addr.String() != "239.255.9.3" || s.Media[2].Kind != "text" || s.Origin.Version != 2 {
		t.Fatalf("after the audio came back:\n%s", must(s.Marshal()))
	}
	if _, err := m.ReplaceExternal(id, MustParse(strings.Replace(head, "o=- 0 0", "o=- 7 0", 1)+audio)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("another session's description: %v", err)
	}
}

// TestExternalGroupsInUse: the groups of imported sessions are in use for
// the allocator while the Manager holds them, and free once they go.
func TestExternalGroupsInUse(t *testing.T) {
	local := scope(t, multicast.IPv4, multicast.ScopeLocal)
	m, _ := newManager(t, local)
	p := netip.MustParsePrefix("239.255.0.0/16")
	id, _, err := m.ImportSession(MustParse("v=0\r\no=- 3 0 IN IP4 192.0.2.9\r\ns=Relay\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\nc=IN IP4 239.255.9.1/8/2\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.GroupsInUse(p); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("239.255.9.1"), netip.MustParseAddr("239.255.9.2")}) {
		t.Fatalf("in use: %v", got)
	}
	if got := m.GroupsInUse(netip.MustParsePrefix("239.192.0.0/14")); len(got) != 0 {
		t.Fatalf("in another prefix: %v", got)
	}
	if err := m.Delete(id); err != nil {
		t.Fatal(err)
	}
	if got := m.GroupsInUse(p); len(got) != 0 {
		t.Fatalf("after the delete: %v", got)
	}
}

// TestReplaceExternalSlots: a stream that is there still keeps its slot
// even when an earlier slot could take it by position; a stream whose
// group keeps changing reuses disabled slots, so the description does
// not grow; and a stream at port 0 holds no group from the allocator.
func TestReplaceExternalSlots(t *testing.T) {
	local := scope(t, multicast.IPv4, multicast.ScopeLocal)
	m, _ := newManager(t, local)
	head := "v=0\r\no=- 4 0 IN IP4 192.0.2.9\r\ns=Relay\r\nt=0 0\r\n"
	a1 := "m=audio 5004 RTP/AVP 0\r\nc=IN IP4 239.255.9.1/8\r\n"
	a2 := "m=audio 5006 RTP/AVP 0\r\nc=IN IP4 239.255.9.2/8\r\n"
	id, _, err := m.ImportSession(MustParse(head + a1 + a2))
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.ReplaceExternal(id, MustParse(head+a2))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Media) != 2 || s.Media[0].Port != 0 || s.Media[1].Port != 5006 || s.Media[1].Connection.Addr.String() != "239.255.9.2" {
		t.Fatalf("the second stream alone:\n%s", must(s.Marshal()))
	}
	if got := m.GroupsInUse(netip.MustParsePrefix("239.255.0.0/16")); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("239.255.9.2")}) {
		t.Fatalf("in use with the first at port 0: %v", got)
	}
	// A video stream whose group changes at every announcement.
	v := "m=video 5008 RTP/AVP 96\r\nc=IN IP4 239.255.8.%d/8\r\na=rtpmap:96 H264/90000\r\n"
	for i := 1; i <= 20; i++ {
		if s, err = m.ReplaceExternal(id, MustParse(head+a2+fmt.Sprintf(v, i))); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.Media) > 3 {
		t.Fatalf("after 20 changes of group, %d m= lines:\n%s", len(s.Media), must(s.Marshal()))
	}
}
