package conference

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

func respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	tx.Respond(res)
}

func warning(text string) sip.Header {
	// Warning: 399 mcc "..." (RFC 3261 §20.43): quotes, backslashes and
	// control characters in the text go, and it stays short.
	var b strings.Builder
	for _, r := range text {
		switch {
		case r == '"':
			b.WriteRune('\'')
		case r < 0x20 || r == 0x7f || r == '\\':
		default:
			b.WriteRune(r)
		}
		if b.Len() > 200 {
			break
		}
	}
	return sip.NewHeader("Warning", `399 mcc "`+b.String()+`"`)
}

// lookup finds the dialog of an in-dialog request: our tag is in To, theirs
// in From.
func (c *Controller) lookup(req *sip.Request) *dialog {
	if req.To() == nil || req.From() == nil || req.CallID() == nil {
		return nil // the barrier refuses these; a nil here is no dialog
	}
	toTag, _ := tagOf(req.To().Params)
	fromTag, _ := tagOf(req.From().Params)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dialogs[dialogKey{req.CallID().Value(), toTag, fromTag}]
}

func (c *Controller) participantOf(d *dialog) (*Conference, *participant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.byDialog[d]; r != nil {
		return r.conf, r.p
	}
	return nil, nil
}

func (c *Controller) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if r := checkSDPBody(req); r != nil { // screened already on mcc's listeners
		respond(tx, req, r.Code, r.Reason, append(r.Headers, warning(r.Warning))...)
		return
	}
	if _, ok := tagOf(req.To().Params); ok {
		d := c.lookup(req)
		if d == nil {
			respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
			return
		}
		c.onReinvite(d, req, tx)
		return
	}
	c.onDialIn(req, tx)
}

