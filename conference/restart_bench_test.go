package conference

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"mcc/internal/store"
	"mcc/multicast"
	"mcc/sdp"
)

// BenchmarkRestart10k measures what mcc serve does at a start: open the
// store, load the leases and bring back 10,000 conferences, each with a
// session of one stream and one joined participant, from their records
// (Controller.Restore, Resume included). Before
// leases were grouped by owner and a conference's creation stopped
// listing every session, it grew with the square of the count.
//
//	go test -run '^$' -bench Restart10k -benchtime 1x ./conference
func BenchmarkRestart10k(b *testing.B) {
	const n = 10000
	dir := b.TempDir()
	open := func() (*store.DB, *Controller) {
		db, err := store.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		a, err := multicast.NewAllocator(multicast.Config{Store: db})
		if err != nil {
			b.Fatal(err)
		}
		return db, newRestored(b, a, db, nil)
	}
	db, ctl := open()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 { // concurrent, so that the store batches the writes
		wg.Go(func() {
			for i := range work {
				name := fmt.Sprintf("s%05d", i)
				in, err := ctl.CreateSession(name, sdp.SessionSpec{Name: name, Pool: "ipv4-local", Media: []sdp.MediaSpec{{Kind: "audio"}}}, Access{})
				var d *sdp.Session
				if err == nil {
					d, err = ctl.Session(in.Name)
				}
				if err == nil {
					// One joined participant, as its dialog is saved.
					body, _ := d.Marshal()
					err = db.PutRecord(fmt.Sprintf("p/%s/p%05d", name, i), SavedParticipant{
						Conference: name, SessionID: d.Origin.SessionID, ID: fmt.Sprintf("p%05d", i), URI: "sip:p@127.0.0.1:9",
						Since: time.Now(), Streams: []string{"accepted"}, CallID: fmt.Sprintf("call-%05d@mcc", i), Owner: true,
						Transport: "UDP", Local: "sip:" + name + "@127.0.0.1", LocalTag: "ours", Remote: "sip:p@127.0.0.1",
						RemoteTag: "theirs", LocalCSeq: 2, RemoteTarget: "sip:p@127.0.0.1:9", Offered: body,
						Version: d.Origin.Version, Acked: d.Origin.Version, LastACK: 1})
				}
				if err != nil {
					b.Error(err)
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	ctl.Close()
	db.Close()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		db, ctl := open()
		got, parts, err := ctl.Restore()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/restart")
		b.StopTimer()
		if got != n || parts != n {
			b.Fatalf("restored %d conferences and %d participants, want %d of each", got, parts, n)
		}
		ctl.Close()
		db.Close()
		b.StartTimer()
	}
}
