package conference

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"mcc/sdp"
)

// Change is a media change for everyone, and how far it has reached.
type Change struct {
	// Version is the session's o= version the change made: the change's
	// ID. A participant has it once its acknowledged version is at least
	// this.
	Version uint64 `json:"version"`
	Stream  int    `json:"stream"`
	// Done says every participant that was not ended has acknowledged
	// the change, ended, or is behind (refused it, or its attempts ran
	// out: its Reason says which); Results is each one's state.
	Done    bool          `json:"done"`
	Results []Participant `json:"participants"`
}

// AddStream adds a stream to conference name (the manager leases its
// group) and has every participant re-INVITEd to it (see kick). The
// change is applied and saved when AddStream returns; ctx bounds only the
// wait for the participants: AddStream waits until the change is Done or
// ctx ends, and returns how far it got either way. An already cancelled
// ctx returns at once.
func (c *Controller) AddStream(ctx context.Context, name string, ms sdp.MediaSpec) (Change, error) {
	return c.change(ctx, name, true, func(conf *Conference) (*sdp.Session, int, error) {
		return c.cfg.Manager.AddStream(conf.sessionID, ms)
	})
}

// RemoveStream sets stream i of conference name to port 0 for everyone,
// as AddStream says. Its group stays leased while any participant's
// acknowledged description or offer in flight has it (settle).
func (c *Controller) RemoveStream(ctx context.Context, name string, i int) (Change, error) {
	return c.change(ctx, name, false, func(conf *Conference) (*sdp.Session, int, error) {
		s, err := c.cfg.Manager.RemoveStream(conf.sessionID, i)
		return s, i, err
	})
}

// SetDirection changes the direction of stream i for everyone, as
// AddStream says.
func (c *Controller) SetDirection(ctx context.Context, name string, i int, dir sdp.Direction) (Change, error) {
	return c.change(ctx, name, false, func(conf *Conference) (*sdp.Session, int, error) {
		s, err := c.cfg.Manager.SetDirection(conf.sessionID, i, dir)
		return s, i, err
	})
}

func (c *Controller) change(ctx context.Context, name string, added bool, edit func(*Conference) (*sdp.Session, int, error)) (Change, error) {
	conf, err := c.conference(name)
	if err != nil {
		return Change{}, err
	}
	conf.mu.Lock()
	if conf.deleted {
		conf.mu.Unlock()
		return Change{}, ErrUnknown
	}
	desc, stream, err := edit(conf)
	if err != nil {
		conf.mu.Unlock()
		return Change{}, err
	}
	parts := slices.Clone(conf.participants)
	if added {
		for _, p := range parts {
			p.mu.Lock()
			delete(p.rejected, stream) // a new stream in a reused slot: offered afresh, from this version on
			p.mu.Unlock()
		}
	}
	conf.setDesc(desc)
	conf.mu.Unlock()
	// The new description is saved before anyone hears of it and before a
	// removed stream's group can be released: a crash in between can then
	// never restore a description whose group is free.
	if err := c.saveConference(conf); err != nil {
		// The change is made; a restart would come back without it, so
		// no removed stream's group goes until a save takes (settle).
		c.log.Error("save conference", "conference", name, "err", err)
	}
	for _, p := range parts {
		p.mu.Lock()
		p.behind = false // a new version: fresh attempts
		p.mu.Unlock()
		c.kick(conf, p) // a participant not joined yet is kicked by its join
	}
	conf.progressed()
	c.settle(conf)
	ch := Change{Version: desc.Origin.Version, Stream: stream}
	c.publish(Event{Conference: name, Kind: "stream", Change: &ch})
	return c.await(ctx, conf, ch), nil
}

// Progress reports how far change version of conference name has reached,
// waiting until it is Done or ctx ends.
func (c *Controller) Progress(ctx context.Context, name string, version uint64) (Change, error) {
	conf, err := c.conference(name)
	if err != nil {
		return Change{}, err
	}
	if v := conf.version(); version > v {
		return Change{}, fmt.Errorf("%w: no change made version %d of %q, which is at version %d", ErrNoChange, version, name, v)
	}
	return c.await(ctx, conf, Change{Version: version, Stream: -1}), nil
}

