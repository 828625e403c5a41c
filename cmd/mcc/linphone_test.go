package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mcc/conference"
	"mcc/internal/peertest"
	"mcc/sdp"
)

// netns is a pair of network namespaces joined by a veth pair: A
// (10.98.0.1, fd00:98::1 on mcc0) and B (10.98.0.2, fd00:98::2 on mcc1).
// Nothing in them has a route anywhere else.
type netns struct{ a, b string }

func newNetns(t *testing.T) netns {
	t.Helper()
	n := netns{fmt.Sprintf("mcct%d-a", os.Getpid()), fmt.Sprintf("mcct%d-b", os.Getpid())}
	cmds := [][]string{
		{"netns", "add", n.a}, {"netns", "add", n.b},
		{"link", "add", "mcc0", "netns", n.a, "type", "veth", "peer", "name", "mcc1", "netns", n.b},
		{"-n", n.a, "link", "set", "lo", "up"}, {"-n", n.b, "link", "set", "lo", "up"},
		{"-n", n.a, "link", "set", "mcc0", "up"}, {"-n", n.b, "link", "set", "mcc1", "up"},
		{"-n", n.a, "addr", "add", "10.98.0.1/24", "dev", "mcc0"}, {"-n", n.b, "addr", "add", "10.98.0.2/24", "dev", "mcc1"},
		{"-n", n.a, "addr", "add", "fd00:98::1/64", "dev", "mcc0", "nodad"}, {"-n", n.b, "addr", "add", "fd00:98::2/64", "dev", "mcc1", "nodad"},
		{"-n", n.a, "route", "add", "224.0.0.0/4", "dev", "mcc0"}, {"-n", n.b, "route", "add", "224.0.0.0/4", "dev", "mcc1"},
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", n.a).Run()
		exec.Command("ip", "netns", "del", n.b).Run()
	})
	for _, c := range cmds {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", c, err, out)
		}
	}
	return n
}

// in returns a command that runs in namespace ns, in its own process
// group so that cleanup ends it with everything it started.
func in(ctx context.Context, ns string, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// serveIn starts mcc serve in namespace ns on its defaults (and flags),
// with its data directory in dir/data and its log in dir/serve.log,
// stopped (SIGTERM) by the test's cleanup. It returns a runner of mcc commands in ns, which
// waits for the daemon to be reachable and fails the test, with the
// daemon's log, when a command fails.
func serveIn(t *testing.T, ctx context.Context, ns, dir string, flags ...string) (cli func(args ...string) string) {
	t.Helper()
	data := filepath.Join(dir, "data")
	serve := in(ctx, ns, mccBinary(t), append([]string{"serve", "--data", data}, flags...)...)
	slog, _ := os.Create(filepath.Join(dir, "serve.log"))
	serve.Stdout, serve.Stderr = slog, slog
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-serve.Process.Pid, syscall.SIGTERM); serve.Wait() })
	return func(args ...string) string {
		t.Helper()
		var out []byte
		var err error
		for try := 0; try < 50; try++ { // the daemon may still be starting
			out, err = in(ctx, ns, mccBinary(t), append(args, "--data", data)...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), "cannot reach mcc serve") && !strings.Contains(string(out), "no running mcc serve") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
			t.Fatalf("mcc %v: %v\n%s\nserve log:\n%s", args, err, out, log)
		}
		return string(out)
	}
}

// waitOrKill waits for cmd, which was asked to end, for at most grace,
// then kills its process group.
func waitOrKill(cmd *exec.Cmd, grace time.Duration) {
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// udpDelivered reads how many UDP datagrams namespace ns delivered to
// sockets (Udp InDatagrams, or Udp6InDatagrams).
func udpDelivered(t *testing.T, ns string, v6 bool) int {
	t.Helper()
	file, key := "/proc/net/snmp", "InDatagrams"
	if v6 {
		file, key = "/proc/net/snmp6", "Udp6InDatagrams"
	}
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", file).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(out), "\n")
	if v6 {
		for _, l := range lines {
			if f := strings.Fields(l); len(f) == 2 && f[0] == key {
				n, _ := strconv.Atoi(f[1])
				return n
			}
		}
	}
	for i := 0; i+1 < len(lines); i++ { // "Udp: names" then "Udp: values"
		names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) > 0 && names[0] == "Udp:" && len(vals) == len(names) && vals[0] == "Udp:" {
			for j, name := range names {
				if name == key {
					n, _ := strconv.Atoi(vals[j])
					return n
				}
			}
		}
	}
	t.Fatalf("no %s in %s", key, file)
	return 0
}

