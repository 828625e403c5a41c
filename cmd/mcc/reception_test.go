package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mcc/conference"
	"mcc/internal/peertest"
	"mcc/multicast"
	"mcc/sdp"
)

// receptionNet is newNetns's A and B, and C behind a router R: A's mcc2
// (10.97.0.1) to R's mcc3 (10.97.0.2), R's mcc4 (10.96.0.1) to C's mcc5
// (10.96.0.2). R forwards unicast and, like a router without a
// multicast routing daemon, no multicast: C reaches mcc serve in A, and
// never gets a group. That is the commonest failure in multicast, and
// what the reception matrix is for.
type receptionNet struct {
	netns
	r, c string
}

func newReceptionNet(t *testing.T) receptionNet {
	t.Helper()
	n := receptionNet{netns: newNetns(t), r: fmt.Sprintf("mcct%d-r", os.Getpid()), c: fmt.Sprintf("mcct%d-c", os.Getpid())}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", n.r).Run()
		exec.Command("ip", "netns", "del", n.c).Run()
	})
	for _, c := range [][]string{
		{"netns", "add", n.r}, {"netns", "add", n.c},
		{"link", "add", "mcc2", "netns", n.a, "type", "veth", "peer", "name", "mcc3", "netns", n.r},
		{"link", "add", "mcc4", "netns", n.r, "type", "veth", "peer", "name", "mcc5", "netns", n.c},
		{"-n", n.r, "link", "set", "lo", "up"}, {"-n", n.c, "link", "set", "lo", "up"},
		{"-n", n.a, "link", "set", "mcc2", "up"}, {"-n", n.r, "link", "set", "mcc3", "up"},
		{"-n", n.r, "link", "set", "mcc4", "up"}, {"-n", n.c, "link", "set", "mcc5", "up"},
		{"-n", n.a, "addr", "add", "10.97.0.1/24", "dev", "mcc2"}, {"-n", n.r, "addr", "add", "10.97.0.2/24", "dev", "mcc3"},
		{"-n", n.r, "addr", "add", "10.96.0.1/24", "dev", "mcc4"}, {"-n", n.c, "addr", "add", "10.96.0.2/24", "dev", "mcc5"},
		{"-n", n.a, "route", "add", "10.96.0.0/24", "via", "10.97.0.2"},
		{"-n", n.r, "route", "add", "10.98.0.0/24", "via", "10.97.0.1"},
		{"-n", n.c, "route", "add", "default", "via", "10.96.0.1"},
		{"netns", "exec", n.r, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	} {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", c, err, out)
		}
	}
	return n
}

// TestReceptionMatrixOnTheWire: mcc serve runs in A on its defaults
// (with the API on A's address, for the probes, and a 3 s silence
// threshold to keep the test short). ffmpeg in A sends a session's audio
// to a relay in A that drops a known 5% of the packets on their way to the
// group; mcc probe runs in B, on the group's link, and in C, behind a
// router that does not forward multicast; sipp dials in from B and from
// the router R, where no probe runs. The matrix shows B receiving with
// exactly the relay's loss and a jitter, tied to B's participant, and C
// silent; the loss, silence and unreported-participant alerts fire;
// mcc reception prints it. IPv4 and IPv6, any-source and
// source-specific (the description's RFC 4570 filter, which B's probe
// joins (S,G) by).
func TestReceptionMatrixOnTheWire(t *testing.T) {
	peertest.Need(t, "ffmpeg", "ip")
	peertest.NeedRoot(t)
	for _, c := range []struct {
		name, family, scope, source string
	}{
		{"ipv4-asm", "4", "local", ""},
		{"ipv4-ssm", "4", "ssm", "10.98.0.1"},
		{"ipv6-asm", "6", "org", ""},
		{"ipv6-ssm", "6", "ssm", "fd00:98::1"},
	} {
		t.Run(c.name, func(t *testing.T) { receptionOnTheWire(t, c.family, c.scope, c.source) })
	}
}