// onDialIn handles an INVITE to a conference URI.
func (c *Controller) onDialIn(req *sip.Request, tx sip.ServerTransaction) {
	conf, err := c.conference(req.Recipient.User)
	if err != nil {
		respond(tx, req, sip.StatusNotFound, "Not Found", warning("no conference "+req.Recipient.User))
		return
	}
	if r := c.admit(conf, req); r != nil {
		tx.Respond(r.response(req))
		return
	}
	timer, timerHdrs, tooSmall := c.timerForRequest(req)
	if tooSmall {
		respond(tx, req, statusIntervalTooSmall, "Session Interval Too Small", timerHdrs...) // RFC 4028 §9
		return
	}
	var offer *sdp.Session
	if len(req.Body()) > 0 {
		// An offer mcc cannot read is one it cannot accept (RFC 3261
		// §21.4.26); the Warning names the line and the rule.
		if offer, err = sdp.Parse(req.Body()); err != nil {
			respond(tx, req, sip.StatusNotAcceptableHere, "Not Acceptable Here", warning(err.Error()))
			return
		}
	}
	// §8.2.2.2: an INVITE with the Call-ID and From tag of a dial-in in
	// progress, but not its transaction, is a request that forked and
	// merged again.
	fromTag, _ := tagOf(req.From().Params)
	c.mu.Lock()
	r := c.byCallID[req.CallID().Value()]
	c.mu.Unlock()
	if r != nil && r.d != nil && r.d.live() && r.d.remoteTagIs(fromTag) {
		respond(tx, req, sip.StatusLoopDetected, "Loop Detected")
		return
	}
	// Counted as being built until the participant is where settle looks.
	desc, built := c.offerDesc(conf)
	defer built()
	ver := desc.Origin.Version

	d := &dialog{callID: req.CallID().Value(), transport: strings.ToUpper(req.Transport()), localTag: sip.GenerateTagN(10), acked: make(chan struct{}), early: true, timer: timer}
	d.local = sip.Uri{Scheme: "sip", User: conf.name, Host: c.cfg.Host}
	d.remote = *req.From().Address.Clone()
	d.remoteTag, _ = tagOf(req.From().Params)
	d.remoteCSeq = req.CSeq().SeqNo
	d.rxCSeq = req.CSeq().SeqNo
	d.inviteRx = true
	d.refreshTargetLocked(req)
	if d.remoteTarget.Host == "" {
		d.remoteTarget = d.remote
	}
	d.v6 = sourceOf(req).Is6() // the next hop is where the request came from
	d.origin = c.originFor(desc, conf.isExternal(), d.v6)
	for _, h := range req.GetHeaders("Record-Route") { // the UAS keeps their order (§12.1.1)
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			d.routeSet = append(d.routeSet, *rr.Address.Clone())
		}
	}
	// mcc's requests go to the next hop the dial-in came from: the
	// caller, or the proxy that record-routed (see dialog.fixTo).
	d.fixTo, _ = netip.ParseAddrPort(req.Source())
	d.fixTargetLocked()
	p := &participant{id: newID(), uri: req.From().Address.String(), dialIn: true, state: Invited, since: time.Now(), dlg: d, in: conf, conf: conf.name, c: c}

	var answer *sdp.Session // nil: we offer in the 2xx
	var ourOffer *sdp.Session
	reinvite := false
	switch {
	case offer == nil:
		ourOffer = d.nextOfferLocked(desc)
	case hasMulticast(offer):
		// A multicast offer is acceptable when it is what a participant
		// would answer to the session's own offer.
		if _, err := sdp.CheckAnswer(desc, offer); err != nil {
			respond(tx, req, sip.StatusNotAcceptableHere, "Not Acceptable Here",
				warning("the offer does not match the session's multicast streams: "+err.Error()))
			return
		}
		answer = d.nextOfferLocked(desc)
	case c.cfg.UnicastOffer == RejectUnicast:
		respond(tx, req, sip.StatusNotAcceptableHere, "Not Acceptable Here",
			warning("this conference is multicast only: offer its groups, or send an INVITE without SDP"))
		return
	default:
		// Reject every unicast stream, then offer the multicast streams by
		// re-INVITE once this INVITE is ACKed.
		answer = rejectAll(offer, desc, d)
		reinvite = true
	}
	// A 2xx waiting for its ACK is retransmitted for 32 s: bounded per
	// source and in all, so no caller can make mcc hold, or send, much.
	src := sourceOf(req)
	if !c.guard.hold(src) {
		c.guard.count("pending", true)
		respond(tx, req, sip.StatusServiceUnavailable, "Service Unavailable", sip.NewHeader("Retry-After", "5"),
			warning("too many calls from this source wait for their ACK"))
		return
	}
	if !c.guard.join(src) {
		c.guard.unhold(src)
		c.guard.count("joined", true)
		respond(tx, req, sip.StatusBusyHere, "Busy Here", warning("too many calls from this source are in conferences"))
		return
	}
	p.source = src // released when p ends (participant.set) or is abandoned
	body := ourOffer
	if body == nil {
		body = answer
	}
	b, err := body.Marshal()
	if err != nil {
		c.guard.unhold(src)
		c.guard.unjoin(src)
		respond(tx, req, sip.StatusInternalServerError, "Server Internal Error")
		return
	}
	// What this dialog offers or accepts, in use from here (settle).
	if ourOffer != nil {
		d.inflight = ourOffer
	} else {
		d.offered = answer
	}
	if !c.addParticipant(conf, p) {
		c.guard.unhold(src)
		c.guard.unjoin(src)
		respond(tx, req, sip.StatusNotFound, "Not Found", warning("the conference is ending"))
		return
	}
	built()
	c.track(d, conf, p)
	c.retrack(d)
	res := c.ok(req, d, b, timerHdrs...)
	if err := tx.Respond(res); err != nil {
		c.guard.unhold(src)
		c.abandon(conf, p, d)
		return
	}
	if answer != nil {
		p.mu.Lock()
		p.version, p.acked = answer.Origin.Version, ver
		if reinvite {
			p.acked = 0 // not the session's streams yet: its worker offers them
		} else {
			p.streams = make([]sdp.StreamState, len(answer.Media))
			for i, m := range answer.Media {
				p.streams[i] = sdp.StreamAccepted
				if m.Port == 0 {
					p.streams[i] = sdp.StreamRemoved
				}
			}
		}
		p.mu.Unlock()
	}
	started := c.goOwned(func() {
		ack := c.awaitACK(d, res)
		c.guard.unhold(src)
		d.mu.Lock()
		d.early = false
		d.mu.Unlock()
		if ack == nil {
			// The call never completed: no BYE (it would go wherever the
			// caller's Contact says), and nothing kept of it.
			c.abandon(conf, p, d)
			return
		}
		if p.ended() || conf.isDeleted() {
			c.sendBye(d) // removed while its ACK was on the way
			return
		}
		if ourOffer != nil {
			c.applyAnswer(conf, p, d, ourOffer, ack.Body(), ver, true)
			return
		}
		p.set(Joined, 200, "")
		// On the session's streams already, unless a change came while it
		// dialled in, or its offer was unicast: its worker brings it up.
		v := conf.version() // before p.mu: the conference's lock comes first
		p.mu.Lock()
		behind := p.acked < v
		p.mu.Unlock()
		if behind {
			c.kick(conf, p)
		}
	})
	if !started {
		c.guard.unhold(src)
	}
}

