package conference

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"mcc/sdp"
)

// A conference's life: it is created around a session mcc makes
// (CreateSession), one imported or heard over SAP (Import), or one the
// manager holds already (Create); each change of it is saved (change.go);
// Delete ends it; Restore brings every saved one back after a restart.
// Its record is written under its recordMu, one write at a time, each
// reading what it writes there, so the last one written holds the last
// change; no other lock is held under recordMu but the manager's, briefly.

// CreateSession makes a session from spec, leasing its groups, and a
// conference named name around it, and saves both. Nothing is leased
// for a name that cannot name a new conference.
func (c *Controller) CreateSession(name string, spec sdp.SessionSpec, access Access) (Info, error) {
	return c.CreateScheduled(name, spec, access, nil)
}

// CreateScheduled is CreateSession with an invite list, which mcc dials
// at each start of spec.Schedule (schedule.go), or at once for a session
// with no schedule. A scheduled session whose first interval is further
// off than the lead is created idle: its groups are chosen, and leased
// only ahead of each interval.
func (c *Controller) CreateScheduled(name string, spec sdp.SessionSpec, access Access, invitees []Invitee) (Info, error) {
	if err := c.checkNewName(name); err != nil {
		return Info{}, err
	}
	if err := checkInvitees(invitees); err != nil {
		return Info{}, err
	}
	if !spec.Schedule.IsZero() {
		now := c.clock().Now()
		s, _, ok := spec.Schedule.Next(now)
		spec.Idle = !ok || now.Before(s.Add(-c.lead()))
	}
	desc, err := c.cfg.Manager.Create(spec)
	if err != nil {
		return Info{}, err
	}
	in, err := c.adopt(name, desc.Origin.SessionID, access, nil, invitees)
	if err != nil {
		return in, err
	}
	conf, cerr := c.conference(name)
	switch {
	case cerr != nil:
	case !spec.Schedule.IsZero():
		// On air at once when its lead has begun: what it returns says so,
		// and a dial-in right after finds it on.
		c.runSchedule(conf, c.clock().Now())
		in = c.info(conf)
	case len(invitees) > 0:
		c.dialInvitees(conf, time.Time{})
		in = c.info(conf)
	}
	return in, nil
}

// Import makes a conference named name around a session described
// elsewhere (an SDP file, a SAP announcement): mcc invites people into it
// and leases none of its groups. The description is the importer's; mcc
// never changes it.
func (c *Controller) Import(name string, desc *sdp.Session, access Access) (Info, error) {
	return c.importFollowing(name, desc, access, nil)
}

// importFollowing is Import for a conference that follows the heard
// session f names (follow.go), or none when f is nil.
func (c *Controller) importFollowing(name string, desc *sdp.Session, access Access, f *Follow) (Info, error) {
	if err := c.checkNewName(name); err != nil {
		return Info{}, err
	}
	id, _, err := c.cfg.Manager.ImportSession(desc)
	if err != nil {
		return Info{}, err
	}
	return c.adopt(name, id, access, f, nil)
}

// checkNewName refuses a name that cannot name a conference, or names one
// already, before anything is leased or imported for it (Create checks
// again, under the controller's lock).
func (c *Controller) checkNewName(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if _, err := c.conference(name); err == nil {
		return fmt.Errorf("%w: %q", ErrExists, name)
	}
	return nil
}

// adopt is Create for a session just made for it: when the conference
// cannot be, the session goes again, leases and all.
func (c *Controller) adopt(name string, id uint64, access Access, f *Follow, invitees []Invitee) (Info, error) {
	in, err := c.createFollowing(name, id, access, f, invitees)
	if err != nil && !errors.Is(err, ErrNotSaved) {
		// ErrNotSaved: Create's undo deleted the session already.
		c.cfg.Manager.Delete(id)
	}
	return in, err
}

// ErrNotSaved is a new conference whose record the store did not take:
// the conference is undone, and the fault is the daemon's.
var ErrNotSaved = errors.New("conference: the conference could not be saved")

// Create creates a conference named name around session sessionID of the
// manager, and saves it; sip:name@host is its conference URI. Until its
// record is written nobody finds it (no dial-in, no Delete), though its
// name is taken. When the save fails, the conference and its session go
// again, leases and all, so that nothing a restart would lose stays
// behind; the error is ErrNotSaved with the store's.
func (c *Controller) Create(name string, sessionID uint64, access Access) (Info, error) {
	return c.createFollowing(name, sessionID, access, nil, nil)
}

