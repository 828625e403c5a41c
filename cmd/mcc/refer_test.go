package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mcc/internal/peertest"
)

// wireLecture is mcc serve on its defaults in namespace A, linphone-daemon
// in B (sip:participant@10.98.0.2:5060), and sipp answering one call in
// A (sip:...@10.98.0.1:5070), each stopped by the test's cleanup; when
// the test fails, linphone's and mcc's logs are shown.
type wireLecture struct {
	n       netns
	data    string // mcc serve's data directory
	cli     func(args ...string) string
	say     func(cmd string)
	home    string // linphone's
	sipp    *exec.Cmd
	sippOut bytes.Buffer
}

func newWireLecture(t *testing.T) *wireLecture {
	t.Helper()
	peertest.Need(t, "linphone-daemon", "sipp", "ip", "unshare")
	peertest.NeedRoot(t)
	w := &wireLecture{n: newNetns(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	dir := t.TempDir()
	w.cli = serveIn(t, ctx, w.n.a, dir)
	w.data = filepath.Join(dir, "data")
	w.home, w.say = linphoneIn(t, ctx, w.n.b, dir, "10.98.0.2", "10.98.0.2")
	scenario, _ := filepath.Abs("../../conference/testdata/sipp/participant.xml")
	w.sipp = in(ctx, w.n.a, "sipp", "-sf", scenario, "-i", "10.98.0.1", "-p", "5070", "-m", "1", "-nostdin", "-timeout", "60", "-timeout_error")
	w.sipp.Stdout, w.sipp.Stderr = &w.sippOut, &w.sippOut
	if err := w.sipp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		waitOrKill(w.sipp, 5*time.Second)
		if t.Failed() {
			llog, _ := os.ReadFile(filepath.Join(w.home, "linphone.log"))
			slog, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
			t.Logf("linphone log (end):\n%s\nmcc serve log (end):\n%s", tail(llog, 6000), tail(slog, 6000))
		}
	})
	return w
}

// TestLinphoneRefers: linphone 5.2, invited into a moderated lecture,
// transfers its call to a third party (linphone-daemon's call-transfer,
// a blind transfer): its REFER reaches mcc in its dialog, mcc answers
// 202, invites the third party (sipp in A) with linphone's Referred-By,
// and tells linphone how it went in sipfrag NOTIFYs. The roster shows
// the third party referred by linphone.
func TestLinphoneRefers(t *testing.T) {
	w := newWireLecture(t)
	cli, say, bobOut := w.cli, w.say, &w.sippOut // sipp in A is the third party

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
	llog, _ := os.ReadFile(filepath.Join(w.home, "linphone.log"))
	if !bytes.Contains(llog, []byte("REFER sip:")) || !bytes.Contains(llog, []byte("message/sipfrag")) {
		t.Fatalf("linphone's log shows no REFER or no sipfrag NOTIFY")
	}
}
