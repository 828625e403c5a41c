package conference

import (
	"bytes"
	"context"
	"log/slog"
	"net"
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

// freePort returns a port free on 127.0.0.1 for the transport.
func freePort(t testing.TB, transport string) int {
	t.Helper()
	if transport == "tcp" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// sipp starts sipp with a scenario from testdata/sipp, bounded to a minute.
func sipp(t testing.TB, scenario string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	peertest.Need(t, "sipp")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	dir := t.TempDir()
	all := append([]string{"-sf", filepath.Join("testdata", "sipp", scenario), "-i", "127.0.0.1", "-m", "1",
		"-timeout", "50", "-timeout_error", "-nostdin", "-trace_err", "-error_file", filepath.Join(dir, "err.log")}, args...)
	cmd := exec.CommandContext(ctx, "sipp", all...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

// TestSippParticipant: sipp answers mcc's INVITE and the re-INVITEs that
// add and remove a stream, then mcc's BYE.
func TestSippParticipant(t *testing.T) {
	for _, tr := range []string{"udp", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			e := newEnv(t, "127.0.0.1", tr)
			port := freePort(t, tr)
			cmd, out := sipp(t, "participant.xml", "-p", strconv.Itoa(port), "-t", tr[:1]+"1")
			time.Sleep(300 * time.Millisecond) // sipp binds its port
			uri := "sip:participant@127.0.0.1:" + strconv.Itoa(port) + uriParams(tr)
			ps, err := e.c.Invite(e.name, uri)
			if err != nil {
				t.Fatal(err)
			}
			got := waitState(t, e.c, e.name, ps[0].ID, Joined)
			if strings.Join(got.Streams, ",") != "accepted,accepted" {
				t.Fatalf("joined: %+v", got)
			}
			ch, err := e.c.AddStream(ctxT(t), e.name, sdp.MediaSpec{Kind: "video"})
			if err != nil || strings.Join(ch.Results[0].Streams, ",") != "accepted,accepted,accepted" {
				t.Fatalf("add: %+v %v\n%s", ch, err, out)
			}
			ch, err = e.c.RemoveStream(ctxT(t), e.name, 0)
			if err != nil || strings.Join(ch.Results[0].Streams, ",") != "removed,accepted,accepted" {
				t.Fatalf("remove: %+v %v\n%s", ch, err, out)
			}
			if err := e.c.Delete(ctxT(t), e.name); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("sipp: %v\n%s", err, out)
			}
		})
	}
}

// TestSippDialIn: sipp dials in without SDP, answers the offer in the
// 200 in its ACK, holds, and hangs up.
func TestSippDialIn(t *testing.T) {
	for _, tr := range []string{"udp", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			e := newEnv(t, "127.0.0.1", tr)
			addr := e.c.Addrs()[0].Addr
			cmd, out := sipp(t, "caller.xml", "-s", e.name, "-d", "1500", "-t", tr[:1]+"1", "-p", strconv.Itoa(freePort(t, tr)), addr)
			eventually(t, "sipp to join", func() bool {
				ps, _ := e.c.Participants(e.name)
				return len(ps) == 1 && ps[0].State == Joined && strings.Join(ps[0].Streams, ",") == "accepted,accepted"
			})
			if err := cmd.Wait(); err != nil {
				t.Fatalf("sipp: %v\n%s", err, out)
			}
			eventually(t, "sipp's BYE", func() bool {
				ps, _ := e.c.Participants(e.name)
				return ps[0].State == Left
			})
		})
	}
}

// notifyBodies are the NOTIFY bodies of a sipp -trace_msg log.
func notifyBodies(log string) []string {
	var out []string
	log = strings.ReplaceAll(log, "\r\n", "\n")
	for _, msg := range strings.Split(log, "----------------------------------------------- ") {
		i := strings.Index(msg, "NOTIFY sip:")
		if i < 0 {
			continue
		}
		msg = msg[i:]
		if j := strings.Index(msg, "\n\n"); j >= 0 {
			if body := strings.TrimSpace(msg[j+2:]); strings.HasPrefix(body, "<?xml") {
				out = append(out, body)
			}
		}
	}
	return out
}

