package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"mcc/multicast"
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