// TestLinphoneJoinsGroup: linphone-daemon, in a namespace of its own, is
// invited by mcc serve, run with no flag but --data, into a session, joins
// its group and receives the RTP that ffmpeg sends there, over IPv4 and
// IPv6: the defaults reach a real client in each family.
func TestLinphoneJoinsGroup(t *testing.T) {
	peertest.Need(t, "linphone-daemon", "ffmpeg", "ip")
	peertest.NeedRoot(t)
	for _, fam := range []string{"4", "6"} {
		t.Run("ipv"+fam, func(t *testing.T) { linphoneJoins(t, fam == "6") })
	}
}

func linphoneJoins(t *testing.T, v6 bool) {
	n := newNetns(t)
	mccIP, lpIP, lpHost := "10.98.0.1", "10.98.0.2", "10.98.0.2"
	family, scope := "4", "local"
	if v6 {
		mccIP, lpIP, lpHost = "fd00:98::1", "fd00:98::2", "[fd00:98::2]"
		family, scope = "6", "site"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()

	// mcc serve in A, on its defaults: it listens on 0.0.0.0 and [::]
	// port 5060 and takes A's addresses for its host in each family.
	cli := serveIn(t, ctx, n.a, dir)

	// linphone-daemon in B: auto-answer, no audio device, no video.
	home, _ := linphoneIn(t, ctx, n.b, dir, lpIP, lpHost)

	cli("session", "create", "lecture", "--family", family, "--scope", scope, "--media", "audio")
	time.Sleep(2 * time.Second) // linphone-daemon binds its port
	out := cli("invite", "lecture", "sip:participant@"+hostPort(lpIP, 5060), "--wait", "20s")
	if !strings.Contains(out, "joined") {
		llog, _ := os.ReadFile(filepath.Join(home, "linphone.log"))
		t.Fatalf("linphone did not join:\n%s\nlinphone log (end):\n%s", out, tail(llog, 3000))
	}
	desc, err := sdp.Parse([]byte(cli("session", "sdp", "lecture")))
	if err != nil {
		t.Fatal(err)
	}
	group, port := desc.Media[0].Connection.Addr, desc.Media[0].Port

	// B holds the group.
	eventually := func(what string, f func() bool) {
		deadline := time.Now().Add(10 * time.Second)
		for !f() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	defer func() {
		if t.Failed() {
			llog, _ := os.ReadFile(filepath.Join(home, "linphone.log"))
			t.Logf("linphone log (end):\n%s", tail(llog, 6000))
		}
	}()
	eventually(fmt.Sprintf("namespace B to join %v", group), func() bool {
		var m []byte
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if m, _ = exec.Command("ip", "-n", n.b, "maddr", "show", "dev", "mcc1").Output(); strings.Contains(string(m), group.String()) {
				break
			}
		}
		return strings.Contains(string(m), group.String())
	})

	// ffmpeg in A sends 2 s of PCMU in 20 ms packets (100) to the group, TTL 1.
	before := udpDelivered(t, n.b, v6)
	dest := fmt.Sprintf("rtp://%s?ttl=1&localaddr=%s", hostPort(group.String(), int(port)), mccIP)
	if v6 {
		// ffmpeg 5.1 loses the brackets of an IPv6 rtp:// URL that has a
		// ttl option; the kernel's default multicast hop limit is 1.
		dest = fmt.Sprintf("rtp://%s?localaddr=%s", hostPort(group.String(), int(port)), mccIP)
	}
	send := in(ctx, n.a, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
		"-i", "sine=frequency=440:sample_rate=8000:samples_per_frame=160", "-t", "2", "-ac", "1", "-c:a", "pcm_mulaw", "-payload_type", "0", "-f", "rtp", dest)
	if out, err := send.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	got := udpDelivered(t, n.b, v6) - before
	if got < 90 {
		t.Fatalf("namespace B delivered %d datagrams to sockets while ffmpeg sent 100 to %v:%d", got, group, port)
	}
	t.Logf("linphone joined %v and was delivered %d datagrams of ffmpeg's 100", group, got)

	// A stream added for everyone reaches linphone, which would leave its
	// group on a re-INVITE, as a BYE and a new INVITE: it takes the new
	// stream or declines it (port 0), and keeps receiving the first.
	mb, _ := exec.Command("ip", "-n", n.b, "maddr", "show", "dev", "mcc1").Output()
	heldBefore := strings.Contains(string(mb), group.String())
	added := cli("media", "add", "lecture", "video", "--wait", "20s", "-o", "json")
	var ch conference.Change
	if err := json.Unmarshal([]byte(added), &ch); err != nil || len(ch.Results) != 1 {
		t.Fatalf("media add: %v\n%s", err, added)
	}
	if r := ch.Results[0]; r.State != conference.Joined || r.Acked != ch.Version || len(r.Streams) != 2 {
		llog, _ := os.ReadFile(filepath.Join(home, "linphone.log"))
		t.Fatalf("linphone after the re-INVITE adding a stream: %+v\nlinphone log (end):\n%s", r, tail(llog, 3000))
	}
	var m []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if m, _ = exec.Command("ip", "-n", n.b, "maddr", "show", "dev", "mcc1").Output(); strings.Contains(string(m), group.String()) {
			break
		}
	}
	if !heldBefore || !strings.Contains(string(m), group.String()) {
		t.Fatalf("namespace B held %v before the change: %v, after it: %v", group, heldBefore, strings.Contains(string(m), group.String()))
	}
	// And it is delivered ffmpeg's packets again.
	before = udpDelivered(t, n.b, v6)
	send = in(ctx, n.a, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
		"-i", "sine=frequency=440:sample_rate=8000:samples_per_frame=160", "-t", "1", "-ac", "1", "-c:a", "pcm_mulaw", "-payload_type", "0", "-f", "rtp", dest)
	if out, err := send.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	if got := udpDelivered(t, n.b, v6) - before; got < 45 {
		t.Fatalf("after the change, namespace B delivered %d datagrams while ffmpeg sent 50 to %v:%d", got, group, port)
	}
	t.Logf("linphone took the change adding video (streams %v, version %d) and still receives %v", ch.Results[0].Streams, ch.Results[0].Acked, group)

	// The video stream removed: linphone keeps the audio group.
	removed := cli("media", "remove", "lecture", "1", "--wait", "20s", "-o", "json")
	if err := json.Unmarshal([]byte(removed), &ch); err != nil || len(ch.Results) != 1 || ch.Results[0].Acked != ch.Version {
		t.Fatalf("media remove: %v\n%s", err, removed)
	}
	time.Sleep(time.Second) // a group left would be gone by now
	if m, _ := exec.Command("ip", "-n", n.b, "maddr", "show", "dev", "mcc1").Output(); !strings.Contains(string(m), group.String()) {
		t.Fatalf("namespace B left %v when the video stream was removed:\n%s", group, m)
	}
	// The session ends (BYE to everyone): linphone leaves the group.
	cli("session", "delete", "lecture")
	eventually(fmt.Sprintf("namespace B to leave %v", group), func() bool {
		m, _ := exec.Command("ip", "-n", n.b, "maddr", "show", "dev", "mcc1").Output()
		return !strings.Contains(string(m), group.String())
	})
}

