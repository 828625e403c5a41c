package conference

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"mcc/conference/conferencetest"
	"mcc/multicast"
	"mcc/sdp"
)

var errDisk = errors.New("disk full")

// flakyStore wraps memStore: conference records (c/) fail to write while
// failPut is set, deletes fail while failDel is set; block, when set, is
// waited on by a failing PutRecord of c/ (entered is closed first).
type flakyStore struct {
	*memStore
	mu               sync.Mutex
	failPut, failDel bool
	failRecords      bool
	entered, block   chan struct{}
}

func (s *flakyStore) PutRecord(k string, v any) error {
	s.mu.Lock()
	fail, entered, block := s.failPut && strings.HasPrefix(k, "c/"), s.entered, s.block
	s.mu.Unlock()
	if fail {
		if entered != nil {
			close(entered)
			<-block
		}
		return errDisk
	}
	return s.memStore.PutRecord(k, v)
}

func (s *flakyStore) DeleteRecord(k string) error {
	s.mu.Lock()
	fail := s.failDel
	s.mu.Unlock()
	if fail {
		return errDisk
	}
	return s.memStore.DeleteRecord(k)
}

func (s *flakyStore) Records(f func(string, []byte) error) error {
	if s.failRecords {
		return errDisk // as bbolt's view failing: f never runs
	}
	return s.memStore.Records(f)
}

func specOf(name string, kinds ...string) sdp.SessionSpec {
	s := sdp.SessionSpec{Name: name, Pool: "ipv4-local"}
	for _, k := range kinds {
		s.Media = append(s.Media, sdp.MediaSpec{Kind: k})
	}
	return s
}

// TestCreateUndoStoreDown: with the store down (writes and deletes
// fail), a CreateSession fails with ErrNotSaved and leaves nothing: no
// conference, no session, no lease; the name is free again.
func TestCreateUndoStoreDown(t *testing.T) {
	a, _ := multicast.NewAllocator(multicast.Config{})
	st := &flakyStore{memStore: newMemStore(), failPut: true, failDel: true}
	ctl := newRestored(t, a, st, nil)
	for range 2 { // the retry finds the name free, and fails the same way
		_, err := ctl.CreateSession("x", specOf("x", "audio"), Access{})
		if !errors.Is(err, ErrNotSaved) || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("CreateSession with the store down: %v, want ErrNotSaved naming the cause", err)
		}
		if _, err := ctl.Get("x"); !errors.Is(err, ErrUnknown) {
			t.Fatalf("after the failed create: Get = %v, want ErrUnknown", err)
		}
		if n, m := len(a.Leases()), len(ctl.cfg.Manager.List()); n != 0 || m != 0 {
			t.Fatalf("after the failed create: %d leases, %d sessions", n, m)
		}
	}
}

// TestCreateUndoRacesDelete: a Delete that comes while a failed
// Create is being undone finds the conference gone, or takes it and
// finishes it; the Create fails with ErrNotSaved either way (500 through
// the API, never 404), and nothing is left.
func TestCreateUndoRacesDelete(t *testing.T) {
	for range 20 {
		a, _ := multicast.NewAllocator(multicast.Config{})
		st := &flakyStore{memStore: newMemStore(), failPut: true, entered: make(chan struct{}), block: make(chan struct{})}
		ctl := newRestored(t, a, st, nil)
		var cerr, derr error
		var wg sync.WaitGroup
		wg.Go(func() { _, cerr = ctl.CreateSession("x", specOf("x", "audio"), Access{}) })
		<-st.entered
		wg.Go(func() { derr = ctl.Delete(context.Background(), "x") })
		time.Sleep(10 * time.Millisecond) // the Delete waits on recordMu
		close(st.block)
		wg.Wait()
		if !errors.Is(cerr, ErrNotSaved) || errors.Is(cerr, sdp.ErrUnknownSession) {
			t.Fatalf("the create: %v, want ErrNotSaved alone", cerr)
		}
		if derr != nil && !errors.Is(derr, ErrUnknown) {
			t.Fatalf("the delete: %v, want nil or ErrUnknown", derr)
		}
		if n, m := len(a.Leases()), len(ctl.cfg.Manager.List()); n != 0 || m != 0 {
			t.Fatalf("left: %d leases, %d sessions", n, m)
		}
		ctl.Close()
	}
}

