package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mcc/conference"
	"mcc/multicast"
	"mcc/multicast/sap"
	"mcc/sdp"
)

// memStore is a conference.Store in memory; fail, when set, makes PutRecord
// fail.
type memStore struct {
	mu   sync.Mutex // guards the fields below
	m    map[string][]byte
	fail error
}

func newMemStore() *memStore { return &memStore{m: map[string][]byte{}} }

func (s *memStore) PutRecord(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.m[key] = b
	return nil
}

func (s *memStore) DeleteRecord(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

func (s *memStore) Records(f func(key string, v []byte) error) error {
	s.mu.Lock()
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = s.m[k]
	}
	s.mu.Unlock()
	for i, k := range keys {
		if err := f(k, vals[i]); err != nil {
			return err
		}
	}
	return nil
}

type testServer struct {
	cl    *Client
	srv   *Server
	alloc *multicast.Allocator
	store *memStore
	m     *sdp.Manager
}

// newServer builds a daemon as mcc serve does (a store, saves on every
// media change), on a given allocator (nil: a new one) so that a second
// one can restore what the first saved.
func newServer(t *testing.T, a *multicast.Allocator, store *memStore, dir *sap.Directory) *testServer {
	t.Helper()
	if a == nil {
		var err error
		if a, err = multicast.NewAllocator(multicast.Config{}); err != nil {
			t.Fatal(err)
		}
	}
	var st conference.Store
	if store != nil {
		st = store
	}
	m, ctl := newStack(t, a, st)
	srv := &Server{Controller: ctl, Allocator: a, Token: "sesame", Directory: dir}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &testServer{cl: &Client{Base: ts.URL, Token: "sesame", HTTP: ts.Client()}, srv: srv, alloc: a, store: store, m: m}
}

