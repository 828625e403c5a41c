package conference

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mcc/internal/peertest"
	"mcc/sdp"
)

// TestTortureOnTheWire sends every message of RFC 4475 and RFC 5118 over
// real UDP to mcc and to kamailio (a UAS checking requests with its
// sanity module) in the same run, and checks that mcc's outcome is the
// one the RFC gives; kamailio's is logged beside it. It runs in a network
// namespace of its own, so that each message can leave from the port its
// Via names, where the answer comes back (RFC 3261 §18.2.2).
func TestTortureOnTheWire(t *testing.T) {
	peertest.Need(t, "kamailio", "unshare", "ip")
	peertest.NeedRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--net", os.Args[0], "-test.run", "^TestTortureOnTheWireChild$", "-test.v")
	cmd.Env = append(os.Environ(), "MCC_TORTURE_CHILD=1")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestTortureOnTheWireChild") {
		t.Fatalf("the run in its namespace: %v", err)
	}
}

// TestTortureOnTheWireChild is TestTortureOnTheWire's body, run inside
// the namespace it creates; alone it does nothing.
func TestTortureOnTheWireChild(t *testing.T) {
	if os.Getenv("MCC_TORTURE_CHILD") != "1" {
		t.Skip("the body of TestTortureOnTheWire")
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link: %v %s", err, out)
	}
	kaddr := "127.0.0.3:5060"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kam := exec.CommandContext(ctx, "kamailio", "-f", "testdata/kamailio/torture.cfg", "-DD", "-E",
		"-l", "udp:"+kaddr, "-m", "32", "-M", "8", "-w", t.TempDir(), "-Y", t.TempDir())
	var klog peertest.Output
	kam.Stdout, kam.Stderr = &klog, &klog
	kam.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	kam.Cancel = func() error { return syscall.Kill(-kam.Process.Pid, syscall.SIGKILL) }
	if err := kam.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-kam.Process.Pid, syscall.SIGKILL); kam.Wait() })
	probe := msg("OPTIONS sip:x@127.0.0.3 SIP/2.0", with(base("OPTIONS"), "Content-Length: 0"), "")
	eventually(t, "kamailio to answer", func() bool { return wireOutcome(t, kaddr, []byte(probe)) == "200" })

	agree, rows := 0, tortureRows(t)
	var table strings.Builder
	fmt.Fprintf(&table, "%-48s %-10s %-6s %s\n", "message", "RFC", "mcc", "kamailio")
	for _, row := range rows {
		data, err := os.ReadFile(filepath.Join("testdata", "torture", row.file))
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, "127.0.0.2", "udp")
		u, err := e.m.Create(sdp.SessionSpec{Name: "User", Pool: "ipv4-local", Media: []sdp.MediaSpec{{Kind: "audio"}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.c.Create("user", u.Origin.SessionID, Access{}); err != nil {
			t.Fatal(err)
		}
		got := wireOutcome(t, e.c.Addrs()[0].Addr, data)
		e.c.Close()
		k := wireOutcome(t, kaddr, data)
		ok := map[string]bool{}
		for _, s := range strings.Split(row.focus+"|"+row.alsoOK, "|") {
			ok[s] = true
		}
		if !ok[got] {
			t.Errorf("RFC %s %s: mcc's outcome on the wire is %s, want %s (or %s)", row.section, row.file, got, row.focus, row.alsoOK)
		}
		if refuses(got) == refuses(k) {
			agree++
		}
		fmt.Fprintf(&table, "%-48s %-10s %-6s %s\n", row.file, row.focus, got, k)
	}
	t.Logf("outcomes (a status, or drop):\n%s", table.String())
	t.Logf("mcc and kamailio agree on whether a message is malformed for %d of %d messages", agree, len(rows))
}

// refuses reports whether an outcome turns a message away as malformed:
// dropped, or 400, 416, 505 or 513.
func refuses(outcome string) bool {
	switch outcome {
	case "drop", "400", "416", "505", "513":
		return true
	}
	return false
}

var viaPort = regexp.MustCompile(`(?im)^(?:via|v)\s*:\s*SIP\s*/\s*2\.0\s*/\s*\w+\s+(?:\[[^\]]*\]|[^\s;:]+)(?::(\d+))?`)

// wireOutcome sends one datagram to addr from the port the message's top
// Via names (5060 by default) and returns the final status that comes
// back, or "drop" when none does within 600 ms.
func wireOutcome(t testing.TB, addr string, data []byte) string {
	t.Helper()
	port := "5060"
	if m := viaPort.FindSubmatch(data); m != nil && len(m[1]) > 0 {
		port = string(m[1])
	}
	if n, _ := strconv.Atoi(port); n <= 0 || n > 65535 {
		port = "5060"
	}
	conn, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Fatalf("bind the Via's port %s: %v", port, err)
	}
	defer conn.Close()
	to, _ := net.ResolveUDPAddr("udp", addr)
	if _, err := conn.WriteTo(data, to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	deadline := time.Now().Add(600 * time.Millisecond)
	for {
		conn.SetReadDeadline(deadline)
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return "drop"
		}
		f := strings.Fields(firstLine(string(buf[:n])))
		if len(f) >= 2 && strings.HasPrefix(f[0], "SIP/") && !strings.HasPrefix(f[1], "1") {
			return f[1]
		}
	}
}