func receptionOnTheWire(t *testing.T, family, scope, source string) {
	n := newReceptionNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	cli := serveIn(t, ctx, n.a, dir, "--api", "10.98.0.1:0", "--silent-after", "3s", "--report-grace", "3s")
	args := []string{"session", "create", "lab", "--family", family, "--scope", scope, "--media", "audio"}
	if source != "" {
		args = append(args, "--source", source)
	}
	cli(args...)
	desc, err := sdp.Parse([]byte(cli("session", "sdp", "lab")))
	if err != nil {
		t.Fatal(err)
	}
	m := desc.Media[0]
	group := desc.EffectiveConnection(m).Addr
	data := filepath.Join(dir, "data")

	// The probes, for longer than the stream.
	probe := func(ns, name string) (*exec.Cmd, *peertest.Output, *peertest.Output) {
		cmd := in(ctx, ns, mccBinary(t), "probe", "lab", "--data", data, "--name", name, "--interval", "1s", "--for", "14s", "-o", "json")
		var out, errs peertest.Output
		cmd.Stdout, cmd.Stderr = &out, &errs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { waitOrKill(cmd, 5*time.Second) })
		return cmd, &out, &errs
	}
	pb, outB, errB := probe(n.b, "b")
	pc, _, errC := probe(n.c, "c")

	// Two participants dial in (sipp): one from B, whose host has a
	// probe, and one from R, whose host reports nothing.
	caller, _ := filepath.Abs("../../conference/testdata/sipp/caller.xml")
	dial := func(ns, from, to string) {
		cmd := in(ctx, ns, "sipp", "-sf", caller, "-s", "lab", "-i", from, "-p", "5090", "-m", "1", "-d", "30000", "-nostdin", "-timeout", "60", to+":5060")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { waitOrKill(cmd, time.Second) })
	}
	dial(n.b, "10.98.0.2", "10.98.0.1")
	dial(n.r, "10.97.0.2", "10.97.0.1")

	// The relay, then ffmpeg: 8 s of PCMU in 10 ms packets, 800 in all.
	const packets = 800
	from := "10.98.0.1"
	if family == "6" {
		from = "fd00:98::1"
	}
	relay := in(ctx, n.a, os.Args[0], "-test.run=^TestLossyRelayChild$", "-test.v")
	relay.Env = append(os.Environ(), "MCC_RELAY="+strings.Join([]string{"127.0.0.1:19000", hostPort(group.String(), int(m.Port)), from, "mcc0", "0.05", strconv.Itoa(packets)}, ","))
	var relayOut peertest.Output
	relay.Stdout, relay.Stderr = &relayOut, &relayOut
	if err := relay.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waitOrKill(relay, 5*time.Second) })
	time.Sleep(500 * time.Millisecond) // the relay binds, the probes join
	send := in(ctx, n.a, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
		"-i", "sine=sample_rate=8000:samples_per_frame=80", "-t", "8", "-ac", "1", "-c:a", "pcm_mulaw", "-payload_type", "0",
		"-f", "rtp", "rtp://127.0.0.1:19000")
	var sendOut peertest.Output
	send.Stdout, send.Stderr = &sendOut, &sendOut
	if err := send.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waitOrKill(send, 5*time.Second) })

	// While it plays: B hears the stream with loss, C hears nothing,
	// and the alerts say so.
	var mat conference.Reception
	want := []string{conference.AlertLoss + " b", conference.AlertReceiverSilent + " c", conference.AlertUnreported + " 10.97.0.2"}
	seen := map[string]bool{}
	deadline := time.Now().Add(12 * time.Second)
	for time.Now().Before(deadline) && len(seen) < len(want) {
		time.Sleep(300 * time.Millisecond)
		if err := json.Unmarshal([]byte(cli("reception", "lab", "-o", "json")), &mat); err != nil {
			t.Fatal(err)
		}
		var info conference.Info
		json.Unmarshal([]byte(cli("session", "show", "lab", "-o", "json")), &info)
		from := map[string]string{} // participant ID to its URI's host
		for _, p := range info.Participants {
			_, hp, _ := strings.Cut(p.URI, "@")
			from[p.ID], _, _ = net.SplitHostPort(strings.Trim(hp, "<>"))
		}
		for _, a := range mat.Alerts {
			k := a.Kind + " " + a.Receiver
			if a.Kind == conference.AlertUnreported {
				k = a.Kind + " " + from[a.Participant]
			}
			if slices.Contains(want, k) {
				seen[k] = true
			}
		}
	}
	if len(seen) < len(want) {
		t.Fatalf("alerts seen %v, want %v; matrix %+v\nprobe b: %s\nprobe c: %s", seen, want, mat, errB.String(), errC.String())
	}
	cells := map[string]conference.ReceiverCell{}
	for _, rc := range mat.Streams[0].Receivers {
		cells[rc.Receiver] = rc
	}
	b, c := cells["b"], cells["c"]
	if len(b.Senders) != 1 || b.Silent || b.Senders[0].Packets < 100 || b.Senders[0].JitterMS <= 0 {
		t.Fatalf("b: %+v", b)
	}
	if !c.Silent || len(c.Senders) != 0 || !slices.Contains(c.Addrs, netip.MustParseAddr("10.96.0.2")) {
		t.Fatalf("c: %+v", c)
	}
	if len(b.Participants) != 1 {
		t.Fatalf("b's row names no participant on its host: %+v", b)
	}
	if source != "" && b.Senders[0].Source.String() != source {
		t.Fatalf("b hears %v, not the session's source %s", b.Senders[0].Source, source)
	}
	table := cli("reception", "lab")
	if !strings.Contains(table, "SILENT") || !strings.Contains(table, "ALERT receiver-silent") {
		t.Fatalf("mcc reception:\n%s", table)
	}

	if err := send.Wait(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, sendOut.String())
	}
	if err := relay.Wait(); err != nil {
		t.Fatalf("relay: %v\n%s", err, relayOut.String())
	}
	var forwarded, dropped int
	if _, err := fmt.Sscanf(lastLine(relayOut.String(), "relay:"), "relay: forwarded %d dropped %d", &forwarded, &dropped); err != nil {
		t.Fatalf("relay: %v\n%s", err, relayOut.String())
	}
	if err := pb.Wait(); err != nil {
		t.Fatalf("probe b: %v\n%s", err, errB.String())
	}
	pc.Wait()
	var own conference.ReceiverReport
	if err := json.Unmarshal([]byte(outB.String()), &own); err != nil || len(own.Streams) != 1 || len(own.Streams[0].Senders) != 1 {
		t.Fatalf("probe b's last report (%v): %s", err, outB.String())
	}
	x := own.Streams[0].Senders[0]
	// The relay never drops the first packets or the last, so every drop
	// is inside what the probe expects; the first packet is its
	// probation (RFC 3550 A.1).
	if int(x.Lost) != dropped || int(x.Packets) != forwarded-1 {
		t.Fatalf("the relay forwarded %d and dropped %d; probe b counted %d received, %d expected, %d lost", forwarded, dropped, x.Packets, x.Expected, x.Lost)
	}
	t.Logf("%s %s: relay dropped %d of %d (%.2f%%); probe b: %d lost of %d expected (%.2f%%), jitter %.2f ms, %.0f b/s; probe c silent",
		family, scope, dropped, forwarded+dropped, 100*float64(dropped)/float64(forwarded+dropped), x.Lost, x.Expected, 100*x.Loss, x.JitterMS, x.RateBPS)
}