// TestRestoreUnreadableStore: a store that cannot be read fails the
// restore, which then restores and releases nothing; the next restore
// brings the conference back with its groups, which no new session gets.
// A conference record that does not decode keeps every session's lease.
func TestRestoreUnreadableStore(t *testing.T) {
	a, mem := savedX(t)
	bad := newRestored(t, a, &flakyStore{memStore: mem, failRecords: true}, nil)
	if _, _, err := bad.Restore(); !errors.Is(err, errDisk) {
		t.Fatalf("Restore of an unreadable store: %v, want its error", err)
	}
	bad.Close()
	if n := len(a.Leases()); n != 1 {
		t.Fatalf("%d leases after the failed restore, want x's 1", n)
	}
	// One record that does not decode: its session's lease may be any.
	mem.m["c/garbled"] = []byte("{not json")
	odd := newRestored(t, a, mem, nil)
	if _, _, err := odd.Restore(); err != nil {
		t.Fatal(err)
	}
	odd.Close()
	delete(mem.m, "c/garbled")
	mem.m["c/x"] = []byte("{not json")
	odd = newRestored(t, a, mem, nil)
	if nc, _, err := odd.Restore(); err != nil || nc != 0 || len(a.Leases()) != 1 {
		t.Fatalf("x's record garbled: %d restored, %v; %d leases, want x's kept", nc, err, len(a.Leases()))
	}
	odd.Close()
}

// TestUnsavedChangeKeepsGroup: when the save of a RemoveStream fails,
// the removed stream's group stays leased (the record still has it
// active), so a restart never restores a session on a group given away;
// the next change that saves releases it.
func TestUnsavedChangeKeepsGroup(t *testing.T) {
	a := twoGroups(t, "239.255.0.2")
	st := &flakyStore{memStore: newMemStore()}
	ctl := newRestored(t, a, st, nil)
	if _, err := ctl.CreateSession("x", specOf("x", "audio", "video"), Access{}); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	st.failPut = true
	st.mu.Unlock()
	if _, err := ctl.RemoveStream(context.Background(), "x", 1); err != nil {
		t.Fatal(err)
	}
	if n := len(a.Leases()); n != 2 {
		t.Fatalf("%d leases after the unsaved RemoveStream, want 2: the removed group is kept", n)
	}
	ctl.Close()
	st.mu.Lock()
	st.failPut = false
	st.mu.Unlock()
	again := newRestored(t, a, st, nil)
	if _, _, err := again.Restore(); err != nil {
		t.Fatal(err)
	}
	dx, _ := again.Session("x")
	if dx.Media[1].Port == 0 {
		t.Fatalf("restored x without the stream whose removal was not saved: %v", dx)
	}
	if _, err := again.CreateSession("y", specOf("y", "video"), Access{}); err == nil {
		t.Fatalf("a new session got a group while x holds both: %v", dx)
	}
	// A change that saves releases what no one uses.
	if _, err := again.SetDirection(context.Background(), "x", 0, sdp.SendOnly); err != nil {
		t.Fatal(err)
	}
	if _, err := again.RemoveStream(context.Background(), "x", 1); err != nil {
		t.Fatal(err)
	}
	if n := len(a.Leases()); n != 1 {
		t.Fatalf("%d leases after a saved removal, want 1", n)
	}
}

