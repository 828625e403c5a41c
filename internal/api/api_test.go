package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"mcc/conference"
	"mcc/conference/conferencetest"
	"mcc/multicast"
	"mcc/sdp"
)

func newAPI(t *testing.T) (*Client, *multicast.Allocator) {
	t.Helper()
	a, _ := multicast.NewAllocator(multicast.Config{})
	m, _ := sdp.NewManager(sdp.ManagerConfig{Allocator: a, Origin: netip.MustParseAddr("127.0.0.1")})
	ctl, err := conference.New(conference.Config{Listeners: []conference.Listener{{Transport: "udp", Addr: "127.0.0.1:0"}}, Manager: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	ts := httptest.NewServer((&Server{Controller: ctl, Allocator: a, Token: "sesame"}).Handler())
	t.Cleanup(ts.Close)
	return &Client{Base: ts.URL, Token: "sesame", HTTP: ts.Client()}, a
}

func code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func TestAuth(t *testing.T) {
	cl, _ := newAPI(t)
	ctx := context.Background()
	for _, tok := range []string{"", "wrong", "sesame2"} {
		bad := *cl
		bad.Token = tok
		if err := bad.Do(ctx, "POST", "/v1/sessions", SessionRequest{Name: "x", Media: []string{"audio"}}, nil); code(err) != CodeUnauthorized {
			t.Errorf("token %q: %v", tok, err)
		}
	}
	var list []conference.Info
	if err := cl.Do(ctx, "GET", "/v1/sessions", nil, &list); err != nil || len(list) != 0 {
		t.Fatalf("nothing was created without a token: %v %v", list, err)
	}
	res, err := http.Get(cl.Base + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", res, err)
	}
}

func TestSessionLifecycle(t *testing.T) {
	cl, a := newAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var in conference.Info
	if err := cl.Do(ctx, "POST", "/v1/sessions", SessionRequest{Name: "lecture", Media: []string{"audio", "video"}}, &in); err != nil {
		t.Fatal(err)
	}
	if in.Name != "lecture" || !strings.HasPrefix(in.URI, "sip:lecture@127.0.0.1:") || in.Version != 1 {
		t.Fatalf("created: %+v", in)
	}
	var b []byte
	if err := cl.Do(ctx, "GET", "/v1/sessions/lecture/sdp", nil, &b); err != nil {
		t.Fatal(err)
	}
	if s, err := sdp.Parse(b); err != nil || len(s.Media) != 2 {
		t.Fatalf("sdp: %v\n%s", err, b)
	}
	part := conferencetest.Start(t)
	uri, byes := part.URI, part.Byes
	var ps []conference.Participant
	if err := cl.Do(ctx, "POST", "/v1/sessions/lecture/participants", InviteRequest{URIs: []string{uri}}, &ps); err != nil || len(ps) != 1 {
		t.Fatalf("invite: %v %v", ps, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cl.Do(ctx, "GET", "/v1/sessions/lecture/participants", nil, &ps)
		if ps[0].State == conference.Joined || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ps[0].State != conference.Joined {
		t.Fatalf("participant: %+v", ps[0])
	}
	// With a wait, a change answers once every participant has it.
	var ch conference.Change
	if err := cl.Do(ctx, "POST", "/v1/sessions/lecture/streams?wait=10s", StreamRequest{Kind: "audio"}, &ch); err != nil {
		t.Fatal(err)
	}
	if ch.Stream != 2 || !ch.Done || ch.Results[0].Streams[2] != "accepted" || ch.Results[0].Acked != ch.Version || ch.Results[0].Behind {
		t.Fatalf("add stream: %+v", ch)
	}
	if err := cl.Do(ctx, "PATCH", "/v1/sessions/lecture/streams/2?wait=10", StreamRequest{Direction: "sendrecv"}, &ch); err != nil || ch.Results[0].Version != 3 {
		t.Fatalf("direction: %+v %v", ch, err)
	}
	if err := cl.Do(ctx, "DELETE", "/v1/sessions/lecture/streams/2?wait=10s", nil, &ch); err != nil || ch.Results[0].Streams[2] != "removed" {
		t.Fatalf("remove stream: %+v %v", ch, err)
	}
	// The removed stream's group goes once no participant has it.
	var leases []multicast.Lease
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := cl.Do(ctx, "GET", "/v1/leases", nil, &leases); err != nil {
			t.Fatal(err)
		}
		if len(leases) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(leases) != 2 {
		t.Fatalf("leases: %d, want the 2 of the streams left", len(leases))
	}
	// /metrics counts what happened, in the Prometheus text format.
	res, err := cl.HTTP.Get(cl.Base + "/metrics")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("metrics: %v %v", res, err)
	}
	mb, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		"mcc_conferences 1\n",
		`mcc_participants{state="joined"} 1`,
		`mcc_sip_responses_total{direction="received",method="INVITE",status="200"} 4`,
		`mcc_reinvite_duration_seconds_count 3`,
		`mcc_reinvite_duration_seconds_bucket{le="+Inf"} 3`,
		`mcc_leases{pool="ipv4-local"} 2`,
		"# TYPE mcc_sip_rejected_total counter\n",
		"# TYPE mcc_sip_server_transactions gauge\n",
	} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("metrics lack %q:\n%s", want, mb)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(mb)), "\n") {
		if !strings.HasPrefix(line, "# ") && !metricLine.MatchString(line) {
			t.Errorf("not a metric line: %q", line)
		}
	}
	if err := cl.Do(ctx, "DELETE", "/v1/sessions/lecture", nil, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-byes:
	case <-time.After(5 * time.Second):
		t.Fatal("no BYE after the session was deleted")
	}
	if n := len(a.Leases()); n != 0 {
		t.Fatalf("%d leases after delete", n)
	}
}

