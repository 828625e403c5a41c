package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"mcc/conference"
	"mcc/multicast"
	"mcc/sdp"
)

func TestAccessOf(t *testing.T) {
	bob := conference.NewHA1("bob", "board", "s3cret")
	for _, tc := range []struct {
		name    string
		in      *AccessRequest
		want    conference.Access
		wantErr string
	}{
		{name: "none", in: nil, want: conference.Access{}},
		{name: "anyone", in: &AccessRequest{Mode: "anyone"}, want: conference.Access{}},
		{name: "anyone from some networks", in: &AccessRequest{Sources: []string{"192.0.2.5/24", "2001:db8::1", "198.51.100.7"}},
			want: conference.Access{Sources: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::1/128"),
				netip.MustParsePrefix("198.51.100.7/32")}}},
		{name: "allow", in: &AccessRequest{Mode: "allow", Allow: []string{"sip:alice@example.org"}, Sources: []string{"10.0.0.0/8"}},
			want: conference.Access{Mode: conference.AllowList, Allow: []string{"sip:alice@example.org"}, Sources: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}},
		{name: "digest: HA1s in the conference's realm", in: &AccessRequest{Mode: "digest", Users: map[string]string{"bob": "s3cret"}},
			want: conference.Access{Mode: conference.Digest, Users: map[string]conference.HA1{"bob": bob}, Realm: "board"}},
		{name: "digest without users", in: &AccessRequest{Mode: "digest"}, wantErr: "digest needs users"},
		{name: "digest, an empty password", in: &AccessRequest{Mode: "digest", Users: map[string]string{"bob": ""}}, wantErr: "empty password"},
		{name: "digest, CRLF in a name", in: &AccessRequest{Mode: "digest", Users: map[string]string{"bob\r\nX: 1": "x"}}, wantErr: "control character"},
		{name: "allow without a list", in: &AccessRequest{Mode: "allow"}, wantErr: "needs allow"},
		{name: "allow, an empty entry", in: &AccessRequest{Mode: "allow", Allow: []string{"sip:a@example.org", " "}}, wantErr: "empty allow entry"},
		{name: "allow, CRLF in an entry", in: &AccessRequest{Mode: "allow", Allow: []string{"example.org\r\nX: 1"}}, wantErr: "control character"},
		{name: "allow, a bidi override", in: &AccessRequest{Mode: "allow", Allow: []string{"gro.elpmaxe\u202e"}}, wantErr: "bidirectional"},
		{name: "allow, an entry too long", in: &AccessRequest{Mode: "allow", Allow: []string{strings.Repeat("a", maxURI+1)}}, wantErr: "more than 1024"},
		{name: "allow, too many entries", in: &AccessRequest{Mode: "allow", Allow: slices.Repeat([]string{"example.org"}, maxEntries+1)}, wantErr: "allow entries, more than"},
		{name: "digest, a name too long", in: &AccessRequest{Mode: "digest", Users: map[string]string{strings.Repeat("b", maxID+1): "x"}}, wantErr: "more than 256"},
		{name: "digest, a password too long", in: &AccessRequest{Mode: "digest", Users: map[string]string{"bob": strings.Repeat("p", maxSecret+1)}}, wantErr: "more than 1024"},
		{name: "too many sources", in: &AccessRequest{Sources: slices.Repeat([]string{"10.0.0.1"}, maxEntries+1)}, wantErr: "sources, more than"},
		{name: "users with anyone", in: &AccessRequest{Users: map[string]string{"bob": "x"}}, wantErr: "need mode"},
		{name: "unknown mode", in: &AccessRequest{Mode: "password"}, wantErr: "want anyone, allow or digest"},
		{name: "a bad source", in: &AccessRequest{Sources: []string{"example.org"}}, wantErr: `source "example.org"`},
		{name: "a source with a zone", in: &AccessRequest{Sources: []string{"fe80::1%eth0"}}, wantErr: "source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := accessOf("board", tc.in)
			if tc.wantErr != "" {
				if _, ok := err.(*badRequest); !ok || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("accessOf = %+v, %v; want a bad request with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(got)
			w, _ := json.Marshal(tc.want)
			if !bytes.Equal(a, w) {
				t.Fatalf("accessOf = %s, want %s", a, w)
			}
		})
	}
}

// getRaw returns the body of an authenticated GET.
func getRaw(t *testing.T, cl *Client, path string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", cl.Base+path, nil)
	req.Header.Set("Authorization", "Bearer "+cl.Token)
	res, err := cl.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", path, res.Status, b)
	}
	return b
}

// TestAccessNoSecret: the passwords of a digest conference are neither
// returned by the API nor saved; the record keeps HA1s, and no response
// carries those either.
func TestAccessNoSecret(t *testing.T) {
	ts := newServer(t, nil, newMemStore(), nil)
	ctx := context.Background()
	req := SessionRequest{Name: "board", Media: []string{"audio"},
		Access: &AccessRequest{Mode: "digest", Users: map[string]string{"bob": "s3cret-Pa55"}, Sources: []string{"127.0.0.0/8"}}}
	var created json.RawMessage
	if err := ts.cl.Do(ctx, "POST", "/v1/sessions", req, &created); err != nil {
		t.Fatal(err)
	}
	ha1 := conference.NewHA1("bob", "board", "s3cret-Pa55")
	secrets := []string{"s3cret-Pa55", ha1.MD5, ha1.SHA256}
	bodies := map[string][]byte{"POST /v1/sessions": created}
	for _, path := range []string{"/v1/sessions", "/v1/sessions/board", "/v1/sessions/board/participants"} {
		bodies["GET "+path] = getRaw(t, ts.cl, path)
	}
	for what, b := range bodies {
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s returns a secret (%s): %s", what, s, b)
			}
		}
	}
	ts.store.mu.Lock()
	rec := ts.store.m["c/board"]
	ts.store.mu.Unlock()
	if bytes.Contains(rec, []byte("s3cret")) || !bytes.Contains(rec, []byte(ha1.SHA256)) || !bytes.Contains(rec, []byte(ha1.MD5)) {
		t.Fatalf("the saved record: %s", rec)
	}
	a, err := ts.srv.Controller.AccessOf("board")
	if err != nil || a.Users["bob"] != ha1 || a.Realm != "board" || !slices.Equal(a.Sources, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}) {
		t.Fatalf("AccessOf = %+v, %v", a, err)
	}
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
		// conference.Access as the previous version marshalled it: no tags.
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
	ts := newServer(t, a, store, nil)
	if n, _ := ts.srv.Restore(); n != 3 {
		t.Fatalf("restored %d conferences, want 3", n)
	}
	for _, tc := range []struct {
		conf  string
		want  conference.Access
		clear []string
	}{
		{"board", conference.Access{Mode: conference.Digest, Realm: "board", Users: map[string]conference.HA1{
			"bob": conference.NewHA1("bob", "board", "s3cret"), "alice": conference.NewHA1("alice", "board", "wonder land")}},
			[]string{"s3cret", "wonder land"}},
		{"club", conference.Access{Mode: conference.Digest, Realm: "club-realm", Users: map[string]conference.HA1{
			"carol": conference.NewHA1("carol", "club-realm", "pass word")}}, []string{"pass word"}},
		{"staff", conference.Access{Mode: conference.AllowList, Allow: []string{"sip:alice@example.org"}}, nil},
	} {
		rec := checkRestoredAccess(t, ts, store, tc.conf, tc.want)
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
func checkRestoredAccess(t *testing.T, ts *testServer, store *memStore, conf string, want conference.Access) []byte {
	t.Helper()
	got, err := ts.srv.Controller.AccessOf(conf)
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