func hostPort(h string, port int) string {
	if strings.Contains(h, ":") {
		return fmt.Sprintf("[%s]:%d", h, port)
	}
	return fmt.Sprintf("%s:%d", h, port)
}

// linphoneIn starts linphone-daemon in namespace ns, listening for SIP on
// ip port 5060, answering every call, with no audio device and no video;
// its home (and log, linphone.log) is dir/linphone. The test's cleanup
// asks it to quit, and kills it if it does not. say sends it a command
// on its standard input.
func linphoneIn(t *testing.T, ctx context.Context, ns, dir, ip, host string) (home string, say func(cmd string)) {
	t.Helper()
	home = filepath.Join(dir, "linphone")
	os.MkdirAll(filepath.Join(home, ".local", "share", "linphone"), 0o755)
	os.WriteFile(filepath.Join(home, ".asoundrc"), []byte("pcm.!default { type null }\n"), 0o644)
	conf := fmt.Sprintf(`[sip]
sip_port=5060
sip_tcp_port=-1
sip_tls_port=-1
bind_address=%s
use_ipv6=1
default_proxy=-1
register_only_when_network_is_up=0
contact="participant" <sip:participant@%s>
[net]
firewall_policy=0
stun_server=
[rtp]
audio_rtp_port=7078
[sound]
echocancellation=0
[video]
enabled=0
capture=0
display=0
[misc]
version_check_url_root=
config-uri=
`, ip, host)
	os.WriteFile(filepath.Join(home, "linphonerc"), []byte(conf), 0o644)
	lp := in(ctx, ns, "env", "HOME="+home, "bash", "-c",
		`ulimit -v 2097152; exec linphone-daemon --config "$HOME/linphonerc" --auto-answer --log "$HOME/linphone.log"`)
	stdin, _ := lp.StdinPipe() // linphone-daemon quits when its input ends
	lout, _ := os.Create(filepath.Join(home, "stdout.log"))
	lp.Stdout, lp.Stderr = lout, lout
	if err := lp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		io.WriteString(stdin, "quit\n")
		stdin.Close()
		if f := os.Getenv("MCC_LINPHONE_LOG"); f != "" { // to read what linphone did
			llog, _ := os.ReadFile(filepath.Join(home, "linphone.log"))
			os.WriteFile(f, llog, 0o644)
		}
		waitOrKill(lp, 5*time.Second)
	})
	var mu sync.Mutex
	return home, func(cmd string) {
		mu.Lock()
		defer mu.Unlock()
		io.WriteString(stdin, cmd+"\n")
	}
}