// TestSessionSAPProfiles: a session names the profiles it is announced
// with, by any of their names; mcc shows them by their canonical ones.
func TestSessionSAPProfiles(t *testing.T) {
	cl, _ := newAPI(t)
	ctx := context.Background()
	var in conference.Info
	if err := cl.Do(ctx, "POST", "/v1/sessions", SessionRequest{Name: "stage", Media: []string{"audio"}, SAP: []string{"dante", "PulseAudio", "aes67"}}, &in); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(in.SAP, []string{"aes67", "pulseaudio"}) {
		t.Fatalf("profiles %q", in.SAP)
	}
	var got conference.Info
	if err := cl.Do(ctx, "GET", "/v1/sessions/stage", nil, &got); err != nil || !slices.Equal(got.SAP, in.SAP) {
		t.Fatalf("GET: %q, %v", got.SAP, err)
	}
	var plain conference.Info
	if err := cl.Do(ctx, "POST", "/v1/sessions", SessionRequest{Name: "plain", Media: []string{"audio"}}, &plain); err != nil || plain.SAP != nil {
		t.Fatalf("no profiles asked: %q, %v", plain.SAP, err)
	}
}

func TestBadRequests(t *testing.T) {
	cl, a := newAPI(t)
	ctx := context.Background()
	if err := cl.Do(ctx, "POST", "/v1/sessions", SessionRequest{Name: "taken", Media: []string{"audio"}}, nil); err != nil {
		t.Fatal(err)
	}
	before := len(a.Leases())
	tests := []struct {
		method, path string
		body         any
		code         string
	}{
		{"POST", "/v1/sessions", SessionRequest{Name: "x"}, CodeBadRequest},
		{"POST", "/v1/sessions", SessionRequest{Name: "bad name!", Media: []string{"audio"}}, CodeBadRequest},
		{"POST", "/v1/sessions", SessionRequest{Name: "x", Media: []string{"smell"}}, CodeBadRequest},
		{"POST", "/v1/sessions", SessionRequest{Name: "x", Family: "5", Media: []string{"audio"}}, CodeBadRequest},
		{"POST", "/v1/sessions", SessionRequest{Name: "x", Scope: "ssm", Media: []string{"audio"}}, CodeBadRequest},
		{"POST", "/v1/sessions", SessionRequest{Name: "taken", Media: []string{"audio"}}, CodeConflict},
		{"POST", "/v1/sessions", map[string]any{"name": "x", "medias": []string{"audio"}}, CodeBadRequest},
		{"POST", "/v1/sessions", SessionRequest{Name: "x", Media: []string{"audio"}, SAP: []string{"sdr"}}, CodeBadRequest},
		{"POST", "/v1/sessions", SessionRequest{Name: "x", Media: []string{"audio"}, OnSAPEnd: "keep"}, CodeBadRequest},
		{"POST", "/v1/sessions", SessionRequest{Name: "x", Heard: "- 1 192.0.2.1 192.0.2.1", Media: []string{"audio"}}, CodeBadRequest},
		{"POST", "/v1/sessions", SessionRequest{Name: "x", Media: []string{"audio"}, SAP: []string{"vlc", ""}}, CodeBadRequest},
		{"POST", "/v1/sessions", SessionRequest{Name: "x", Media: []string{"audio"}, SAP: make([]string, 100)}, CodeBadRequest},
		{"POST", "/v1/sessions?name=imp", []byte("v=0\r\nnot sdp\r\n"), CodeBadRequest},
		{"GET", "/v1/sessions/nope", nil, CodeNotFound},
		{"DELETE", "/v1/sessions/nope", nil, CodeNotFound},
		{"POST", "/v1/sessions/taken/participants", InviteRequest{}, CodeBadRequest},
		{"POST", "/v1/sessions/taken/participants", InviteRequest{URIs: []string{"sip:a@b\r\nX: y"}}, CodeBadRequest},
		{"POST", "/v1/sessions/taken/streams", StreamRequest{Kind: "smell"}, CodeBadRequest},
		{"DELETE", "/v1/sessions/taken/streams/9", nil, CodeNotFound},
		{"DELETE", "/v1/sessions/taken/streams/x", nil, CodeBadRequest},
		{"DELETE", "/v1/sessions/taken/participants/nobody", nil, CodeNotFound},
		{"POST", "/v1/leases", LeaseRequest{}, CodeBadRequest},
		{"POST", "/v1/leases", LeaseRequest{Scope: "glop"}, CodeBadRequest},
		{"POST", "/v1/leases", LeaseRequest{Scope: "local", Lease: "forever"}, CodeBadRequest},
		{"POST", "/v1/leases", LeaseRequest{Scope: "local", Count: -3}, CodeBadRequest},
		{"POST", "/v1/leases", LeaseRequest{Pool: "nope"}, CodeBadRequest},
		{"DELETE", "/v1/leases/10.1.1.1", nil, CodeBadRequest},
		{"DELETE", "/v1/leases/239.9.9.9", nil, CodeNotFound},
		{"PATCH", "/v1/leases/239.9.9.9", RenewRequest{Lease: "1h"}, CodeNotFound},
	}
	for _, tc := range tests {
		if err := cl.Do(ctx, tc.method, tc.path, tc.body, nil); code(err) != tc.code {
			t.Errorf("%s %s: %v, want %s", tc.method, tc.path, err, tc.code)
		}
	}
	var list []conference.Info
	cl.Do(ctx, "GET", "/v1/sessions", nil, &list)
	if len(list) != 1 || len(a.Leases()) != before {
		t.Fatalf("bad requests changed state: %d sessions, %d leases (had %d)", len(list), len(a.Leases()), before)
	}
	// An imported session cannot have its media changed.
	ext := "v=0\r\no=- 77 1 IN IP4 192.0.2.1\r\ns=ext\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\nc=IN IP4 233.252.0.1/15\r\n"
	if err := cl.Do(ctx, "POST", "/v1/sessions?name=ext", []byte(ext), nil); err != nil {
		t.Fatal(err)
	}
	if err := cl.Do(ctx, "POST", "/v1/sessions/ext/streams", StreamRequest{Kind: "audio"}, nil); code(err) != CodeNotModifiable {
		t.Fatalf("changing an external session: %v", err)
	}
}

