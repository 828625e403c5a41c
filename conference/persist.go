package conference

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

var streamStates = map[string]sdp.StreamState{"accepted": sdp.StreamAccepted, "declined": sdp.StreamDeclined,
	"invalid": sdp.StreamInvalid, "removed": sdp.StreamRemoved}

// persist saves p's dialog while it is joined, and forgets it otherwise.
// Saves of one participant are one at a time, each writing the state it
// read (saveMu): a save that read "joined" cannot land after the delete
// of its end (participant.set deletes again once the state is ended).
func (c *Controller) persist(p *participant) {
	if c.cfg.Store == nil || p.c == nil {
		return
	}
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	p.mu.Lock()
	state := p.state
	p.mu.Unlock()
	c.persistLocked(p, state)
}

// persistAs is persist for p in the given state, which it may be about to
// enter.
func (c *Controller) persistAs(p *participant, state State) {
	if c.cfg.Store == nil || p.c == nil {
		return
	}
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	c.persistLocked(p, state)
}

// persistLocked is persistAs with p.saveMu held.
func (c *Controller) persistLocked(p *participant, state State) {
	p.mu.Lock()
	d := p.dlg
	sp := SavedParticipant{Conference: p.conf, ID: p.id, URI: p.uri, Name: p.name, DialIn: p.dialIn, Since: p.since, By: p.by, AuthUser: p.authUser, Role: p.role}
	if p.in != nil {
		sp.SessionID = p.in.sessionID
	}
	for _, s := range p.streams {
		sp.Streams = append(sp.Streams, s.String())
	}
	for i := range p.rejected {
		sp.Rejected = append(sp.Rejected, i)
	}
	sp.Acked, sp.Rejoin, sp.Unoffered = p.acked, p.rejoin, p.unoffered
	p.mu.Unlock()
	key := participantKey(p.conf, p.id)
	if d == nil || state != Joined || p.in != nil && p.in.isDeleted() {
		if err := c.cfg.Store.DeleteRecord(key); err != nil {
			c.log.Error("forget dialog", "participant", p.uri, "err", err)
		}
		return
	}
	d.mu.Lock()
	sp.CallID, sp.Owner, sp.Transport = d.callID, d.owner, d.transport
	sp.Local, sp.LocalTag, sp.Remote, sp.RemoteTag = d.local.String(), d.localTag, d.remote.String(), d.remoteTag
	sp.LocalCSeq, sp.RemoteCSeq, sp.RemoteTarget, sp.Version = d.localCSeq, d.remoteCSeq, d.remoteTarget.String(), d.version
	for _, r := range d.routeSet {
		sp.RouteSet = append(sp.RouteSet, r.String())
	}
	if d.fixTo.IsValid() {
		sp.FixTo = d.fixTo.String()
	}
	if d.offered != nil {
		sp.Offered, _ = d.offered.Marshal()
	}
	sp.LastACK, sp.Pending = d.lastACKCSeq, d.pendingCSeq
	if d.inflight != nil {
		sp.InFlight, _ = d.inflight.Marshal()
	}
	for _, m := range d.maybe {
		if b, err := m.Marshal(); err == nil {
			sp.Maybe = append(sp.Maybe, b)
		}
	}
	sp.SessionExpires, sp.Refresher = int(d.timer.interval/time.Second), d.timer.ours
	ended := d.ended
	d.mu.Unlock()
	if ended {
		c.cfg.Store.DeleteRecord(key)
		return
	}
	if err := c.cfg.Store.PutRecord(key, sp); err != nil {
		c.log.Error("save dialog", "participant", p.uri, "err", err)
		return
	}
	d.mu.Lock()
	d.savedCSeq = max(d.savedCSeq, sp.LocalCSeq) // what a restart goes on from (cseqSlack)
	d.mu.Unlock()
}

