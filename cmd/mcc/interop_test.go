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
		"set -e",
		"ip link set lo up",
		"ip route add 224.0.0.0/4 dev lo",
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--net", "bash", "-c", script)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("receiving in a namespace: %v\n%s", err, out.String())
	}
	probe, err := exec.Command("ffprobe", "-v", "error", "-count_packets", "-show_entries", "stream=codec_name,nb_read_packets",
		"-of", "csv=p=0", filepath.Join(dir, "out.mkv")).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out.String())
	}
	got := map[string]int{}
	for _, line := range strings.Fields(string(probe)) {
		name, n, _ := strings.Cut(line, ",")
		got[name], _ = strconv.Atoi(n)
	}
	// 3 s of 20 ms PCMU is 150 frames (ffmpeg packs several per packet);
	// 3 s of 25 fps video is 75 frames.
	if got["pcm_mulaw"] < 10 || got["h264"] < 30 {
		t.Fatalf("ffmpeg recorded %v packets from the session's groups, want at least 10 audio and 30 video\n%s", got, out.String())
	}
	t.Logf("ffmpeg recorded %v packets from %v and %v", got, s.Media[0].Connection.Addr, s.Media[1].Connection.Addr)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