// newStack makes the manager over a and a controller on a free loopback
// UDP port that saves to st (nil: nowhere), which the test's cleanup
// closes (closing it before is fine).
func newStack(tb testing.TB, a *multicast.Allocator, st conference.Store) (*sdp.Manager, *conference.Controller) {
	tb.Helper()
	m, err := sdp.NewManager(sdp.ManagerConfig{Allocator: a, Origin: netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		tb.Fatal(err)
	}
	ctl, err := conference.New(conference.Config{Listeners: []conference.Listener{{Transport: "udp", Addr: "127.0.0.1:0"}},
		Manager: m, Store: st, RingTimeout: 2 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ctl.Close() })
	return m, ctl
}

// TestTextRefused: a text that would reach an SDP line or a SIP header
// with a line break, NUL or another control character, or beyond its
// size, is refused with 400 bad_request before anything is leased or
// kept; so are names that are not SIP user parts, or . and ..
func TestTextRefused(t *testing.T) {
	ts := newServer(t, nil, newMemStore(), nil)
	ctx := context.Background()
	if err := ts.cl.Do(ctx, "POST", "/v1/sessions", SessionRequest{Name: "taken", Media: []string{"audio"}}, nil); err != nil {
		t.Fatal(err)
	}
	leases := len(ts.alloc.Leases())
	long := strings.Repeat("i", sdp.MaxText+1)
	audio := []string{"audio"}
	tests := []struct {
		name, method, path string
		body               any
	}{
		{"info CRLF", "POST", "/v1/sessions", SessionRequest{Name: "x", Info: "hi\r\na=sendrecv", Media: audio}},
		{"info LF", "POST", "/v1/sessions", SessionRequest{Name: "x", Info: "hi\nm=video 9 RTP/AVP 96", Media: audio}},
		{"info NUL", "POST", "/v1/sessions", SessionRequest{Name: "x", Info: "hi\x00", Media: audio}},
		{"info ESC", "POST", "/v1/sessions", SessionRequest{Name: "x", Info: "\x1b]0;pwned\x07", Media: audio}},
		{"info too long", "POST", "/v1/sessions", SessionRequest{Name: "x", Info: long, Media: audio}},
		{"info bidi override", "POST", "/v1/sessions", SessionRequest{Name: "x", Info: "talk\u202etxt.exe", Media: audio}},
		{"info line separator", "POST", "/v1/sessions", SessionRequest{Name: "x", Info: "a\u2028m=audio", Media: audio}},
		{"type CRLF", "POST", "/v1/sessions", SessionRequest{Name: "x", Type: "meeting\r\na=recvonly", Media: audio}},
		{"type NUL", "POST", "/v1/sessions", SessionRequest{Name: "x", Type: "\x00", Media: audio}},
		{"media LF", "POST", "/v1/sessions", SessionRequest{Name: "x", Media: []string{"audio\n"}}},
		{"media space", "POST", "/v1/sessions", SessionRequest{Name: "x", Media: []string{"audio 0 RTP/AVP 0"}}},
		{"pool LF", "POST", "/v1/sessions", SessionRequest{Name: "x", Pool: "ipv4-local\r\n", Media: audio}},
		{"pool too long", "POST", "/v1/sessions", SessionRequest{Name: "x", Pool: long, Media: audio}},
		{"name dot", "POST", "/v1/sessions", SessionRequest{Name: ".", Media: audio}},
		{"name dotdot", "POST", "/v1/sessions", SessionRequest{Name: "..", Media: audio}},
		{"name CRLF", "POST", "/v1/sessions", SessionRequest{Name: "a\r\nVia: x", Media: audio}},
		{"name slash", "POST", "/v1/sessions", SessionRequest{Name: "a/b", Media: audio}},
		{"name at", "POST", "/v1/sessions", SessionRequest{Name: "a@evil.example", Media: audio}},
		{"name too long", "POST", "/v1/sessions", SessionRequest{Name: strings.Repeat("n", 65), Media: audio}},
		{"import name dotdot", "POST", "/v1/sessions?name=..", []byte(externalSDP(901))},
		{"import name empty", "POST", "/v1/sessions?name=", []byte(externalSDP(902))},
		{"import control char", "POST", "/v1/sessions?name=imp", []byte(strings.Replace(externalSDP(903), "s=ext", "s=e\x1bxt", 1))},
		{"heard NUL", "POST", "/v1/sessions", SessionRequest{Name: "x", Heard: "a\x00"}},
		{"stream kind LF", "POST", "/v1/sessions/taken/streams", StreamRequest{Kind: "audio\r\nb=AS:1"}},
		{"stream direction", "POST", "/v1/sessions/taken/streams", StreamRequest{Kind: "audio", Direction: "sendrecv\r\n"}},
		{"patch direction", "PATCH", "/v1/sessions/taken/streams/0", StreamRequest{Direction: "both"}},
		{"invite CRLF", "POST", "/v1/sessions/taken/participants", InviteRequest{URIs: []string{"sip:a@127.0.0.1\r\nRoute: <sip:evil>"}}},
		{"invite NUL", "POST", "/v1/sessions/taken/participants", InviteRequest{URIs: []string{"sip:a\x00@127.0.0.1"}}},
		{"invite too long", "POST", "/v1/sessions/taken/participants", InviteRequest{URIs: []string{"sip:" + strings.Repeat("a", maxURI) + "@127.0.0.1"}}},
		{"invite too many", "POST", "/v1/sessions/taken/participants", InviteRequest{URIs: slices.Repeat([]string{"sip:a@127.0.0.1"}, maxURIs+1)}},
		{"lease owner LF", "POST", "/v1/leases", LeaseRequest{Scope: "local", Owner: "me\nyou"}},
		{"lease owner mcc's", "POST", "/v1/leases", LeaseRequest{Scope: "local", Owner: "session 1"}},
		{"lease pool NUL", "POST", "/v1/leases", LeaseRequest{Pool: "ipv4-local\x00"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ts.cl.Do(ctx, tc.method, tc.path, tc.body, nil)
			if code(err) != CodeBadRequest {
				t.Fatalf("%s %s = %v, want %s", tc.method, tc.path, err, CodeBadRequest)
			}
			var list []conference.Info
			if err := ts.cl.Do(ctx, "GET", "/v1/sessions", nil, &list); err != nil || len(list) != 1 {
				t.Fatalf("sessions after a refused request: %+v %v", list, err)
			}
			if n := len(ts.alloc.Leases()); n != leases {
				t.Fatalf("%d leases after a refused request, had %d", n, leases)
			}
			var ps []conference.Participant
			if err := ts.cl.Do(ctx, "GET", "/v1/sessions/taken/participants", nil, &ps); err != nil || len(ps) != 0 {
				t.Fatalf("participants after a refused request: %+v %v", ps, err)
			}
		})
	}
	var b []byte
	if err := ts.cl.Do(ctx, "GET", "/v1/sessions/taken/sdp", nil, &b); err != nil {
		t.Fatal(err)
	}
	if s, err := sdp.Parse(b); err != nil || len(s.Media) != 1 || s.Origin.Version != 1 {
		t.Fatalf("the session changed: %v\n%s", err, b)
	}
}

func externalSDP(id int) string {
	return fmt.Sprintf("v=0\r\no=- %d 1 IN IP4 192.0.2.1\r\ns=ext\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\nc=IN IP4 233.252.0.%d/15\r\n", id, id%250+1)
}

// TestTextAccepted: ordinary text, UTF-8 and tabs among it, goes through
// and is what the session's description says, and what a restart brings
// back.
func TestTextAccepted(t *testing.T) {
	store := newMemStore()
	ts := newServer(t, nil, store, nil)
	ctx := context.Background()
	reqs := []SessionRequest{
		{Name: "seminar-1", Info: "Séminaire — 会议\tsalle 2", Type: "meeting", Media: []string{"audio", "video", "text"}},
		{Name: "a.b_c-D", Info: strings.Repeat("x", sdp.MaxText), Media: []string{"audio"}},
		{Name: "...", Media: []string{"audio"}}, // three dots are no dot segment
	}
	for _, req := range reqs {
		if err := ts.cl.Do(ctx, "POST", "/v1/sessions", req, nil); err != nil {
			t.Fatalf("create %q: %v", req.Name, err)
		}
		var b []byte
		if err := ts.cl.Do(ctx, "GET", "/v1/sessions/"+req.Name+"/sdp", nil, &b); err != nil {
			t.Fatal(err)
		}
		s, err := sdp.Parse(b)
		if err != nil || s.Info != req.Info || s.Name != req.Name || len(s.Media) != len(req.Media) {
			t.Fatalf("%q: description %v\n%s", req.Name, err, b)
		}
	}
	if err := ts.cl.Do(ctx, "DELETE", "/v1/sessions/...", nil, nil); err != nil {
		t.Fatalf("delete ...: %v", err)
	}
	again := newServer(t, ts.alloc, store, nil)
	if nc, _, err := again.srv.Controller.Restore(); err != nil || nc != 2 {
		t.Fatalf("restored %d conferences, want 2", nc)
	}
	for _, req := range reqs[:2] {
		a, _ := ts.srv.Controller.Session(req.Name)
		b, err := again.srv.Controller.Session(req.Name)
		if err != nil || a.String() != b.String() {
			t.Fatalf("%q restored as %v, %v; was %v", req.Name, b, err, a)
		}
	}
}

// TestErrorMapping: every error is in one explicit class; those in none
// are the daemon's failure, 500 internal.
func TestErrorMapping(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{badf("media: name one"), 400, CodeBadRequest},
		{fmt.Errorf("%w: %q", conference.ErrBadName, "."), 400, CodeBadRequest},
		{fmt.Errorf("%w: %q", conference.ErrBadURI, "x"), 400, CodeBadRequest},
		{&sdp.TextError{Field: "information (i=)", Text: "x", Reason: "y"}, 400, CodeBadRequest},
		{fmt.Errorf("import: %w", &sdp.SyntaxError{Line: 1, Err: errors.New("bad")}), 400, CodeBadRequest},
		{fmt.Errorf("sdp: %w %q", multicast.ErrUnknownPool, "p"), 400, CodeBadRequest},
		{fmt.Errorf("%w: %q", conference.ErrExists, "x"), 409, CodeConflict},
		{fmt.Errorf("%w: 7", sdp.ErrSessionExists), 409, CodeConflict},
		{conflictf("lease 239.1.1.1 belongs to session 1 of mcc"), 409, CodeConflict},
		{fmt.Errorf("session 1: %w", sdp.ErrNotModifiable), 409, CodeNotModifiable},
		{fmt.Errorf("%w: %q", conference.ErrUnknown, "x"), 404, CodeNotFound},
		{fmt.Errorf("%w 3", sdp.ErrUnknownSession), 404, CodeNotFound},
		{fmt.Errorf("%w: stream 9", sdp.ErrNoStream), 404, CodeNotFound},
		{fmt.Errorf("release: %w", multicast.ErrNotLeased), 404, CodeNotFound},
		{fmt.Errorf("sdp: lease: %w", multicast.ErrPoolExhausted), 503, CodeUnavailable},
		{conference.ErrClosed, 503, CodeUnavailable},
		{errors.New("bbolt: database not open"), 500, CodeInternal},
		{context.DeadlineExceeded, 500, CodeInternal},
		{fmt.Errorf("multicast: delete leases: %w", os.ErrPermission), 500, CodeInternal},
	}
	for _, tc := range tests {
		if status, code := classify(tc.err); status != tc.status || code != tc.code {
			t.Errorf("classify(%v) = %d %s, want %d %s", tc.err, status, code, tc.status, tc.code)
		}
	}
}

