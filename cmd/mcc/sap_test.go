package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"mcc/internal/peertest"
	"mcc/multicast/sap"
	"mcc/sdp"
)

// daemonIn starts mcc serve with --sap in namespace ns, on ip, and returns
// functions that run mcc commands against it there: run fails the test
// when the command fails, try returns its output and error.
func daemonIn(t *testing.T, ctx context.Context, ns, iface, ip string) (run func(args ...string) string, try func(args ...string) (string, error)) {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	// Both daemons have a pool of two addresses, to show that neither
	// leases a group it hears the other announce.
	os.MkdirAll(data, 0o700)
	os.WriteFile(filepath.Join(data, "allocator.json"), []byte(`{"pools": [{"name": "lab", "prefix": "239.255.77.0/31", "ttl": 1}]}`), 0o600)
	serve := in(ctx, ns, mccBinary(t), "serve", "--data", data, "--sip", "udp:"+hostPort(ip, 5060), "--host", ip,
		"--api", "127.0.0.1:8760", "--sap", iface, "--log-level", "debug")
	logf, _ := os.Create(filepath.Join(filepath.Dir(data), "serve.log"))
	serve.Stdout, serve.Stderr = logf, logf
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-serve.Process.Pid, syscall.SIGTERM); serve.Wait() })
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(logf.Name())
			t.Logf("serve log in %s:\n%s", ns, tail(log, 3000))
		}
	})
	try = func(args ...string) (string, error) {
		var out []byte
		var err error
		for range 50 { // the daemon may still be starting
			out, err = in(ctx, ns, mccBinary(t), append(args, "--data", data)...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), "mcc serve") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		return string(out), err
	}
	run = func(args ...string) string {
		t.Helper()
		out, err := try(args...)
		if err != nil {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("mcc %v in %s: %v\n%s\nserve log:\n%s", args, ns, err, out, log)
		}
		return out
	}
	return run, try
}

