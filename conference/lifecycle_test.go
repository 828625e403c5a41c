package conference

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

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
	pool := multicast.Pool{Name: "ipv4-local", Prefix: netip.MustParsePrefix("239.255.0.0/16"), First: netip.MustParseAddr("239.255.0.1"), Last: netip.MustParseAddr("239.255.0.1")}
	a, err := multicast.NewAllocator(multicast.Config{Pools: []multicast.Pool{pool}})
	if err != nil {
		t.Fatal(err)
	}
	mem := newMemStore()
	ctl := newRestored(t, a, mem, nil)
	if _, err := ctl.CreateSession("x", specOf("x", "audio"), Access{}); err != nil {
		t.Fatal(err)
	}
	ctl.Close()
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
	pool := multicast.Pool{Name: "ipv4-local", Prefix: netip.MustParsePrefix("239.255.0.0/16"), First: netip.MustParseAddr("239.255.0.1"), Last: netip.MustParseAddr("239.255.0.2")}
	a, err := multicast.NewAllocator(multicast.Config{Pools: []multicast.Pool{pool}})
	if err != nil {
		t.Fatal(err)
	}
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