// ErrNoChange says a change asked about was never made.
var ErrNoChange = errors.New("conference: no such change")

// await fills ch's results, waiting until it is done or ctx ends.
func (c *Controller) await(ctx context.Context, conf *Conference, ch Change) Change {
	for {
		conf.mu.Lock()
		parts := slices.Clone(conf.participants)
		v := conf.desc.Origin.Version
		wake := conf.progress
		conf.mu.Unlock()
		ch.Done, ch.Results = true, ch.Results[:0]
		for _, p := range parts {
			snap := p.snapshotAt(v)
			if !p.settledAt(ch.Version) {
				ch.Done = false
			}
			ch.Results = append(ch.Results, snap)
		}
		if ch.Done || ctx.Err() != nil {
			return ch
		}
		select {
		case <-wake:
		case <-ctx.Done():
			continue // one last look
		}
		// A fan-out wakes this once per participant: looking at all of
		// them each time would cost n² for n. Looking again after a few
		// milliseconds takes in every answer that came meanwhile.
		select {
		case <-time.After(awaitCoalesce):
		case <-ctx.Done():
		}
	}
}

// awaitCoalesce is how long await lets answers gather before it looks
// again.
const awaitCoalesce = 5 * time.Millisecond

// settledAt reports whether p is done with version v: acknowledged it (or
// a later one), ended, or behind with no worker running.
func (p *participant) settledAt(v uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.state >= Declined:
		return true
	case p.state != Joined:
		return false // a join on an older version converges after it
	case p.hasLocked(v):
		return true
	}
	return p.behind && !p.working
}

// version is the conference's description's version: the one every
// participant converges on.
func (conf *Conference) version() uint64 { return conf.current().Origin.Version }

// current is the conference's description, read without its lock: a
// dialog reads it under its own lock (reinviteOnce), and the conference's
// is held across a change's lease write.
func (conf *Conference) current() *sdp.Session { return conf.cur.Load() }

// setDesc replaces the description. A session-level c= is offered at
// media level (sdp.Session.WithMediaConnections): linphone joins only a
// group named there. Called with conf.mu held.
func (conf *Conference) setDesc(d *sdp.Session) {
	d = d.WithMediaConnections()
	conf.desc = d
	conf.cur.Store(d)
}

// progressed wakes those waiting for a change (await).
func (conf *Conference) progressed() {
	conf.mu.Lock()
	defer conf.mu.Unlock()
	if conf.progress != nil {
		close(conf.progress)
	}
	conf.progress = make(chan struct{})
}