// sourceOf is the address a request came from.
func sourceOf(req *sip.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.IPv4Unspecified()
	}
	return ap.Addr().Unmap()
}

// abandon forgets a dial-in that never completed, as if it had never
// come.
func (c *Controller) abandon(conf *Conference, p *participant, d *dialog) {
	d.mu.Lock()
	d.ended = true
	d.mu.Unlock()
	p.mu.Lock()
	src := p.source
	p.source = netip.Addr{}
	p.mu.Unlock()
	if src.IsValid() {
		c.guard.unjoin(src)
	}
	c.untrack(d)
	conf.mu.Lock()
	for i, x := range conf.participants {
		if x == p {
			conf.participants = append(conf.participants[:i], conf.participants[i+1:]...)
			break
		}
	}
	conf.mu.Unlock()
	c.settle(conf)    // its offer held groups a removal may have been waiting on
	conf.progressed() // a change's wait no longer waits for it
}

// addParticipant adds p to conf, and forgets the oldest participants that
// ended beyond Limits.EndedKept. It reports false, adding nothing, once
// conf is being deleted.
func (c *Controller) addParticipant(conf *Conference, p *participant) bool {
	conf.mu.Lock()
	defer conf.mu.Unlock()
	if conf.deleted {
		return false
	}
	conf.participants = append(conf.participants, p)
	keep := c.guard.lim.EndedKept
	if unlimited(keep) {
		return true
	}
	ended := 0
	for _, x := range conf.participants {
		if x.ended() {
			ended++
		}
	}
	if ended <= keep {
		return true
	}
	kept := conf.participants[:0]
	for _, x := range conf.participants {
		if ended > keep && x.ended() {
			ended--
			continue
		}
		kept = append(kept, x)
	}
	clear(conf.participants[len(kept):])
	conf.participants = kept
	return true
}

func hasMulticast(s *sdp.Session) bool {
	for _, m := range s.Media {
		if c := s.EffectiveConnection(m); m.Port != 0 && c != nil && c.IsMulticast() {
			return true
		}
	}
	return false
}

// rejectAll answers a unicast offer with every stream at port 0 (RFC 3264
// §6), from the session's origin.
func rejectAll(offer, desc *sdp.Session, d *dialog) *sdp.Session {
	a := offer.Clone()
	if d.origin == nil {
		d.origin = &sdp.Origin{}
		*d.origin = desc.Origin
	}
	a.Origin = *d.origin
	d.version++
	a.Origin.Version = d.version
	a.Name = desc.Name
	for _, m := range a.Media {
		m.Port = 0
		m.RTPMaps, m.Attributes, m.Bandwidths, m.SourceFilters, m.RTCP = nil, nil, nil, nil, nil
	}
	return a
}

