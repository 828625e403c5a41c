package store

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mcc/multicast"
)

func TestLeaseRoundTrip(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := multicast.Lease{Group: netip.MustParseAddr("ff15::8000:1"), Port: 16384, Pool: "ipv6-local", TTL: 15,
		Owner: "session 1", Start: time.Unix(1000, 0).UTC(), End: time.Unix(5000, 0).UTC()}
	v4 := want
	v4.Group = netip.MustParseAddr("239.255.1.1")
	if err := db.PutLeases([]multicast.Lease{want, v4}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteLeases([]netip.Addr{v4.Group, netip.MustParseAddr("239.9.9.9")}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.LoadLeases()
	if err != nil || len(got) != 1 || got[0] != want {
		t.Fatalf("LoadLeases = %+v, %v; want [%+v]", got, err, want)
	}
}

func TestOneProcessAtATime(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := Open(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
}

// crashPool is the pool the crash test allocates from: 512 addresses.
var crashPool = multicast.Pool{Name: "crash", Prefix: netip.MustParsePrefix("239.1.0.0/23"), TTL: 1}

// TestCrashChild is the child of TestKillMidAllocation: it allocates
// until killed, printing each group once Allocate has returned it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("MCC_CRASH_CHILD_DIR")
	if dir == "" {
		t.Skip("the child of TestKillMidAllocation; runs only when that test starts it")
	}
	db, err := Open(dir)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	a, err := multicast.NewAllocator(multicast.Config{Pools: []multicast.Pool{crashPool}, Store: db})
	if err != nil {
		fmt.Println("allocator:", err)
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	for range crashPool.Size() {
		l, err := a.Allocate(multicast.Request{Pool: crashPool.Name, Owner: "child"})
		if err != nil {
			fmt.Fprintln(w, "error:", err)
			w.Flush()
			os.Exit(2)
		}
		fmt.Fprintln(w, l.Group)
		w.Flush()
	}
	time.Sleep(time.Minute) // the parent kills us long before
}

// TestKillMidAllocation kills a child process with SIGKILL while it
// allocates, then checks that every lease it was granted is in the store,
// that none was granted twice, and that a new allocator on the same store
// hands out only the addresses nobody holds.
func TestKillMidAllocation(t *testing.T) {
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := range 3 {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
		cmd.Env = append(os.Environ(), "MCC_CRASH_CHILD_DIR="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAt := 20 + r.IntN(150)
		granted := map[netip.Addr]bool{}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			g, err := netip.ParseAddr(sc.Text())
			if err != nil {
				cmd.Process.Kill()
				t.Fatalf("child said %q", sc.Text())
			}
			if granted[g] {
				t.Fatalf("round %d: the child was granted %v twice", round, g)
			}
			granted[g] = true
			if len(granted) == killAt {
				// The child is inside its next Allocate, or about to be,
				// or a few ahead: what it printed before it died is still
				// in the pipe, and read below.
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		for sc.Scan() { // grants the child printed before the kill reached it
			if g, err := netip.ParseAddr(sc.Text()); err == nil {
				if granted[g] {
					t.Fatalf("round %d: the child was granted %v twice", round, g)
				}
				granted[g] = true
			}
		}
		cmd.Wait()
		if len(granted) < killAt {
			t.Fatalf("round %d: the child stopped after %d grants: %v", round, len(granted), sc.Err())
		}

		db, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := db.LoadLeases()
		if err != nil {
			t.Fatal(err)
		}
		inStore := map[netip.Addr]bool{}
		for _, l := range stored {
			if inStore[l.Group] {
				t.Fatalf("round %d: %v stored twice", round, l.Group)
			}
			inStore[l.Group] = true
		}
		for g := range granted {
			if !inStore[g] {
				t.Fatalf("round %d: %v was granted but is not in the store after SIGKILL", round, g)
			}
		}
		// At most the one allocation in flight may be stored without its
		// grant having been seen.
		if extra := len(inStore) - len(granted); extra < 0 || extra > 1 {
			t.Fatalf("round %d: %d stored, %d granted", round, len(inStore), len(granted))
		}
		a, err := multicast.NewAllocator(multicast.Config{Pools: []multicast.Pool{crashPool}, Store: db})
		if err != nil {
			t.Fatal(err)
		}
		rest := int(crashPool.Size()) - len(inStore)
		ls, err := a.AllocateN(multicast.Request{Pool: crashPool.Name}, rest)
		if err != nil {
			t.Fatalf("round %d: the %d free addresses: %v", round, rest, err)
		}
		for _, l := range ls {
			if inStore[l.Group] {
				t.Fatalf("round %d: %v granted again after the restart", round, l.Group)
			}
		}
		if _, err := a.Allocate(multicast.Request{Pool: crashPool.Name}); !errors.Is(err, multicast.ErrPoolExhausted) {
			t.Fatalf("round %d: pool should be full: %v", round, err)
		}
		db.Close()
	}
}

// TestDataDirMode: a data directory that group or others may write to is
// refused with what to run; a private one, or one others may only read,
// is opened; a new one is made 0700.
func TestDataDirMode(t *testing.T) {
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o700, true}, {0o755, true}, {0o750, true}, {0o770, false}, {0o777, false}, {0o1777, false}, {0o702, false}} {
		dir := t.TempDir()
		if err := os.Chmod(dir, tc.mode); err != nil {
			t.Fatal(err)
		}
		db, err := Open(dir)
		if tc.ok {
			if err != nil {
				t.Errorf("mode %04o: %v", tc.mode, err)
				continue
			}
			db.Close()
			continue
		}
		if err == nil {
			db.Close()
			t.Errorf("mode %04o: opened, want a refusal", tc.mode)
			continue
		}
		if want := "chmod go-w " + dir; !strings.Contains(err.Error(), want) {
			t.Errorf("mode %04o: %v, want it to say %q", tc.mode, err, want)
		}
		if _, err := os.Stat(filepath.Join(dir, FileName)); err == nil {
			t.Errorf("mode %04o: refused, yet %s was made", tc.mode, FileName)
		}
	}
	dir := filepath.Join(t.TempDir(), "new")
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("new data directory has mode %04o, want 0700", fi.Mode().Perm())
	}
}

// TestOpenWaitsOutCompact: a second Open that waits while the first
// store compacts gets ErrLocked, never the replaced file; once the first
// is closed, the second sees what the first wrote after compacting.
func TestOpenWaitsOutCompact(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	lease := multicast.Lease{Group: netip.MustParseAddr("239.255.7.7"), Port: 5004, Pool: "ipv4-local", TTL: 15, Owner: "me",
		Start: time.Unix(1000, 0).UTC(), End: time.Unix(5000, 0).UTC()}
	done := make(chan error, 1)
	go func() {
		other, err := Open(dir)
		if err == nil {
			other.Close()
		}
		done <- err
	}()
	for range 5 {
		if err := db.Compact(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PutLeases([]multicast.Lease{lease}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrLocked) {
		t.Fatalf("Open while the store is open and compacting: %v, want ErrLocked", err)
	}
	db.Close()
	db, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := db.LoadLeases(); err != nil || len(got) != 1 || got[0] != lease {
		t.Fatalf("after a reopen: %+v, %v", got, err)
	}
}

// TestDatabaseFileMode: a database file others may read or write, or of
// another user's, is refused with what to do.
func TestDatabaseFileMode(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	path := filepath.Join(dir, FileName)
	for _, mode := range []os.FileMode{0o644, 0o660, 0o606} {
		os.Chmod(path, mode)
		if db, err := Open(dir); err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
			if err == nil {
				db.Close()
			}
			t.Errorf("mode %04o: %v, want a refusal that says chmod 600", mode, err)
		}
	}
	os.Chmod(path, 0o600)
	if os.Geteuid() == 0 {
		os.Chown(path, 65534, 65534)
		if db, err := Open(dir); err == nil || !strings.Contains(err.Error(), "belongs to user 65534") {
			if err == nil {
				db.Close()
			}
			t.Errorf("a file of user 65534: %v, want a refusal", err)
		}
		os.Chown(path, 0, 0)
	}
	db, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
}