// settle releases the groups of the conference's removed streams that no
// participant uses any more: none that has not ended has the group at a
// port other than 0 in its acknowledged description or in an offer in
// flight (RFC 3264 §8.2: a stream ends for a participant when its answer
// is in).
//
// Why no offer can slip past it: the groups it may release are read
// under the conference's lock, and each was removed from the description
// before that. An offer is made from the description either under its
// dialog's lock, and is in d.inflight before that lock goes (reinviteOnce,
// onReinvite), which groupsInUse takes after the read; or while counted in
// conf.building (offerDesc: a new dialog groupsInUse cannot reach yet),
// and a settle that finds one being built waits for it. An offer made
// after the read has none of those groups active.
//
// Settles of one conference run one at a time, in the caller; one asked
// for meanwhile makes the one running go again.
func (c *Controller) settle(conf *Conference) {
	if c.restoring.Load() {
		return // the restored participants are not all back yet: Resume settles
	}
	if c.cfg.Store != nil && conf.savedVersion.Load() < conf.version() {
		// The saved record is older than the description, and may still
		// have the removed streams: a restart would bring them back on
		// groups given away. The save that takes settles (change).
		return
	}
	conf.mu.Lock()
	if conf.deleted {
		conf.mu.Unlock()
		return
	}
	if conf.settling || conf.building > 0 {
		conf.settleAgain = true // done by the one running, or by the last offer built
		conf.mu.Unlock()
		return
	}
	candidates := c.cfg.Manager.Retiring(conf.sessionID)
	if len(candidates) == 0 {
		conf.mu.Unlock()
		return
	}
	conf.settling, conf.settleAgain = true, false
	conf.mu.Unlock()
	done := false
	defer func() {
		if !done { // a panic (recovered by the caller's barrier): later settles still run
			conf.mu.Lock()
			conf.settling = false
			conf.mu.Unlock()
		}
	}()
	for {
		may := map[netip.Addr]bool{}
		for _, g := range candidates {
			may[g] = true
		}
		inUse := groupsInUse(conf)
		_, err := c.cfg.Manager.Settle(conf.sessionID, func(g netip.Addr) bool { return inUse[g] || !may[g] })
		if err != nil && !conf.isDeleted() {
			c.log.Warn("release removed groups", "conference", conf.name, "err", err)
		}
		conf.mu.Lock()
		if !conf.settleAgain || conf.building > 0 || conf.deleted {
			conf.settling, done = false, true // a settle still wanted runs when the last offer is built
			conf.mu.Unlock()
			return
		}
		conf.settleAgain = false
		if candidates = c.cfg.Manager.Retiring(conf.sessionID); len(candidates) == 0 {
			conf.settling, done = false, true
			conf.mu.Unlock()
			return
		}
		conf.mu.Unlock()
	}
}

// offerDesc returns a copy of the conference's description for an offer
// in a dialog settle cannot see yet, counted as being built until done
// (which may be called more than once) says the offer is where
// groupsInUse looks, or abandoned.
func (c *Controller) offerDesc(conf *Conference) (desc *sdp.Session, done func()) {
	conf.mu.Lock()
	conf.building++
	desc = conf.desc // never edited in place (see nextOfferLocked): the caller must not either
	conf.mu.Unlock()
	var once sync.Once
	return desc, func() {
		once.Do(func() {
			conf.mu.Lock()
			conf.building--
			again := conf.building == 0 && conf.settleAgain && !conf.settling
			conf.mu.Unlock()
			if again {
				c.settle(conf)
			}
		})
	}
}

// groupsInUse is the set of groups some participant of conf that has not
// ended may receive: those at a port other than 0 in its dialog's last
// acknowledged description or in an offer of the dialog in flight. The
// locks are taken one at a time (conference, then each participant, then
// its dialog): the lock order puts the dialog first.
func groupsInUse(conf *Conference) map[netip.Addr]bool {
	parts := conf.members()
	out := map[netip.Addr]bool{}
	for _, p := range parts {
		p.mu.Lock()
		d, ended := p.dlg, p.state >= Declined
		p.mu.Unlock()
		if d == nil || ended {
			continue
		}
		d.mu.Lock()
		for _, s := range append([]*sdp.Session{d.offered, d.inflight}, d.maybe...) {
			if s == nil {
				continue
			}
			for _, m := range s.Media {
				if c := s.EffectiveConnection(m); m.Port != 0 && c != nil {
					out[c.Addr] = true
				}
			}
		}
		d.mu.Unlock()
	}
	return out
}

// Restoring says a restore has begun (call it before the first
// conference is restored): until Resume, no removed stream's group is
// released, since the participants that may still have it are not all
// back yet.
func (c *Controller) Restoring() { c.restoring.Store(true) }

// Resume starts, after a restart, what the restored participants need:
// each that is behind the conference's description is re-INVITEd to it,
// and the groups of removed streams that no restored participant uses any
// more are released. Call it once every conference and participant is
// restored.
func (c *Controller) Resume() {
	c.restoring.Store(false)
	defer c.pokeSchedules()
	confs := c.allConferences()
	for _, conf := range confs {
		parts := conf.members()
		for _, p := range parts {
			c.kick(conf, p)
		}
		c.settle(conf)
	}
}
