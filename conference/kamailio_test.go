package conference

import (
	"context"
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

// TestKamailioRegistrarProxy: a participant (sipp) registers at kamailio;
// mcc invites its address-of-record through kamailio, which
// record-routes; the re-INVITE that adds a stream and the BYE follow the
// Route set through kamailio.
func TestKamailioRegistrarProxy(t *testing.T) {
	peertest.Need(t, "kamailio", "sipp")
	kaddr, klog := startKamailio(t)

	pport := freePort(t, "udp")
	uas, uasOut := sipp(t, "participant.xml", "-p", strconv.Itoa(pport), "-t", "u1")
	time.Sleep(300 * time.Millisecond)
	reg, regOut := sipp(t, "register.xml", "-s", "alice", "-key", "contact", "127.0.0.1:"+strconv.Itoa(pport),
		"-p", strconv.Itoa(freePort(t, "udp")), kaddr)
	if err := reg.Wait(); err != nil {
		t.Fatalf("REGISTER: %v\n%s\n%s", err, regOut, klog.String())
	}

	e := newEnv(t, "127.0.0.1", "udp")
	ps, err := e.c.Invite(e.name, "sip:alice@"+kaddr)
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	e.c.mu.Lock()
	var routes int
	for _, d := range e.c.dialogs {
		routes = len(d.routeSet)
	}
	e.c.mu.Unlock()
	if routes != 1 {
		t.Fatalf("the dialog's route set has %d entries, want kamailio's one", routes)
	}
	ch, err := e.c.AddStream(ctxT(t), e.name, sdp.MediaSpec{Kind: "video"})
	if err != nil || strings.Join(ch.Results[0].Streams, ",") != "accepted,accepted,accepted" {
		t.Fatalf("add through kamailio: %+v %v\n%s", ch, err, uasOut)
	}
	if err := e.c.Delete(ctxT(t), e.name); err != nil {
		t.Fatal(err)
	}
	if err := uas.Wait(); err != nil {
		t.Fatalf("participant: %v\n%s", err, uasOut)
	}
	log := klog.String()
	for _, want := range []string{"in-dialog INVITE", "in-dialog ACK", "in-dialog BYE"} {
		if !strings.Contains(log, want) {
			t.Errorf("kamailio did not relay an %s by the route set:\n%s", strings.TrimPrefix(want, "in-dialog "), log)
		}
	}
}

// startKamailio runs kamailio on testdata/kamailio/kamailio.cfg on a free
// UDP port of 127.0.0.1, stopped, workers and all, by the test's cleanup.
// It returns its address and its log.
func startKamailio(t *testing.T) (string, *peertest.Output) {
	t.Helper()
	kport := freePort(t, "udp")
	kaddr := "127.0.0.1:" + strconv.Itoa(kport)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	kam := exec.CommandContext(ctx, "kamailio", "-f", "testdata/kamailio/kamailio.cfg", "-DD", "-E",
		"-l", "udp:"+kaddr, "-m", "32", "-M", "8", "-w", t.TempDir(), "-Y", t.TempDir())
	klog := &peertest.Output{}
	kam.Stdout, kam.Stderr = klog, klog
	// kamailio forks its workers: they share a process group, which the
	// cleanup kills whole.
	kam.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	kam.Cancel = func() error { return syscall.Kill(-kam.Process.Pid, syscall.SIGKILL) }
	if err := kam.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-kam.Process.Pid, syscall.SIGKILL); kam.Wait() })
	eventually(t, "kamailio to listen", func() bool {
		return strings.Contains(klog.String(), "INFO") || strings.Contains(klog.String(), "listening")
	})
	time.Sleep(500 * time.Millisecond)

	return kaddr, klog
}

// TestKamailioSubscriber: sipp subscribes to a conference's roster
// through kamailio, which record-routes the SUBSCRIBE: mcc's NOTIFYs
// (full state, the partial documents of an invitation, full state on the
// refresh, terminated) follow the route set back through kamailio, and
// so do sipp's refresh and unsubscription; every document validates.
func TestKamailioSubscriber(t *testing.T) {
	peertest.Need(t, "kamailio", "sipp", "xmllint")
	kaddr, klog := startKamailio(t)
	e := newEnv(t, "127.0.0.1", "udp")
	addr := e.c.Addrs()[0].Addr
	trace := filepath.Join(t.TempDir(), "msg.log")
	cmd, out := sipp(t, "subscriber.xml", "-s", e.name, "-t", "u1", "-p", strconv.Itoa(freePort(t, "udp")),
		"-key", "target", addr, "-trace_msg", "-message_file", trace, kaddr)
	s := firstNotified(t, e)
	s.d.mu.Lock()
	routes := len(s.d.routeSet)
	s.d.mu.Unlock()
	if routes != 1 {
		t.Fatalf("the subscription's route set has %d entries, want kamailio's one", routes)
	}
	p := e.peer(t, "udp")
	if _, err := e.c.Invite(e.name, p.uri()); err != nil {
		t.Fatal(err)
	}
	werr := cmd.Wait()
	log, _ := os.ReadFile(trace)
	if werr != nil {
		t.Fatalf("sipp: %v\n%s\n%s\nkamailio:\n%s", werr, out, log, klog.String())
	}
	docs := notifyBodies(string(log))
	if len(docs) < 4 {
		t.Fatalf("%d documents in sipp's log", len(docs))
	}
	for _, d := range docs {
		checkConferenceInfoSchema(t, []byte(d))
	}
	kl := klog.String()
	for _, want := range []string{"relay SUBSCRIBE", "in-dialog NOTIFY", "in-dialog SUBSCRIBE"} {
		if !strings.Contains(kl, want) {
			t.Errorf("kamailio's log has no %q:\n%s", want, kl)
		}
	}
	t.Logf("%d NOTIFYs through kamailio; %d in-dialog NOTIFYs relayed by the route set", len(docs), strings.Count(kl, "in-dialog NOTIFY"))
}
