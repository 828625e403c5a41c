// Package store is mcc's embedded state: one bbolt file in the data
// directory, opened by one process at a time. It implements the lease store
// of package multicast; later state (sessions, dialogs) gets buckets of its
// own in the same file.
package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"mcc/multicast"
)

// FileName is the name of the database file inside the data directory.
const FileName = "mcc.db"

// LockName is the file whose lock an open store holds for as long as it
// is open. It is never renamed, so a process waiting for it cannot end up
// with a database file that Compact has replaced meanwhile (bbolt's own
// lock is on mcc.db, which Compact renames over).
const LockName = "mcc.lock"

var (
	bucketLeases   = []byte("leases")
	bucketSessions = []byte("sessions")
)

// ErrLocked is returned by Open when another process holds the database.
var ErrLocked = errors.New("store: the data directory is in use by another mcc process")

// DB is the open store. Its methods may be called from any goroutine;
// Compact swaps the file underneath while they wait.
type DB struct {
	path string

	mu   sync.RWMutex // guards db: held shared by every use, exclusively by Compact
	db   *bolt.DB
	lock *os.File // holds the lock of LockName while the store is open
}

var _ multicast.LeaseStore = (*DB)(nil)

// compactSuffix names the file Compact writes next to the database before
// it renames it over the database.
const compactSuffix = ".compact"

// Open opens (creating if needed) the store in dir. It waits at most a
// second for another process to let go of the file, then returns ErrLocked.
// A file that an interrupted Compact left behind is removed, and the
// database compacted again: what that Compact was to clear from the free
// pages is still in them.
func Open(dir string) (*DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, FileName)
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	if err := checkFile(path); err != nil {
		lock.Close()
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		lock.Close()
		return nil, fmt.Errorf("%w (%s)", ErrLocked, path)
	}
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketLeases, bucketSessions} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		lock.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	d := &DB{path: path, db: db, lock: lock}
	// Only under the lock of the database is the file ours to look at.
	if _, err := os.Lstat(path + compactSuffix); err == nil {
		if err := d.Compact(); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// checkDir refuses a data directory that others may write to: they could
// put their own token file or database in it, or take mcc's away. One
// that belongs to another user than mcc's (root aside) is refused too.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("store: the data directory %s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("store: the data directory %s has mode %04o, so others may change mcc's files in it: run chmod go-w %s", dir, perm, dir)
	}
	if uid, ok := owner(fi); ok && uid != os.Geteuid() && uid != 0 {
		return fmt.Errorf("store: the data directory %s belongs to user %d, not to mcc's user %d, who may change mcc's files in it", dir, uid, os.Geteuid())
	}
	return nil
}

// checkFile refuses a database file that others may read (it holds the
// HA1s of digest users, password equivalents) or write (a record names
// where mcc sends requests), or that belongs to another user. A file that
// is not there is fine: bbolt makes it 0600.
func checkFile(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("store: %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("store: %s has mode %04o, so others may read the digest secrets in it or change it: run chmod 600 %s", path, perm, path)
	}
	if uid, ok := owner(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("store: %s belongs to user %d, not to mcc's user %d", path, uid, os.Geteuid())
	}
	return nil
}

func owner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// lockDir takes the lock of the data directory (LockName), waiting at
// most a second for another process to let go of it.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("%w (%s)", ErrLocked, path)
			}
			return nil, fmt.Errorf("store: lock %s: %w", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Compact rewrites the database into a new file, key by key, and puts it
// in the old one's place: bbolt does not zero the pages it frees, so what
// was deleted or overwritten (clear passwords of old records) stays in
// the file until then. The new file is written next to the old one,
// synced, and renamed over it (then the directory is synced), so that a
// crash at any point leaves the old file or the new one, whole; the old
// file stays until the rename. The new file is opened, and locked, before
// the rename, so no other process gets in between. Every other use of the
// store waits meanwhile. On an error the old file is still in use.
func (d *DB) Compact() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	tmp := d.path + compactSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: compact: %w", err)
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	fail := func(err error) error {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("store: compact %s: %w", d.path, err)
	}
	// One transaction (txMaxSize 0): the store is small, and a new file
	// that holds only part of it is never committed.
	if err := bolt.Compact(dst, d.db, 0); err != nil {
		return fail(err)
	}
	if err := dst.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, d.path); err != nil {
		return fail(err)
	}
	// From here on the new file is the database, whatever happens: a
	// failure to sync the directory only means a crash may bring back
	// the old one (and the leftover makes Open compact again).
	old := d.db
	d.db = dst
	old.Close()
	if err := syncDir(filepath.Dir(d.path)); err != nil {
		return fmt.Errorf("store: compact: sync %s: %w", filepath.Dir(d.path), err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close closes the file.
func (d *DB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.db.Close()
	d.lock.Close() // lets go of the directory's lock
	return err
}

// Path returns the database file's path.
func (d *DB) Path() string { return d.path }

// view and update run f in a read or a read-write transaction, batch in
// a batched one, of the current file.
func (d *DB) view(f func(*bolt.Tx) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.db.View(f)
}

func (d *DB) update(f func(*bolt.Tx) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.db.Update(f)
}

func (d *DB) batch(f func(*bolt.Tx) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.db.Batch(f)
}

func groupKey(g netip.Addr) []byte { return g.Unmap().AsSlice() }

// LoadLeases implements multicast.LeaseStore.
func (d *DB) LoadLeases() ([]multicast.Lease, error) {
	var ls []multicast.Lease
	err := d.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLeases).ForEach(func(k, v []byte) error {
			var l multicast.Lease
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("lease %x: %w", k, err)
			}
			ls = append(ls, l)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: load leases: %w", err)
	}
	return ls, nil
}

// PutLeases implements multicast.LeaseStore: one transaction, synced to
// disk before it returns.
func (d *DB) PutLeases(ls []multicast.Lease) error {
	return d.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLeases)
		for _, l := range ls {
			v, err := json.Marshal(l)
			if err != nil {
				return err
			}
			if err := b.Put(groupKey(l.Group), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteLeases implements multicast.LeaseStore.
func (d *DB) DeleteLeases(groups []netip.Addr) error {
	return d.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLeases)
		for _, g := range groups {
			if err := b.Delete(groupKey(g)); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutRecord stores a value as JSON under key in the sessions bucket. It
// returns once the record is on disk. Concurrent calls share one synced
// transaction (bbolt's Batch): a burst of joins and leaves costs one fsync,
// not one each.
func (d *DB) PutRecord(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return d.batch(func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Put([]byte(key), b) })
}

// DeleteRecord removes key from the sessions bucket, batched as PutRecord.
func (d *DB) DeleteRecord(key string) error {
	return d.batch(func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Delete([]byte(key)) })
}

// Records calls f with every key and JSON value of the sessions bucket,
// copied out of the file: f runs outside the transaction, so it may use
// the store itself.
func (d *DB) Records(f func(key string, v []byte) error) error {
	var keys []string
	var vals [][]byte
	err := d.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			keys = append(keys, string(k))
			vals = append(vals, bytes.Clone(v))
			return nil
		})
	})
	if err != nil {
		return err
	}
	for i, k := range keys {
		if err := f(k, vals[i]); err != nil {
			return err
		}
	}
	return nil
}
