package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mcc/internal/peertest"
	"mcc/sdp"
)

// TestSSMReceiver: an ffmpeg receiver in namespace B given the
// description of an SSM session mcc made (RFC 4607, with RFC 4570's
// a=source-filter naming A's 10.98.0.1 / fd00:98::1) joins (S,G): of two
// senders in A to the same group and port, B's sockets are delivered the
// named source's packets and not the other's. IPv4 and IPv6.
func TestSSMReceiver(t *testing.T) {
	peertest.Need(t, "ffmpeg", "ip")
	peertest.NeedRoot(t)
	for _, v6 := range []bool{false, true} {
		name := "ipv4"
		if v6 {
			name = "ipv6"
		}
		t.Run(name, func(t *testing.T) { ssmReceiver(t, v6) })
	}
}

func ssmReceiver(t *testing.T, v6 bool) {
	n := newNetns(t)
	src, other, family := "10.98.0.1", "10.98.0.3", "4"
	if v6 {
		src, other, family = "fd00:98::1", "fd00:98::3", "6"
	}
	for _, c := range [][]string{{"-n", n.a, "addr", "add", "10.98.0.3/24", "dev", "mcc0"}, {"-n", n.a, "addr", "add", "fd00:98::3/64", "dev", "mcc0", "nodad"}} {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", c, err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	cli := serveIn(t, ctx, n.a, dir)
	cli("session", "create", "ssm", "--family", family, "--scope", "ssm", "--source", src, "--media", "audio")
	text := cli("session", "sdp", "ssm")
	desc, err := sdp.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	m := desc.Media[0]
	group := desc.EffectiveConnection(m).Addr
	if !strings.Contains(text, "a=source-filter: incl IN IP"+family+" "+group.String()+" "+src) && !strings.Contains(text, "a=source-filter: incl IN IP"+family+" * "+src) {
		t.Fatalf("the SSM description names no source filter for %s:\n%s", src, text)
	}
	file := filepath.Join(dir, "ssm.sdp")
	os.WriteFile(file, []byte(text), 0o644)

	// ffmpeg in B receives the session for 4 s from its description.
	recv := in(ctx, n.b, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-protocol_whitelist", "file,udp,rtp",
		"-i", file, "-t", "4", "-f", "null", "-")
	rlog, _ := os.Create(filepath.Join(dir, "recv.log"))
	recv.Stdout, recv.Stderr = rlog, rlog
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // it joins
	before := udpDelivered(t, n.b, v6)
	send := func(from string) *exec.Cmd {
		dest := fmt.Sprintf("rtp://%s?ttl=1&localaddr=%s", hostPort(group.String(), int(m.Port)), from)
		if v6 {
			dest = fmt.Sprintf("rtp://%s?localaddr=%s", hostPort(group.String(), int(m.Port)), from) // see linphone_test: no ttl with IPv6
		}
		c := in(ctx, n.a, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
			"-i", "sine=sample_rate=8000:samples_per_frame=160", "-t", "2", "-ac", "1", "-c:a", "pcm_mulaw", "-payload_type", "0", "-f", "rtp", dest)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := send(src), send(other)
	if err := a.Wait(); err != nil {
		t.Fatalf("ffmpeg from %s: %v", src, err)
	}
	if err := b.Wait(); err != nil {
		t.Fatalf("ffmpeg from %s: %v", other, err)
	}
	time.Sleep(200 * time.Millisecond)
	got := udpDelivered(t, n.b, v6) - before
	recv.Process.Signal(syscall.SIGINT)
	recv.Wait()
	// 100 packets from each sender; the named source's only, give or take.
	if got < 90 || got > 120 {
		log, _ := os.ReadFile(rlog.Name())
		t.Fatalf("B delivered %d datagrams while %s and %s each sent 100 to %v:%d (want the named source's 100)\nreceiver log:\n%s", got, src, other, group, m.Port, log)
	}
	t.Logf("ffmpeg in B joined (%s, %v) and was delivered %d datagrams of the 200 sent", src, group, got)
}