func lastLine(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], prefix) {
			return lines[i]
		}
	}
	return ""
}

// TestLossyRelayChild is the relay of TestReceptionMatrixOnTheWire, run
// in namespace A: it reads RTP on a loopback port and sends each packet
// on to the group from the given source on the given interface (TTL 1),
// except a seeded random choice of exactly DROP of them (never one of the
// first ten or the last).
// MCC_RELAY is LISTEN,GROUP:PORT,SOURCE,IFACE,DROP,COUNT.
func TestLossyRelayChild(t *testing.T) {
	spec := os.Getenv("MCC_RELAY")
	if spec == "" {
		t.Skip("the relay of TestReceptionMatrixOnTheWire; runs only in the namespace that test creates")
	}
	f := strings.Split(spec, ",")
	drop, _ := strconv.ParseFloat(f[4], 64)
	count, _ := strconv.Atoi(f[5])
	in, err := net.ListenPacket("udp4", f[0])
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := multicast.ListenGroupAt(netip.AddrPortFrom(netip.MustParseAddr(f[2]), 0))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ifi, err := net.InterfaceByName(f[3])
	if err != nil {
		t.Fatal(err)
	}
	out.SetInterface(ifi)
	out.SetTTL(1)
	dst := netip.MustParseAddrPort(f[1])
	// Exactly DROP of the packets that can be dropped, picked at random
	// (seeded): a known loss rate, with the drops spread as a lossy
	// path spreads them.
	rng := rand.New(rand.NewPCG(5, 7))
	candidates := rng.Perm(count - 11)
	dropSet := map[int]bool{}
	for _, i := range candidates[:int(drop*float64(count)+0.5)] {
		dropSet[10+i] = true
	}
	buf := make([]byte, 2048)
	forwarded, dropped := 0, 0
	in.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i := range count {
		nb, _, err := in.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d packets: %v", i, err)
		}
		if dropSet[i] {
			dropped++
			continue
		}
		if err := out.WriteTo(buf[:nb], dst.Addr(), int(dst.Port())); err != nil {
			t.Fatal(err)
		}
		forwarded++
	}
	fmt.Printf("relay: forwarded %d dropped %d\n", forwarded, dropped)
}

