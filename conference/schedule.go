package conference

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

// A scheduled conference follows the time description of its session
// (RFC 8866 §5.9-§5.11: t=, r=, z=). Ahead of each interval, by
// Config.ScheduleLead, the session wakes: its groups are leased until the
// interval's end (the same groups as last time when they are still free)
// and the SAP announcer takes it up. At the interval's start mcc dials the
// conference's invite list; at its end every participant gets BYE and the
// session rests: its leases go and its announcement is deleted. Between
// two intervals the conference is there, with its description, but a
// dial-in gets 480 with Retry-After and an invitation is refused.
//
// One goroutine of the controller's runs every scheduled conference
// (runSchedules): it sleeps on Config.Clock until the next thing due, or
// until a conference is created or restored. What it did is in the
// conference's record, so that after a restart a weekly series goes on
// where it was: nobody is dialed twice for one interval, an interval
// that ended while mcc was down is closed.

// Clock is the time the scheduler goes by; tests give their own.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// DefaultScheduleLead is how long before each scheduled start the
// session's groups are leased and its announcement goes out: SAP
// listeners (RFC 2974 §3) and people who look at a session directory
// see it coming, and a participant may dial in early.
const DefaultScheduleLead = 15 * time.Minute

// scheduleHold is how long past an interval's end its leases last if mcc
// is not there to release them: they end on their own.
const scheduleHold = time.Minute

// scheduleRecheck is the longest the scheduler sleeps: a clock that
// jumps (a suspended host) is caught up with at the latest then.
const scheduleRecheck = time.Hour

// unboundedWake is how far ahead the leases of an interval with no end
// (t=<start> 0) are taken, and renewed at half of it.
const unboundedWake = 24 * time.Hour

// Invitee is someone the scheduler dials at each start of the
// conference's schedule, with their role.
type Invitee struct {
	URI  string `json:"uri"`
	Role Role   `json:"role,omitempty"`
}

// ScheduleInfo says where a scheduled conference is in its schedule.
type ScheduleInfo struct {
	// OnAir is the interval the session is awake for (its leases and its
	// announcement), from the lead before its start; absent when idle.
	OnAir *sdp.Interval `json:"on_air,omitempty"`
	// Next is the interval in progress or the next one; absent when the
	// schedule is over.
	Next     *sdp.Interval `json:"next,omitempty"`
	Invitees []Invitee     `json:"invitees,omitempty"`
}

// ErrNotScheduled is an invite list for a conference with no schedule,
// which has no start to dial it at.
var ErrNotScheduled = errors.New("conference: the conference has no schedule")

// ErrNotOnAir is an invitation into a scheduled conference between its
// intervals.
var ErrNotOnAir = errors.New("conference: the conference's session is not on (see its schedule)")

func (c *Controller) clock() Clock {
	if c.cfg.Clock != nil {
		return c.cfg.Clock
	}
	return realClock{}
}

func (c *Controller) lead() time.Duration {
	if c.cfg.ScheduleLead > 0 {
		return c.cfg.ScheduleLead
	}
	return DefaultScheduleLead
}

// pokeSchedules has the scheduler look again at once.
func (c *Controller) pokeSchedules() {
	select {
	case c.schedPoke <- struct{}{}:
	default:
	}
}

// runSchedules runs every scheduled conference until the controller
// closes.
func (c *Controller) runSchedules() {
	clk := c.clock()
	for {
		wait := scheduleRecheck
		if !c.restoring.Load() {
			now := clk.Now()
			for _, conf := range c.allConferences() {
				if next := c.runScheduleSafe(conf, now); !next.IsZero() {
					wait = min(wait, max(next.Sub(now), 0))
				}
			}
		}
		select {
		case <-c.ctx.Done():
			return
		case <-c.schedPoke:
		case <-clk.After(wait):
		}
	}
}

// runScheduleSafe is runSchedule, with a panic in one conference's
// logged and that conference looked at again in a minute: the others go
// on.
func (c *Controller) runScheduleSafe(conf *Conference, now time.Time) (next time.Time) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("schedule: panic", "conference", conf.name, "panic", r)
			next = now.Add(time.Minute)
		}
	}()
	return c.runSchedule(conf, now)
}

// scheduleOf returns conf's schedule, zero for a permanent session, an
// imported one (its announcer's to run) or one whose schedule mcc cannot
// read.
func (c *Controller) scheduleOf(conf *Conference) sdp.Schedule {
	conf.mu.Lock()
	defer conf.mu.Unlock()
	return conf.sched
}

