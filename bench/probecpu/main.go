// Command probecpu measures what mcc probe costs: the CPU time it takes
// to receive one session's RTP at a given packet rate, next to ffmpeg
// receiving the same stream (-c copy: no decoding) in the same run.
// bench/probe-cpu.sh runs it in a network namespace of its own, where
// everything is on loopback:
//
//	probecpu -mcc PATH [-for 20s] [-rates 1000,4000]
//
// For each rate it starts mcc probe and ffmpeg on the session mcc serve
// describes, sends the session's audio with ffmpeg for -for, and prints
// each receiver's CPU time (user and system) per second of stream and
// per 1,000 packets a second, and how many packets the probe counted.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	mcc := flag.String("mcc", "mcc", "the mcc binary")
	dur := flag.Duration("for", 20*time.Second, "how long each rate is sent")
	rates := flag.String("rates", "1000,4000", "packet rates, comma-separated (each divides 8000: PCMU at 8 kHz)")
	flag.Parse()
	if err := run(*mcc, *dur, *rates); err != nil {
		fmt.Fprintln(os.Stderr, "probecpu:", err)
		os.Exit(1)
	}
}

func sh(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
	}
	return nil
}

func cpu(p *os.ProcessState) time.Duration { return p.UserTime() + p.SystemTime() }

func run(mcc string, dur time.Duration, rateList string) error {
	for _, c := range [][]string{{"link", "set", "lo", "up"}, {"route", "add", "224.0.0.0/4", "dev", "lo"}} {
		if err := sh("ip", c...); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "probecpu")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "data")
	serve := exec.Command(mcc, "serve", "--data", data, "--sip", "udp:127.0.0.1:25060", "--host", "127.0.0.1", "--api", "127.0.0.1:0", "--rtcp=false", "--log-level", "warn")
	if err := serve.Start(); err != nil {
		return err
	}
	defer func() { serve.Process.Signal(syscall.SIGTERM); serve.Wait() }()
	cli := func(args ...string) (string, error) {
		var out []byte
		var err error
		for range 50 {
			if out, err = exec.Command(mcc, append(args, "--data", data)...).CombinedOutput(); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		return string(out), err
	}
	if out, err := cli("session", "create", "bench", "--media", "audio"); err != nil {
		return fmt.Errorf("session create: %v\n%s", err, out)
	}
	desc, err := cli("session", "sdp", "bench")
	if err != nil {
		return err
	}
	file := filepath.Join(dir, "bench.sdp")
	os.WriteFile(file, []byte(desc), 0o644)
	var group, port string
	for _, l := range strings.Split(desc, "\r\n") {
		if g, ok := strings.CutPrefix(l, "c=IN IP4 "); ok {
			group, _, _ = strings.Cut(g, "/")
		}
		if m, ok := strings.CutPrefix(l, "m=audio "); ok {
			port, _, _ = strings.Cut(m, " ")
		}
	}
	fmt.Printf("%-8s %-9s %-12s %-12s %-20s %-20s %s\n", "pkt/s", "seconds", "probe CPU", "ffmpeg CPU", "probe ms/s per 1k", "ffmpeg ms/s per 1k", "probe counted")
	for _, r := range strings.Split(rateList, ",") {
		rate, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || rate <= 0 || 8000%rate != 0 {
			return fmt.Errorf("rate %q: want a divisor of 8000", r)
		}
		probe := exec.Command(mcc, "probe", "bench", "--data", data, "--interval", "2s", "--for", (dur + 3*time.Second).String(), "-o", "json")
		var probeOut strings.Builder
		probe.Stdout = &probeOut
		ff := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-protocol_whitelist", "file,udp,rtp", "-i", file, "-c", "copy", "-f", "null", "-")
		if err := probe.Start(); err != nil {
			return err
		}
		if err := ff.Start(); err != nil {
			return err
		}
		time.Sleep(time.Second) // both join
		send := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
			"-i", fmt.Sprintf("sine=sample_rate=8000:samples_per_frame=%d", 8000/rate), "-t", strconv.Itoa(int(dur.Seconds())),
			"-ac", "1", "-c:a", "pcm_mulaw", "-payload_type", "0", "-f", "rtp", "rtp://"+group+":"+port+"?ttl=1")
		if out, err := send.CombinedOutput(); err != nil {
			return fmt.Errorf("sender: %v\n%s", err, out)
		}
		ff.Process.Signal(syscall.SIGINT)
		ff.Wait()
		if err := probe.Wait(); err != nil {
			return fmt.Errorf("mcc probe: %v", err)
		}
		var rep struct {
			Streams []struct {
				Senders []struct{ Packets uint64 }
			}
		}
		counted := uint64(0)
		if json.Unmarshal([]byte(probeOut.String()), &rep) == nil && len(rep.Streams) > 0 && len(rep.Streams[0].Senders) > 0 {
			counted = rep.Streams[0].Senders[0].Packets
		}
		// The probe runs 4 s longer than the stream (its joins, its last
		// report): its figure per second is over the stream's seconds,
		// which overstates it a little.
		secs := dur.Seconds()
		per := func(d time.Duration) float64 { return float64(d.Milliseconds()) / secs / (float64(rate) / 1000) }
		pc, fc := cpu(probe.ProcessState), cpu(ff.ProcessState)
		fmt.Printf("%-8d %-9.0f %-12v %-12v %-20.2f %-20.2f %d of %d\n", rate, secs, pc.Round(time.Millisecond), fc.Round(time.Millisecond), per(pc), per(fc), counted, rate*int(secs))
	}
	return nil
}