// TestConflicts: a name that exists already is 409 conflict on every path
// that creates a conference (options, import, import of a heard session),
// and so is a second import of the same session under another name.
func TestConflicts(t *testing.T) {
	dir := sap.NewDirectory(sap.DirectoryConfig{})
	pkt := &sap.Packet{Origin: netip.MustParseAddr("192.0.2.1"), Hash: 1, Payload: []byte(externalSDP(7))}
	b, err := pkt.Encode(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.Handle(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("239.255.255.255"), b); err != nil {
		t.Fatal(err)
	}
	heard := dir.List()[0].ID
	ts := newServer(t, nil, newMemStore(), dir)
	ctx := context.Background()
	if err := ts.cl.Do(ctx, "POST", "/v1/sessions", SessionRequest{Name: "taken", Media: []string{"audio"}}, nil); err != nil {
		t.Fatal(err)
	}
	leases := len(ts.alloc.Leases())
	tests := []struct {
		name, path string
		body       any
	}{
		{"create", "/v1/sessions", SessionRequest{Name: "taken", Media: []string{"audio"}}},
		{"import", "/v1/sessions?name=taken", []byte(externalSDP(8))},
		{"heard", "/v1/sessions", SessionRequest{Name: "taken", Heard: heard}},
	}
	for _, tc := range tests {
		if err := ts.cl.Do(ctx, "POST", tc.path, tc.body, nil); code(err) != CodeConflict {
			t.Errorf("%s: %v, want %s", tc.name, err, CodeConflict)
		}
	}
	if err := ts.cl.Do(ctx, "POST", "/v1/sessions", SessionRequest{Name: "heard", Heard: heard}, nil); err != nil {
		t.Fatal(err)
	}
	// The same description again, under another name: its session ID is
	// taken.
	if err := ts.cl.Do(ctx, "POST", "/v1/sessions?name=again", []byte(externalSDP(7)), nil); code(err) != CodeConflict {
		t.Errorf("the same session imported twice: %v, want %s", err, CodeConflict)
	}
	var list []conference.Info
	ts.cl.Do(ctx, "GET", "/v1/sessions", nil, &list)
	if len(list) != 2 || len(ts.alloc.Leases()) != leases {
		t.Fatalf("conflicts changed state: %+v, %d leases (had %d)", list, len(ts.alloc.Leases()), leases)
	}
}

// TestStoreFailureLeavesNothing: when the record of a new conference
// cannot be saved, the request is 500 internal and the conference, its
// session and its leases are gone: a restart would have lost them.
func TestStoreFailureLeavesNothing(t *testing.T) {
	store := newMemStore()
	store.fail = errors.New("disk full")
	ts := newServer(t, nil, store, nil)
	ctx := context.Background()
	err := ts.cl.Do(ctx, "POST", "/v1/sessions", SessionRequest{Name: "lost", Media: []string{"audio", "video"}}, nil)
	if code(err) != CodeInternal || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("create with a failing store: %v, want %s naming the cause", err, CodeInternal)
	}
	err = ts.cl.Do(ctx, "POST", "/v1/sessions?name=lost2", []byte(externalSDP(9)), nil)
	if code(err) != CodeInternal {
		t.Fatalf("import with a failing store: %v, want %s", err, CodeInternal)
	}
	if l := ts.srv.Controller.List(); len(l) != 0 || len(ts.alloc.Leases()) != 0 || len(ts.m.List()) != 0 {
		t.Fatalf("left behind: %d conferences, %d leases, %d sessions", len(l), len(ts.alloc.Leases()), len(ts.m.List()))
	}
	store.mu.Lock()
	store.fail = nil
	store.mu.Unlock()
	if err := ts.cl.Do(ctx, "POST", "/v1/sessions", SessionRequest{Name: "lost", Media: []string{"audio"}}, nil); err != nil {
		t.Fatalf("the name is free again: %v", err)
	}
}

