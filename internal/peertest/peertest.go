// Package peertest finds the real programs that interop tests run against
// (ffmpeg, sipp, ...) and decides what a missing one means: a skip on a
// developer's machine, a failure in CI (CI=true), where .ci/run installs
// them.
package peertest

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// InCI reports whether the tests run in CI, where every peer must be there.
func InCI() bool { return os.Getenv("CI") == "true" }

// Need returns the paths of the named programs. When one is missing it
// fails the test in CI and skips it elsewhere.
func Need(t testing.TB, names ...string) []string {
	t.Helper()
	var paths []string
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			missing(t, "%s is not installed (bash .ci/run installs it)", n)
		}
		paths = append(paths, p)
	}
	return paths
}

// NeedRoot fails the test in CI and skips it elsewhere unless it runs as
// root, which network namespaces need.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "needs root to create a network namespace")
	}
}

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Output collects what a peer's process writes while the test reads it.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// String returns what was written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// InOwnNetns runs test child of this test binary in a network namespace
// of its own (unshare --net), with env set to 1 so that the child runs
// there and skips anywhere else, and fails t unless the child passed.
func InOwnNetns(t testing.TB, child, env string) {
	t.Helper()
	Need(t, "unshare", "ip")
	NeedRoot(t)
	cmd := exec.Command("unshare", "--net", os.Args[0], "-test.run=^"+child+"$", "-test.v")
	cmd.Env = append(os.Environ(), env+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+child) {
		t.Fatalf("in a network namespace: %v\n%s", err, out)
	}
}