// createFollowing is Create for a conference that follows a heard
// session (follow.go), or none when f is nil.
func (c *Controller) createFollowing(name string, sessionID uint64, access Access, f *Follow, invitees []Invitee) (Info, error) {
	in, conf, err := c.create(name, sessionID, access, true)
	if err != nil {
		return Info{}, err
	}
	conf.mu.Lock()
	conf.invitees = slices.Clone(invitees)
	in.Schedule = c.scheduleInfoLocked(conf)
	conf.mu.Unlock()
	if f != nil {
		conf.follow.Store(f)
		in.Follow = f
	}
	if err := c.saveConference(conf); err != nil {
		c.mu.Lock()
		if c.conferences[name] == conf {
			delete(c.conferences, name)
		}
		c.mu.Unlock()
		if ferr := c.forgetRecord(conf, true); ferr != nil {
			c.log.Error("undo a conference that could not be saved", "conference", name, "err", ferr)
		}
		if derr := c.cfg.Manager.Delete(sessionID); derr != nil {
			c.log.Error("undo a conference that could not be saved", "conference", name, "err", derr)
		}
		return Info{}, fmt.Errorf("%w: %q: %v", ErrNotSaved, name, err)
	}
	c.mu.Lock()
	conf.pending = false
	c.mu.Unlock()
	c.pokeSchedules()
	return in, nil
}

// create is Create without the save; pending hides the conference until
// its caller says.
func (c *Controller) create(name string, sessionID uint64, access Access, pending bool) (Info, *Conference, error) {
	if err := ValidName(name); err != nil {
		return Info{}, nil, err
	}
	desc, err := c.cfg.Manager.Get(sessionID)
	if err != nil {
		return Info{}, nil, err
	}
	external := c.cfg.Manager.External(sessionID)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return Info{}, nil, ErrClosed
	}
	if _, ok := c.conferences[name]; ok {
		return Info{}, nil, fmt.Errorf("%w: %q", ErrExists, name)
	}
	conf := &Conference{name: name, sessionID: sessionID, access: access, external: external, progress: make(chan struct{}), pending: pending}
	conf.setDesc(desc)
	if !external {
		// An imported session's schedule is its announcer's to keep.
		if sch, err := desc.Schedule(); err == nil {
			conf.sched = sch
		}
	}
	c.conferences[name] = conf
	return c.info(conf), conf, nil
}

// saveConference writes conf's record as it is now, unless conf is being
// deleted.
func (c *Controller) saveConference(conf *Conference) error {
	if c.cfg.Store == nil {
		return nil
	}
	conf.recordMu.Lock()
	defer conf.recordMu.Unlock()
	if conf.recordGone {
		return nil
	}
	v := conf.version() // what the manager holds is this one or newer
	saved, err := c.cfg.Manager.Save(conf.sessionID)
	if err != nil {
		return err
	}
	rec := Record{Name: conf.name, SessionID: conf.sessionID, Access: conf.access, Session: saved, Follow: conf.follow.Load()}
	conf.mu.Lock()
	rec.Invitees, rec.Dialed = slices.Clone(conf.invitees), conf.dialed
	if conf.onAir != (sdp.Interval{}) {
		iv := conf.onAir
		rec.OnAir = &iv
	}
	conf.mu.Unlock()
	if err := c.cfg.Store.PutRecord(conferenceKey(conf.name), rec); err != nil {
		return err
	}
	if v > conf.savedVersion.Load() {
		conf.savedVersion.Store(v)
	}
	return nil
}

// forgetRecord deletes conf's record; no save of conf writes it again.
// For an undo (the record's first write failed, so there is none), a
// failed delete is logged and the conference goes all the same.
func (c *Controller) forgetRecord(conf *Conference, undo bool) error {
	conf.recordMu.Lock()
	defer conf.recordMu.Unlock()
	conf.recordGone = true
	if c.cfg.Store == nil {
		return nil
	}
	if err := c.cfg.Store.DeleteRecord(conferenceKey(conf.name)); err != nil {
		if undo {
			c.log.Warn("undo: delete the record that was not written", "conference", conf.name, "err", err)
			return nil
		}
		conf.recordGone = false
		return fmt.Errorf("delete the record of %q: %w", conf.name, err)
	}
	return nil
}

// Remove sends BYE to one participant.
func (c *Controller) Remove(name, id string) error {
	conf, err := c.conference(name)
	if err != nil {
		return err
	}
	conf.mu.Lock()
	var p *participant
	for _, x := range conf.participants {
		if x.id == id {
			p = x
		}
	}
	conf.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%w: %q", ErrNoParticipant, id)
	}
	c.end(p, "removed by the operator")
	return nil
}

