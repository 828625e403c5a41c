package conference

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mcc/conference/conferencetest"
	"mcc/sdp"
)

// sippParticipants starts one sipp UAS that answers for n participants.
func sippParticipants(b *testing.B, n int) string {
	uri, _ := sippParticipantsCmd(b, n)
	return uri
}

// sippParticipantsCmd is sippParticipants, with a way to stop that sipp
// (its participants vanish: what mcc sends them is dropped).
func sippParticipantsCmd(b *testing.B, n int) (string, func()) {
	port := freePort(b, "udp")
	cmd, _ := sipp(b, "participant.xml", "-p", strconv.Itoa(port), "-t", "u1", "-m", strconv.Itoa(n), "-l", strconv.Itoa(n+10), "-max_socket", "65000", "-buff_size", "8388608")
	var once sync.Once
	stop := func() { once.Do(func() { cmd.Process.Kill(); cmd.Wait() }) }
	b.Cleanup(stop)
	time.Sleep(300 * time.Millisecond)
	return "sip:participant@127.0.0.1:" + strconv.Itoa(port), stop
}

// BenchmarkFanoutVanishedLossy1000: 1,000 joined participants, of which
// 100 have vanished (their sipp is stopped), and 5% of mcc's datagrams
// lost both ways; a stream is added for everyone. It reports the time
// until every live participant has acknowledged it (mcc has its 200);
// the vanished ones end later, when their re-INVITEs time out or their
// probes go unanswered. Run with -benchtime 1x.
//
// With RFC 3261's T1 of 500 ms a re-INVITE lost with its first
// retransmission is sent again 1.5 s after the first, and at 3.5 s when
// that is lost too: among 900 participants that happens to one in about
// a third of the runs. The T1=100ms run is what --sip-t1 100ms gives on
// a closed network (§17.1.1.1).
func BenchmarkFanoutVanishedLossy1000(b *testing.B) {
	for _, t1 := range []time.Duration{500 * time.Millisecond, 100 * time.Millisecond} {
		b.Run("T1="+t1.String(), func(b *testing.B) {
			if err := SetT1(t1); err != nil {
				b.Fatal(err)
			}
			// After the controllers' cleanups: no transaction is left then.
			b.Cleanup(func() { SetT1(500 * time.Millisecond) })
			fanoutVanishedLossy(b)
		})
	}
}

func fanoutVanishedLossy(b *testing.B) {
	n := fanoutN()
	gone := n / 10
	var took time.Duration
	for b.Loop() {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		lossy := conferencetest.Lossy(pc, 0.05, 1)
		e := newEnvWith(b, "127.0.0.1", func(c *Config) {
			c.Limits.SourceRate = -1
			c.Listeners = []Listener{{Transport: "udp", PacketConn: lossy}}
		})
		live, _ := sippParticipantsCmd(b, n-gone)
		dead, vanish := sippParticipantsCmd(b, gone)
		uris := make([]string, 0, n)
		for i := range n {
			if i%10 == 0 {
				uris = append(uris, dead)
			} else {
				uris = append(uris, live)
			}
		}
		if _, err := e.c.Invite(e.name, uris...); err != nil {
			b.Fatal(err)
		}
		for deadline := time.Now().Add(40 * time.Second); joined(e.c, e.name) < n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d joined after 40 s", joined(e.c, e.name), n)
			}
		}
		vanish()
		t0 := time.Now()
		ch, err := e.c.AddStream(now(), e.name, sdp.MediaSpec{Kind: "video"})
		if err != nil {
			b.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
			ps, _ := e.c.Participants(e.name)
			have := 0
			for _, p := range ps {
				if p.URI == live && p.Acked >= ch.Version {
					have++
				}
			}
			if have == n-gone {
				break
			}
			if time.Now().After(deadline) {
				var left []string
				for _, p := range ps {
					if p.URI == live && p.Acked < ch.Version && len(left) < 10 {
						left = append(left, fmt.Sprintf("%s %s %d %q acked %d behind %v", p.ID, p.State, p.Status, p.Reason, p.Acked, p.Behind))
					}
				}
				b.Fatalf("%d of %d live participants have the change after 30 s; some of the others:\n%s", have, n-gone, strings.Join(left, "\n"))
			}
		}
		took += time.Since(t0)
	}
	b.ReportMetric(took.Seconds()/float64(b.N), "s/live-acknowledged")
}