// runSchedule does what is due for conf at now and returns when it has
// something to do next, zero for never.
func (c *Controller) runSchedule(conf *Conference, now time.Time) time.Time {
	sch := c.scheduleOf(conf)
	if sch.IsZero() {
		return time.Time{}
	}
	conf.schedMu.Lock() // the scheduler's pass, or the one of its creation
	defer conf.schedMu.Unlock()
	conf.mu.Lock()
	onAir, dialed, deleted := conf.onAir, conf.dialed, conf.deleted
	conf.mu.Unlock()
	if deleted {
		return time.Time{}
	}
	s, e, ok := sch.Next(now)
	if onAir != (sdp.Interval{}) && !onAir.End.IsZero() && !now.Before(onAir.End) {
		if ok && !now.Before(s) && !s.After(onAir.End) {
			// The next interval began before this one ended (overlapping
			// r= lines or offsets, or back to back): one stretch on air,
			// with nobody hung up and nobody dialed twice.
			c.markDialed(conf, s)
			dialed = dialKey(s)
		} else {
			// The next one's lead may have begun already (a gap shorter
			// than the lead): everyone goes, the leases stay.
			c.closeInterval(conf, onAir, !ok || now.Before(s.Add(-c.lead())))
			onAir = sdp.Interval{}
		}
	}
	wakeAt := s.Add(-c.lead())
	if !ok || now.Before(wakeAt) {
		if onAir != (sdp.Interval{}) {
			c.closeInterval(conf, onAir, true) // the schedule moved on while it was up
		} else if !c.closing(conf) && !c.cfg.Manager.Idle(conf.sessionID) {
			c.rest(conf) // created, or restored, ahead of its time
		}
		if !ok {
			return time.Time{}
		}
		return wakeAt
	}
	iv := sdp.Interval{Start: s, End: e}
	until := e.Add(scheduleHold)
	if e.IsZero() {
		until = now.Add(unboundedWake)
	}
	renew := e.IsZero() && c.leaseEndBefore(conf, now.Add(unboundedWake/2))
	if onAir != iv || c.cfg.Manager.Idle(conf.sessionID) || renew {
		if !c.wake(conf, iv, until) {
			return now.Add(time.Minute) // the pool may have room then
		}
	}
	if !now.Before(s) && !dialed.Equal(dialKey(s)) {
		c.dialInvitees(conf, s)
	}
	switch {
	case now.Before(s):
		return s
	case e.IsZero():
		return now.Add(unboundedWake / 2)
	}
	return e
}

// leaseEndBefore reports whether a lease of conf's session ends before t.
func (c *Controller) leaseEndBefore(conf *Conference, t time.Time) bool {
	ls, _ := c.cfg.Manager.Leases(conf.sessionID)
	for _, l := range ls {
		if l.End.Before(t) {
			return true
		}
	}
	return false
}

// wake leases conf's groups for interval iv until until; when a group had
// to change, everyone in the conference gets the new description.
func (c *Controller) wake(conf *Conference, iv sdp.Interval, until time.Time) bool {
	conf.mu.Lock()
	if conf.deleted {
		conf.mu.Unlock()
		return false
	}
	desc, changed, err := c.cfg.Manager.Wake(conf.sessionID, until)
	if err != nil {
		conf.mu.Unlock()
		c.log.Error("schedule: lease the session's groups", "conference", conf.name, "start", iv.Start, "err", err)
		c.publish(Event{Conference: conf.name, Kind: "schedule", Detail: "could not lease the groups: " + err.Error()})
		return false
	}
	if changed {
		conf.setDesc(desc)
	}
	conf.onAir = iv
	parts := slices.Clone(conf.participants)
	conf.mu.Unlock()
	if err := c.saveConference(conf); err != nil {
		c.log.Error("save conference", "conference", conf.name, "err", err)
	}
	detail := "on air from " + iv.Start.UTC().Format(time.RFC3339)
	if changed {
		detail += ", on new groups (the old ones were taken)"
		for _, p := range parts {
			c.kick(conf, p)
		}
		conf.progressed()
	}
	c.log.Info("schedule: session awake", "conference", conf.name, "start", iv.Start, "end", iv.End)
	c.publish(Event{Conference: conf.name, Kind: "schedule", Detail: detail})
	return true
}

// rest gives back conf's leases, which withdraws its announcement.
func (c *Controller) rest(conf *Conference) {
	if err := c.cfg.Manager.Rest(conf.sessionID); err != nil {
		c.log.Error("schedule: release the session's groups", "conference", conf.name, "err", err)
	}
	if err := c.saveConference(conf); err != nil {
		c.log.Error("save conference", "conference", conf.name, "err", err)
	}
}