// TestToken: a new token file is 0600 whatever the umask; an existing one
// with group or other bits, or a symbolic link, is refused with what to
// do; a private one is read as it is; an empty one gets a token.
func TestToken(t *testing.T) {
	dir := t.TempDir()
	tok, err := LoadOrCreateToken(dir)
	if err != nil || len(tok) != 48 {
		t.Fatalf("LoadOrCreateToken = %q, %v", tok, err)
	}
	path := filepath.Join(dir, TokenFile)
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("new token file has mode %v, want 0600", fi.Mode().Perm())
	}
	if again, err := LoadOrCreateToken(dir); err != nil || again != tok {
		t.Fatalf("reading it back = %q, %v, want %q", again, err, tok)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o602, 0o666} {
		os.Chmod(path, mode)
		_, err := LoadOrCreateToken(dir)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("mode %04o: %v, want a refusal that says chmod 600 %s", mode, err, path)
		}
		if b, _ := os.ReadFile(path); strings.TrimSpace(string(b)) != tok {
			t.Errorf("mode %04o: the refused file was changed: %q", mode, b)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		os.Chmod(path, mode)
		if got, err := LoadOrCreateToken(dir); err != nil || got != tok {
			t.Errorf("mode %04o: %q, %v, want the token", mode, got, err)
		}
	}
	os.Chmod(path, 0o600)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadOrCreateToken(dir); err != nil || len(got) != 48 || got == tok {
		t.Fatalf("empty file: %q, %v, want a new token", got, err)
	}
	link := t.TempDir()
	os.WriteFile(filepath.Join(link, "elsewhere"), []byte("secret\n"), 0o600)
	os.Symlink(filepath.Join(link, "elsewhere"), filepath.Join(link, TokenFile))
	if _, err := LoadOrCreateToken(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("symbolic link: %v, want a refusal", err)
	}
	// A FIFO in its place is refused at once, not waited on.
	fifo := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(fifo, TokenFile), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := LoadOrCreateToken(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("FIFO: %v, want a refusal", err)
		}
	case <-time.After(10 * time.Second):
		os.WriteFile(filepath.Join(fifo, TokenFile), []byte("x"), 0) // lets the open go on
		t.Fatal("LoadOrCreateToken waits on a FIFO")
	}
	// What cannot travel in an Authorization header, or is too short to
	// be a secret, is refused and left as it is.
	for _, bad := range []string{"short", "has space inside it ok", "tab\there-and-more-than-16", "caf\u00e9-caf\u00e9-caf\u00e9-caf\u00e9", strings.Repeat("a", 300)} {
		b := []byte(bad)
		os.WriteFile(path, b, 0o600)
		if got, err := LoadOrCreateToken(dir); err == nil || !strings.Contains(err.Error(), "remove it for a new token") {
			t.Errorf("token file %q: %q, %v, want a refusal", b, got, err)
		}
		if now, _ := os.ReadFile(path); string(now) != string(b) {
			t.Errorf("token file %q was changed to %q", b, now)
		}
	}
	os.WriteFile(path, []byte("  0123456789abcdef0123  \n"), 0o600)
	if got, err := LoadOrCreateToken(dir); err != nil || got != "0123456789abcdef0123" {
		t.Errorf("a token of the operator's: %q, %v", got, err)
	}
	// A file of another user's: whoever owns it may change the token.
	if os.Geteuid() == 0 {
		if err := os.Chown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if got, err := LoadOrCreateToken(dir); err == nil || !strings.Contains(err.Error(), "belongs to user 65534") {
			t.Errorf("a token file of user 65534: %q, %v, want a refusal", got, err)
		}
	}
}

