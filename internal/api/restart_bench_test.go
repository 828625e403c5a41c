package api

import (
	"fmt"
	"testing"
	"time"

	"mcc/conference"
	"mcc/internal/store"
	"mcc/multicast"
	"mcc/sdp"
)

// BenchmarkRestart10k measures what mcc serve does at a start: open the
// store, load the leases and bring back 10,000 conferences, each with a
// session of one stream, from their records (Server.Restore). Before
// leases were grouped by owner and a conference's creation stopped
// listing every session, it grew with the square of the count.
//
//	go test -run '^$' -bench Restart10k -benchtime 1x ./internal/api
func BenchmarkRestart10k(b *testing.B) {
	const n = 10000
	dir := b.TempDir()
	open := func() (*store.DB, *Server) {
		db, err := store.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		a, err := multicast.NewAllocator(multicast.Config{Store: db})
		if err != nil {
			b.Fatal(err)
		}
		m, ctl := newStack(b, a)
		return db, &Server{Controller: ctl, Manager: m, Allocator: a, Token: "sesame", Store: db}
	}
	db, srv := open()
	for i := range n {
		name := fmt.Sprintf("s%05d", i)
		d, err := srv.Manager.Create(sdp.SessionSpec{Name: name, Pool: "ipv4-local", Media: []sdp.MediaSpec{{Kind: "audio"}}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := srv.Controller.Create(name, d.Origin.SessionID, conference.Access{}); err != nil {
			b.Fatal(err)
		}
		if err := srv.created(name, d.Origin.SessionID); err != nil {
			b.Fatal(err)
		}
	}
	srv.Controller.Close()
	db.Close()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		db, srv := open()
		got, _ := srv.Restore()
		b.ReportMetric(time.Since(start).Seconds(), "s/restart")
		b.StopTimer()
		if got != n {
			b.Fatalf("restored %d conferences, want %d", got, n)
		}
		srv.Controller.Close()
		db.Close()
		b.StartTimer()
	}
}
