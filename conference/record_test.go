package conference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"mcc/internal/store"
	"mcc/multicast"
	"mcc/sdp"
)

// newRestored makes a controller on loopback over allocator a (nil: a new
// one) and store st, as mcc serve does before its Restore; log nil
// discards the logs. The test's cleanup closes it.
func newRestored(tb testing.TB, a *multicast.Allocator, st Store, log *slog.Logger) *Controller {
	tb.Helper()
	if a == nil {
		var err error
		if a, err = multicast.NewAllocator(multicast.Config{}); err != nil {
			tb.Fatal(err)
		}
	}
	m, err := sdp.NewManager(sdp.ManagerConfig{Allocator: a, Origin: netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		tb.Fatal(err)
	}
	ctl, err := New(Config{Listeners: []Listener{{Transport: "udp", Addr: "127.0.0.1:0"}}, Manager: m, Store: st, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ctl.Close() })
	return ctl
}

// TestRestoreMigratesPasswords: a record saved by the previous version,
// with clear passwords, comes back with HA1s (in the conference name's
// realm, as the old version used it) and is saved again without them.
func TestRestoreMigratesPasswords(t *testing.T) {
	a, _ := multicast.NewAllocator(multicast.Config{})
	m, _ := sdp.NewManager(sdp.ManagerConfig{Allocator: a, Origin: netip.MustParseAddr("127.0.0.1")})
	desc, err := m.Create(sdp.SessionSpec{Name: "board", Pool: "ipv4-local", Media: []sdp.MediaSpec{{Kind: "audio"}}})
	if err != nil {
		t.Fatal(err)
	}
	saved, err := m.Save(desc.Origin.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	session, _ := json.Marshal(saved)
	store := newMemStore()
	for _, tc := range []struct{ name, access string }{
		// Access as the previous version marshalled it: no tags.
		{"board", `{"Mode":2,"Allow":null,"Users":{"bob":"s3cret","alice":"wonder land"},"Realm":""}`},
		{"club", `{"Mode":2,"Allow":null,"Users":{"carol":"pass word"},"Realm":"club-realm"}`},
		{"staff", `{"Mode":1,"Allow":["sip:alice@example.org"],"Users":null,"Realm":""}`},
	} {
		sess := session
		if tc.name != "board" {
			d, _ := m.Create(sdp.SessionSpec{Name: tc.name, Pool: "ipv4-local", Media: []sdp.MediaSpec{{Kind: "audio"}}})
			s, _ := m.Save(d.Origin.SessionID)
			sess, _ = json.Marshal(s)
		}
		store.m["c/"+tc.name] = []byte(`{"name":"` + tc.name + `","session_id":1,"access":` + tc.access + `,"session":` + string(sess) + `}`)
	}
	ctl := newRestored(t, a, store, nil)
	if n, _, err := ctl.Restore(); err != nil || n != 3 {
		t.Fatalf("restored %d conferences, want 3", n)
	}
	for _, tc := range []struct {
		conf  string
		want  Access
		clear []string
	}{
		{"board", Access{Mode: Digest, Realm: "board", Users: map[string]HA1{
			"bob": NewHA1("bob", "board", "s3cret"), "alice": NewHA1("alice", "board", "wonder land")}},
			[]string{"s3cret", "wonder land"}},
		{"club", Access{Mode: Digest, Realm: "club-realm", Users: map[string]HA1{
			"carol": NewHA1("carol", "club-realm", "pass word")}}, []string{"pass word"}},
		{"staff", Access{Mode: AllowList, Allow: []string{"sip:alice@example.org"}}, nil},
	} {
		rec := checkRestoredAccess(t, ctl, store, tc.conf, tc.want)
		for _, s := range tc.clear {
			if bytes.Contains(rec, []byte(s)) {
				t.Errorf("%s: the record still holds a password: %s", tc.conf, rec)
			}
		}
		// What was saved again reads back as it is, with nothing to migrate.
		var r Record
		if err := json.Unmarshal(rec, &r); err != nil || r.migrated {
			t.Errorf("%s: re-read record: migrated %v, %v", tc.conf, r.migrated, err)
		}
		if g2, w, _ := jsonPair(r.Access, tc.want); !bytes.Equal(g2, w) {
			t.Errorf("%s: re-read access %s, want %s", tc.conf, g2, w)
		}
	}
}

// checkRestoredAccess checks that conference conf came back with access
// want, and returns its record as the store holds it.
func checkRestoredAccess(t *testing.T, ctl *Controller, store *memStore, conf string, want Access) []byte {
	t.Helper()
	got, err := ctl.AccessOf(conf)
	g, w, _ := jsonPair(got, want)
	if err != nil || !bytes.Equal(g, w) {
		t.Errorf("%s after restore: %s, %v; want %s", conf, g, err, w)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	return store.m["c/"+conf]
}

// jsonPair marshals a and b, to compare them.
func jsonPair(a, b any) ([]byte, []byte, error) {
	x, err := json.Marshal(a)
	if err != nil {
		return nil, nil, err
	}
	y, err := json.Marshal(b)
	return x, y, err
}

// TestRestoreMigratesOddPasswords: records the previous version accepted
// but HashPasswords refuses (an empty password or user name, a control
// character in a user name or in the realm) still come back: what can be
// hashed is, the users that cannot be are dropped and logged without
// their passwords, a realm that cannot be used becomes the conference
// name, and every record is saved again without a clear password. The
// sessions keep their leases.
func TestRestoreMigratesOddPasswords(t *testing.T) {
	a, _ := multicast.NewAllocator(multicast.Config{})
	m, _ := sdp.NewManager(sdp.ManagerConfig{Allocator: a, Origin: netip.MustParseAddr("127.0.0.1")})
	store := newMemStore()
	type legacy struct {
		Mode  int
		Allow []string
		Users map[string]string
		Realm string
	}
	tests := []struct {
		conf   string
		old    legacy
		want   Access
		logged []string // on a line of the log about this conference
	}{
		{"empty-pass", legacy{2, nil, map[string]string{"bob": "", "alice": "MARKER-alice"}, ""},
			Access{Mode: Digest, Realm: "empty-pass", Users: map[string]HA1{
				"alice": NewHA1("alice", "empty-pass", "MARKER-alice")}}, []string{"user=bob"}},
		{"empty-name", legacy{2, nil, map[string]string{"": "MARKER-nobody", "carol": "MARKER-carol"}, "room"},
			Access{Mode: Digest, Realm: "room", Users: map[string]HA1{
				"carol": NewHA1("carol", "room", "MARKER-carol")}}, []string{`user=""`}},
		{"ctl-name", legacy{2, nil, map[string]string{"eve\r\nX-Evil: 1": "MARKER-eve", "dave": "MARKER-dave"}, ""},
			Access{Mode: Digest, Realm: "ctl-name", Users: map[string]HA1{
				"dave": NewHA1("dave", "ctl-name", "MARKER-dave")}}, []string{"X-Evil: 1"}},
		{"ctl-realm", legacy{2, nil, map[string]string{"frank": "MARKER-frank"}, "club\x01"},
			Access{Mode: Digest, Realm: "ctl-realm", Users: map[string]HA1{
				"frank": NewHA1("frank", "ctl-realm", "MARKER-frank")}}, []string{`realm="club\x01"`}},
		{"none-left", legacy{2, nil, map[string]string{"gina": ""}, ""},
			Access{Mode: Digest, Realm: "none-left", Users: map[string]HA1{}}, []string{"user=gina"}},
	}
	for _, tc := range tests {
		d, err := m.Create(sdp.SessionSpec{Name: tc.conf, Pool: "ipv4-local", Media: []sdp.MediaSpec{{Kind: "audio"}}})
		if err != nil {
			t.Fatal(err)
		}
		s, _ := m.Save(d.Origin.SessionID)
		sess, _ := json.Marshal(s)
		acc, _ := json.Marshal(tc.old)
		store.m["c/"+tc.conf] = []byte(`{"name":"` + tc.conf + `","session_id":1,"access":` + string(acc) + `,"session":` + string(sess) + `}`)
	}
	leases := len(a.Leases())
	var logs bytes.Buffer
	ctl := newRestored(t, a, store, slog.New(slog.NewTextHandler(&logs, nil)))
	if n, _, err := ctl.Restore(); err != nil || n != len(tests) {
		t.Fatalf("restored %d conferences, want %d:\n%s", n, len(tests), logs.String())
	}
	if n := len(a.Leases()); n != leases {
		t.Fatalf("%d leases after restore, had %d:\n%s", n, leases, logs.String())
	}
	if strings.Contains(logs.String(), "MARKER") {
		t.Fatalf("the log names a password:\n%s", logs.String())
	}
	for _, tc := range tests {
		rec := checkRestoredAccess(t, ctl, store, tc.conf, tc.want)
		if bytes.Contains(rec, []byte("MARKER")) {
			t.Errorf("%s: the record still holds a password: %s", tc.conf, rec)
		}
		var r Record
		if err := json.Unmarshal(rec, &r); err != nil || r.migrated {
			t.Errorf("%s: re-read record: migrated %v, %v", tc.conf, r.migrated, err)
		}
		for _, want := range tc.logged {
			found := false
			for _, line := range strings.Split(logs.String(), "\n") {
				found = found || strings.Contains(line, want) && strings.Contains(line, "level=WARN") && strings.Contains(line, "conference="+tc.conf)
			}
			if !found {
				t.Errorf("%s: no warning with %s:\n%s", tc.conf, want, logs.String())
			}
		}
	}
}

// TestRestoreSavesMigratedUnrestored: a migrated record whose conference
// cannot come back (its session does not restore) is still saved again
// without its passwords.
func TestRestoreSavesMigratedUnrestored(t *testing.T) {
	store := newMemStore()
	store.m["c/lost"] = []byte(`{"name":"lost","session_id":1,"access":{"Mode":2,"Users":{"bob":"MARKER-bob"}},"session":{}}`)
	ctl := newRestored(t, nil, store, nil)
	if n, _, err := ctl.Restore(); err != nil || n != 0 {
		t.Fatalf("restored %d conferences, want 0", n)
	}
	store.mu.Lock()
	rec := store.m["c/lost"]
	store.mu.Unlock()
	var r Record
	if bytes.Contains(rec, []byte("MARKER")) || json.Unmarshal(rec, &r) != nil || r.Access.Users["bob"] != NewHA1("bob", "lost", "MARKER-bob") {
		t.Fatalf("the record of a conference that did not come back: %s", rec)
	}
}

// TestRestoreCompactsStore: after a restore that migrated records, the
// clear passwords they held are nowhere in the raw database file, not in
// its free pages either; what was restored is still there.
func TestRestoreCompactsStore(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	a, err := multicast.NewAllocator(multicast.Config{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := sdp.NewManager(sdp.ManagerConfig{Allocator: a, Origin: netip.MustParseAddr("127.0.0.1")})
	const marker = "MARKER-7f3a9c"
	for i, name := range []string{"board", "club", "lost"} {
		sess := []byte("{}") // lost: no session, not restored, saved again all the same
		if name != "lost" {
			d, err := m.Create(sdp.SessionSpec{Name: name, Pool: "ipv4-local", Media: []sdp.MediaSpec{{Kind: "audio"}}})
			if err != nil {
				t.Fatal(err)
			}
			s, _ := m.Save(d.Origin.SessionID)
			sess, _ = json.Marshal(s)
		}
		acc := fmt.Sprintf(`{"Mode":2,"Allow":null,"Users":{"bob":"%s-%d","":"%s-empty","eve\r\n":"%s-ctl"},"Realm":""}`, marker, i, marker, marker)
		rec := []byte(`{"name":"` + name + `","session_id":1,"access":` + acc + `,"session":` + string(sess) + `}`)
		if err := db.PutRecord("c/"+name, json.RawMessage(rec)); err != nil {
			t.Fatal(err)
		}
	}
	if raw, _ := os.ReadFile(filepath.Join(dir, store.FileName)); !bytes.Contains(raw, []byte(marker)) {
		t.Fatal("the marker is not in the file before the restore: the test shows nothing")
	}
	leases := a.Leases()
	ctl := newRestored(t, a, db, nil)
	if n, _, err := ctl.Restore(); err != nil || n != 2 {
		t.Fatalf("restored %d conferences, want 2", n)
	}
	raw, err := os.ReadFile(filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.Index(raw, []byte(marker)); i >= 0 {
		t.Fatalf("the raw file still holds a password at byte %d: %q", i, raw[max(0, i-40):min(len(raw), i+40)])
	}
	entries, _ := os.ReadDir(dir)
	entries = slices.DeleteFunc(entries, func(e os.DirEntry) bool { return e.Name() == store.LockName })
	if len(entries) != 1 {
		t.Fatalf("files in the data directory after the restore: %v", entries)
	}
	// The store in use is the compacted file: what it holds is all there,
	// and it takes writes.
	var keys []string
	db.Records(func(k string, v []byte) error { keys = append(keys, k); return nil })
	if len(keys) != 3 {
		t.Fatalf("records after compaction: %v", keys)
	}
	got, err := db.LoadLeases()
	if err != nil || len(got) != len(leases) {
		t.Fatalf("leases after compaction: %d, %v; want %d", len(got), err, len(leases))
	}
	if _, err := ctl.CreateSession("after", sdp.SessionSpec{Name: "after", Pool: "ipv4-local", Media: []sdp.MediaSpec{{Kind: "audio"}}}, Access{}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = store.Open(dir); err != nil {
		t.Fatal(err)
	}
	keys = nil
	db.Records(func(k string, v []byte) error { keys = append(keys, k); return nil })
	if len(keys) != 4 {
		t.Fatalf("records after a reopen: %v", keys)
	}
}

// TestLifecycleRecords: the conference keeps its own record: written at
// its creation, again at each change (the latest version), deleted with
// it, and never written again by a change that races its delete; a
// second delete finds it gone. A restart on the store brings back what is
// left, and releases the deleted ones' leases.
func TestLifecycleRecords(t *testing.T) {
	a, err := multicast.NewAllocator(multicast.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st := newMemStore()
	ctl := newRestored(t, a, st, nil)
	spec := func(name string) sdp.SessionSpec {
		return sdp.SessionSpec{Name: name, Pool: "ipv4-local", Media: []sdp.MediaSpec{{Kind: "audio"}}}
	}
	version := func(name string) uint64 {
		t.Helper()
		b := st.get(conferenceKey(name))
		if b == nil {
			return 0
		}
		var r Record
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		d, err := sdp.Parse(r.Session.SDP)
		if err != nil {
			t.Fatal(err)
		}
		return d.Origin.Version
	}
	if _, err := ctl.CreateSession("kept", spec("kept"), Access{}); err != nil {
		t.Fatal(err)
	}
	ch, err := ctl.AddStream(context.Background(), "kept", sdp.MediaSpec{Kind: "video"})
	if err != nil {
		t.Fatal(err)
	}
	if v := version("kept"); v != ch.Version {
		t.Fatalf("the record holds version %d, the change made %d", v, ch.Version)
	}
	if _, err := ctl.CreateSession("kept", spec("kept"), Access{}); !errors.Is(err, ErrExists) {
		t.Fatalf("a second conference of the name: %v, want ErrExists", err)
	}
	for i := range 20 {
		name := fmt.Sprintf("gone%d", i)
		if _, err := ctl.CreateSession(name, spec(name), Access{}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 3)
		wg.Go(func() { _, errs[0] = ctl.AddStream(context.Background(), name, sdp.MediaSpec{Kind: "video"}) })
		wg.Go(func() { errs[1] = ctl.Delete(context.Background(), name) })
		wg.Go(func() { errs[2] = ctl.Delete(context.Background(), name) })
		wg.Wait()
		if (errs[1] == nil) == (errs[2] == nil) || !errors.Is(errors.Join(errs[1], errs[2]), ErrUnknown) {
			t.Fatalf("two deletes: %v and %v, want one done and one ErrUnknown", errs[1], errs[2])
		}
		if b := st.get(conferenceKey(name)); b != nil {
			t.Fatalf("%s: its record is back after its delete (the change: %v): %s", name, errs[0], b)
		}
	}
	leases := len(a.Leases())
	ctl.Close()
	again := newRestored(t, a, st, nil)
	if nc, _, err := again.Restore(); err != nil || nc != 1 {
		t.Fatalf("restored %d conferences, want 1", nc)
	}
	if n := len(a.Leases()); n != 2 || n != leases {
		t.Fatalf("%d leases after the restart, %d before; want the 2 of kept", n, leases)
	}
}