func joined(c *Controller, name string) int {
	ps, _ := c.Participants(name)
	n := 0
	for _, p := range ps {
		if p.State == Joined {
			n++
		}
	}
	return n
}

// BenchmarkFanout1000 invites 1,000 participants (one sipp UAS answers for
// all) and reports the time until all have joined, then adds a stream for
// everyone and reports the time until every re-INVITE is answered and
// ACKed. Run with -benchtime 1x.
func BenchmarkFanout1000(b *testing.B) {
	n := fanoutN()
	var join, reinvite time.Duration
	for b.Loop() {
		// One sipp answers for everyone: from one source, so the
		// per-source limits are off, as for a proxy in front of mcc.
		e := newEnvWith(b, "127.0.0.1", func(c *Config) { c.Limits.SourceRate = -1 }, "udp")
		uri := sippParticipants(b, n)
		uris := make([]string, n)
		for i := range uris {
			uris[i] = uri
		}
		t0 := time.Now()
		if _, err := e.c.Invite(e.name, uris...); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for joined(e.c, e.name) < n {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d joined after 60 s", joined(e.c, e.name), n)
			}
			time.Sleep(time.Millisecond)
		}
		join += time.Since(t0)
		t0 = time.Now()
		ch, err := e.c.AddStream(ctxT(b), e.name, sdp.MediaSpec{Kind: "video"})
		reinvite += time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range ch.Results {
			if len(r.Streams) != 3 || r.Streams[2] != "accepted" {
				b.Fatalf("after the re-INVITE: %+v", r)
			}
		}
	}
	b.ReportMetric(join.Seconds()/float64(b.N), "s/all-joined")
	b.ReportMetric(reinvite.Seconds()/float64(b.N), "s/all-reinvited")
}

// BenchmarkMemory10k joins 10,000 participants and reports the resident
// memory each costs, once the transactions of the joins have ended (RFC
// 6026 keeps them 64·T1). Run with -benchtime 1x.
func BenchmarkMemory10k(b *testing.B) {
	n := 10 * fanoutN()
	for b.Loop() {
		// Probes off: what a participant holds between them (a probe is a
		// transaction of a few milliseconds per interval).
		e := newEnvWith(b, "127.0.0.1", func(c *Config) { c.Fanout, c.Limits.SourceRate, c.ProbeInterval = 256, -1, -1 }, "udp")
		uri := sippParticipants(b, n)
		debug.FreeOSMemory()
		before := rss(b)
		uris := make([]string, n)
		for i := range uris {
			uris[i] = uri
		}
		if _, err := e.c.Invite(e.name, uris...); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(120 * time.Second)
		for joined(e.c, e.name) < n {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d joined after 120 s", joined(e.c, e.name), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(64*500*time.Millisecond + 3*time.Second) // transactions end
		debug.FreeOSMemory()                                // a GC that also returns free pages, as the scavenger does in time
		after := rss(b)
		if f := os.Getenv("MCC_HEAPPROFILE"); f != "" {
			if w, err := os.Create(f); err == nil {
				pprof.WriteHeapProfile(w)
				w.Close()
			}
		}
		b.ReportMetric(float64(after-before)/float64(n), "B-rss/participant")
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/float64(n), "B-heap/participant")
	}
}

// rss reads the process's resident set size.
func rss(b *testing.B) int64 {
	s, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	for _, l := range strings.Split(string(s), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	b.Skip("no VmRSS")
	return 0
}

// fanoutN is 1,000, or MCC_FANOUT_N to try other sizes.
func fanoutN() int {
	if n, err := strconv.Atoi(os.Getenv("MCC_FANOUT_N")); err == nil && n > 0 {
		return n
	}
	return 1000
}
