package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mcc/conference"
	"mcc/conference/conferencetest"
	"mcc/internal/api"
	"mcc/internal/peertest"
	"mcc/multicast"
	"mcc/sdp"
)

// startServe runs the built "mcc serve" on loopback with a fresh data
// directory and returns that directory once the API listens. At cleanup
// it stops the daemon with SIGTERM and expects a clean exit.
func startServe(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	serveOn(t, data, "")
	return data
}

// serveOn runs "mcc serve" on data (with the SIP listeners sip, or random
// ports when it is empty) and returns once its API listens; the returned
// stop ends it with a signal and waits (expecting a clean exit after
// SIGTERM). Otherwise the test's cleanup stops it with SIGTERM and expects
// a clean exit.
func serveOn(t *testing.T, data, sip string) (stop func(syscall.Signal)) {
	t.Helper()
	return serveWith(t, data, sip)
}

// serveWith is serveOn with more flags.
func serveWith(t *testing.T, data, sip string, flags ...string) (stop func(syscall.Signal)) {
	t.Helper()
	if sip == "" {
		sip = "udp:127.0.0.1:0,tcp:127.0.0.1:0"
	}
	cmd := exec.Command(mccBinary(t), append([]string{"serve", "--data", data, "--sip", sip, "--host", "127.0.0.1", "--api", "127.0.0.1:0"}, flags...)...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() { // reads the log until the daemon exits
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "control API listening") {
				close(ready)
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	killed := false
	t.Cleanup(func() {
		if killed {
			return
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("mcc serve after SIGTERM: %v", err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Error("mcc serve did not stop on SIGTERM")
		}
	})
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("mcc serve did not start")
	}
	return func(sig syscall.Signal) {
		killed = true
		cmd.Process.Signal(sig)
		if err := <-done; sig == syscall.SIGTERM && err != nil {
			t.Errorf("mcc serve after SIGTERM: %v", err)
		}
	}
}

// TestServeWalkthrough drives a running daemon with the commands the
// README's walk-through uses.
func TestServeWalkthrough(t *testing.T) {
	data := startServe(t)
	p := conferencetest.Start(t)
	run := func(args ...string) result {
		t.Helper()
		r := mcc(t, "", append(args, "--data", data)...)
		if r.code != 0 {
			t.Fatalf("mcc %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		return r
	}
	r := run("session", "create", "lecture", "--media", "audio,video")
	if !strings.Contains(r.stdout, "sip:lecture@127.0.0.1:") {
		t.Fatalf("session create: %s", r.stdout)
	}
	// mcc watch follows the session while the rest happens.
	watchOut, _ := os.Create(filepath.Join(t.TempDir(), "watch.log"))
	watch := exec.Command(mccBinary(t), "watch", "lecture", "--data", data)
	watch.Stdout, watch.Stderr = watchOut, watchOut
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		watch.Process.Signal(syscall.SIGTERM)
		watch.Wait()
		b, _ := os.ReadFile(watchOut.Name())
		for _, want := range []string{"participant", "joined", "reinvite", "stream 2, version 2"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("mcc watch did not show %q:\n%s", want, b)
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	// The address and token can also come from MCC_API and MCC_TOKEN.
	addr, _ := os.ReadFile(filepath.Join(data, "api.addr"))
	token, _ := os.ReadFile(filepath.Join(data, "token"))
	env := exec.Command(mccBinary(t), "session", "list")
	env.Env = append(os.Environ(), "MCC_DATA="+t.TempDir(), "MCC_API="+strings.TrimSpace(string(addr)), "MCC_TOKEN="+strings.TrimSpace(string(token)))
	if out, err := env.CombinedOutput(); err != nil || !strings.Contains(string(out), "lecture") {
		t.Fatalf("session list through MCC_API and MCC_TOKEN: %v\n%s", err, out)
	}
	r = run("invite", "lecture", p.URI, "--wait", "10s")
	if !strings.Contains(r.stdout, "joined") {
		t.Fatalf("invite: %s", r.stdout)
	}
	r = run("media", "add", "lecture", "video")
	if !strings.Contains(r.stdout, "accepted,accepted,accepted") {
		t.Fatalf("media add: %s", r.stdout)
	}
	r = run("media", "remove", "lecture", "2")
	if !strings.Contains(r.stdout, "accepted,accepted,removed") {
		t.Fatalf("media remove: %s", r.stdout)
	}
	r = run("participants", "lecture", "-o", "json")
	var ps []conference.Participant
	if err := json.Unmarshal([]byte(r.stdout), &ps); err != nil || len(ps) != 1 || ps[0].Version != 3 {
		t.Fatalf("participants: %s %v", r.stdout, err)
	}
	if out := run("participants", "remove", "lecture", ps[0].ID).stdout; !strings.Contains(out, "removed") {
		t.Fatalf("participants remove: %s", out)
	}
	select {
	case <-p.Byes:
	case <-time.After(5 * time.Second):
		t.Fatal("the removed participant got no BYE")
	}
	p = conferencetest.Start(t) // a new participant for what follows
	// An imported session can be used to invite, not changed.
	file := filepath.Join(t.TempDir(), "seminar.sdp")
	os.WriteFile(file, []byte("v=0\r\no=- 99 1 IN IP4 192.0.2.1\r\ns=Seminar\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\nc=IN IP4 239.255.9.9/15\r\n"), 0o644)
	run("session", "import", file)
	if r := mcc(t, "", "media", "add", "seminar", "audio", "--data", data); r.code != 1 || !strings.Contains(r.stderr, "external") {
		t.Fatalf("media add on an imported session: %+v", r)
	}
	r = run("session", "list")
	if !strings.Contains(r.stdout, "lecture") || !strings.Contains(r.stdout, "seminar") {
		t.Fatalf("session list: %s", r.stdout)
	}
	// The allocator commands go through the daemon, which holds the store.
	r = run("leases", "-o", "json")
	var ls []multicast.Lease
	if err := json.Unmarshal([]byte(r.stdout), &ls); err != nil || len(ls) != 2 { // the removed stream's group is free again
		t.Fatalf("leases through the daemon: %s %v", r.stdout, err)
	}
	r = run("alloc", "--family", "6", "--scope", "org", "--count", "2", "-o", "json")
	var extra []multicast.Lease
	if err := json.Unmarshal([]byte(r.stdout), &extra); err != nil || len(extra) != 2 || !extra[0].Group.Is6() {
		t.Fatalf("alloc through the daemon: %s %v", r.stdout, err)
	}
	run("renew", extra[0].Group.String(), "--lease", "48h")
	run("release", extra[0].Group.String(), extra[1].Group.String())
	r = run("pools")
	if !strings.Contains(r.stdout, "ipv4-local") {
		t.Fatalf("pools through the daemon: %s", r.stdout)
	}
	if r := mcc(t, "", "release", extra[0].Group.String(), "--data", data); r.code != 1 || !strings.Contains(r.stderr, "not leased") {
		t.Fatalf("release twice through the daemon: %+v", r)
	}
	run("invite", "lecture", p.URI, "--wait", "10s")
	run("session", "delete", "lecture")
	select {
	case <-p.Byes:
	case <-time.After(5 * time.Second):
		t.Fatal("the participant got no BYE when the session was deleted")
	}
	// Bad arguments and a missing daemon say what was expected.
	if r := mcc(t, "", "media", "remove", "seminar", "first", "--data", data); r.code != 2 || !strings.Contains(r.stderr, "want its index") {
		t.Fatalf("bad stream index: %+v", r)
	}
	if r := mcc(t, "", "session", "list", "--data", t.TempDir()); r.code != 1 || !strings.Contains(r.stderr, "no running mcc serve") {
		t.Fatalf("no daemon: %+v", r)
	}
}

// TestServeRestart kills the daemon with SIGKILL and starts it again on the
// same data directory: every conference is back with its description and
// leases, can still be changed, and gives its leases back when deleted.
func TestServeRestart(t *testing.T) {
	data := t.TempDir()
	kill := serveOn(t, data, "")
	run := runner(t, data)
	run("session", "create", "lecture", "--media", "audio,video")
	run("media", "add", "lecture", "video")
	file := filepath.Join(t.TempDir(), "seminar.sdp")
	os.WriteFile(file, []byte("v=0\r\no=- 99 1 IN IP4 192.0.2.1\r\ns=Seminar\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\nc=IN IP4 239.255.9.9/15\r\n"), 0o644)
	run("session", "import", file)
	before := run("session", "sdp", "lecture")
	leases := run("leases", "-o", "json")
	kill(syscall.SIGKILL)

	serveOn(t, data, "")
	if got := run("session", "sdp", "lecture"); got != before {
		t.Fatalf("after a restart the description changed:\n%s\nwas\n%s", got, before)
	}
	if got := run("leases", "-o", "json"); got != leases {
		t.Fatalf("after a restart the leases changed:\n%s\nwere\n%s", got, leases)
	}
	if out := run("session", "list"); !strings.Contains(out, "seminar") {
		t.Fatalf("the imported session did not come back:\n%s", out)
	}
	if out := run("media", "remove", "lecture", "2"); !strings.Contains(out, "version 3") {
		t.Fatalf("a change after the restart: %s", out)
	}
	run("session", "delete", "lecture")
	run("session", "delete", "seminar")
	var ls []multicast.Lease
	json.Unmarshal([]byte(run("leases", "-o", "json")), &ls)
	if len(ls) != 0 {
		t.Fatalf("%d leases left after deleting every session", len(ls))
	}
}

// TestServeRestartKeepsDialogs: after SIGTERM and a restart, mcc
// re-INVITEs a participant who joined before, in the same dialog with the
// next CSeq, and its BYE ends that dialog.
func TestServeRestartKeepsDialogs(t *testing.T) {
	data := t.TempDir()
	p := conferencetest.Start(t)
	kill := serveOn(t, data, "")
	run := runner(t, data)
	run("session", "create", "lecture", "--media", "audio")
	if out := run("invite", "lecture", p.URI, "--wait", "10s"); !strings.Contains(out, "joined") {
		t.Fatalf("invite: %s", out)
	}
	run("media", "add", "lecture", "video")
	kill(syscall.SIGTERM) // a clean stop keeps the conferences too

	serveOn(t, data, "")
	var ps []conference.Participant
	json.Unmarshal([]byte(run("participants", "lecture", "-o", "json")), &ps)
	if len(ps) != 1 || ps[0].State != conference.Joined || strings.Join(ps[0].Streams, ",") != "accepted,accepted" {
		t.Fatalf("after the restart: %+v", ps)
	}
	if out := run("media", "add", "lecture", "audio"); !strings.Contains(out, "accepted,accepted,accepted") {
		t.Fatalf("a re-INVITE after the restart: %s\n%s", out, run("participants", "lecture", "-o", "json"))
	}
	log := p.Log()
	if len(log) != 3 {
		t.Fatalf("the participant got %d INVITEs, want 3: %+v", len(log), log)
	}
	before, after := log[1], log[2]
	// The CSeq goes on above the saved one, with room for the probes that
	// a save may not have counted (RFC 3261 §12.2.1.1 asks only that it
	// grow).
	if after.CallID != before.CallID || after.FromTag != before.FromTag || after.ToTag != before.ToTag || after.CSeq <= before.CSeq {
		t.Fatalf("the re-INVITE after the restart is not the next of the dialog:\nbefore %+v\nafter  %+v", before, after)
	}
	run("session", "delete", "lecture")
	select {
	case <-p.Byes:
	case <-time.After(5 * time.Second):
		t.Fatal("no BYE after the restart")
	}
}

// TestServeRestartSipp: three sipp participants joined; the daemon is
// killed with SIGKILL and started again; a stream added reaches every one
// with a re-INVITE they accept, and the session's deletion sends each a
// BYE they accept (sipp counts three successful calls).
func TestServeRestartSipp(t *testing.T) {
	peertest.Need(t, "sipp")
	data := t.TempDir()
	port := freeUDPPort(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	scenario, _ := filepath.Abs("../../conference/testdata/sipp/participant.xml")
	uas := exec.CommandContext(ctx, "sipp", "-sf", scenario, "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-t", "u1",
		"-m", "3", "-timeout", "50", "-timeout_error", "-nostdin")
	uasLog := filepath.Join(t.TempDir(), "sipp.log")
	uasOut, err := os.Create(uasLog)
	if err != nil {
		t.Fatal(err)
	}
	uas.Stdout, uas.Stderr = uasOut, uasOut
	sippLog := func() string { b, _ := os.ReadFile(uasLog); return string(b) }
	if err := uas.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	// The daemon keeps its SIP port across the restart, as a configured
	// one would: sipp sends a call's responses where its first INVITE came
	// from, not to the Via.
	sipAddr := "udp:127.0.0.1:" + strconv.Itoa(freeUDPPort(t))
	kill := serveOn(t, data, sipAddr)
	run := runner(t, data)
	run("session", "create", "lecture", "--media", "audio,video")
	uri := "sip:participant@127.0.0.1:" + strconv.Itoa(port)
	if out := run("invite", "lecture", uri, uri, uri, "--wait", "10s"); strings.Count(out, "joined") != 3 {
		t.Fatalf("invite: %s", out)
	}
	kill(syscall.SIGKILL)
	serveOn(t, data, sipAddr)
	if out := run("media", "add", "lecture", "video"); strings.Count(out, "accepted,accepted,accepted") != 3 {
		t.Fatalf("a stream added after the restart: %s\n%s", out, sippLog())
	}
	run("session", "delete", "lecture")
	if err := uas.Wait(); err != nil {
		t.Fatalf("sipp: %v\n%s", err, sippLog())
	}
}

func freeUDPPort(t *testing.T) int {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// TestServeConfigFile: mcc serve reads mcc.toml in its data directory; the
// environment and flags come before it; an invalid file is refused at start
// with the key or line and the reason.
func TestServeConfigFile(t *testing.T) {
	data := t.TempDir()
	os.WriteFile(filepath.Join(data, "mcc.toml"), []byte(`
sip = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]
host = "from-the-file.example"
api = "127.0.0.1:0"
ring_timeout = "5s"
log = "json"
`), 0o600)
	cmd := exec.Command(mccBinary(t), "serve", "--data", data)
	cmd.Env = append(os.Environ(), "MCC_HOST=from-the-env.example")
	logf, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(data, "api.addr")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("mcc serve with a configuration file did not start:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := mcc(t, "", "session", "create", "lecture", "--data", data)
	if r.code != 0 || !strings.Contains(r.stdout, "sip:lecture@from-the-env.example") {
		t.Fatalf("the environment's host should win over the file's: %+v", r)
	}
	logText, _ := os.ReadFile(logf.Name())
	first, _, _ := strings.Cut(string(logText), "\n")
	var entry map[string]any
	if err := json.Unmarshal([]byte(first), &entry); err != nil || entry["msg"] == nil {
		t.Fatalf("log = \"json\" did not give JSON logs: %q", first)
	}

	for _, tc := range []struct{ conf, want string }{
		{"ringtimeout = \"5s\"\n", `unknown key "ringtimeout"`},
		{"ring_timeout = \"soon\"\n", `ring_timeout = "soon"`},
		{"sip = [\"quic:1.2.3.4:5\"]\n", `want TRANSPORT:HOST:PORT`},
		{"host = \"x\"\nsip = [\n", "line 2"},
		{"data = \"/elsewhere\"\n", `unknown key "data"`},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "mcc.toml"), []byte(tc.conf), 0o600)
		r := mcc(t, "", "serve", "--data", dir) // each file is refused before anything binds
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("config %q: exit %d, %q; want exit 2 and %q", tc.conf, r.code, r.stderr, tc.want)
		}
	}
	if r := mcc(t, "", "serve", "--config", filepath.Join(t.TempDir(), "missing.toml")); r.code != 2 || !strings.Contains(r.stderr, "missing.toml") {
		t.Errorf("a named file that is missing: %+v", r)
	}
}

// TestServeKillUnderLoad kills the daemon with SIGKILL while it adds and
// removes streams for a joined participant, then starts it again: the
// session is back, every lease it holds is one of its groups and none is
// held twice, and the next change reaches the participant in the same
// dialog with a CSeq above every one it saw.
func TestServeKillUnderLoad(t *testing.T) {
	data := t.TempDir()
	p := conferencetest.Start(t)
	kill := serveOn(t, data, "")
	cl, err := api.Discover("", "", data)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.Do(ctx, "POST", "/v1/sessions", api.SessionRequest{Name: "lecture", Media: []string{"audio"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := cl.Do(ctx, "POST", "/v1/sessions/lecture/participants", api.InviteRequest{URIs: []string{p.URI}}, nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); p.Invites() < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the participant was not invited")
		}
	}
	time.Sleep(100 * time.Millisecond)
	// Changes, one after another, until the kill.
	load, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for i := 0; load.Err() == nil; i++ {
			var ch conference.Change
			if cl.Do(load, "POST", "/v1/sessions/lecture/streams", api.StreamRequest{Kind: "audio"}, &ch) != nil {
				return
			}
			if cl.Do(load, "DELETE", fmt.Sprintf("/v1/sessions/lecture/streams/%d", ch.Stream), nil, nil) != nil {
				return
			}
		}
	}()
	time.Sleep(700 * time.Millisecond)
	kill(syscall.SIGKILL)
	stopLoad()
	<-loadDone
	seen := p.Log()
	if len(seen) < 4 {
		t.Fatalf("only %d INVITEs before the kill: no load", len(seen))
	}

	serveOn(t, data, "")
	cl, _ = api.Discover("", "", data)
	var desc []byte
	if err := cl.Do(ctx, "GET", "/v1/sessions/lecture/sdp", nil, &desc); err != nil {
		t.Fatalf("the session is not back: %v", err)
	}
	s, err := sdp.Parse(desc)
	if err != nil {
		t.Fatal(err)
	}
	var ls []multicast.Lease
	cl.Do(ctx, "GET", "/v1/leases", nil, &ls)
	held := map[string]bool{}
	for _, l := range ls {
		g := l.Group.String()
		if held[g] {
			t.Fatalf("%s leased twice", g)
		}
		held[g] = true
	}
	for _, m := range s.Media {
		if m.Port != 0 && !held[m.Connection.Addr.String()] {
			t.Errorf("the active stream's group %v lost its lease", m.Connection.Addr)
		}
	}
	// The next change reaches the participant in the same dialog.
	var ch conference.Change
	if err := cl.Do(ctx, "POST", "/v1/sessions/lecture/streams?wait=20s", api.StreamRequest{Kind: "audio"}, &ch); err != nil {
		t.Fatal(err)
	}
	if len(ch.Results) != 1 || ch.Results[0].State != conference.Joined || !ch.Done || ch.Results[0].Acked != ch.Version {
		t.Fatalf("after the restart: %+v", ch)
	}
	if err := cl.Do(ctx, "GET", "/v1/sessions/lecture/sdp", nil, &desc); err != nil {
		t.Fatal(err)
	}
	if s, err = sdp.Parse(desc); err != nil {
		t.Fatal(err)
	}
	// Once the participant has the latest description, the session holds
	// the leases of its active streams and no others: a removed stream's
	// group lived as long as the participant had it, not longer.
	active := map[string]bool{}
	for _, m := range s.Media {
		if m.Port != 0 {
			active[m.Connection.Addr.String()] = true
		}
	}
	var extra []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		cl.Do(ctx, "GET", "/v1/leases", nil, &ls)
		extra = extra[:0]
		for _, l := range ls {
			if l.Owner == fmt.Sprintf("session %d", s.Origin.SessionID) && !active[l.Group.String()] {
				extra = append(extra, l.Group.String())
			}
		}
		if len(extra) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(extra) > 0 {
		t.Errorf("leases of the session that are none of its active groups: %v", extra)
	}
	log := p.Log()
	last, next := seen[len(seen)-1], log[len(log)-1]
	maxCSeq := uint32(0)
	for _, in := range seen {
		maxCSeq = max(maxCSeq, in.CSeq)
	}
	if next.CallID != last.CallID || next.FromTag != last.FromTag || next.CSeq <= maxCSeq {
		t.Fatalf("the re-INVITE after the restart: %+v; the last before: %+v (highest CSeq %d)", next, last, maxCSeq)
	}
}

// runner returns a function that runs mcc against the daemon on data and
// fails the test when the command fails.
func runner(t *testing.T, data string) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		r := mcc(t, "", append(args, "--data", data)...)
		if r.code != 0 {
			t.Fatalf("mcc %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		return r.stdout
	}
}

// TestInviteExitStatus: mcc invite waits for every invitation's outcome
// by default, and exits 0 only when every participant joined; a decline,
// or one still being invited when --wait runs out, makes it exit 1 and
// say who; --wait 0 returns once the invitations are sent.
func TestInviteExitStatus(t *testing.T) {
	data := startServe(t)
	p := conferencetest.Start(t)
	busy := strings.Replace(p.URI, "sip:p@", "sip:busy@", 1)
	silent, err := net.ListenPacket("udp", "127.0.0.1:0") // reads, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if r := mcc(t, "", "session", "create", "lecture", "--media", "audio", "--data", data); r.code != 0 {
		t.Fatalf("session create: %d %s", r.code, r.stderr)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  []string // in stdout
		err  string   // in stderr
	}{
		{"all join, by default waiting", []string{p.URI}, 0, []string{"joined"}, ""},
		{"one declines", []string{p.URI, busy}, 1, []string{"joined", "declined", "486"}, "1 of 2 did not join: " + busy + " declined"},
		{"one still invited when the wait ends", []string{"sip:x@" + silent.LocalAddr().String(), "--wait", "1s"}, 1, nil, "1 of 1 did not join"},
		{"--wait 0 returns once sent", []string{"sip:y@" + silent.LocalAddr().String(), "--wait", "0"}, 0, []string{"invited"}, ""},
		{"a negative wait", []string{p.URI, "--wait", "-1s"}, 2, nil, "--wait -1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mcc(t, "", append(append([]string{"invite", "lecture"}, tc.args...), "--data", data)...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", r.code, tc.code, r.stdout, r.stderr)
			}
			for _, w := range tc.out {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
				}
			}
			if !strings.Contains(r.stderr, tc.err) {
				t.Errorf("stderr lacks %q:\n%s", tc.err, r.stderr)
			}
		})
	}
}

