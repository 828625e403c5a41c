package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"mcc/internal/peertest"
	"mcc/sdp"
)

// pulseaudioIn starts a PulseAudio daemon in namespace ns with modules
// (each "name args"), its home and runtime directory under dir/pulse, and
// returns a runner of pactl against it. PulseAudio runs as root here (it
// warns, and goes on) with no audio device: the null sink stands for the
// sound card. The test's cleanup stops it.
func pulseaudioIn(t *testing.T, ctx context.Context, ns, dir string, modules ...string) (pactl func(args ...string) string) {
	t.Helper()
	home := filepath.Join(dir, "pulse")
	run := filepath.Join(home, "run")
	if err := os.MkdirAll(run, 0o700); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + home, "XDG_RUNTIME_DIR=" + run, "PULSE_RUNTIME_PATH=" + filepath.Join(run, "pulse")}
	args := []string{"-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit", "--log-target=stderr", "-v",
		"-L", "module-native-protocol-unix"}
	for _, m := range modules {
		args = append(args, "-L", m)
	}
	pa := in(ctx, ns, "env", append(env, append([]string{"pulseaudio"}, args...)...)...)
	logf, _ := os.Create(filepath.Join(home, "pulseaudio.log"))
	pa.Stdout, pa.Stderr = logf, logf
	if err := pa.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-pa.Process.Pid, syscall.SIGTERM)
		if os.Getenv("MCC_PULSE_LOG") != "" {
			b, _ := os.ReadFile(logf.Name())
			os.WriteFile(os.Getenv("MCC_PULSE_LOG"), b, 0o644)
		}
		waitOrKill(pa, 5*time.Second)
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("PulseAudio's log (end):\n%s", tail(b, 1500))
		}
	})
	pactl = func(args ...string) string {
		t.Helper()
		out, err := in(ctx, ns, "env", append(env, append([]string{"pactl"}, args...)...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("pactl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := in(ctx, ns, "env", append(env, "pactl", "info")...).CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PulseAudio did not start: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return pactl
}

// waitFor polls f every 200 ms until it holds, for at most d.
func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var sinkInput = regexp.MustCompile(`(?m)^Sink Input #(\d+)$`)

// rtpSinkInputs maps the rtp.session of each sink input module-rtp-recv
// made to its index.
func rtpSinkInputs(list string) map[string]string {
	out := map[string]string{}
	for _, block := range strings.Split(list, "\n\n") {
		m := sinkInput.FindStringSubmatch(block)
		s := regexp.MustCompile(`rtp\.session = "([^"]*)"`).FindStringSubmatch(block)
		if m != nil && s != nil {
			out[s[1]] = m[1]
		}
	}
	return out
}

// TestPulseAudioHearsMCC: mcc serve in one namespace announces a session
// with the PulseAudio profile; PulseAudio 16.1's module-rtp-recv in
// another makes a sink input for it, keeps it past its 20 s death timeout
// and past the end of mcc's fast start (so mcc's 5 s interval is what
// keeps it), and drops it when mcc sends the deletion. A session
// announced with the RFC 2974 profile (CRLF, 239.255.255.255) never
// reaches it.
func TestPulseAudioHearsMCC(t *testing.T) {
	peertest.Need(t, "pulseaudio", "pactl", "ip")
	peertest.NeedRoot(t)
	n := newNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	cli := serveIn(t, ctx, n.a, dir, "--sap", "mcc0", "--sap-profile", "pulseaudio")
	pactl := pulseaudioIn(t, ctx, n.b, dir, "module-null-sink sink_name=room", "module-rtp-recv sink=room sap_address=224.0.0.56")

	// PulseAudio plays L16 (and OPUS) only: the session says so.
	cli("session", "create", "desk", "--media", "audio:L16/48000/2")
	cli("session", "create", "plain", "--media", "audio:L16/48000/2", "--sap", "rfc2974")
	created := time.Now()
	var index string
	waitFor(t, 15*time.Second, "a sink input for mcc's session", func() bool {
		index = rtpSinkInputs(pactl("list", "sink-inputs"))["desk"]
		return index != ""
	})
	t.Logf("PulseAudio made sink input #%s for mcc's session %.1f s after it was created", index, time.Since(created).Seconds())
	// Past PulseAudio's 20 s and mcc's fast start (3 more at 5 s): the
	// same sink input, and still nothing for the RFC 2974 session.
	time.Sleep(time.Until(created.Add(40 * time.Second)))
	got := rtpSinkInputs(pactl("list", "sink-inputs"))
	if got["desk"] != index {
		t.Fatalf("40 s on, PulseAudio's sink inputs are %v; want #%s for desk still", got, index)
	}
	if _, ok := got["plain"]; ok {
		t.Fatalf("the session announced with the RFC 2974 profile reached PulseAudio: %v", got)
	}
	list := pactl("list", "sink-inputs")
	if !strings.Contains(list, "s16be 2ch 48000Hz") {
		t.Errorf("the sink input's sample spec is not the session's L16/48000/2:\n%s", list)
	}

	// The session ends: mcc's deletion removes the sink input.
	cli("session", "delete", "desk")
	waitFor(t, 10*time.Second, "PulseAudio to drop the deleted session", func() bool {
		_, ok := rtpSinkInputs(pactl("list", "sink-inputs"))["desk"]
		return !ok
	})
}

// TestPulseAudioSessionToLinphone: PulseAudio's module-rtp-send, on its
// defaults but for OPUS, announces a session over SAP (224.0.0.56, LF, no
// TTL) and sends its RTP; mcc serve on the same host lists it, imports it, and
// invites linphone, in another namespace, into it: linphone joins the
// PulseAudio group and is delivered its RTP, and leaves when the
// conference ends.
func TestPulseAudioSessionToLinphone(t *testing.T) {
	peertest.Need(t, "pulseaudio", "pactl", "linphone-daemon", "ip")
	peertest.NeedRoot(t)
	n := newNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	cli := serveIn(t, ctx, n.a, dir, "--sap", "mcc0")
	// loop=1: the SAP announcements reach mcc on this host too.
	// enable_opus=1: PulseAudio sends L16/44100/2 (payload type 10)
	// otherwise, which linphone 5.2 has, disabled; enabled, its
	// mediastreamer crashes (a NULL read) on the first packet.
	pulseaudioIn(t, ctx, n.a, dir, "module-null-sink sink_name=room", "module-rtp-send source=room.monitor loop=1 enable_opus=1")
	home, say := linphoneIn(t, ctx, n.b, dir, "10.98.0.2", "10.98.0.2")
	// What PulseAudio sends, L16/44100/2 (RFC 3551 payload type 10), is
	// a codec linphone has but ships disabled.
	say("audio-codec-enable L16/44100/1")

	var heard []struct {
		ID, Name string
		Groups   []string
		Warnings []string
	}
	waitFor(t, 20*time.Second, "mcc to hear PulseAudio's announcement", func() bool {
		if err := json.Unmarshal([]byte(cli("directory", "-o", "json")), &heard); err != nil {
			t.Fatal(err)
		}
		return len(heard) == 1
	})
	h := heard[0]
	if !strings.HasPrefix(h.Name, "PulseAudio RTP Stream") || len(h.Groups) != 1 {
		t.Fatalf("heard %+v", h)
	}
	t.Logf("mcc heard %q on %v, warnings %q", h.Name, h.Groups, h.Warnings)
	cli("session", "import", "--heard", h.ID, "--name", "desk")
	desc, err := sdp.Parse([]byte(cli("session", "sdp", "desk")))
	if err != nil {
		t.Fatal(err)
	}
	m := desc.Media[0]
	if m.Connection == nil || m.Connection.Addr.String() != h.Groups[0] {
		t.Fatalf("the offer's stream has no media-level group %v: %+v", h.Groups[0], m)
	}
	group := m.Connection.Addr

	out := cli("invite", "desk", "sip:participant@10.98.0.2:5060", "--wait", "20s")
	if !strings.Contains(out, "joined") {
		llog, _ := os.ReadFile(filepath.Join(home, "linphone.log"))
		t.Fatalf("linphone did not join:\n%s\nlinphone log (end):\n%s", out, tail(llog, 3000))
	}
	holds := func() bool {
		b, _ := exec.Command("ip", "-n", n.b, "maddr", "show", "dev", "mcc1").Output()
		return regexp.MustCompile(`(?m)^\s+inet\s+` + regexp.QuoteMeta(group.String()) + `(\s|$)`).Match(b)
	}
	defer func() {
		if t.Failed() {
			b, _ := exec.Command("ip", "netns", "exec", n.b, "sh", "-c", "ip maddr; cat /proc/net/igmp; ss -uanp").CombinedOutput()
			llog, _ := os.ReadFile(filepath.Join(home, "linphone.log"))
			t.Logf("invited: %s\nB's groups:\n%s\nlinphone's log (end):\n%s", out, b, tail(llog, 5000))
		}
	}()
	waitFor(t, 10*time.Second, fmt.Sprintf("namespace B to join %v", group), holds)
	// PulseAudio 16.1 sends OPUS at about 25 packets a second.
	before := udpDelivered(t, n.b, false)
	time.Sleep(2 * time.Second)
	got := udpDelivered(t, n.b, false) - before
	if got < 30 {
		t.Fatalf("namespace B was delivered %d datagrams in 2 s of PulseAudio's stream on %v", got, group)
	}
	t.Logf("linphone joined PulseAudio's %v:%d and was delivered %d datagrams in 2 s", group, m.Port, got)

	cli("session", "delete", "desk")
	waitFor(t, 10*time.Second, fmt.Sprintf("namespace B to leave %v", group), func() bool { return !holds() })
}

// TestVLCListsAndPlaysSAP: mcc serve announces a session with the VLC
// profile; VLC in another namespace, run as a user runs it with SAP
// discovery (-S sap), lists it under "Network streams (SAP)", plays it
// when told to, and records the RTP an ffmpeg sends to its group. IPv4
// and IPv6.
func TestVLCListsAndPlaysSAP(t *testing.T) {
	peertest.Need(t, "cvlc", "ffmpeg", "ip", "setpriv")
	peertest.NeedRoot(t)
	for _, fam := range []string{"4", "6"} {
		t.Run("ipv"+fam, func(t *testing.T) { vlcPlaysSAP(t, fam == "6") })
	}
}

func vlcPlaysSAP(t *testing.T, v6 bool) {
	n := newNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		os.Chmod(d, 0o755)
	}
	rec := filepath.Join(dir, "rec")
	os.Mkdir(rec, 0o777)
	os.Chmod(rec, 0o777)
	family, scope, mccIP := "4", "local", "10.98.0.1"
	if v6 {
		family, scope, mccIP = "6", "site", "fd00:98::1"
	}
	cli := serveIn(t, ctx, n.a, dir, "--sap", "mcc0", "--sap-profile", "vlc")
	cli("session", "create", "seminar", "--family", family, "--scope", scope, "--media", "audio")
	desc, err := sdp.Parse([]byte(cli("session", "sdp", "seminar")))
	if err != nil {
		t.Fatal(err)
	}
	m := desc.Media[0]
	dest := fmt.Sprintf("rtp://%s?ttl=1&localaddr=%s", hostPort(m.Connection.Addr.String(), int(m.Port)), mccIP)
	if v6 {
		dest = fmt.Sprintf("rtp://%s?localaddr=%s", hostPort(m.Connection.Addr.String(), int(m.Port)), mccIP) // see linphoneJoins
	}
	send := in(ctx, n.a, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
		"-i", "sine=frequency=440:sample_rate=8000", "-t", "60", "-ac", "1", "-c:a", "pcm_mulaw", "-payload_type", "0", "-f", "rtp", dest)
	if err := send.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-send.Process.Pid, syscall.SIGKILL); send.Wait() })

	// VLC refuses to run as root: it runs as nobody, with the rc
	// interface on its standard input and output.
	vlc := in(ctx, n.b, "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "env", "HOME=/tmp",
		"cvlc", "-I", "rc", "--rc-fake-tty", "-S", "sap", "--no-video", "--sout", "#std{access=file,mux=wav,dst="+filepath.Join(rec, "out.wav")+"}")
	vlc.Dir = dir
	stdin, _ := vlc.StdinPipe()
	var out peertest.Output
	vlc.Stdout = &out
	vlog, _ := os.Create(filepath.Join(dir, "vlc.log"))
	vlc.Stderr = vlog
	if err := vlc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		io.WriteString(stdin, "quit\n")
		waitOrKill(vlc, 5*time.Second)
		if t.Failed() {
			t.Logf("VLC said:\n%s", tail([]byte(out.String()), 3000))
		}
	})
	item := regexp.MustCompile(`(?m)^\|\s+(\d+) - seminar`)
	var num string
	start := time.Now()
	waitFor(t, 20*time.Second, "VLC to list mcc's session under its SAP discovery", func() bool {
		io.WriteString(stdin, "playlist\n")
		time.Sleep(800 * time.Millisecond)
		if mm := item.FindStringSubmatch(out.String()); mm != nil {
			num = mm[1]
		}
		return num != ""
	})
	t.Logf("VLC listed mcc's session as item %s, %.1f s after it started", num, time.Since(start).Seconds())
	io.WriteString(stdin, "goto "+num+"\n")
	st := func() int64 {
		s, err := os.Stat(filepath.Join(rec, "out.wav"))
		if err != nil {
			return 0
		}
		return s.Size()
	}
	// 8 kHz, 16-bit mono is 16,000 bytes a second: ask for two.
	waitFor(t, 15*time.Second, "VLC to record 2 s of the session", func() bool { return st() >= 32000 })
	want := "rtp://@" + hostPort(m.Connection.Addr.String(), int(m.Port))
	waitFor(t, 5*time.Second, "VLC to say it plays "+want, func() bool {
		io.WriteString(stdin, "status\n")
		time.Sleep(300 * time.Millisecond)
		return strings.Contains(out.String(), "input: "+want)
	})
	t.Logf("VLC played rtp://@%s from SAP and recorded %d bytes", hostPort(m.Connection.Addr.String(), int(m.Port)), st())
}

