package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mcc/internal/peertest"
)

// TestLinphoneRefers: linphone 5.2, invited into a moderated lecture,
// transfers its call to a third party (linphone-daemon's call-transfer,
// a blind transfer): its REFER reaches mcc in its dialog, mcc answers
// 202, invites the third party (sipp in A) with linphone's Referred-By,
// and tells linphone how it went in sipfrag NOTIFYs. The roster shows
// the third party referred by linphone.
func TestLinphoneRefers(t *testing.T) {
	peertest.Need(t, "linphone-daemon", "sipp", "ip", "unshare")
	peertest.NeedRoot(t)
	n := newNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	cli := serveIn(t, ctx, n.a, dir)
	home, say := linphoneIn(t, ctx, n.b, dir, "10.98.0.2", "10.98.0.2")
	defer func() {
		if t.Failed() {
			llog, _ := os.ReadFile(filepath.Join(home, "linphone.log"))
			t.Logf("linphone log (end):\n%s", tail(llog, 6000))
		}
	}()
	// The third party: sipp answering in A, on its own port.
	scenario, _ := filepath.Abs("../../conference/testdata/sipp/participant.xml")
	bob := in(ctx, n.a, "sipp", "-sf", scenario, "-i", "10.98.0.1", "-p", "5070", "-m", "1", "-nostdin", "-timeout", "60")
	var bobOut bytes.Buffer
	bob.Stdout, bob.Stderr = &bobOut, &bobOut
	if err := bob.Start(); err != nil {
		t.Fatal(err)
	}
	defer waitOrKill(bob, 5*time.Second)

	cli("session", "create", "lecture", "--media", "audio", "--type", "moderated", "--moderators", "10.98.0.2")
	time.Sleep(2 * time.Second) // linphone-daemon binds its port
	if out := cli("invite", "lecture", "sip:participant@10.98.0.2:5060", "--wait", "20s"); !strings.Contains(out, "joined") {
		t.Fatalf("linphone did not join:\n%s", out)
	}
	say("call-transfer 1 sip:bob@10.98.0.1:5070")
	var out string
	bobJoined := func() bool {
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "sip:bob@10.98.0.1:5070") && strings.Contains(l, " joined ") && strings.Contains(l, "referred by sip:participant@10.98.0.2") {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && !bobJoined(); time.Sleep(200 * time.Millisecond) {
		out = cli("participants", "lecture")
	}
	if !bobJoined() {
		t.Fatalf("no participant referred by linphone:\n%s\nsipp:\n%s", out, bobOut.String())
	}
	t.Logf("after linphone's transfer:\n%s", out)
	llog, _ := os.ReadFile(filepath.Join(home, "linphone.log"))
	if !bytes.Contains(llog, []byte("REFER sip:")) || !bytes.Contains(llog, []byte("message/sipfrag")) {
		t.Fatalf("linphone's log shows no REFER or no sipfrag NOTIFY")
	}
}
