package conference

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

// What each participant receives: mcc's offer of the session's
// description to it, the answer that says what it took (RFC 3264 §6,
// §8), and the participant's own offers in a re-INVITE of its own
// (hold, direction), answered by §6.2 and §8.4.

// offerFor is the description offered to one participant: the
// conference's (desc itself, which is never edited in place), or a copy
// with the streams that participant answered wrongly at port 0.
func offerFor(desc *sdp.Session, p *participant) *sdp.Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	var o *sdp.Session
	if dir := p.role.direction(); dir != "" {
		o = desc.Clone()
		for i := range o.Media {
			if o.Media[i].Port != 0 {
				o.Media[i].Direction = dir // the session's own versions count: CheckUpdate holds
			}
		}
	}
	for i := range p.rejected {
		if i < len(desc.Media) && desc.Media[i].Port != 0 {
			if o == nil {
				o = desc.Clone()
			}
			o.RemoveMedia(i)
		}
	}
	if o == nil {
		return desc
	}
	return o
}

// applyAnswer checks a participant's answer to an offer of this dialog,
// made from version ver of the session's description. Streams whose
// answer breaks a rule count as declined; the participant is told by a
// re-INVITE that offers them at port 0, or by BYE when nothing is left.
// A participant that joins on an older version than the session's is
// brought up to it by its worker.
func (c *Controller) applyAnswer(conf *Conference, p *participant, d *dialog, offer *sdp.Session, body []byte, ver uint64, initial bool) {
	answer, err := sdp.Parse(body)
	var res []sdp.StreamResult
	if err == nil {
		res, err = sdp.CheckAnswer(offer, answer)
	}
	if res == nil {
		c.hangUp(d, p, Failed, fmt.Sprintf("unacceptable answer: %v", err))
		return
	}
	if initial && (conf.isDeleted() || p.ended()) {
		// The conference ended, or the participant was removed, while it
		// was being invited: it is told at once, and nothing is kept.
		c.sendBye(d)
		if !p.ended() {
			p.set(Removed, 0, "conference ended")
		}
		return
	}
	accepted, invalid := 0, 0
	states := make([]sdp.StreamState, len(res))
	p.mu.Lock()
	if p.rejected == nil {
		p.rejected = map[int]bool{}
	}
	for i, r := range res {
		states[i] = r.State
		switch r.State {
		case sdp.StreamAccepted:
			accepted++
		case sdp.StreamInvalid:
			invalid++
			p.rejected[i] = true
		}
	}
	p.streams, p.version, p.acked, p.unoffered = states, offer.Origin.Version, ver, false
	p.mu.Unlock()
	d.mu.Lock()
	d.offered, d.inflight, d.maybe, d.pendingCSeq = offer, nil, nil, 0 // answered: in one step, for settle and the save below
	d.mu.Unlock()
	if accepted == 0 {
		reason := "declined every stream"
		state := Declined
		if invalid > 0 {
			reason, state = fmt.Sprintf("unacceptable answer: %v", err), Failed
		}
		c.hangUp(d, p, state, reason)
		return
	}
	c.settle(conf) // before the waiters wake (a settle already running takes this one's work)
	if initial {
		p.set(Joined, 200, "") // saves the dialog
	} else {
		c.persist(p)
		conf.progressed()
	}
	if invalid > 0 {
		c.log.Info("answer broke a rule; offering those streams at port 0", "conference", conf.name, "participant", p.uri, "err", err)
	}
	p.mu.Lock()
	reoffer := p.reoffer // a role given while it rang
	p.mu.Unlock()
	if invalid > 0 || ver < conf.version() || reoffer {
		// Joined on an older version than the session's (a change came
		// while it rang: the change's own kick found it not joined yet,
		// or this check finds the change), or with streams to offer at
		// port 0: its worker brings it up.
		c.kick(conf, p)
	}
}

// answerOwnOffer answers a participant's offer in its own re-INVITE from
// cur, the description of the dialog's last exchange (RFC 3264 §6.2, §8):
// a multicast stream is answered with the offer's direction (§6.2: it
// MUST equal the offer's), so a hold (a=inactive, §8.4) gets a=inactive
// back; a stream it declines (port 0) is declined in the answer. An offer
// that moves a stream's group or port is refused (why says how): the
// group is the session's, which mcc does not change for one participant.
// changed says whether the answer differs from cur; hold whether every
// stream still active is inactive.
func answerOwnOffer(cur, theirs *sdp.Session) (answer *sdp.Session, changed, hold bool, why string) {
	answer = cur.Clone()
	active := 0
	held := 0
	for i := range cur.Media {
		ours, m := answer.Media[i], theirs.Media[i]
		if ours.Port == 0 {
			continue
		}
		if m.Port == 0 {
			ours.Port, changed = 0, true
			continue
		}
		oc, tc := cur.EffectiveConnection(cur.Media[i]), theirs.EffectiveConnection(m)
		if oc != nil && oc.Addr.IsMulticast() && (tc == nil || tc.Addr != oc.Addr || m.Port != ours.Port) {
			return nil, false, false, fmt.Sprintf("stream %d: the offer moves the session's group or port; mcc keeps them (RFC 3264 §6.2)", i)
		}
		if dir := theirs.EffectiveDirection(m); dir != cur.EffectiveDirection(cur.Media[i]) {
			ours.Direction, changed = dir, true
		}
		active++
		if answer.EffectiveDirection(ours) == sdp.Inactive {
			held++
		}
	}
	return answer, changed, active > 0 && held == active, ""
}