// TestMediaExitStatus: mcc media waits for every participant's answer by
// default, prints each one's result, and exits 1 naming those that do not
// have the change (one refused it); --wait 0 returns once it is applied.
func TestMediaExitStatus(t *testing.T) {
	data := startServe(t)
	p := conferencetest.Start(t)
	stubborn := strings.Replace(p.URI, "sip:p@", "sip:stubborn@", 1)
	run := runner(t, data)
	run("session", "create", "lecture", "--media", "audio")
	run("invite", "lecture", p.URI, stubborn)

	r := mcc(t, "", "media", "add", "lecture", "video", "--data", data)
	if r.code != 1 || !strings.Contains(r.stderr, stubborn+" behind") || !strings.Contains(r.stderr, "refused by 1") {
		t.Fatalf("media add with a participant that refuses: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "joined (behind)") || !strings.Contains(r.stdout, "488") || !strings.Contains(r.stdout, "accepted,accepted") {
		t.Fatalf("media add does not show each participant's result:\n%s", r.stdout)
	}
	if out := run("media", "add", "lecture", "text", "--wait", "0"); !strings.Contains(out, "stream 2, version 3") {
		t.Fatalf("media add --wait 0: %s", out)
	}
	ps := run("participants", "lecture", "-o", "json")
	var got []conference.Participant
	if err := json.Unmarshal([]byte(ps), &got); err != nil {
		t.Fatal(err)
	}
	for _, x := range got {
		if x.URI == stubborn {
			run("participants", "remove", "lecture", x.ID)
		}
	}
	if out := run("media", "remove", "lecture", "1"); !strings.Contains(out, "version 4") || !strings.Contains(out, "accepted,removed,accepted") {
		t.Fatalf("media remove with everyone accepting: %s", out)
	}
}