// TestDeleteForgetFails: a Delete whose record delete fails leaves the
// conference usable: changes still save, and a later Delete works.
func TestDeleteForgetFails(t *testing.T) {
	a, _ := multicast.NewAllocator(multicast.Config{})
	st := &flakyStore{memStore: newMemStore()}
	ctl := newRestored(t, a, st, nil)
	if _, err := ctl.CreateSession("x", specOf("x", "audio"), Access{}); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	st.failDel = true
	st.mu.Unlock()
	err := ctl.Delete(context.Background(), "x")
	_, gerr := ctl.Get("x")
	if !errors.Is(err, errDisk) || gerr != nil {
		t.Fatalf("Delete with the store failing: %v, then Get: %v; want the store's error and the conference kept", err, gerr)
	}
	before := string(st.get("c/x"))
	ch, cerr := ctl.AddStream(context.Background(), "x", sdp.MediaSpec{Kind: "video"})
	after := string(st.get("c/x"))
	if cerr != nil || ch.Version == 0 || before == after {
		t.Fatalf("a change after the failed delete: %v, its record changed: %v", cerr, before != after)
	}
	st.mu.Lock()
	st.failDel = false
	st.mu.Unlock()
	err = ctl.Delete(context.Background(), "x")
	if err != nil || st.get("c/x") != nil || len(a.Leases()) != 0 {
		t.Fatalf("second Delete: %v; record %q; %d leases", err, st.get("c/x"), len(a.Leases()))
	}
}