func heard(t *testing.T, run func(...string) string, want func(sap.Heard) bool) sap.Heard {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var list []sap.Heard
		out := run("directory", "-o", "json")
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("directory: %v\n%s", err, out)
		}
		for _, h := range list {
			if want(h) {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not heard; directory:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSAPBetweenNamespaces, over IPv4 and IPv6: two mcc daemons in two
// namespaces hear each other's announcements, and neither leases a group
// it heard; mcc hears ffmpeg's SAP muxer and honours its deletion;
// ffmpeg's SAP demuxer opens a session mcc announces and records its RTP;
// tshark decodes mcc's SAP and SDP without a malformed packet.
func TestSAPBetweenNamespaces(t *testing.T) {
	peertest.Need(t, "ip", "ffmpeg", "ffprobe", "tshark")
	peertest.NeedRoot(t)
	n := newNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, _ := daemonIn(t, ctx, n.a, "mcc0", "10.98.0.1")
	b, tryB := daemonIn(t, ctx, n.b, "mcc1", "10.98.0.2")
	dir := t.TempDir()
	os.Chmod(dir, 0o777)

	// tshark on B's side captures the SAP of what A creates next.
	pcap := filepath.Join(dir, "sap.pcap")
	shark := in(ctx, n.b, "tshark", "-i", "mcc1", "-f", "udp port 9875", "-a", "duration:9", "-w", pcap, "-q")
	sharkOut, _ := os.Create(filepath.Join(dir, "tshark.log"))
	shark.Stdout, shark.Stderr = sharkOut, sharkOut
	if err := shark.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // tshark starts capturing

	// ffmpeg's SAP demuxer in B waits for the first announcement on the
	// local scope's SAP group and records what the session carries.
	// One per family: IPv4 local scope, IPv6 site-local.
	demuxCtx, stopDemux := context.WithTimeout(ctx, 30*time.Second)
	defer stopDemux()
	type demuxer struct {
		cmd      *exec.Cmd
		rec, log string
	}
	var demuxers []demuxer
	for i, group := range []string{"239.255.255.255", "[ff05::2:7ffe]"} {
		d := demuxer{rec: filepath.Join(dir, fmt.Sprintf("rec%d.wav", i)), log: filepath.Join(dir, fmt.Sprintf("demux%d.log", i))}
		d.cmd = in(demuxCtx, n.b, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", "sap://"+group, "-t", "2", "-y", d.rec)
		f, _ := os.Create(d.log)
		d.cmd.Stdout, d.cmd.Stderr = f, f
		if err := d.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		demuxers = append(demuxers, d)
	}
	time.Sleep(500 * time.Millisecond)

	a("session", "create", "lecture", "--family", "4", "--scope", "local", "--media", "audio")
	a("session", "create", "lecture6", "--family", "6", "--scope", "site", "--media", "audio")
	desc, err := sdp.Parse([]byte(a("session", "sdp", "lecture")))
	if err != nil {
		t.Fatal(err)
	}
	g, port := desc.Media[0].Connection.Addr, desc.Media[0].Port

	// B hears both of A's sessions.
	h := heard(t, b, func(h sap.Heard) bool { return h.Name == "lecture" })
	if h.Groups[0] != g || h.Ports[0] != port || h.Source.String() != "10.98.0.1" || h.SAPGroup != sap.LocalGroup {
		t.Fatalf("B heard %+v, A's session is on %v:%d", h, g, port)
	}
	h6 := heard(t, b, func(h sap.Heard) bool { return h.Name == "lecture6" })
	if !h6.Groups[0].Is6() || h6.SAPGroup.String() != "ff05::2:7ffe" {
		t.Fatalf("B heard %+v", h6)
	}
	// B can make a conference of a heard session (it owns no group of it).
	if out := b("session", "import", "--heard", h.ID, "--name", "seen"); !strings.Contains(out, "seen") {
		t.Fatalf("import --heard: %s", out)
	}

	// The allocator never leases a group it heard: A takes one of the two
	// addresses of "lab", B gets the other, and a third session finds the
	// pool full.
	a("session", "create", "lab1", "--pool", "lab", "--media", "audio")
	la := heard(t, b, func(h sap.Heard) bool { return h.Name == "lab1" })
	b("session", "create", "lab2", "--pool", "lab", "--media", "audio")
	lb, err := sdp.Parse([]byte(b("session", "sdp", "lab2")))
	if err != nil || lb.Media[0].Connection.Addr == la.Groups[0] {
		t.Fatalf("B leased %v, the group it heard A announce (%v)", lb.Media[0].Connection.Addr, err)
	}
	if out, err := tryB("session", "create", "lab3", "--pool", "lab", "--media", "audio"); err == nil || !strings.Contains(out, "exhausted") {
		t.Fatalf("a third session from a pool of two, one heard: %v\n%s", err, out)
	}

	// A sends RTP to its two sessions; the ffmpegs in B, which found them
	// by SAP, record it.
	desc6, err := sdp.Parse([]byte(a("session", "sdp", "lecture6")))
	if err != nil {
		t.Fatal(err)
	}
	g6, port6 := desc6.Media[0].Connection.Addr, desc6.Media[0].Port
	var senders []*exec.Cmd
	for _, dest := range []string{
		fmt.Sprintf("rtp://%s:%d?ttl=1&localaddr=10.98.0.1", g, port),
		// ffmpeg 5.1 loses an IPv6 host's brackets when the URL has ttl;
		// the kernel's default multicast hop limit is 1.
		fmt.Sprintf("rtp://[%s]:%d?localaddr=fd00:98::1", g6, port6),
	} {
		send := in(ctx, n.a, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
			"-i", "sine=frequency=440:sample_rate=8000:samples_per_frame=160", "-t", "5", "-ac", "1", "-c:a", "pcm_mulaw",
			"-payload_type", "0", "-f", "rtp", dest)
		if err := send.Start(); err != nil {
			t.Fatal(err)
		}
		senders = append(senders, send)
	}
	for _, s := range senders {
		if err := s.Wait(); err != nil {
			t.Fatalf("ffmpeg sender: %v", err)
		}
	}
	for _, d := range demuxers {
		if err := d.cmd.Wait(); err != nil {
			log, _ := os.ReadFile(d.log)
			t.Fatalf("ffmpeg's SAP demuxer: %v\n%s", err, log)
		}
		if st, err := os.Stat(d.rec); err != nil || st.Size() < 16000 {
			t.Fatalf("ffmpeg recorded %v of a session it found by SAP (%v)", st, err)
		}
	}

	// ffmpeg's SAP muxer in B announces a stream while it runs; A hears
	// it, and when ffmpeg stops, its deletion (same source and hash) takes
	// the session off A's directory.
	mux := in(ctx, n.b, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
		"-i", "sine=sample_rate=8000", "-t", "6", "-c:a", "pcm_mulaw", "-f", "sap",
		"sap://239.255.10.10:5004?announce_addr=239.255.255.255&ttl=1")
	muxOut, _ := os.Create(filepath.Join(dir, "mux.log"))
	mux.Stdout, mux.Stderr = muxOut, muxOut
	if err := mux.Start(); err != nil {
		t.Fatal(err)
	}
	isFFmpeg := func(h sap.Heard) bool { return len(h.Groups) > 0 && h.Groups[0].String() == "239.255.10.10" }
	hf := heard(t, a, isFFmpeg)
	if hf.Ports[0] != 5004 || hf.Source.String() != "10.98.0.2" {
		t.Fatalf("A heard ffmpeg's session as %+v", hf)
	}
	if err := mux.Wait(); err != nil {
		log, _ := os.ReadFile(muxOut.Name())
		t.Fatalf("ffmpeg's SAP muxer: %v\n%s", err, log)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var list []sap.Heard
		json.Unmarshal([]byte(a("directory", "-o", "json")), &list)
		if !slices.ContainsFunc(list, isFFmpeg) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ffmpeg's deletion did not take its session off the directory")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// And over IPv6.
	mux6 := in(ctx, n.b, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
		"-i", "sine=sample_rate=8000", "-t", "6", "-c:a", "pcm_mulaw", "-f", "sap", "sap://[ff15::10:1]:5004?announce_addr=ff05::2:7ffe")
	if err := mux6.Start(); err != nil {
		t.Fatal(err)
	}
	h6f := heard(t, a, func(h sap.Heard) bool { return len(h.Groups) > 0 && h.Groups[0].String() == "ff15::10:1" })
	if h6f.Ports[0] != 5004 || h6f.Source.String() != "fd00:98::2" || h6f.SAPGroup.String() != "ff05::2:7ffe" {
		t.Fatalf("A heard ffmpeg's IPv6 session as %+v", h6f)
	}
	mux6.Wait()
	// And on PipeWire's and PulseAudio's SAP group, 224.0.0.56, which mcc
	// listens on by default.
	muxLink := in(ctx, n.b, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
		"-i", "sine=sample_rate=8000", "-t", "4", "-c:a", "pcm_mulaw", "-f", "sap", "sap://239.255.10.11:5004?announce_addr=224.0.0.56&ttl=1")
	if err := muxLink.Start(); err != nil {
		t.Fatal(err)
	}
	hl := heard(t, a, func(h sap.Heard) bool { return len(h.Groups) > 0 && h.Groups[0].String() == "239.255.10.11" })
	if hl.SAPGroup.String() != "224.0.0.56" || hl.Source.String() != "10.98.0.2" {
		t.Fatalf("A heard ffmpeg's session on 224.0.0.56 as %+v", hl)
	}
	muxLink.Wait()

	// tshark decodes what it caught, with nothing malformed.
	shark.Wait()
	out, err := exec.Command("tshark", "-r", pcap, "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark -r: %v\n%s", err, out)
	}
	text := string(out)
	if !strings.Contains(text, "Session Announcement Protocol") || !strings.Contains(text, "Session Description Protocol") ||
		!strings.Contains(text, "lecture") {
		t.Fatalf("tshark did not decode mcc's SAP and SDP:\n%s", text)
	}
	if strings.Contains(text, "Malformed") {
		t.Fatalf("tshark calls a packet malformed:\n%s", text)
	}
	// The fast start is on by default: a new session is announced again
	// 5 s after its first announcement, not 300 s.
	if n := len(regexp.MustCompile(`(?m)Session Name \(s\): lecture$`).FindAllString(text, -1)); n < 2 {
		t.Fatalf("tshark caught %d announcements of lecture in 9 s, want 2 or more (the fast start):\n%s", n, text)
	}
}