// closeInterval ends interval iv of conf: from here nobody joins
// (addParticipant), everyone gets BYE (CANCEL while ringing), each in
// its own goroutine, so that one that does not answer holds up neither
// the others nor the scheduler; then the session rests, unless the next
// interval's lead has begun (rest false), and the wake that follows
// moves the leases' end.
func (c *Controller) closeInterval(conf *Conference, iv sdp.Interval, rest bool) {
	conf.mu.Lock()
	parts := slices.Clone(conf.participants)
	conf.onAir = sdp.Interval{}
	conf.mu.Unlock()
	var byes sync.WaitGroup
	for _, p := range parts {
		p.mu.Lock()
		state := p.state
		p.mu.Unlock()
		if state == Joined || state == Invited || state == Ringing {
			byes.Add(1)
			if !c.goOwned(func() { defer byes.Done(); c.end(p, "the scheduled interval ended") }) {
				byes.Done() // closing: the restart closes the interval
			}
		}
	}
	if err := c.saveConference(conf); err != nil {
		c.log.Error("save conference", "conference", conf.name, "err", err)
	}
	if rest {
		// The groups go once the BYEs are answered (or timed out), as
		// for Delete: until then a participant may still be in them.
		conf.mu.Lock()
		conf.closing++
		conf.mu.Unlock()
		restAfter := func() {
			byes.Wait()
			conf.schedMu.Lock()
			defer conf.schedMu.Unlock()
			conf.mu.Lock()
			conf.closing--
			off := conf.onAir == (sdp.Interval{}) && !conf.deleted && conf.closing == 0
			conf.mu.Unlock()
			if off { // else it woke meanwhile, is gone, or another close rests it
				c.rest(conf)
			}
		}
		if !c.goOwned(restAfter) {
			conf.mu.Lock()
			conf.closing--
			conf.mu.Unlock()
		}
	}
	c.log.Info("schedule: interval over", "conference", conf.name, "start", iv.Start, "end", iv.End)
	c.publish(Event{Conference: conf.name, Kind: "schedule", Detail: "interval over at " + iv.End.UTC().Format(time.RFC3339)})
}

// dialInvitees invites conf's invite list for the interval that starts at
// s, once: the record says it was done before anyone is dialed, so that
// a restart does not dial them again.
func (c *Controller) dialInvitees(conf *Conference, s time.Time) {
	conf.mu.Lock()
	conf.dialed = dialKey(s)
	list := append([]Invitee(nil), conf.invitees...)
	conf.mu.Unlock()
	if err := c.saveConference(conf); err != nil {
		c.log.Error("save conference", "conference", conf.name, "err", err)
	}
	for _, in := range list {
		var u sip.Uri
		raw, err := parseTarget(in.URI) // as InviteAs reads it: <sip:...> too
		if err == nil {
			err = sip.ParseUri(raw, &u)
		}
		if err != nil || u.Host == "" {
			c.log.Error("schedule: an invitee's URI", "conference", conf.name, "uri", in.URI, "err", err)
			continue
		}
		if c.present(conf, u) {
			continue // in already: dialed in during the lead, say
		}
		if _, err := c.invite(conf, []sip.Uri{u}, []string{in.URI}, "", in.Role); err != nil {
			c.log.Error("schedule: invite", "conference", conf.name, "uri", in.URI, "err", err)
		}
	}
	c.publish(Event{Conference: conf.name, Kind: "schedule", Detail: fmt.Sprintf("started: %d invited", len(list))})
}

// present reports whether the party at u is in conf or being called: a
// participant whose From or invited URI has u's user, host and port
// (5060 when it has none), or whose dialog's remote target has u's host
// and port.
func (c *Controller) present(conf *Conference, u sip.Uri) bool {
	hostPort := func(x sip.Uri) string { return strings.ToLower(x.Host) + ":" + strconv.Itoa(cmp.Or(x.Port, 5060)) }
	aor := strings.ToLower(u.User) + "@" + hostPort(u)
	for _, p := range conf.members() {
		p.mu.Lock()
		uri, state, d := p.uri, p.state, p.dlg
		p.mu.Unlock()
		if state != Joined && state != Invited && state != Ringing {
			continue
		}
		var pu sip.Uri
		if raw, err := parseTarget(uri); err == nil && sip.ParseUri(raw, &pu) == nil && strings.ToLower(pu.User)+"@"+hostPort(pu) == aor {
			return true
		}
		if d != nil {
			d.mu.Lock()
			target := d.remoteTarget
			d.mu.Unlock()
			if target.Host != "" && hostPort(target) == hostPort(u) {
				return true
			}
		}
	}
	return false
}