// TestDeleteRecreateSameName: a conference deleted and a new one of the
// same name created while changes of the old one race: the record is the
// new one's, never gone, never the old one's.
func TestDeleteRecreateSameName(t *testing.T) {
	a, _ := multicast.NewAllocator(multicast.Config{})
	st := &flakyStore{memStore: newMemStore()}
	st.delay = time.Millisecond
	ctl := newRestored(t, a, st, nil)
	for i := range 30 {
		old, err := ctl.CreateSession("x", specOf("x", "audio"), Access{})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var newID uint64
		wg.Go(func() { ctl.AddStream(context.Background(), "x", sdp.MediaSpec{Kind: "video"}) })
		wg.Go(func() { ctl.AddStream(context.Background(), "x", sdp.MediaSpec{Kind: "text"}) })
		wg.Go(func() {
			if err := ctl.Delete(context.Background(), "x"); err != nil {
				t.Error(err)
				return
			}
			for {
				in, err := ctl.CreateSession("x", specOf("x", "audio"), Access{})
				if err == nil {
					newID = in.SessionID
					return
				}
				if !errors.Is(err, ErrExists) {
					t.Error(err)
					return
				}
			}
		})
		wg.Wait()
		var r Record
		b := st.get("c/x")
		if b == nil {
			t.Fatalf("round %d: no record of the new conference", i)
		}
		json.Unmarshal(b, &r)
		if r.SessionID != newID {
			t.Fatalf("round %d: record of session %d, the conference is %d (old %d)", i, r.SessionID, newID, old.SessionID)
		}
		if err := ctl.Delete(context.Background(), "x"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDeleteCancelled: a Delete whose context has ended (the HTTP client
// went away, or the API's ChangeTimeout passed) still deletes everything,
// and says so.
func TestDeleteCancelled(t *testing.T) {
	a, _ := multicast.NewAllocator(multicast.Config{})
	st := &flakyStore{memStore: newMemStore()}
	ctl := newRestored(t, a, st, nil)
	if _, err := ctl.CreateSession("x", specOf("x", "audio"), Access{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := ctl.Delete(ctx, "x")
	_, gerr := ctl.Get("x")
	if err != nil || !errors.Is(gerr, ErrUnknown) || st.get("c/x") != nil || len(a.Leases()) != 0 {
		t.Fatalf("Delete with its context ended: %v; then Get %v, record %q, %d leases", err, gerr, st.get("c/x"), len(a.Leases()))
	}
}

// hookStore: every PutRecord of c/ asks hook first (nil: written).
type hookStore struct {
	*memStore
	hook func(n int64, k string) error
	n    atomic.Int64
}

func (s *hookStore) PutRecord(k string, v any) error {
	if strings.HasPrefix(k, "c/") && s.hook != nil {
		if err := s.hook(s.n.Add(1), k); err != nil {
			return err
		}
	}
	return s.memStore.PutRecord(k, v)
}

// savedX is what a stopped mcc leaves of one conference x with one audio
// stream: its store, and an allocator of one group, which x holds.
func savedX(t *testing.T) (*multicast.Allocator, *memStore) {
	t.Helper()
	a := twoGroups(t, "239.255.0.1")
	mem := newMemStore()
	ctl := newRestored(t, a, mem, nil)
	if _, err := ctl.CreateSession("x", specOf("x", "audio"), Access{}); err != nil {
		t.Fatal(err)
	}
	ctl.Close()
	return a, mem
}

// twoGroups is an allocator whose one pool, ipv4-local, holds 239.255.0.1
// to last.
func twoGroups(t *testing.T, last string) *multicast.Allocator {
	t.Helper()
	pool := multicast.Pool{Name: "ipv4-local", Prefix: netip.MustParsePrefix("239.255.0.0/16"), First: netip.MustParseAddr("239.255.0.1"), Last: netip.MustParseAddr(last)}
	a, err := multicast.NewAllocator(multicast.Config{Pools: []multicast.Pool{pool}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestCreateUndoRaceStoreDown: with the store down, a Delete that comes
// while a Create's first save is out finds no conference (it is not
// published until saved), and the failed Create leaves nothing.
func TestCreateUndoRaceStoreDown(t *testing.T) {
	a, _ := multicast.NewAllocator(multicast.Config{})
	st := &flakyStore{memStore: newMemStore(), failPut: true, failDel: true, entered: make(chan struct{}), block: make(chan struct{})}
	ctl := newRestored(t, a, st, nil)
	var cerr, derr error
	var wg sync.WaitGroup
	wg.Go(func() { _, cerr = ctl.CreateSession("x", specOf("x", "audio"), Access{}) })
	<-st.entered
	wg.Go(func() { derr = ctl.Delete(context.Background(), "x") })
	time.Sleep(10 * time.Millisecond)
	close(st.block)
	wg.Wait()
	if !errors.Is(cerr, ErrNotSaved) || !errors.Is(derr, ErrUnknown) {
		t.Fatalf("create: %v; delete: %v; want ErrNotSaved and ErrUnknown", cerr, derr)
	}
	if _, err := ctl.Get("x"); !errors.Is(err, ErrUnknown) || len(a.Leases()) != 0 || len(ctl.cfg.Manager.List()) != 0 {
		t.Fatalf("left: Get %v, %d leases, %d sessions", err, len(a.Leases()), len(ctl.cfg.Manager.List()))
	}
}

// TestConcurrentChangeKeepsUnsavedGroup: a removal whose save has not
// taken yet keeps its group leased even when another change's settle
// runs meanwhile (no release while the saved record is older than the
// description), and a restart after its save failed finds the group still
// x's.
func TestConcurrentChangeKeepsUnsavedGroup(t *testing.T) {
	a := twoGroups(t, "239.255.0.2")
	dEntered, dRelease := make(chan struct{}), make(chan struct{})
	cEntered, cRelease := make(chan struct{}), make(chan struct{})
	st := &hookStore{memStore: newMemStore()}
	ctl := newRestored(t, a, st, nil)
	if _, err := ctl.CreateSession("x", specOf("x", "audio", "video"), Access{}); err != nil {
		t.Fatal(err)
	}
	st.n.Store(0)
	st.hook = func(n int64, k string) error {
		switch n {
		case 1: // the SetDirection's save: slow (an fsync), then written
			close(dEntered)
			<-dRelease
			return nil
		case 2: // the RemoveStream's: fails
			close(cEntered)
			<-cRelease
			return errDisk
		}
		return nil
	}
	var wg sync.WaitGroup
	wg.Go(func() { ctl.SetDirection(context.Background(), "x", 0, sdp.SendOnly) })
	<-dEntered
	wg.Go(func() { ctl.RemoveStream(context.Background(), "x", 1) })
	eventually(t, "the removal's edit", func() bool { d, _ := ctl.Session("x"); return d.Media[1].Port == 0 })
	close(dRelease)
	<-cEntered
	time.Sleep(50 * time.Millisecond) // the SetDirection's settle has run
	if n := len(a.Leases()); n != 2 {
		t.Fatalf("%d leases while the removal is unsaved, want 2", n)
	}
	close(cRelease)
	wg.Wait()
	if n := len(a.Leases()); n != 2 {
		t.Fatalf("%d leases after the removal's save failed, want 2", n)
	}
	ctl.Close()
	again := newRestored(t, a, st.memStore, nil)
	if _, _, err := again.Restore(); err != nil {
		t.Fatal(err)
	}
	if _, err := again.CreateSession("y", specOf("y", "video"), Access{}); !errors.Is(err, multicast.ErrPoolExhausted) {
		t.Fatalf("a new session after the restart: %v, want the pool exhausted (x holds both groups)", err)
	}
}

// TestRestoreUnrestorableRecordKeepsLeases: a record that decodes but
// whose session does not come back keeps every session's lease, and the
// record stays for a later try: once it reads again, its conference comes
// back on its own groups.
func TestRestoreUnrestorableRecordKeepsLeases(t *testing.T) {
	a, mem := savedX(t)
	good := mem.get("c/x")
	var r map[string]any
	json.Unmarshal(good, &r)
	r["session"].(map[string]any)["sdp"] = []byte("v=0\r\nnot an sdp\r\n")
	bad, _ := json.Marshal(r)
	mem.mu.Lock()
	mem.m["c/x"] = bad
	mem.mu.Unlock()
	odd := newRestored(t, a, mem, nil)
	if nc, _, err := odd.Restore(); err != nil || nc != 0 || len(a.Leases()) != 1 || mem.get("c/x") == nil {
		t.Fatalf("restore of a record that does not restore: %d, %v; %d leases; record kept %v", nc, err, len(a.Leases()), mem.get("c/x") != nil)
	}
	odd.Close()
	mem.mu.Lock()
	mem.m["c/x"] = good
	mem.mu.Unlock()
	again := newRestored(t, a, mem, nil)
	if nc, _, err := again.Restore(); err != nil || nc != 1 {
		t.Fatalf("after the repair: %d restored, %v", nc, err)
	}
	if _, err := again.CreateSession("y", specOf("y", "audio"), Access{}); !errors.Is(err, multicast.ErrPoolExhausted) {
		t.Fatalf("a new session: %v, want the pool exhausted (x holds its group)", err)
	}
}

// TestDeleteCancelledKeepsGroupsUntilBye: a Delete whose context ends
// while a participant's BYE is unanswered returns, with the conference
// gone; its session's groups stay until the BYE is over (here: until
// Close ends it).
func TestDeleteCancelledKeepsGroupsUntilBye(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lossy := conferencetest.Lossy(pc, 0, 1)
	p := newPeerConn(t, lossy)
	ps, err := e.c.Invite(e.name, p.uri())
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	eventually(t, "ACK", func() bool { _, acks, _ := p.counts(); return acks == 1 })
	lossy.Vanish() // its BYE is never answered
	before := len(e.a.Leases())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := e.c.Delete(ctx, e.name); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Get(e.name); !errors.Is(err, ErrUnknown) {
		t.Fatalf("after the delete: %v", err)
	}
	if n := len(e.a.Leases()); n != before || n == 0 {
		t.Fatalf("%d leases right after the delete, had %d: released before the BYE was over", n, before)
	}
	e.c.Close()
	if n := len(e.a.Leases()); n != 0 {
		t.Fatalf("%d leases after Close ended the BYE", n)
	}
}

// TestSetT1Bounds: T1 below 100 ms (transactions of 6.4 s) or above T2 is
// refused, and sipgo's timers are left as they are.
func TestSetT1Bounds(t *testing.T) {
	before := sip.T1
	for _, d := range []time.Duration{0, 50 * time.Millisecond, 5 * time.Second} {
		if err := SetT1(d); err == nil || !strings.Contains(err.Error(), "want 100ms to") {
			t.Errorf("SetT1(%v) = %v, want a refusal", d, err)
		}
	}
	if sip.T1 != before {
		t.Fatalf("T1 is %v after refused calls, was %v", sip.T1, before)
	}
}