// TestConcurrentRequests sends 1,000 mixed requests at once: creates
// (unique names and pairs of the same name), deletes racing them, streams
// added, removed and turned, invitations (to a loopback port nobody
// answers), lists. None fails with 500; every change that succeeded is
// visible afterwards, in the live state, in the store and after a
// restore; every lease belongs to exactly one live stream.
func TestConcurrentRequests(t *testing.T) {
	store := newMemStore()
	ts := newServer(t, nil, store, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const bases = 20
	for i := range bases {
		if err := ts.cl.Do(ctx, "POST", "/v1/sessions", SessionRequest{Name: fmt.Sprintf("base-%02d", i), Media: []string{"audio"}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	type op struct {
		kind, conf   string // kind: create, dup, delete, add, remove, patch, invite, list
		method, path string
		body         any
		ok           []int // the statuses that are right
	}
	var ops []op
	for i := range 250 {
		n := fmt.Sprintf("new-%03d", i)
		ops = append(ops, op{"create", n, "POST", "/v1/sessions", SessionRequest{Name: n, Media: []string{"audio"}}, []int{201}})
	}
	for i := range 100 {
		n := fmt.Sprintf("dup-%02d", i/2)
		ops = append(ops, op{"dup", n, "POST", "/v1/sessions", SessionRequest{Name: n, Media: []string{"video"}}, []int{201, 409}})
	}
	for i := range 150 {
		n := fmt.Sprintf("new-%03d", i)
		ops = append(ops, op{"delete", n, "DELETE", "/v1/sessions/" + n, nil, []int{204, 404}})
	}
	for i := range 200 {
		n := fmt.Sprintf("base-%02d", i%bases)
		ops = append(ops, op{"add", n, "POST", "/v1/sessions/" + n + "/streams", StreamRequest{Kind: []string{"audio", "video", "text"}[i%3]}, []int{200, 202}})
	}
	for i := range 100 {
		n := fmt.Sprintf("base-%02d", i%bases)
		ops = append(ops, op{"remove", n, "DELETE", fmt.Sprintf("/v1/sessions/%s/streams/%d", n, i%3), nil, []int{200, 202, 404}})
	}
	for i := range 50 {
		n := fmt.Sprintf("base-%02d", i%bases)
		ops = append(ops, op{"patch", n, "PATCH", fmt.Sprintf("/v1/sessions/%s/streams/%d", n, i%2), StreamRequest{Direction: "sendrecv"}, []int{200, 202, 404}})
	}
	for i := range 50 {
		n := fmt.Sprintf("base-%02d", i%bases)
		ops = append(ops, op{"invite", n, "POST", "/v1/sessions/" + n + "/participants", InviteRequest{URIs: []string{"sip:nobody@127.0.0.1:9"}}, []int{202}})
	}
	for range 100 {
		ops = append(ops, op{"list", "", "GET", "/v1/sessions", nil, []int{200}})
	}
	if len(ops) != 1000 {
		t.Fatalf("%d operations", len(ops))
	}
	// A fixed interleaving of kinds, so that a failure can be run again.
	for i := range ops {
		j := (i * 7919) % len(ops)
		ops[i], ops[j] = ops[j], ops[i]
	}

	type result struct {
		status int
		body   []byte
	}
	results := make([]result, len(ops))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, o := range ops {
		wg.Go(func() {
			var body io.Reader
			if o.body != nil {
				b, _ := json.Marshal(o.body)
				body = strings.NewReader(string(b))
			}
			req, _ := http.NewRequestWithContext(ctx, o.method, ts.cl.Base+o.path, body)
			req.Header.Set("Authorization", "Bearer "+ts.cl.Token)
			req.Header.Set("Content-Type", "application/json")
			<-start
			res, err := ts.cl.HTTP.Do(req)
			if err != nil {
				t.Errorf("%s %s: %v", o.method, o.path, err)
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			results[i] = result{res.StatusCode, b}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	tally := map[string]int{}
	for i, o := range ops {
		tally[fmt.Sprintf("%s %d", o.kind, results[i].status)]++
	}
	t.Logf("outcomes: %v", tally)

	created, deleted := map[string]bool{}, map[string]bool{}
	dups := map[string]int{}
	changes := map[string][]uint64{} // conference: the versions its successful changes returned
	delta := map[string]int{}        // conference: active streams added less removed
	invited := map[string][]string{} // conference: participant IDs
	for i, o := range ops {
		r := results[i]
		if !slices.Contains(o.ok, r.status) {
			t.Errorf("%s %s = %d %s, want one of %v", o.method, o.path, r.status, r.body, o.ok)
			continue
		}
		switch o.kind {
		case "create":
			created[o.conf] = true
		case "dup":
			if r.status == 201 {
				dups[o.conf]++
			}
		case "delete":
			deleted[o.conf] = r.status == 204
		case "add", "remove", "patch":
			if r.status != 200 && r.status != 202 {
				continue
			}
			var ch conference.Change
			if err := json.Unmarshal(r.body, &ch); err != nil {
				t.Fatal(err)
			}
			changes[o.conf] = append(changes[o.conf], ch.Version)
			switch o.kind {
			case "add":
				delta[o.conf]++
			case "remove":
				delta[o.conf]--
			}
		case "invite":
			var ps []conference.Participant
			if err := json.Unmarshal(r.body, &ps); err != nil || len(ps) != 1 {
				t.Fatalf("invite answer %s: %v", r.body, err)
			}
			invited[o.conf] = append(invited[o.conf], ps[0].ID)
		case "list":
			var list []conference.Info
			if err := json.Unmarshal(r.body, &list); err != nil {
				t.Fatalf("list answer: %v", err)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The conferences are exactly those whose creation succeeded and whose
	// deletion did not; one of each pair of the same name.
	want := map[string]bool{}
	for i := range bases {
		want[fmt.Sprintf("base-%02d", i)] = true
	}
	for n := range created {
		if !deleted[n] {
			want[n] = true
		}
	}
	for n := range deleted {
		if deleted[n] && !created[n] {
			t.Errorf("%s deleted but never created", n)
		}
	}
	for i := range 50 {
		n := fmt.Sprintf("dup-%02d", i)
		if dups[n] != 1 {
			t.Errorf("%s created %d times, want once", n, dups[n])
		}
		want[n] = true
	}
	live := map[string]conference.Info{}
	for _, in := range ts.srv.Controller.List() {
		live[in.Name] = in
		if !want[in.Name] {
			t.Errorf("conference %s is live, but no request left it so", in.Name)
		}
	}
	for n := range want {
		if _, ok := live[n]; !ok {
			t.Errorf("conference %s is gone, but no request deleted it", n)
		}
	}

	// Media changes: none lost (the version counts them), none answered
	// twice with one version, and the streams add up.
	leased := map[netip.Addr]string{}
	for n, in := range live {
		desc, err := ts.srv.Controller.Session(n)
		if err != nil {
			t.Fatal(err)
		}
		vs := changes[n]
		slices.Sort(vs)
		if len(slices.Compact(slices.Clone(vs))) != len(vs) {
			t.Errorf("%s: two changes answered with one version: %v", n, vs)
		}
		if desc.Origin.Version != 1+uint64(len(vs)) {
			t.Errorf("%s: version %d after %d changes", n, desc.Origin.Version, len(vs))
		}
		active := 0
		for _, md := range desc.Media {
			if md.Port == 0 {
				continue
			}
			active++
			g := md.Connection.Addr
			if other, dup := leased[g]; dup {
				t.Errorf("group %v is in %s and %s", g, other, n)
			}
			leased[g] = n
			l, ok := ts.alloc.Lease(g)
			if !ok || l.Owner != fmt.Sprintf("session %d", in.SessionID) || l.Port != md.Port {
				t.Errorf("%s: stream on %v holds lease %+v (%v)", n, g, l, ok)
			}
		}
		if strings.HasPrefix(n, "base-") && active != 1+delta[n] {
			t.Errorf("%s: %d active streams, want 1 + %d", n, active, delta[n])
		}
		ps, _ := ts.srv.Controller.Participants(n)
		for _, id := range invited[n] {
			if !slices.ContainsFunc(ps, func(p conference.Participant) bool { return p.ID == id }) {
				t.Errorf("%s: invited participant %s is not listed", n, id)
			}
		}
	}
	// A lease that is no live stream's is a removed stream's whose group
	// an invitation still in flight offers (they ring a closed port): its
	// session lives, and holds it as retiring, for settle to release once
	// those invitations end.
	retiring := map[string]map[netip.Addr]bool{}
	for _, in := range live {
		rs := map[netip.Addr]bool{}
		for _, g := range ts.m.Retiring(in.SessionID) {
			rs[g] = true
		}
		retiring[fmt.Sprintf("session %d", in.SessionID)] = rs
	}
	for _, l := range ts.alloc.Leases() {
		if _, ok := leased[l.Group]; !ok && !retiring[l.Owner][l.Group] {
			t.Errorf("lease %+v: neither a live stream's nor a removed stream's its session still retires: orphaned", l)
		}
	}

	// The store holds each live conference as it is now.
	records := map[string]conference.Record{}
	store.Records(func(key string, v []byte) error {
		var r conference.Record
		if err := json.Unmarshal(v, &r); err != nil {
			t.Fatalf("record %s: %v", key, err)
		}
		records[r.Name] = r
		return nil
	})
	if len(records) != len(live) {
		t.Errorf("%d records for %d conferences", len(records), len(live))
	}
	for n, in := range live {
		r, ok := records[n]
		if !ok {
			t.Errorf("%s has no record", n)
			continue
		}
		saved, err := sdp.Parse(r.Session.SDP)
		if err != nil {
			t.Errorf("%s: record: %v", n, err)
			continue
		}
		if r.SessionID != in.SessionID || saved.Origin.Version != in.Version {
			t.Errorf("%s: record of session %d version %d, live %d version %d", n, r.SessionID, saved.Origin.Version, in.SessionID, in.Version)
		}
	}

	// And a restart brings back the same conferences, releasing no live
	// stream's lease, and those of the removed streams, which no restored
	// participant uses (invitations are not restored).
	again := newServer(t, ts.alloc, store, nil)
	if nc, _, err := again.srv.Controller.Restore(); err != nil || nc != len(live) {
		t.Errorf("restored %d conferences, want %d", nc, len(live))
	}
	for deadline := time.Now().Add(10 * time.Second); len(ts.alloc.Leases()) != len(leased) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	for g, n := range leased {
		if _, ok := ts.alloc.Lease(g); !ok {
			t.Errorf("the restore released %v, a stream of %s", g, n)
		}
	}
	if n := len(ts.alloc.Leases()); n != len(leased) {
		t.Errorf("after the restore, %d leases for %d live streams", n, len(leased))
	}
	for n := range live {
		a, _ := ts.srv.Controller.Session(n)
		b, err := again.srv.Controller.Session(n)
		if err != nil || a.String() != b.String() {
			t.Errorf("%s restored differently: %v\n%v\nwas\n%v", n, err, b, a)
		}
	}
}

// TestImportLiberal: an import of what other tools write (a group without
// a TTL, LF line ends, a proto pion does not know) is taken, with the
// warnings in the answer; the description offered has the TTL written.
func TestImportLiberal(t *testing.T) {
	ts := newServer(t, nil, newMemStore(), nil)
	ts.srv.DefaultTTL = 3
	ctx := context.Background()
	pa := "v=0\no=- 2930 0 IN IP4 192.0.2.9\ns=PulseAudio RTP Stream\nc=IN IP4 224.0.0.56\nt=0 0\nm=audio 46054 RTP/AVP 10\na=rtpmap:10 L16/44100/2\n" +
		"m=application 32416 udp wb\nc=IN IP4 224.2.17.12/127\n"
	var in Imported
	if err := ts.cl.Do(ctx, "POST", "/v1/sessions?name=pa", []byte(pa), &in); err != nil {
		t.Fatal(err)
	}
	if in.Name != "pa" || len(in.Warnings) != 1 || !strings.Contains(in.Warnings[0], "line 4") || !strings.Contains(in.Warnings[0], "TTL 3") {
		t.Fatalf("import: %+v", in)
	}
	var b []byte
	if err := ts.cl.Do(ctx, "GET", "/v1/sessions/pa/sdp", nil, &b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"m=audio 46054 RTP/AVP 10\r\nc=IN IP4 224.0.0.56/3\r\n", "m=application 32416 udp wb\r\nc=IN IP4 224.2.17.12/127\r\n"} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("the description lacks %q:\n%s", want, b)
		}
	}
}

// TestImportTwoFFmpegSessions: two descriptions as ffmpeg writes them,
// with the same o= (o=- 0 0) and other groups, are both imported, offered
// with their o= as written, and both come back after a restart; the same
// one twice is 409.
func TestImportTwoFFmpegSessions(t *testing.T) {
	store := newMemStore()
	ts := newServer(t, nil, store, nil)
	ctx := context.Background()
	ff := func(group string) []byte {
		return []byte("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 " + group + "/1\r\nt=0 0\r\na=tool:libavformat 61.7.100\r\nm=audio 5004 RTP/AVP 97\r\na=rtpmap:97 opus/48000/2\r\n")
	}
	for _, n := range []string{"one", "two"} {
		if err := ts.cl.Do(ctx, "POST", "/v1/sessions?name="+n, ff("239.255.30."+map[string]string{"one": "1", "two": "2"}[n]), nil); err != nil {
			t.Fatalf("import %s: %v", n, err)
		}
	}
	if err := ts.cl.Do(ctx, "POST", "/v1/sessions?name=again", ff("239.255.30.2"), nil); code(err) != CodeConflict {
		t.Fatalf("the same session again: %v, want %s", err, CodeConflict)
	}
	again := newServer(t, ts.alloc, store, nil)
	if nc, _, err := again.srv.Controller.Restore(); err != nil || nc != 2 {
		t.Fatalf("restored %d, %v; want both", nc, err)
	}
	for n, g := range map[string]string{"one": "239.255.30.1", "two": "239.255.30.2"} {
		d, err := again.srv.Controller.Session(n)
		if err != nil || d.Origin.SessionID != 0 || d.Media[0].Connection.Addr.String() != g {
			t.Fatalf("%s after the restart: %v %v", n, d, err)
		}
	}
}
