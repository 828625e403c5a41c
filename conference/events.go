package conference

import (
	"sync"
	"time"
)

// Event is a change in a conference, for those who follow them live.
type Event struct {
	Time       time.Time `json:"time"`
	Conference string    `json:"conference"`
	// Kind is "participant" (a participant's state changed), "stream" (a
	// stream was added, removed or changed for everyone), "reinvite" (a
	// participant answered a re-INVITE) or "sap" (the announcement a
	// conference follows changed, was deleted or timed out: Detail says
	// which, and what mcc did), "reception" (a receiver reported) or
	// "alert" (a reception alert was raised or cleared).
	Kind        string       `json:"kind"`
	Detail      string       `json:"detail,omitempty"`
	Participant *Participant `json:"participant,omitempty"`
	Change      *Change      `json:"change,omitempty"`
	// Receiver is the report of a "reception" event (a receiver
	// reported, reception.go); Alert the alert an "alert" event raises
	// or, with Cleared set, clears.
	Receiver *ReceiverReport `json:"receiver,omitempty"`
	Alert    *Alert          `json:"alert,omitempty"`
}

// eventBuffer is how many events a subscriber may fall behind by; past it,
// its events are dropped (and counted) rather than slow the controller.
const eventBuffer = 256

type hub struct {
	mu   sync.Mutex // guards the fields below
	subs map[*subscriber]bool
}

type subscriber struct {
	ch      chan Event
	mu      sync.Mutex // guards dropped
	dropped int
}

// Subscribe returns the controller's events as they happen, and a cancel
// that ends the subscription. Dropped reports how many events a slow
// reader lost.
func (c *Controller) Subscribe() (events <-chan Event, dropped func() int, cancel func()) {
	s := &subscriber{ch: make(chan Event, eventBuffer)}
	c.hub.mu.Lock()
	if c.hub.subs == nil {
		c.hub.subs = map[*subscriber]bool{}
	}
	c.hub.subs[s] = true
	c.hub.mu.Unlock()
	var once sync.Once
	return s.ch, func() int {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.dropped
		}, func() {
			once.Do(func() {
				c.hub.mu.Lock()
				delete(c.hub.subs, s)
				c.hub.mu.Unlock()
			})
		}
}

func (c *Controller) publish(e Event) {
	e.Time = time.Now()
	if e.Kind != "reception" && e.Kind != "alert" { // the roster does not show reception
		c.watch.touch(e.Conference) // the roster's subscribers (subscribe.go)
	}
	c.hub.mu.Lock()
	defer c.hub.mu.Unlock()
	for s := range c.hub.subs {
		select {
		case s.ch <- e:
		default: // a reader that cannot keep up loses events, not the controller's time
			s.mu.Lock()
			s.dropped++
			s.mu.Unlock()
		}
	}
}
