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
