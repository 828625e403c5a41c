package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"mcc/conference"
	"mcc/internal/peertest"
	"mcc/multicast"
	"mcc/multicast/sap"
	"mcc/sdp"
)

// TestScheduledLectureOnTheWire: mcc serve, on its defaults in a
// namespace, runs a lecture scheduled a few seconds ahead with a speaker
// (sipp, in mcc's namespace) and a listener (linphone-daemon, in the
// other): inside the lead it holds the group and nobody is called; at the
// start it calls both, linphone with a recvonly offer, and linphone's
// namespace joins the group; at the stop both get BYE, linphone's
// namespace leaves the group and the lease is gone. The schedule itself
// (weeks, restarts, the lead) is tested on a clock the test moves, in
// the conference package; this is what the wire sees of it.
func TestScheduledLectureOnTheWire(t *testing.T) {
	w := newWireLecture(t)
	n, cli, speaker, speakerOut := w.n, w.cli, w.sipp, &w.sippOut // sipp in A is the speaker

	start := time.Now().Add(8 * time.Second).Truncate(time.Second)
	stop := start.Add(25 * time.Second)
	cli("session", "create", "lecture", "--media", "audio",
		"--start", start.Format(time.RFC3339), "--stop", stop.Format(time.RFC3339),
		"--speaker", "sip:speaker@10.98.0.1:5070", "--listener", "sip:participant@10.98.0.2:5060")
	show := func() conference.Info {
		var in conference.Info
		if err := json.Unmarshal([]byte(cli("session", "show", "lecture", "-o", "json")), &in); err != nil {
			t.Fatal(err)
		}
		return in
	}
	leased := func(id uint64) []multicast.Lease {
		var ls, own []multicast.Lease
		if err := json.Unmarshal([]byte(cli("leases", "-o", "json")), &ls); err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			if l.Owner == sdp.SessionOwner(id) {
				own = append(own, l)
			}
		}
		return own
	}
	in := show()
	if in.Schedule == nil || in.Schedule.OnAir == nil || !in.Schedule.OnAir.Start.Equal(start) || len(in.Participants) != 0 {
		t.Fatalf("inside the lead: %+v", in)
	}
	desc, err := sdp.Parse([]byte(cli("session", "sdp", "lecture")))
	if err != nil {
		t.Fatal(err)
	}
	group := desc.Media[0].Connection.Addr
	if ls := leased(in.SessionID); len(ls) != 1 || ls[0].Group != group || !ls[0].End.After(stop) {
		t.Fatalf("leases inside the lead: %+v", ls)
	}
	holds := func() bool {
		m, _ := exec.Command("ip", "-n", n.b, "maddr", "show", "dev", "mcc1").Output()
		return strings.Contains(string(m), group.String())
	}
	waitFor := func(what string, until time.Time, f func() bool) {
		for !f() {
			if time.Now().After(until) {
				t.Fatalf("timed out waiting for %s; participants:\n%s\nspeaker sipp:\n%s", what, cli("participants", "lecture"), speakerOut.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if holds() {
		t.Fatal("linphone's namespace holds the group before the start")
	}

	// The start: both called, each with its role.
	waitFor("both to join", start.Add(15*time.Second), func() bool {
		joined := 0
		for _, p := range show().Participants {
			if p.State == conference.Joined {
				joined++
			}
		}
		return joined == 2
	})
	if time.Now().Before(start) {
		t.Fatal("the invite list was called before the start")
	}
	for _, p := range show().Participants {
		want := conference.RoleSpeaker
		if strings.Contains(p.URI, "participant@") {
			want = conference.RoleListener
		}
		if p.Role != want {
			t.Fatalf("%s has role %q, want %q", p.URI, p.Role, want)
		}
	}
	waitFor("linphone's namespace to join the group", time.Now().Add(10*time.Second), holds)

	// The floor to linphone, and back: its offer alone changes (linphone
	// takes a change as a new call: mcc rejoins it), and it stays in.
	var lp conference.Participant
	for _, p := range show().Participants {
		if strings.Contains(p.URI, "participant@") {
			lp = p
		}
	}
	for _, role := range []conference.Role{conference.RoleSpeaker, conference.RoleListener} {
		var got conference.Participant
		if err := json.Unmarshal([]byte(cli("participants", "role", "lecture", lp.ID, string(role), "-o", "json")), &got); err != nil || got.Role != role {
			t.Fatalf("role %s: %+v %v", role, got, err)
		}
		waitFor("linphone in with role "+string(role), stop, func() bool {
			for _, p := range show().Participants {
				if p.ID == lp.ID {
					return p.Role == role && p.State == conference.Joined && !p.Behind
				}
			}
			return false
		})
	}
	waitFor("linphone's namespace in the group after the floor", stop, holds)

	// The stop: BYE to both, the group left, the lease gone.
	waitFor("BYE to both", stop.Add(10*time.Second), func() bool {
		for _, p := range show().Participants {
			if p.State == conference.Joined {
				return false
			}
		}
		return true
	})
	waitFor("linphone's namespace to leave the group", time.Now().Add(10*time.Second), func() bool { return !holds() })
	in = show()
	if in.Schedule == nil || in.Schedule.OnAir != nil || len(leased(in.SessionID)) != 0 {
		t.Fatalf("after the stop: schedule %+v, leases %+v", in.Schedule, leased(in.SessionID))
	}
	if err := speaker.Wait(); err != nil {
		t.Fatalf("sipp, the speaker: %v\n%s", err, speakerOut.String())
	}
	t.Logf("on at %s, off at %s; linphone joined %v as a listener and left it at the stop", start.Format(time.TimeOnly), stop.Format(time.TimeOnly), group)
}

// TestScheduledSAP: of two scheduled sessions mcc serve holds, the one
// whose start is inside the lead is announced and the one next week is
// not; at its stop the announcement is deleted, and another mcc's
// directory forgets it (RFC 2974 §3: deletion).
func TestScheduledSAP(t *testing.T) {
	peertest.Need(t, "ip", "unshare")
	peertest.NeedRoot(t)
	n := newNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, _ := daemonIn(t, ctx, n.a, "mcc0", "10.98.0.1")
	b, _ := daemonIn(t, ctx, n.b, "mcc1", "10.98.0.2")
	start := time.Now().Add(3 * time.Second).Truncate(time.Second)
	stop := start.Add(5 * time.Second)
	a("session", "create", "later", "--media", "audio", "--start", start.AddDate(0, 0, 7).Format(time.RFC3339), "--repeat", "weekly 1h")
	a("session", "create", "soon", "--media", "audio", "--start", start.Format(time.RFC3339), "--stop", stop.Format(time.RFC3339))
	heard(t, b, func(h sap.Heard) bool { return h.Name == "soon" })
	var list []sap.Heard
	if err := json.Unmarshal([]byte(b("directory", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	for _, h := range list {
		if h.Name == "later" {
			t.Fatalf("a session a week off is announced: %+v", h)
		}
	}
	deadline := stop.Add(15 * time.Second)
	for {
		list = nil
		if err := json.Unmarshal([]byte(b("directory", "-o", "json")), &list); err != nil {
			t.Fatal(err)
		}
		gone := true
		for _, h := range list {
			if h.Name == "soon" {
				gone = false
			}
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still heard 15 s after its stop: %+v", list)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if time.Now().Before(stop) {
		t.Fatal("the announcement was deleted before the stop")
	}
}