// closing reports whether an interval's end is waiting for its BYEs'
// answers before the session rests.
func (c *Controller) closing(conf *Conference) bool {
	conf.mu.Lock()
	defer conf.mu.Unlock()
	return conf.closing > 0
}

// markDialed records that the interval starting at s needs no dialing.
func (c *Controller) markDialed(conf *Conference, s time.Time) {
	conf.mu.Lock()
	conf.dialed = dialKey(s)
	conf.mu.Unlock()
}

// dialKey is what conf.dialed records for an interval starting at s: s,
// or for an interval with no start (t=0 STOP: on from its creation) the
// Unix epoch, which no zero time equals.
func dialKey(s time.Time) time.Time {
	if s.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return s
}

// notOnAir is the refusal of a dial-in to a scheduled conference between
// its intervals (RFC 3261 §21.4.18): 480, with Retry-After the seconds
// until its session wakes (RFC 3261 §20.33), when there is a next time.
func (c *Controller) notOnAir(conf *Conference) *refusal {
	conf.mu.Lock()
	sch, off := conf.sched, conf.offAirLocked()
	conf.mu.Unlock()
	if !off {
		return nil
	}
	now := c.clock().Now()
	r := refuse("not on air", sip.StatusTemporarilyUnavailable, "Temporarily Unavailable", "the conference is not on now")
	if s, _, ok := sch.Next(now); ok {
		wake := s.Add(-c.lead())
		secs := max(int64(wake.Sub(now).Seconds()+0.999), 1)
		if !now.Before(wake) {
			// Past its wake and still off: its groups could not be
			// leased, and the scheduler tries again each minute.
			secs = 60
		}
		r.Warning = "the conference is on from " + s.UTC().Format(time.RFC3339)
		r.Headers = append(r.Headers, sip.NewHeader("Retry-After", strconv.FormatInt(secs, 10)))
	} else {
		// RFC 3261 §21.4.12: gone for good, with no forwarding address.
		r = refuse("not on air", sip.StatusGone, "Gone", "the conference's schedule is over")
	}
	return r
}

// offAirLocked reports whether conf is scheduled and not on: between
// its intervals nobody joins it. Called with conf.mu held.
func (conf *Conference) offAirLocked() bool {
	return !conf.sched.IsZero() && conf.onAir == (sdp.Interval{})
}

// SetInvitees sets the invite list of conference name: who its
// scheduler dials at each start.
func (c *Controller) SetInvitees(name string, list []Invitee) error {
	if err := checkInvitees(list); err != nil {
		return err
	}
	conf, err := c.conference(name)
	if err != nil {
		return err
	}
	conf.mu.Lock()
	if conf.sched.IsZero() {
		conf.mu.Unlock()
		return fmt.Errorf("%w: %q: invite them now instead", ErrNotScheduled, name)
	}
	conf.invitees = append([]Invitee(nil), list...)
	conf.mu.Unlock()
	if err := c.saveConference(conf); err != nil {
		return err
	}
	c.pokeSchedules()
	return nil
}

// checkInvitees refuses an invite list with a URI mcc cannot dial or a
// role it does not have.
func checkInvitees(list []Invitee) error {
	if len(list) > maxInvitees {
		return fmt.Errorf("conference: %d invitees, more than %d", len(list), maxInvitees)
	}
	for _, in := range list {
		if _, err := ParseRole(string(in.Role)); err != nil {
			return err
		}
		u, err := parseTarget(in.URI)
		if err != nil {
			return err
		}
		var uri sip.Uri
		if err := sip.ParseUri(u, &uri); err != nil || uri.Host == "" || strings.ContainsAny(uri.Host, " \t") {
			return fmt.Errorf("%w: %q", ErrBadURI, in.URI)
		}
	}
	return nil
}

// maxInvitees bounds an invite list.
const maxInvitees = 1000

// scheduleInfo is Info's Schedule for conf, nil for a conference with no
// schedule. Called with conf.mu held.
func (c *Controller) scheduleInfoLocked(conf *Conference) *ScheduleInfo {
	if conf.sched.IsZero() {
		return nil
	}
	in := &ScheduleInfo{Invitees: append([]Invitee(nil), conf.invitees...)}
	if conf.onAir != (sdp.Interval{}) {
		iv := conf.onAir
		in.OnAir = &iv
	}
	if s, e, ok := conf.sched.Next(c.clock().Now()); ok {
		in.Next = &sdp.Interval{Start: s, End: e}
	}
	return in
}