// firstNotified waits for a subscription to e's conference to have sent
// its first NOTIFY (and its subscriber's 200 to come), and returns it.
func firstNotified(t *testing.T, e *env) *subscription {
	t.Helper()
	var got *subscription
	eventually(t, "the subscriber's full state", func() bool {
		for _, s := range e.c.watch.of(e.name) {
			s.mu.Lock()
			sent := s.version
			s.mu.Unlock()
			if sent >= 1 {
				got = s
				time.Sleep(100 * time.Millisecond)
				return true
			}
		}
		return false
	})
	return got
}

// TestSippSubscriber: sipp subscribes to the conference package, gets
// full state, the partial documents of an invitation until it shows
// connected, full state again on its refresh, and terminated on its
// unsubscription (testdata/sipp/subscriber.xml checks each); every
// document it logged validates against RFC 4575's schema.
func TestSippSubscriber(t *testing.T) {
	for _, tr := range []string{"udp", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			e := newEnvWith(t, "127.0.0.1", func(c *Config) {
				if os.Getenv("DEBUGLOG") != "" {
					c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
				}
			}, tr)
			addr := e.c.Addrs()[0].Addr
			trace := filepath.Join(t.TempDir(), "msg.log")
			cmd, out := sipp(t, "subscriber.xml", "-s", e.name, "-t", tr[:1]+"1", "-p", strconv.Itoa(freePort(t, tr)),
				"-key", "target", addr, "-trace_msg", "-message_file", trace, addr)
			firstNotified(t, e)
			p := e.peer(t, tr)
			if _, err := e.c.Invite(e.name, p.uri()); err != nil {
				t.Fatal(err)
			}
			werr := cmd.Wait()
			log, err := os.ReadFile(trace)
			if werr != nil {
				t.Fatalf("sipp: %v\n%s\n%s", werr, out, log)
			}
			if err != nil {
				t.Fatal(err)
			}
			docs := notifyBodies(string(log))
			if len(docs) < 4 {
				t.Fatalf("%d documents in sipp's log", len(docs))
			}
			for _, d := range docs {
				checkConferenceInfoSchema(t, []byte(d))
			}
			eventually(t, "the subscription to end", func() bool { return e.c.Metrics().Subscriptions[eventConference] == 0 })
		})
	}
}

// TestSippReferrer: sipp, as a moderator out of any dialog, refers a
// participant in (testdata/sipp/referrer.xml): 202, 100 Trying, the
// final status with terminated; the participant joins with sipp's
// Referred-By as its by.
func TestSippReferrer(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	e.withAccess(t, Access{Moderators: []string{"moderator@127.0.0.1"}})
	bob := e.peer(t, "udp")
	addr := e.c.Addrs()[0].Addr
	cmd, out := sipp(t, "referrer.xml", "-s", e.name, "-t", "u1", "-p", strconv.Itoa(freePort(t, "udp")),
		"-key", "target", bob.uri(), "-key", "referrer", "moderator", addr)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sipp: %v\n%s", err, out)
	}
	ps, _ := e.c.Participants(e.name)
	if len(ps) != 1 || ps[0].State != Joined || ps[0].By != "sip:moderator@127.0.0.1" {
		t.Fatalf("participants: %+v", ps)
	}
	// Someone not on the list gets 403.
	cmd, out = sipp(t, "referrer.xml", "-s", e.name, "-t", "u1", "-p", strconv.Itoa(freePort(t, "udp")),
		"-key", "target", bob.uri(), "-key", "referrer", "stranger", addr)
	if err := cmd.Wait(); err == nil || !strings.Contains(out.String(), "403") {
		t.Fatalf("sipp as a stranger: %v\n%s", err, out)
	}
}
