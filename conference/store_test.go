package conference

import (
	"encoding/json"
	"strings"
	"sync"
	"time"
)

// memStore is a Store in memory that keeps what a store on disk would:
// each record as JSON.
type memStore struct {
	mu    sync.Mutex
	m     map[string][]byte
	delay time.Duration // each PutRecord takes this long, as an fsync does
}

func newMemStore() *memStore { return &memStore{m: map[string][]byte{}} }

func (s *memStore) PutRecord(k string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = b
	return nil
}

func (s *memStore) DeleteRecord(k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

func (s *memStore) Records(f func(k string, v []byte) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m {
		if err := f(k, v); err != nil {
			return err
		}
	}
	return nil
}

// dialogs counts the participants' records.
func (s *memStore) dialogs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range s.m {
		if strings.HasPrefix(k, "p/") {
			n++
		}
	}
	return n
}

// get returns record k, nil when there is none.
func (s *memStore) get(k string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k]
}