// onReinvite answers a participant's own re-INVITE (a session refresh or
// hold) from the current session.
func (c *Controller) onReinvite(d *dialog, req *sip.Request, tx sip.ServerTransaction) {
	conf, p := c.participantOf(d)
	d.mu.Lock()
	if d.ended || conf == nil {
		d.mu.Unlock()
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	if d.inviteTx {
		d.mu.Unlock()
		respond(tx, req, sip.StatusRequestPending, "Request Pending") // glare (§14.2)
		return
	}
	if d.inviteRx {
		d.mu.Unlock()
		ra := sip.NewHeader("Retry-After", strconv.Itoa(rand.IntN(11)))
		respond(tx, req, sip.StatusInternalServerError, "Server Internal Error", ra, warning("an INVITE of this dialog is still in progress"))
		return
	}
	if err := d.checkRemoteCSeqLocked(req); err != nil {
		d.mu.Unlock()
		respond(tx, req, sip.StatusInternalServerError, "Server Internal Error", warning(err.Error()))
		return
	}
	timer, timerHdrs, tooSmall := c.timerForRequest(req)
	if tooSmall {
		d.mu.Unlock()
		respond(tx, req, statusIntervalTooSmall, "Session Interval Too Small", timerHdrs...) // RFC 4028 §9
		return
	}
	d.seen = time.Now()
	// The first hop follows the source (a NAT may have given the caller a
	// new port), then the target is taken from the Contact and pinned
	// to it (refreshTargetLocked fixes it with fixTo).
	if src, err := netip.ParseAddrPort(req.Source()); err == nil && d.fixTo.IsValid() {
		d.fixTo = src
	}
	d.refreshTargetLocked(req)
	d.fixTargetLocked() // also when the re-INVITE has no Contact
	if d.fixTo.IsValid() && !strings.EqualFold(d.transport, "TLS") {
		d.v6 = d.fixTo.Addr().Is6() && !d.fixTo.Addr().Is4In6() // the next hop is the source
	}
	var body *sdp.Session
	var ourOffer *sdp.Session
	var ver uint64
	holdChanged := false
	if len(req.Body()) > 0 {
		theirs, err := sdp.Parse(req.Body())
		if err != nil {
			d.mu.Unlock()
			respond(tx, req, sip.StatusNotAcceptableHere, "Not Acceptable Here", warning(err.Error()))
			return
		}
		cur := d.offered
		if cur == nil || len(theirs.Media) < len(cur.Media) {
			d.mu.Unlock()
			respond(tx, req, sip.StatusNotAcceptableHere, "Not Acceptable Here", warning("the offer drops m= lines (RFC 3264 §8)"))
			return
		}
		var changed bool
		var hold bool
		var why string
		body, changed, hold, why = answerOwnOffer(cur, theirs)
		if why != "" {
			d.mu.Unlock()
			// The session stays as it was (§14.1).
			respond(tx, req, sip.StatusNotAcceptableHere, "Not Acceptable Here", warning(why))
			return
		}
		if p != nil {
			p.mu.Lock()
			holdChanged = p.hold != hold
			p.hold = hold
			p.mu.Unlock()
		}
		if changed {
			d.version++
			body.Origin.Version = d.version
		}
		if len(theirs.Media) > len(cur.Media) {
			// Streams they add are declined with port 0.
			for _, m := range theirs.Media[len(cur.Media):] {
				x := m.Clone()
				x.Port = 0
				x.RTPMaps, x.Attributes = nil, nil
				body.Media = append(body.Media, x)
			}
			d.version++
			body.Origin.Version = d.version
		}
	} else {
		conf.mu.Lock()
		desc := conf.desc.Clone()
		ver = desc.Origin.Version // what this offer carries, whatever changes before the ACK
		conf.mu.Unlock()
		ourOffer = d.nextOfferLocked(offerFor(desc, p))
		body = ourOffer
		d.inflight = ourOffer // until the ACK answers it (settle)
	}
	d.inviteRx, d.rxCSeq, d.acked = true, req.CSeq().SeqNo, make(chan struct{})
	d.timer = timer // the re-INVITE refreshes the session, or ends its timer (RFC 4028 §9)
	if ourOffer == nil {
		d.offered = body // our answer to their offer: what the dialog has from here
	}
	d.mu.Unlock()
	c.persist(p) // their CSeq, the new target, and what they have
	if ourOffer == nil {
		c.settle(conf) // a stream they declined may have been a group's last holder
	}
	b, err := body.Marshal()
	if err != nil {
		respond(tx, req, sip.StatusInternalServerError, "Server Internal Error")
		return
	}
	res := c.ok(req, d, b, timerHdrs...)
	if err := tx.Respond(res); err != nil {
		c.log.Warn("re-INVITE 200", "call_id", d.callID, "err", err)
	}
	if holdChanged {
		c.publishParticipant(p, "participant") // on hold, or back: the roster says so
	}
	c.goOwned(func() {
		ack := c.awaitACK(d, res)
		if ack == nil && c.ctx.Err() != nil {
			return // shutting down: the saved dialog stays as it was, for the restart
		}
		if ack == nil {
			d.mu.Lock()
			d.inviteRx = false
			d.mu.Unlock()
			c.hangUp(d, p, Failed, "no ACK for the 200 to a re-INVITE")
			return
		}
		if ourOffer != nil {
			c.applyAnswer(conf, p, d, ourOffer, ack.Body(), ver, false)
		}
	})
}