// TestLinphoneDialsIn: linphone-daemon calls the conference URI of mcc
// serve, run with no flag but --data, with its own unicast offer, and
// ends up receiving the session's group: mcc holds its call on an
// inactive placeholder, then brings it in by BYE and an INVITE with the
// session's offer to its Contact (profile.go). A stream added reaches it
// the same way; the session's end makes it leave. IPv4 and IPv6.
func TestLinphoneDialsIn(t *testing.T) {
	peertest.Need(t, "linphone-daemon", "ffmpeg", "ip")
	peertest.NeedRoot(t)
	for _, fam := range []string{"4", "6"} {
		t.Run("ipv"+fam, func(t *testing.T) { linphoneDialsIn(t, fam == "6") })
	}
}

func linphoneDialsIn(t *testing.T, v6 bool) {
	n := newNetns(t)
	mccIP, lpIP, lpHost, mccHost := "10.98.0.1", "10.98.0.2", "10.98.0.2", "10.98.0.1"
	family, scope := "4", "local"
	if v6 {
		mccIP, lpIP, lpHost, mccHost = "fd00:98::1", "fd00:98::2", "[fd00:98::2]", "[fd00:98::1]"
		family, scope = "6", "site"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	cli := serveIn(t, ctx, n.a, dir)
	home, say := linphoneIn(t, ctx, n.b, dir, lpIP, lpHost)
	defer func() {
		if t.Failed() {
			llog, _ := os.ReadFile(filepath.Join(home, "linphone.log"))
			t.Logf("linphone log (end):\n%s", tail(llog, 4000))
		}
	}()
	cli("session", "create", "lecture", "--family", family, "--scope", scope, "--media", "audio")
	desc, err := sdp.Parse([]byte(cli("session", "sdp", "lecture")))
	if err != nil {
		t.Fatal(err)
	}
	group, port := desc.Media[0].Connection.Addr, desc.Media[0].Port
	holds := func() bool {
		b, _ := exec.Command("ip", "-n", n.b, "maddr", "show", "dev", "mcc1").Output()
		return strings.Contains(string(b), " "+group.String())
	}
	time.Sleep(2 * time.Second) // linphone-daemon binds its port
	say("call sip:lecture@" + mccHost)
	waitFor(t, 20*time.Second, "linphone, dialled in, to join "+group.String(), holds)
	before := udpDelivered(t, n.b, v6)
	dest := fmt.Sprintf("rtp://%s?ttl=1&localaddr=%s", hostPort(group.String(), int(port)), mccIP)
	if v6 {
		dest = fmt.Sprintf("rtp://%s?localaddr=%s", hostPort(group.String(), int(port)), mccIP) // see linphoneJoins
	}
	send := in(ctx, n.a, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
		"-i", "sine=frequency=440:sample_rate=8000:samples_per_frame=160", "-t", "2", "-ac", "1", "-c:a", "pcm_mulaw", "-payload_type", "0", "-f", "rtp", dest)
	if out, err := send.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	if got := udpDelivered(t, n.b, v6) - before; got < 90 {
		t.Fatalf("namespace B delivered %d datagrams while ffmpeg sent 100 to %v:%d", got, group, port)
	} else {
		t.Logf("linphone dialled in, joined %v and was delivered %d datagrams of ffmpeg's 100", group, got)
	}
	parts := cli("participants", "lecture")
	if !strings.Contains(parts, "joined") {
		t.Fatalf("participants:\n%s", parts)
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "serve.log")); !strings.Contains(string(log), "rejoin: BYE and a new INVITE") {
		t.Errorf("mcc did not bring linphone in by a rejoin:\n%s", tail(log, 2000))
	}
	// A change reaches it, and it stays in the group.
	cli("media", "add", "lecture", "video", "--wait", "20s")
	time.Sleep(time.Second)
	waitFor(t, 10*time.Second, "linphone to hold "+group.String()+" after the change", holds)
	cli("session", "delete", "lecture")
	waitFor(t, 10*time.Second, "linphone to leave "+group.String(), func() bool { return !holds() })
}
