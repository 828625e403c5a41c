package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"mcc/conference"
	"mcc/internal/store"
	"mcc/multicast"
	"mcc/sdp"
)

// TestSessionLeasesNotTheAPIs: the leases of mcc's own sessions (owner
// "session N") cannot be shortened or released through /v1/leases: the
// conference still advertises their groups. They stay as they were; a
// lease of the API's own is renewed and released as before.
func TestSessionLeasesNotTheAPIs(t *testing.T) {
	ts := newServer(t, nil, newMemStore(), nil)
	ctx := context.Background()
	if err := ts.cl.Do(ctx, "POST", "/v1/sessions", SessionRequest{Name: "lecture", Media: []string{"audio"}}, nil); err != nil {
		t.Fatal(err)
	}
	ls := ts.alloc.Leases()
	if len(ls) != 1 || !strings.HasPrefix(ls[0].Owner, "session ") {
		t.Fatalf("leases of the session: %+v", ls)
	}
	own := ls[0]
	var mine []multicast.Lease
	if err := ts.cl.Do(ctx, "POST", "/v1/leases", LeaseRequest{Scope: "local", Owner: "me"}, &mine); err != nil || len(mine) != 1 {
		t.Fatalf("lease: %v %v", mine, err)
	}
	tests := []struct {
		name, method string
		body         any
	}{
		{"shorten", "PATCH", RenewRequest{Lease: "1s"}},
		{"lengthen", "PATCH", RenewRequest{Lease: "48h"}},
		{"release", "DELETE", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ts.cl.Do(ctx, tc.method, "/v1/leases/"+own.Group.String(), tc.body, nil)
			if code(err) != CodeConflict || !strings.Contains(err.Error(), "belongs to") || !strings.Contains(err.Error(), own.Owner) {
				t.Fatalf("%s of a session's lease: %v, want %s naming its owner", tc.method, err, CodeConflict)
			}
			l, ok := ts.alloc.Lease(own.Group)
			if !ok || !l.End.Equal(own.End) || l.Owner != own.Owner {
				t.Fatalf("the session's lease after a refused %s: %+v %v, was %+v", tc.method, l, ok, own)
			}
		})
	}
	var renewed multicast.Lease
	if err := ts.cl.Do(ctx, "PATCH", "/v1/leases/"+mine[0].Group.String(), RenewRequest{Lease: "1h"}, &renewed); err != nil ||
		renewed.End.After(time.Now().Add(time.Hour+time.Minute)) {
		t.Fatalf("renew the API's own lease: %+v %v", renewed, err)
	}
	if err := ts.cl.Do(ctx, "DELETE", "/v1/leases/"+mine[0].Group.String(), nil, nil); err != nil {
		t.Fatalf("release the API's own lease: %v", err)
	}
	if _, ok := ts.alloc.Lease(mine[0].Group); ok {
		t.Fatal("the API's own lease is still there")
	}
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
		want   conference.Access
		logged []string // on a line of the log about this conference
	}{
		{"empty-pass", legacy{2, nil, map[string]string{"bob": "", "alice": "MARKER-alice"}, ""},
			conference.Access{Mode: conference.Digest, Realm: "empty-pass", Users: map[string]conference.HA1{
				"alice": conference.NewHA1("alice", "empty-pass", "MARKER-alice")}}, []string{"user=bob"}},
		{"empty-name", legacy{2, nil, map[string]string{"": "MARKER-nobody", "carol": "MARKER-carol"}, "room"},
			conference.Access{Mode: conference.Digest, Realm: "room", Users: map[string]conference.HA1{
				"carol": conference.NewHA1("carol", "room", "MARKER-carol")}}, []string{`user=""`}},
		{"ctl-name", legacy{2, nil, map[string]string{"eve\r\nX-Evil: 1": "MARKER-eve", "dave": "MARKER-dave"}, ""},
			conference.Access{Mode: conference.Digest, Realm: "ctl-name", Users: map[string]conference.HA1{
				"dave": conference.NewHA1("dave", "ctl-name", "MARKER-dave")}}, []string{"X-Evil: 1"}},
		{"ctl-realm", legacy{2, nil, map[string]string{"frank": "MARKER-frank"}, "club\x01"},
			conference.Access{Mode: conference.Digest, Realm: "ctl-realm", Users: map[string]conference.HA1{
				"frank": conference.NewHA1("frank", "ctl-realm", "MARKER-frank")}}, []string{`realm="club\x01"`}},
		{"none-left", legacy{2, nil, map[string]string{"gina": ""}, ""},
			conference.Access{Mode: conference.Digest, Realm: "none-left", Users: map[string]conference.HA1{}}, []string{"user=gina"}},
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
	ts := newServer(t, a, store, nil)
	var logs bytes.Buffer
	ts.srv.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	if n, _ := ts.srv.Restore(); n != len(tests) {
		t.Fatalf("restored %d conferences, want %d:\n%s", n, len(tests), logs.String())
	}
	if n := len(a.Leases()); n != leases {
		t.Fatalf("%d leases after restore, had %d:\n%s", n, leases, logs.String())
	}
	if strings.Contains(logs.String(), "MARKER") {
		t.Fatalf("the log names a password:\n%s", logs.String())
	}
	for _, tc := range tests {
		rec := checkRestoredAccess(t, ts, store, tc.conf, tc.want)
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
	ts := newServer(t, nil, store, nil)
	if n, _ := ts.srv.Restore(); n != 0 {
		t.Fatalf("restored %d conferences, want 0", n)
	}
	store.mu.Lock()
	rec := store.m["c/lost"]
	store.mu.Unlock()
	var r Record
	if bytes.Contains(rec, []byte("MARKER")) || json.Unmarshal(rec, &r) != nil || r.Access.Users["bob"] != conference.NewHA1("bob", "lost", "MARKER-bob") {
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
	ts := newServerOn(t, a, db)
	if n, _ := ts.srv.Restore(); n != 2 {
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
	if err := ts.cl.Do(context.Background(), "POST", "/v1/sessions", SessionRequest{Name: "after", Media: []string{"audio"}}, nil); err != nil {
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

// newServerOn is newServer on a given store of any kind, such as
// internal/store's.
func newServerOn(t *testing.T, a *multicast.Allocator, st RecordStore) *testServer {
	t.Helper()
	m, ctl := newStack(t, a)
	srv := &Server{Controller: ctl, Manager: m, Allocator: a, Token: "sesame", Store: st}
	t.Cleanup(ctl.OnChange(srv.Save))
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &testServer{cl: &Client{Base: hs.URL, Token: "sesame", HTTP: hs.Client()}, srv: srv, alloc: a}
}