var metricLine = regexp.MustCompile(`^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+$`)

func TestEvents(t *testing.T) {
	cl, _ := newAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.Do(ctx, "POST", "/v1/sessions", SessionRequest{Name: "lecture", Media: []string{"audio"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := cl.Events(ctx, "nope", func(conference.Event) error { return nil }); code(err) != CodeNotFound {
		t.Fatalf("events of an unknown session: %v", err)
	}
	got := make(chan conference.Event, 100)
	streamCtx, stopStream := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- cl.Events(streamCtx, "lecture", func(e conference.Event) error { got <- e; return nil })
	}()
	time.Sleep(100 * time.Millisecond) // the subscription is made
	part := conferencetest.Start(t)
	if err := cl.Do(ctx, "POST", "/v1/sessions/lecture/participants", InviteRequest{URIs: []string{part.URI}}, nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"joined": false, "reinvite": false, "stream": false}
	added := false
	for !want["joined"] || !want["reinvite"] || !want["stream"] {
		select {
		case e := <-got:
			switch {
			case e.Kind == "participant" && e.Participant.State == conference.Joined:
				want["joined"] = true
				if !added {
					added = true
					go cl.Do(ctx, "POST", "/v1/sessions/lecture/streams", StreamRequest{Kind: "video"}, nil)
				}
			case e.Kind == "reinvite" && len(e.Participant.Streams) == 2:
				want["reinvite"] = true
			case e.Kind == "stream" && e.Change.Stream == 1:
				want["stream"] = true
			}
		case <-ctx.Done():
			t.Fatalf("events seen: %v", want)
		}
	}
	stopStream()
	if err := <-done; err != nil {
		t.Fatalf("Events after cancel: %v", err)
	}
}