// end removes participant p as its dialog allows (RFC 3261 §15): BYE in
// a confirmed dialog; an invitation still ringing is cancelled (its 2xx,
// should one cross the CANCEL, gets BYE); a dial-in whose 200 waits for
// its ACK gets BYE once the ACK comes, and nothing if it never does.
func (c *Controller) end(p *participant, reason string) {
	p.mu.Lock()
	d, ring := p.dlg, p.cancelRing
	p.mu.Unlock()
	p.set(Removed, 0, reason) // first: what answers later finds p ended
	if d == nil {
		if ring != nil {
			ring()
		}
		return
	}
	d.mu.Lock()
	confirmed, waitingACK := d.remoteTag != "" && !d.early, d.inviteRx && d.early
	d.mu.Unlock()
	switch {
	case waitingACK:
		// the ACK goroutine of onDialIn sends the BYE
	case !confirmed:
		if ring != nil {
			ring()
		}
	default:
		if err := c.sendBye(d); err != nil {
			c.log.Info("BYE", "participant", p.uri, "err", err)
		}
	}
}

// Delete ends conference name: its record goes first, so that a crash
// before the leases are released leaves leases of no session, which
// Restore releases, never a session whose groups are free; then BYE to
// everyone (CANCEL to those still ringing), then the session and its
// leases. Deletes of one conference are one at a time: a second one
// finds it gone. It waits for the BYEs' answers while ctx lasts; past it
// the session goes once they are answered (see remove).
func (c *Controller) Delete(ctx context.Context, name string) error {
	c.mu.Lock()
	conf := c.conferences[name]
	if conf == nil || conf.removing || conf.pending {
		c.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	conf.removing = true
	c.mu.Unlock()
	return c.remove(ctx, conf)
}

// remove is Delete of conf, which the caller has marked removing. It
// waits for the BYEs' answers while ctx lasts; when it ends first, the
// BYEs go on, and the session and its leases go once they are answered,
// in a goroutine the controller owns (Close ends it, and the BYEs with
// it).
func (c *Controller) remove(ctx context.Context, conf *Conference) error {
	if err := c.forgetRecord(conf, false); err != nil {
		c.mu.Lock()
		conf.removing = false
		c.mu.Unlock()
		return err
	}
	c.mu.Lock()
	if c.conferences[conf.name] == conf {
		delete(c.conferences, conf.name)
	}
	c.mu.Unlock()
	c.dropReception(conf.name) // before a conference of the same name can take its rows
	conf.mu.Lock()
	conf.deleted = true // from here no one joins, and no join is saved
	parts := slices.Clone(conf.participants)
	conf.mu.Unlock()
	var wg sync.WaitGroup
	byes := 0
	for _, p := range parts {
		p.mu.Lock()
		d, state := p.dlg, p.state
		p.mu.Unlock()
		if d == nil || (state != Joined && state != Invited && state != Ringing) {
			continue
		}
		wg.Add(1)
		if c.goOwned(func() { defer wg.Done(); c.end(p, "conference ended") }) {
			byes++
		} else {
			wg.Done() // closed: no BYE goes any more
		}
	}
	if byes == 0 {
		c.endSubscriptions(conf, "noresource") // RFC 6665 §4.1.3: the conference is gone
		return c.cfg.Manager.Delete(conf.sessionID)
	}
	ended := make(chan struct{})
	go func() { wg.Wait(); close(ended) }() // ends with the BYEs, owned by them
	// The subscribers' last NOTIFY shows everyone disconnected, or as far
	// as the BYEs got while ctx lasted.
	defer c.endSubscriptions(conf, "noresource")
	select {
	case <-ended:
	case <-ctx.Done():
		c.log.Info("delete: BYEs still unanswered; the session goes once they are answered", "conference", conf.name)
		later := func() {
			<-ended
			if err := c.cfg.Manager.Delete(conf.sessionID); err != nil {
				c.log.Error("delete the session", "conference", conf.name, "err", err)
			}
		}
		if c.goOwned(later) {
			return nil
		}
	}
	return c.cfg.Manager.Delete(conf.sessionID)
}

// Restore brings back the conferences saved in the store, with their
// sessions and leases, then their joined participants' dialogs, and has
// each participant go on from the version it acknowledged. It returns how
// many conferences and participants came back; a record that cannot is
// logged and left out (a participant's is deleted). Records of an older
// form are saved again in the new one; when there were any, a store that
// has a Compact method is compacted, so that what they held (clear
// passwords) leaves its free pages too. Call it once, before serving
// anyone.
//
// The leases of sessions no record names are released, unless a
// conference's record could not be read: then every lease stays, since
// one of them may be that conference's. A store that cannot be read at
// all is an error, and nothing is restored or released.
func (c *Controller) Restore() (conferences, participants int, err error) {
	if c.cfg.Store == nil {
		return 0, 0, nil
	}
	var confs []Record
	var keys []string // of confs
	var parts []SavedParticipant
	unread := 0 // conference records that did not decode
	err = c.cfg.Store.Records(func(key string, v []byte) error {
		var err error
		switch {
		case strings.HasPrefix(key, "c/"):
			var r Record
			if err = json.Unmarshal(v, &r); err == nil {
				confs = append(confs, r)
				keys = append(keys, key)
			} else {
				unread++
			}
		case strings.HasPrefix(key, "p/"):
			var p SavedParticipant
			if err = json.Unmarshal(v, &p); err == nil {
				parts = append(parts, p)
			}
		}
		if err != nil {
			c.log.Error("restore", "record", key, "err", err)
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("conference: restore: read the store: %w", err)
	}
	// No removed stream's group goes until every participant that may
	// still have it is back (Resume, below).
	c.Restoring()
	saved := make([]sdp.Saved, len(confs))
	for i, r := range confs {
		saved[i] = r.Session
	}
	descs, errs := c.cfg.Manager.RestoreAll(saved)
	failed := unread // records whose session did not come back: their leases may be any
	migrated := false
	for i, r := range confs {
		migrated = migrated || r.migrated
		if r.badRealm != "" {
			c.log.Warn("restore conference: the saved digest realm cannot travel in a challenge, the conference name is the realm now",
				"conference", r.Name, "realm", r.badRealm)
		}
		for _, u := range r.dropped {
			c.log.Warn("restore conference: a digest user of the old record is dropped (set the users again)",
				"conference", r.Name, "user", u.name, "err", u.why)
		}
		var conf *Conference
		err := errs[i]
		if err == nil {
			id := r.Session.IDOf(descs[i])
			if _, conf, err = c.create(r.Name, id, r.Access, false); err != nil {
				c.cfg.Manager.Forget(id) // its leases stay, below
			} else {
				conf.savedVersion.Store(conf.version()) // its record holds it
				if r.Follow != nil {
					f := *r.Follow
					conf.follow.Store(&f)
				}
				conf.mu.Lock()
				conf.invitees, conf.dialed = r.Invitees, r.Dialed
				if r.OnAir != nil {
					conf.onAir = *r.OnAir
				}
				conf.mu.Unlock()
			}
		}
		if err != nil {
			failed++
			c.log.Error("restore conference", "conference", r.Name, "err", err)
			if r.migrated {
				// Kept for another try, but without its passwords.
				if err := c.cfg.Store.PutRecord(keys[i], r); err != nil {
					c.log.Error("save a migrated record", "conference", r.Name, "err", err)
				}
			}
			continue
		}
		if r.migrated {
			// Its passwords leave the store too.
			if err := c.saveConference(conf); err != nil {
				c.log.Error("save a migrated record", "conference", r.Name, "err", err)
			}
		}
		conferences++
	}
	// Leases of sessions that have no record (deleted, or created, when
	// the process stopped) are used by nobody; but while a record did not
	// come back, any lease may be its session's, and every one stays.
	if failed > 0 {
		c.log.Warn("restore: conference records did not come back; every lease of a session is kept until they do or it expires", "records", failed)
	} else if err := c.cfg.Manager.ReleaseOrphans(); err != nil {
		c.log.Error("restore: release the leases of sessions no record has", "err", err)
	}
	if s, ok := c.cfg.Store.(compacter); ok && migrated {
		// The clear passwords the records held are still in the pages
		// the store freed when they were saved again.
		if err := s.Compact(); err != nil {
			c.log.Error("restore: compact the store, which still holds the clear passwords of old records in its free pages", "err", err)
		} else {
			c.log.Info("restore: old records migrated, the store is compacted")
		}
	}
	for _, p := range parts {
		if err := c.RestoreParticipant(p); err != nil {
			c.log.Error("restore participant", "conference", p.Conference, "participant", p.URI, "err", err)
			c.cfg.Store.DeleteRecord(participantKey(p.Conference, p.ID))
			continue
		}
		participants++
	}
	// Each participant goes on from the version it acknowledged, and the
	// removed streams' groups no restored participant uses are released.
	c.Resume()
	return conferences, participants, nil
}