// TestGStreamerPlaysDescription: GStreamer's sdpdemux, in one namespace,
// opens the description mcc writes for a session, joins its group and
// decodes the PCMU an ffmpeg in another sends there. IPv4 and IPv6.
func TestGStreamerPlaysDescription(t *testing.T) {
	peertest.Need(t, "gst-launch-1.0", "ffmpeg", "ip")
	peertest.NeedRoot(t)
	for _, fam := range []string{"4", "6"} {
		t.Run("ipv"+fam, func(t *testing.T) {
			n := newNetns(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			dir := t.TempDir()
			scope, src := "local", "10.98.0.1"
			if fam == "6" {
				scope, src = "site", "fd00:98::1"
			}
			if r := mcc(t, "", "sdp", "new", "--name", "GStreamer lecture", "--family", fam, "--scope", scope,
				"--media", "audio", "--data", filepath.Join(dir, "data"), "-o", filepath.Join(dir, "session.sdp")); r.code != 0 {
				t.Fatalf("sdp new: %+v", r)
			}
			s, err := sdp.Parse(must(os.ReadFile(filepath.Join(dir, "session.sdp"))))
			if err != nil {
				t.Fatal(err)
			}
			m := s.Media[0]
			dest := fmt.Sprintf("rtp://%s?ttl=1&localaddr=%s", hostPort(m.Connection.Addr.String(), int(m.Port)), src)
			if fam == "6" {
				dest = fmt.Sprintf("rtp://%s?localaddr=%s", hostPort(m.Connection.Addr.String(), int(m.Port)), src) // see linphoneJoins
			}
			send := in(ctx, n.a, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
				"-i", "sine=frequency=440:sample_rate=8000", "-t", "20", "-ac", "1", "-c:a", "pcm_mulaw", "-payload_type", "0", "-f", "rtp", dest)
			if err := send.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { syscall.Kill(-send.Process.Pid, syscall.SIGKILL); send.Wait() }()
			// -e: at the SIGINT, an end of stream, so that the WAV file
			// is finished; -k: a pipeline that never started is killed.
			gst := in(ctx, n.b, "timeout", "-k", "3", "-s", "INT", "5", "gst-launch-1.0", "-e", "filesrc", "location=session.sdp", "!", "sdpdemux", "!",
				"rtppcmudepay", "!", "mulawdec", "!", "wavenc", "!", "filesink", "location=out.wav")
			gst.Dir = dir
			out, _ := gst.CombinedOutput()
			size := int64(0)
			if st, err := os.Stat(filepath.Join(dir, "out.wav")); err == nil {
				size = st.Size()
			}
			// Up to 5 s at 16,000 bytes a second: ask for two.
			if size < 32000 {
				t.Fatalf("GStreamer decoded %d bytes from %v:%d\n%s", size, m.Connection.Addr, m.Port, out)
			}
			t.Logf("GStreamer's sdpdemux decoded %d bytes from %v:%d", size, m.Connection.Addr, m.Port)
		})
	}
}

// pipewireConf is a PipeWire daemon with no session manager and no audio
// device: the RTP modules with SAP on 224.0.0.56 on interface %[1]s, a
// receiver (module-rtp-source, a stream node per session heard) and a
// sender (module-rtp-sink, announcing "PipeWire desk" on 239.255.55.1).
const pipewireConf = `context.properties = {
    core.daemon = true
    core.name = pipewire-0
    support.dbus = false
}
context.spa-libs = {
    audio.convert.* = audioconvert/libspa-audioconvert
    support.*       = support/libspa-support
}
context.modules = [
    { name = libpipewire-module-protocol-native }
    { name = libpipewire-module-access }
    { name = libpipewire-module-client-node }
    { name = libpipewire-module-adapter }
    { name = libpipewire-module-rtp-source
      args = { sap.ip = 224.0.0.56 sap.port = 9875 local.ifname = %[1]s } }
    { name = libpipewire-module-rtp-sink
      args = { sap.ip = 224.0.0.56 sap.port = 9875 destination.ip = 239.255.55.1 destination.port = 5004
               net.ttl = 1 local.ifname = %[1]s sess.name = "PipeWire desk" } }
]
`

// TestPipeWireBothWays: PipeWire 0.3.65 (Debian 12), headless in one
// namespace, and mcc serve in another. mcc's session announced with the
// pipewire profile becomes a stream node in PipeWire (module-rtp-source);
// one announced with the RFC 2974 profile does not reach it. PipeWire's
// module-rtp-sink session is heard by mcc, imported, and offered with its
// group at media level.
func TestPipeWireBothWays(t *testing.T) {
	peertest.Need(t, "pipewire", "pw-dump", "ip")
	peertest.NeedRoot(t)
	n := newNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	cli := serveIn(t, ctx, n.a, dir, "--sap", "mcc0", "--sap-profile", "pipewire")

	run := filepath.Join(dir, "pipewire")
	os.MkdirAll(run, 0o700)
	conf := filepath.Join(dir, "pipewire.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(pipewireConf, "mcc1")), 0o644)
	pw := in(ctx, n.b, "env", "XDG_RUNTIME_DIR="+run, "pipewire", "-c", conf)
	plog, _ := os.Create(filepath.Join(dir, "pipewire.log"))
	pw.Stdout, pw.Stderr = plog, plog
	if err := pw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-pw.Process.Pid, syscall.SIGTERM)
		pw.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(plog.Name())
			t.Logf("PipeWire's log (end):\n%s", tail(b, 3000))
		}
	})
	// The stream nodes PipeWire made, by media.name.
	nodes := func() map[string]bool {
		out, err := in(ctx, n.b, "env", "XDG_RUNTIME_DIR="+run, "timeout", "5", "pw-dump", "-r", "pipewire-0").Output()
		if err != nil {
			return nil
		}
		var objs []struct {
			Type string
			Info struct {
				Props map[string]any
			}
		}
		json.Unmarshal(out, &objs)
		got := map[string]bool{}
		for _, o := range objs {
			if strings.HasSuffix(o.Type, ":Node") {
				if name, ok := o.Info.Props["media.name"].(string); ok {
					got[name] = true
				}
			}
		}
		return got
	}

	cli("session", "create", "desk", "--media", "audio:L16/48000/2")
	cli("session", "create", "plain", "--media", "audio:L16/48000/2", "--sap", "rfc2974")
	start := time.Now()
	waitFor(t, 15*time.Second, "PipeWire to make a stream of mcc's session", func() bool { return nodes()["RTP Stream (desk)"] })
	t.Logf("PipeWire made the node \"RTP Stream (desk)\" %.1f s after the session was created", time.Since(start).Seconds())
	if got := nodes(); got["RTP Stream (plain)"] {
		t.Fatalf("the session announced with the RFC 2974 profile reached PipeWire: %v", got)
	}

	var heard []struct {
		ID, Name string
		Groups   []string
	}
	waitFor(t, 15*time.Second, "mcc to hear PipeWire's announcement", func() bool {
		if err := json.Unmarshal([]byte(cli("directory", "-o", "json")), &heard); err != nil {
			t.Fatal(err)
		}
		return len(heard) == 1
	})
	if h := heard[0]; h.Name != "PipeWire desk" || len(h.Groups) != 1 || h.Groups[0] != "239.255.55.1" {
		t.Fatalf("heard %+v", h)
	}
	cli("session", "import", "--heard", heard[0].ID, "--name", "pipewire")
	desc, err := sdp.Parse([]byte(cli("session", "sdp", "pipewire")))
	if err != nil {
		t.Fatal(err)
	}
	if c := desc.Media[0].Connection; c == nil || c.Addr.String() != "239.255.55.1" {
		t.Fatalf("the offer of PipeWire's session has no media-level group: %+v", desc.Media[0])
	}
	t.Logf("mcc heard PipeWire's %q on 239.255.55.1:%d and offers it", heard[0].Name, desc.Media[0].Port)
}

