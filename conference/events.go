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
	// stream was added, removed or changed for everyone) or "reinvite" (a
	// participant answered a re-INVITE).
	Kind        string       `json:"kind"`
	Participant *Participant `json:"participant,omitempty"`
	Change      *Change      `json:"change,omitempty"`
}

// eventBuffer is how many events a subscriber may fall behind by; past it,
// its events are dropped (and counted) rather than slow the controller.
const eventBuffer = 256

type hub struct {
	mu       sync.Mutex // guards the fields below
	subs     map[*subscriber]bool
	onChange map[*int]func(string)
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

// OnChange registers f to be called with a conference's name each time its
// description changes, after the change and before any participant is told
// of it. It returns the undo.
func (c *Controller) OnChange(f func(conference string)) (unregister func()) {
	c.hub.mu.Lock()
	defer c.hub.mu.Unlock()
	id := new(int)
	if c.hub.onChange == nil {
		c.hub.onChange = map[*int]func(string){}
	}
	c.hub.onChange[id] = f
	return func() {
		c.hub.mu.Lock()
		defer c.hub.mu.Unlock()
		delete(c.hub.onChange, id)
	}
}

func (c *Controller) changed(name string) {
	c.hub.mu.Lock()
	fs := make([]func(string), 0, len(c.hub.onChange))
	for _, f := range c.hub.onChange {
		fs = append(fs, f)
	}
	c.hub.mu.Unlock()
	for _, f := range fs {
		f(name)
	}
}
