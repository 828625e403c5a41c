package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"mcc/conference"
)

// TestScheduleRequests: a weekly lecture in a time zone with daylight
// saving is written with its t=, r= and z= lines and rests until ahead of
// its start (an invitation meanwhile is 409); its invite list comes back
// and can be replaced; bad schedules and invite lists are 400 with what
// was expected.
func TestScheduleRequests(t *testing.T) {
	cl, _ := newAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now().AddDate(0, 0, 7).Format("2006-01-02") + " 10:00"
	req := SessionRequest{Name: "lecture", Media: []string{"audio"}, Start: start, Repeat: "weekly 1h30m", Timezone: "Europe/Berlin",
		Invite: []InviteeRequest{{URI: "sip:prof@192.0.2.7", Role: "speaker"}, {URI: "sip:room1@192.0.2.8", Role: "listener"}}}
	var in conference.Info
	if err := cl.Do(ctx, "POST", "/v1/sessions", req, &in); err != nil {
		t.Fatal(err)
	}
	if in.Schedule == nil || in.Schedule.OnAir != nil || in.Schedule.Next == nil || len(in.Schedule.Invitees) != 2 ||
		in.Schedule.Invitees[0].Role != conference.RoleSpeaker || in.Schedule.Next.End.Sub(in.Schedule.Next.Start) != 90*time.Minute {
		t.Fatalf("created: %+v", in.Schedule)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	if got := in.Schedule.Next.Start.In(berlin).Format("15:04"); got != "10:00" {
		t.Fatalf("next start %v, at %s in Berlin", in.Schedule.Next.Start, got)
	}
	var b []byte
	err := cl.Do(ctx, "GET", "/v1/sessions/lecture/sdp", nil, &b)
	raw := string(b)
	if err != nil || !strings.Contains(raw, "\r\nr=604800 5400 0\r\n") || !strings.Contains(raw, "\r\nz=") {
		t.Fatalf("description (%v):\n%s", err, raw)
	}
	if err := cl.Do(ctx, "POST", "/v1/sessions/lecture/participants", InviteRequest{URIs: []string{"sip:late@192.0.2.9"}}, nil); code(err) != CodeConflict {
		t.Fatalf("an invitation between intervals: %v", err)
	}
	if err := cl.Do(ctx, "PUT", "/v1/sessions/lecture/invitees", []InviteeRequest{{URI: "sip:guest@192.0.2.10"}}, &in); err != nil ||
		len(in.Schedule.Invitees) != 1 || in.Schedule.Invitees[0].URI != "sip:guest@192.0.2.10" {
		t.Fatalf("PUT invitees: %+v %v", in.Schedule, err)
	}
	for i, tc := range []struct {
		req  SessionRequest
		want string
	}{
		{SessionRequest{Repeat: "weekly 1h"}, "start"},
		{SessionRequest{Start: "tomorrow"}, "start"},
		{SessionRequest{Start: start, Timezone: "Mars/Olympus"}, "IANA"},
		{SessionRequest{Start: start, Timezone: "Local"}, "IANA"},
		{SessionRequest{Timezone: "UTC"}, "timezone"},
		{SessionRequest{Start: start, Repeat: "fortnightly"}, "repeat"},
		{SessionRequest{Invite: []InviteeRequest{{URI: "sip:a@192.0.2.1", Role: "chair"}}}, "role"},
		{SessionRequest{Invite: []InviteeRequest{{URI: "mailto:a@example.org"}}}, "URI"},
		{SessionRequest{Invite: []InviteeRequest{{URI: "sip:a@b\r\nX: y"}}}, "invite[0].uri"},
	} {
		tc.req.Name, tc.req.Media = "bad", []string{"audio"}
		err := cl.Do(ctx, "POST", "/v1/sessions", tc.req, nil)
		if code(err) != CodeBadRequest || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%d %+v: %v, want 400 naming %s", i, tc.req, err, tc.want)
		}
	}
	if err := cl.Do(ctx, "POST", "/v1/sessions", SessionRequest{Name: "now", Media: []string{"audio"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := cl.Do(ctx, "PUT", "/v1/sessions/now/invitees", []InviteeRequest{{URI: "sip:a@192.0.2.1"}}, nil); code(err) != CodeConflict {
		t.Fatalf("PUT invitees of a session with no schedule: %v", err)
	}
	if err := cl.Do(ctx, "PUT", "/v1/sessions/nobody/invitees", []InviteeRequest{}, nil); code(err) != CodeNotFound {
		t.Fatalf("PUT invitees of nobody: %v", err)
	}
}
