package api

import (
	"context"
	"testing"
	"time"

	"mcc/conference"
	"mcc/conference/conferencetest"
)

// TestRoles: a participant invited as a listener, given the floor by
// PATCH, and refused a role mcc does not have; moderators are taken with
// a session and checked.
func TestRoles(t *testing.T) {
	cl, _ := newAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := SessionRequest{Name: "lecture", Media: []string{"audio"}, Access: &AccessRequest{Moderators: []string{"chair@example.org"}}}
	if err := cl.Do(ctx, "POST", "/v1/sessions", req, nil); err != nil {
		t.Fatal(err)
	}
	bad := SessionRequest{Name: "other", Media: []string{"audio"}, Access: &AccessRequest{Moderators: []string{"a\r\nb"}}}
	if err := cl.Do(ctx, "POST", "/v1/sessions", bad, nil); code(err) != CodeBadRequest {
		t.Fatalf("a moderator with CR LF: %v", err)
	}
	part := conferencetest.Start(t)
	var ps []conference.Participant
	if err := cl.Do(ctx, "POST", "/v1/sessions/lecture/participants", InviteRequest{URIs: []string{part.URI}, Role: "listener"}, &ps); err != nil {
		t.Fatal(err)
	}
	if ps[0].Role != conference.RoleListener {
		t.Fatalf("invited: %+v", ps[0])
	}
	if err := cl.Do(ctx, "POST", "/v1/sessions/lecture/participants", InviteRequest{URIs: []string{part.URI}, Role: "chair"}, nil); code(err) != CodeBadRequest {
		t.Fatalf("role chair: %v", err)
	}
	role := "speaker"
	var p conference.Participant
	if err := cl.Do(ctx, "PATCH", "/v1/sessions/lecture/participants/"+ps[0].ID, ParticipantRequest{Role: &role}, &p); err != nil || p.Role != conference.RoleSpeaker {
		t.Fatalf("PATCH: %+v %v", p, err)
	}
	none := "none"
	var q conference.Participant
	if err := cl.Do(ctx, "PATCH", "/v1/sessions/lecture/participants/"+ps[0].ID, ParticipantRequest{Role: &none}, &q); err != nil || q.Role != conference.NoRole {
		t.Fatalf("PATCH none: %+v %v", q, err)
	}
	if err := cl.Do(ctx, "PATCH", "/v1/sessions/lecture/participants/nobody", ParticipantRequest{Role: &role}, nil); code(err) != CodeNotFound {
		t.Fatalf("PATCH of nobody: %v", err)
	}
	if err := cl.Do(ctx, "PATCH", "/v1/sessions/lecture/participants/"+ps[0].ID, ParticipantRequest{}, nil); code(err) != CodeBadRequest {
		t.Fatalf("PATCH without role: %v", err)
	}
}