// TestRTCPReportsOnTheWire: mcc serve runs in A on its defaults, which
// listen to every session's RTCP. ffmpeg in A sends the session's audio
// with its RTCP sender reports; GStreamer in B plays the session's
// description (sdpdemux), and its rtpbin multicasts receiver reports to
// the group's RTCP port. The matrix gets GStreamer's host as an RTCP
// receiver of ffmpeg's SSRC, and ffmpeg as the stream's sender. IPv4 and
// IPv6.
func TestRTCPReportsOnTheWire(t *testing.T) {
	peertest.Need(t, "ffmpeg", "gst-launch-1.0", "ip")
	peertest.NeedRoot(t)
	for _, c := range []struct {
		name    string
		v6, ssm bool
	}{{"ipv4", false, false}, {"ipv6", true, false}, {"ipv4-ssm", false, true}, {"ipv6-ssm", true, true}} {
		t.Run(c.name, func(t *testing.T) { rtcpOnTheWire(t, c.v6, c.ssm) })
	}
}

// In an SSM session (RFC 4607) receivers send no RTCP to the group; mcc
// joins the RTCP channel (S,G) of the description's source, and hears
// ffmpeg's sender reports there.
func rtcpOnTheWire(t *testing.T, v6, ssm bool) {
	n := newNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	cli := serveIn(t, ctx, n.a, dir)
	family, from, recv := "4", "10.98.0.1", "10.98.0.2"
	if v6 {
		family, from, recv = "6", "fd00:98::1", "fd00:98::2"
	}
	if ssm {
		cli("session", "create", "lab", "--family", family, "--scope", "ssm", "--source", from, "--media", "audio")
	} else {
		cli("session", "create", "lab", "--family", family, "--media", "audio")
	}
	text := cli("session", "sdp", "lab")
	desc, err := sdp.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	m := desc.Media[0]
	group := desc.EffectiveConnection(m).Addr
	file := filepath.Join(dir, "lab.sdp")
	os.WriteFile(file, []byte(text), 0o644)

	var gstOut peertest.Output
	if !ssm {
		gst := in(ctx, n.b, "gst-launch-1.0", "-q", "filesrc", "location="+file, "!", "sdpdemux", "!", "rtppcmudepay", "!", "fakesink")
		gst.Stdout, gst.Stderr = &gstOut, &gstOut
		if err := gst.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { waitOrKill(gst, 3*time.Second) })
		time.Sleep(500 * time.Millisecond)
	}
	var sendOut peertest.Output
	sendFrom := func(from string) {
		dest := fmt.Sprintf("rtp://%s?ttl=1&localaddr=%s", hostPort(group.String(), int(m.Port)), from)
		if v6 {
			dest = fmt.Sprintf("rtp://%s?localaddr=%s", hostPort(group.String(), int(m.Port)), from) // see linphone_test: no ttl with IPv6
		}
		send := in(ctx, n.a, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
			"-i", "sine=sample_rate=8000:samples_per_frame=160", "-t", "20", "-ac", "1", "-c:a", "pcm_mulaw", "-payload_type", "0", "-f", "rtp", dest)
		send.Stdout, send.Stderr = &sendOut, &sendOut
		if err := send.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { waitOrKill(send, 3*time.Second) })
	}
	sendFrom(from)
	started := time.Now()
	// In SSM, a second sender from another of A's addresses, to the same
	// group and ports: mcc joined (S,G) for the description's source
	// alone, so its sender reports must not reach the matrix.
	other := "10.98.0.3"
	if v6 {
		other = "fd00:98::3"
	}
	if ssm {
		for _, c := range [][]string{{"-n", n.a, "addr", "add", "10.98.0.3/24", "dev", "mcc0"}, {"-n", n.a, "addr", "add", "fd00:98::3/64", "dev", "mcc0", "nodad"}} {
			if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v\n%s", c, err, out)
			}
		}
		sendFrom(other)
	}

	var mat conference.Reception
	deadline := time.Now().Add(18 * time.Second)
	for {
		time.Sleep(500 * time.Millisecond)
		if err := json.Unmarshal([]byte(cli("reception", "lab", "-o", "json")), &mat); err != nil {
			t.Fatal(err)
		}
		var cell *conference.ReceiverCell
		for i, rc := range mat.Streams[0].Receivers {
			if rc.Kind == conference.ReceiverRTCP && slices.Contains(rc.Addrs, netip.MustParseAddr(recv)) {
				cell = &mat.Streams[0].Receivers[i]
			}
		}
		ss := mat.Streams[0].Senders
		for _, x := range ss {
			if x.Source.String() == other {
				t.Fatalf("the sender reports of %s, not the session's source, reached the matrix: %+v", other, ss)
			}
		}
		// ffmpeg sends its first SR about 5 s in: wait for both
		// senders' before judging.
		if ssm && len(ss) == 1 && ss[0].Source.String() == from && time.Since(started) > 8*time.Second {
			t.Logf("ffmpeg's SR on the channel (%s, %v): SSRC %08x, %d packets", from, group, ss[0].SSRC, ss[0].Packets)
			break
		}
		if cell != nil && len(cell.Senders) > 0 && len(ss) == 1 && cell.Senders[0].SSRC == ss[0].SSRC && ss[0].Source.String() == from {
			t.Logf("GStreamer's RR from %s (%s): SSRC %08x lost %d, jitter %.2f ms; ffmpeg's SR from %s: %d packets",
				recv, cell.Receiver, cell.Senders[0].SSRC, cell.Senders[0].Lost, cell.Senders[0].JitterMS, ss[0].Source, ss[0].Packets)
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
			t.Fatalf("no RTCP row for GStreamer in B and sender for ffmpeg in A: %+v\ngst: %s\nffmpeg: %s\nmetrics: %s\nserve log:\n%s", mat, gstOut.String(), sendOut.String(), cli("reception", "lab"), log)
		}
	}
}
