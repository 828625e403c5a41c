// Package store is mcc's embedded state: one bbolt file in the data
// directory, opened by one process at a time. It implements the lease store
// of package multicast; later state (sessions, dialogs) gets buckets of its
// own in the same file.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"mcc/multicast"
)

// FileName is the name of the database file inside the data directory.
const FileName = "mcc.db"

var (
	bucketLeases   = []byte("leases")
	bucketSessions = []byte("sessions")
)

// ErrLocked is returned by Open when another process holds the database.
var ErrLocked = errors.New("store: the data directory is in use by another mcc process")

// DB is the open store.
type DB struct {
	db *bolt.DB
}

var _ multicast.LeaseStore = (*DB)(nil)

// Open opens (creating if needed) the store in dir. It waits at most a
// second for another process to let go of the file, then returns ErrLocked.
func Open(dir string) (*DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w (%s)", ErrLocked, path)
	}
	if err != nil {
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
		return nil, fmt.Errorf("store: %w", err)
	}
	return &DB{db: db}, nil
}

// Close closes the file.
func (d *DB) Close() error { return d.db.Close() }

// Path returns the database file's path.
func (d *DB) Path() string { return d.db.Path() }

func groupKey(g netip.Addr) []byte { return g.Unmap().AsSlice() }

// LoadLeases implements multicast.LeaseStore.
func (d *DB) LoadLeases() ([]multicast.Lease, error) {
	var ls []multicast.Lease
	err := d.db.View(func(tx *bolt.Tx) error {
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
	return d.db.Update(func(tx *bolt.Tx) error {
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
	return d.db.Update(func(tx *bolt.Tx) error {
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
	return d.db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Put([]byte(key), b) })
}

// DeleteRecord removes key from the sessions bucket, batched as PutRecord.
func (d *DB) DeleteRecord(key string) error {
	return d.db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Delete([]byte(key)) })
}

// Records calls f with every key and JSON value of the sessions bucket.
func (d *DB) Records(f func(key string, v []byte) error) error {
	return d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error { return f(string(k), v) })
	})
}