// ok builds the 2xx to an INVITE of dialog d, with extra headers.
func (c *Controller) ok(req *sip.Request, d *dialog, body []byte, extra ...sip.Header) *sip.Response {
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", body)
	if to := res.To(); to != nil {
		// sipgo puts a random tag on responses; the dialog's is ours.
		to.Params.Remove("tag")
		to.Params.Add("tag", d.localTag)
	}
	// The Contact of the family the request came in on: its source is
	// the peer mcc talks to (a proxy, or the caller).
	peer := d.remoteTarget.Host
	if src, err := netip.ParseAddrPort(req.Source()); err == nil {
		peer = src.Addr().String()
	}
	res.AppendHeader(c.contact(d.local.User, d.transport, peer))
	res.AppendHeader(sip.NewHeader("Allow", allowHeader))
	for _, h := range extra {
		res.AppendHeader(h)
	}
	ct := sip.ContentTypeHeader("application/sdp")
	res.AppendHeader(&ct)
	return res
}

// awaitACK retransmits a 2xx over UDP, from T1 doubling up to T2, until
// the ACK comes or 64·T1 passes (§13.3.1.4). It returns the ACK, or nil.
func (c *Controller) awaitACK(d *dialog, res *sip.Response) *sip.Request {
	d.mu.Lock()
	acked := d.acked
	d.mu.Unlock()
	reliable := d.transport != "UDP"
	deadline := time.NewTimer(c.ackWait)
	defer deadline.Stop()
	interval := sip.T1
	retransmit := time.NewTimer(interval)
	defer retransmit.Stop()
	for {
		select {
		case <-acked:
			d.mu.Lock()
			ack := d.ackReq
			d.mu.Unlock()
			return ack
		case <-retransmit.C:
			if !reliable {
				if err := c.writeResponse(res); err != nil {
					c.log.Debug("2xx retransmission", "call_id", d.callID, "err", err)
				}
			}
			interval = min(2*interval, sip.T2)
			retransmit.Reset(interval)
		case <-deadline.C:
			return nil
		case <-c.ctx.Done():
			return nil
		}
	}
}

func (c *Controller) onAck(req *sip.Request, tx sip.ServerTransaction) {
	d := c.lookup(req)
	if d == nil || req.CSeq() == nil {
		return // an ACK we cannot place is dropped (§17.2.3 has no response to it)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seen = time.Now()
	if d.inviteRx && req.CSeq().SeqNo == d.rxCSeq {
		d.inviteRx = false
		d.ackReq = req
		close(d.acked)
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

func (c *Controller) onBye(req *sip.Request, tx sip.ServerTransaction) {
	d := c.lookup(req)
	if d == nil {
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	d.mu.Lock()
	if err := d.checkRemoteCSeqLocked(req); err != nil {
		d.mu.Unlock()
		respond(tx, req, sip.StatusInternalServerError, "Server Internal Error", warning(err.Error()))
		return
	}
	d.ended = true
	d.mu.Unlock()
	// A BYE ends the dialog; leaving the group is the participant's own
	// business (RFC 3261 §15.1.2 lets multicast sessions go on).
	_, p := c.participantOf(d)
	c.untrack(d)
	if p != nil {
		p.set(Left, 0, "sent BYE")
	}
	respond(tx, req, sip.StatusOK, "OK")
}

func (c *Controller) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	if _, ok := tagOf(req.To().Params); ok {
		d := c.lookup(req)
		if d == nil {
			// In a dialog that does not exist (§12.2.2).
			respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
			return
		}
		d.touch()
	}
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", allowHeader))
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	supported := ""
	if c.sessionExpires > 0 {
		supported = "timer" // RFC 4028
	}
	res.AppendHeader(sip.NewHeader("Supported", supported))
	tx.Respond(res)
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

// Delete ends conference name: BYE to everyone, then the session and its
// leases go.
func (c *Controller) Delete(ctx context.Context, name string) error {
	conf, err := c.conference(name)
	if err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.conferences, name)
	c.mu.Unlock()
	conf.mu.Lock()
	conf.deleted = true // from here no one joins, and no join is saved
	parts := slices.Clone(conf.participants)
	conf.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range parts {
		p.mu.Lock()
		d, state := p.dlg, p.state
		p.mu.Unlock()
		if d == nil || (state != Joined && state != Invited && state != Ringing) {
			continue
		}
		wg.Go(func() { c.end(p, "conference ended") })
	}
	wg.Wait()
	return errors.Join(c.cfg.Manager.Delete(conf.sessionID), ctx.Err())
}