// RestoreParticipant brings back a joined participant saved before a
// restart, with its dialog, into its conference (which must exist).
func (c *Controller) RestoreParticipant(sp SavedParticipant) error {
	conf, err := c.conference(sp.Conference)
	if err != nil {
		return err
	}
	// The local CSeq goes on from above the saved one by more than the
	// probes may have taken since it was saved (see cseqSlack).
	d := &dialog{callID: sp.CallID, owner: sp.Owner, transport: sp.Transport, localTag: sp.LocalTag, remoteTag: sp.RemoteTag,
		localCSeq: sp.LocalCSeq + cseqSlack, savedCSeq: sp.LocalCSeq, remoteCSeq: sp.RemoteCSeq, version: sp.Version, acked: make(chan struct{})}
	if sp.SessionExpires > 0 {
		// The interval starts again from the restart.
		d.timer = sessionTimer{interval: time.Duration(sp.SessionExpires) * time.Second, ours: sp.Refresher, refreshed: time.Now()}
	}
	for _, u := range []struct {
		s   string
		dst *sip.Uri
	}{{sp.Local, &d.local}, {sp.Remote, &d.remote}, {sp.RemoteTarget, &d.remoteTarget}} {
		if err := sip.ParseUri(u.s, u.dst); err != nil {
			return fmt.Errorf("conference: restore %s: %q: %w", sp.ID, u.s, err)
		}
	}
	if sp.FixTo != "" {
		if d.fixTo, err = netip.ParseAddrPort(sp.FixTo); err != nil {
			return fmt.Errorf("conference: restore %s: fix_to %q: %w", sp.ID, sp.FixTo, err)
		}
	}
	// The next hop's family, looked up once (not under d.mu later).
	next := d.remoteTarget.Host
	if d.fixTo.IsValid() {
		next = d.fixTo.Addr().String()
	}
	if len(sp.RouteSet) > 0 {
		var first sip.Uri
		if err := sip.ParseUri(sp.RouteSet[0], &first); err == nil {
			next = first.Host
		}
	}
	d.v6 = c.isV6(next)
	for _, r := range sp.RouteSet {
		var u sip.Uri
		if err := sip.ParseUri(r, &u); err != nil {
			return fmt.Errorf("conference: restore %s: route %q: %w", sp.ID, r, err)
		}
		d.routeSet = append(d.routeSet, u)
	}
	if len(sp.Offered) > 0 {
		if d.offered, err = sdp.Parse(sp.Offered); err != nil {
			return fmt.Errorf("conference: restore %s: %w", sp.ID, err)
		}
		o := d.offered.Origin
		d.origin = &o
	}
	for _, b := range append(sp.Maybe, sp.InFlight) {
		if len(b) == 0 {
			continue
		}
		m, err := sdp.Parse(b)
		if err != nil {
			return fmt.Errorf("conference: restore %s: an offer in flight: %w", sp.ID, err)
		}
		d.maybe = append(d.maybe, m) // taken or not: its answer was lost with the process
	}
	// The participant resumes from the version it acknowledged; Resume
	// has its worker bring it up to the session's. A record of an older
	// form has no version: it is the session's if what it accepted is the
	// restored description, else none.
	d.lastACKCSeq = max(sp.LastACK, sp.Pending)
	conf.mu.Lock()
	acked := sp.Acked
	if acked > conf.desc.Origin.Version {
		acked = 0 // saved after a change that the session's record lacks: unknown
	}
	if acked == 0 && sameMedia(d.offered, conf.desc) {
		acked = conf.desc.Origin.Version
	}
	if sp.Pending != 0 {
		// Whether it took the offer in flight is not known: it is brought
		// to the latest, which its worker does at Resume.
		acked = 0
	}
	conf.mu.Unlock()
	if sp.SessionID != 0 && sp.SessionID != conf.sessionID {
		return fmt.Errorf("conference: restore %s: saved for session %d, but %s is session %d now", sp.ID, sp.SessionID, conf.name, conf.sessionID)
	}
	p := &participant{id: sp.ID, uri: sp.URI, name: displayName(sp.Name), dialIn: sp.DialIn, by: sp.By, authUser: sp.AuthUser, role: sp.Role, in: conf, conf: conf.name, c: c, state: Joined, status: 200,
		since: sp.Since, dlg: d, acked: acked, version: sp.Version, rejected: map[int]bool{}, rejoin: sp.Rejoin, unoffered: sp.Unoffered}
	for _, s := range sp.Streams {
		p.streams = append(p.streams, streamStates[s])
	}
	for _, i := range sp.Rejected {
		p.rejected[i] = true
	}
	// A dial-in counts against its source's bound again, past it or not:
	// it is in the conference already.
	if sp.DialIn && d.fixTo.IsValid() {
		src := d.fixTo.Addr().Unmap()
		c.guard.mu.Lock()
		c.guard.sourceLocked(src, c.guard.now()).joined++
		c.guard.joined++
		c.guard.mu.Unlock()
		p.source = src
	}
	conf.mu.Lock()
	conf.participants = append(conf.participants, p)
	conf.mu.Unlock()
	c.track(d, conf, p)
	c.retrack(d)
	return nil
}

// sameMedia reports whether two descriptions are the same but for their
// o= version.
func sameMedia(a, b *sdp.Session) bool {
	if a == nil || b == nil {
		return false
	}
	x := a.Clone()
	x.Origin = b.Origin // a dialog's o= may carry mcc's address of its family
	xb, err1 := x.Marshal()
	yb, err2 := b.Marshal()
	return err1 == nil && err2 == nil && string(xb) == string(yb)
}
