package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mcc/internal/peertest"
	"mcc/sdp"
)

// TestFFmpegReceivesSession is the interop test with a real client:
// ffmpeg opens a description written by "mcc sdp new" and records the RTP
// that two other ffmpeg processes send to its groups. Everything runs in a
// network namespace the test creates, whose only interface is loopback, so
// multicast never leaves the machine; senders set TTL 1.
func TestFFmpegReceivesSession(t *testing.T) {
	peertest.Need(t, "ffmpeg", "ffprobe", "unshare", "ip")
	peertest.NeedRoot(t)
	dir := t.TempDir()
	desc := filepath.Join(dir, "session.sdp")
	if r := mcc(t, "", "sdp", "new", "--name", "Interop lecture", "--family", "4", "--scope", "local",
		"--media", "audio,video", "--data", filepath.Join(dir, "data"), "-o", desc); r.code != 0 {
		t.Fatalf("sdp new: %+v", r)
	}
	s, err := sdp.Parse(must(os.ReadFile(desc)))
	if err != nil {
		t.Fatal(err)
	}
	dest := func(i int) string {
		m := s.Media[i]
		return fmt.Sprintf("rtp://%s:%d?ttl=1&localaddr=127.0.0.1", m.Connection.Addr, m.Port)
	}
	script := strings.Join([]string{
		// The receiver: what a user does with mcc's description.
		"ffmpeg -nostdin -hide_banner -loglevel error -protocol_whitelist file,udp,rtp -i session.sdp -t 3 -map 0 -c copy -y out.mkv &",
		"recv=$!",
		"sleep 1",
		`ffmpeg -nostdin -hide_banner -loglevel error -re -f lavfi -i sine=frequency=440:sample_rate=8000 -t 8 -ac 1 -c:a pcm_mulaw -payload_type 0 -f rtp '` + dest(0) + `' >/dev/null & s1=$!`,
		`ffmpeg -nostdin -hide_banner -loglevel error -re -f lavfi -i testsrc=size=160x120:rate=25 -t 8 -c:v libx264 -g 10 -tune zerolatency -payload_type 96 -f rtp '` + dest(1) + `' >/dev/null & s2=$!`,
		"wait $recv",
		"kill $s1 $s2 2>/dev/null || true", // the senders are done once the recording is
		"wait",
	}, "\n")
	out := inNamespace(t, dir, script)
	probe, err := exec.Command("ffprobe", "-v", "error", "-count_packets", "-show_entries", "stream=codec_name,nb_read_packets",
		"-of", "csv=p=0", filepath.Join(dir, "out.mkv")).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	got := map[string]int{}
	for _, line := range strings.Fields(string(probe)) {
		name, n, _ := strings.Cut(line, ",")
		got[name], _ = strconv.Atoi(n)
	}
	// 3 s of 20 ms PCMU is 150 frames (ffmpeg packs several per packet);
	// 3 s of 25 fps video is 75 frames.
	if got["pcm_mulaw"] < 10 || got["h264"] < 30 {
		t.Fatalf("ffmpeg recorded %v packets from the session's groups, want at least 10 audio and 30 video\n%s", got, out)
	}
	t.Logf("ffmpeg recorded %v packets from %v and %v", got, s.Media[0].Connection.Addr, s.Media[1].Connection.Addr)
}

// inNamespace runs a bash script in a new network namespace, in dir, for
// at most a minute (then it and everything it started are killed), and
// returns what it printed. The namespace has only
// loopback, with multicast routed to it, so nothing the script sends can
// leave the machine.
func inNamespace(t *testing.T, dir, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	script = "set -e\nip link set lo up\nip route add 224.0.0.0/4 dev lo\n" + script
	cmd := exec.CommandContext(ctx, "unshare", "--net", "bash", "-c", script)
	// Its own process group, killed whole at the deadline: a peer the
	// script started does not outlive the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("script in a network namespace: %v\n%s", err, out.String())
	}
	return out.String()
}

// TestVLCReceivesSession: VLC opens a description written by "mcc sdp
// new", joins its group and records the RTP an ffmpeg sends there. VLC
// refuses to run as root, so it runs as nobody.
func TestVLCReceivesSession(t *testing.T) {
	peertest.Need(t, "cvlc", "ffmpeg", "unshare", "ip", "su")
	peertest.NeedRoot(t)
	dir := t.TempDir()
	// nobody must reach the description by its absolute path, which is how
	// VLC opens it: open the test's temporary directory and its parent.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	desc := filepath.Join(dir, "session.sdp")
	if r := mcc(t, "", "sdp", "new", "--name", "VLC lecture", "--family", "4", "--scope", "org",
		"--media", "audio", "--data", filepath.Join(dir, "data"), "-o", desc); r.code != 0 {
		t.Fatalf("sdp new: %+v", r)
	}
	os.Chmod(desc, 0o644)
	s, err := sdp.Parse(must(os.ReadFile(desc)))
	if err != nil {
		t.Fatal(err)
	}
	m := s.Media[0]
	rec := filepath.Join(dir, "rec")
	if err := os.Mkdir(rec, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(rec, 0o777)
	// Debian's VLC has no live555: its SAP module reads the file and turns
	// it into an rtp:// item, which --loop makes it play.
	script := strings.Join([]string{
		fmt.Sprintf(`ffmpeg -nostdin -hide_banner -loglevel error -re -f lavfi -i sine=frequency=440:sample_rate=8000 -t 20 -ac 1 -c:a pcm_mulaw -payload_type 0 -f rtp 'rtp://%s:%d?ttl=1&localaddr=127.0.0.1' >/dev/null & s1=$!`, m.Connection.Addr, m.Port),
		// setpriv execs VLC as nobody, so timeout signals VLC itself (su
		// kept it from the signal, and VLC outlived the test), and kills
		// it 2 s after the SIGINT if that does not end it.
		`timeout -k 2 -s INT 8 setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/tmp cvlc -vv -I dummy --no-video --loop --run-time 4 session.sdp --sout '#std{access=file,mux=wav,dst=rec/out.wav}' >vlc.log 2>&1 || true`,
		"kill $s1 2>/dev/null || true",
		"wait",
	}, "\n")
	inNamespace(t, dir, script)
	st, err := os.Stat(filepath.Join(rec, "out.wav"))
	// 8 kHz, 16-bit mono is 16,000 bytes a second: ask for a second.
	if err != nil || st.Size() < 16000 {
		log, _ := os.ReadFile(filepath.Join(dir, "vlc.log"))
		t.Fatalf("VLC recorded %v bytes (%v) from %v:%d; its log ends:\n%s", sizeOf(st), err, m.Connection.Addr, m.Port, tail(log, 2000))
	}
	t.Logf("VLC recorded %d bytes from %v:%d", st.Size(), m.Connection.Addr, m.Port)
}

func sizeOf(st os.FileInfo) int64 {
	if st == nil {
		return 0
	}
	return st.Size()
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