// TestSAPBridgeFollowsAnnouncer: the SAP→SIP bridge between two mcc
// daemons and linphone. mcc in namespace B announces a session; mcc in A
// hears it, imports it (following its announcer) and invites linphone,
// in B, which joins its group. B adds a stream: A re-INVITEs linphone
// with the new description, which it acknowledges, still in the first
// group. B deletes the session: A ends the conference with BYE, and
// linphone leaves the group.
func TestSAPBridgeFollowsAnnouncer(t *testing.T) {
	peertest.Need(t, "linphone-daemon", "ip")
	peertest.NeedRoot(t)
	n := newNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	os.MkdirAll(dirA, 0o755)
	os.MkdirAll(dirB, 0o755)
	announcer := serveIn(t, ctx, n.b, dirB, "--sap", "mcc1", "--sip", "udp:10.98.0.2:5070")
	relay := serveIn(t, ctx, n.a, dirA, "--sap", "mcc0")
	home, _ := linphoneIn(t, ctx, n.b, dirB, "10.98.0.2", "10.98.0.2")

	announcer("session", "create", "stage", "--media", "audio")
	var heard []struct{ ID, Name string }
	waitFor(t, 15*time.Second, "mcc in A to hear B's session", func() bool {
		json.Unmarshal([]byte(relay("directory", "-o", "json")), &heard)
		return len(heard) == 1
	})
	relay("session", "import", "--heard", heard[0].ID, "--name", "relay", "--on-end", "end")
	desc, err := sdp.Parse([]byte(relay("session", "sdp", "relay")))
	if err != nil {
		t.Fatal(err)
	}
	group := desc.Media[0].Connection.Addr
	out := relay("invite", "relay", "sip:participant@10.98.0.2:5060", "--wait", "20s")
	if !strings.Contains(out, "joined") {
		llog, _ := os.ReadFile(filepath.Join(home, "linphone.log"))
		t.Fatalf("linphone did not join:\n%s\n%s", out, tail(llog, 3000))
	}
	holds := func() bool {
		b, _ := exec.Command("ip", "-n", n.b, "maddr", "show", "dev", "mcc1").Output()
		return regexp.MustCompile(`(?m)^\s+inet\s+` + regexp.QuoteMeta(group.String()) + `(\s|$)`).Match(b)
	}
	waitFor(t, 10*time.Second, "linphone to join "+group.String(), holds)

	// The announcer changes its session: the change reaches linphone.
	announcer("media", "add", "stage", "video")
	type part struct {
		State   string
		Acked   uint64
		Streams []string
	}
	var parts []part
	waitFor(t, 20*time.Second, "linphone to acknowledge the announcer's change", func() bool {
		json.Unmarshal([]byte(relay("participants", "relay", "-o", "json")), &parts)
		return len(parts) == 1 && parts[0].Acked >= 2 && len(parts[0].Streams) == 2
	})
	if parts[0].State != "joined" || !holds() {
		t.Fatalf("after the change: %+v, holding %v: %v", parts[0], group, holds())
	}
	t.Logf("linphone took the announcer's change (version %d, streams %v) and holds %v", parts[0].Acked, parts[0].Streams, group)

	// The announcer ends its session: so does the conference.
	announcer("session", "delete", "stage")
	waitFor(t, 15*time.Second, "the conference to end", func() bool {
		return !strings.Contains(relay("session", "list"), "relay")
	})
	waitFor(t, 10*time.Second, "linphone to leave "+group.String(), func() bool { return !holds() })
	log, _ := os.ReadFile(filepath.Join(dirA, "serve.log"))
	for _, want := range []string{"SAP bridge: the announcement changed", "SAP bridge: the announcement went"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("A's log has no %q", want)
		}
	}
}
