package conference

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

// Dial-in: a participant calls the conference URI (RFC 3261 §13.3,
// RFC 3264 §6.2): its INVITE outside a dialog, the admission, the answer
// to its offer (or the offer in the 200, or the re-INVITE after a
// unicast offer), the 2xx retransmitted until its ACK.

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
	if r := c.notOnAir(conf); r != nil {
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
	p := &participant{id: newID(), uri: req.From().Address.String(), name: displayName(req.From().DisplayName), dialIn: true, state: Invited, since: time.Now(), dlg: d, in: conf, conf: conf.name, c: c}
	if conf.access.Mode == Digest {
		p.authUser = digestUser(req, realmOf(conf)) // who may refer (mayRefer)
	}

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
	case rejoinsUA(req.GetHeader("User-Agent"), req.Body()):
		// A user agent that joins only from an initial INVITE (profile.go):
		// its call is held on a placeholder until the rejoin dials it.
		answer = placeholder(offer, desc, d)
		reinvite = true
		p.rejoin = true
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
		if r := c.notOnAir(conf); r != nil {
			tx.Respond(r.response(req))
			return
		}
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
			p.unoffered = true // not the session's streams yet: its worker offers them
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
		behind := !p.hasLocked(v)
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
	if conf.deleted || conf.offAirLocked() {
		return false // gone, or between two of its scheduled intervals
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

// placeholder answers a unicast offer with each stream accepted inactive
// (RFC 3264 §6.1: nothing is sent either way) at mcc's own address, port
// 9 (discard), in its first format, until the rejoin (profile.go).
func placeholder(offer, desc *sdp.Session, d *dialog) *sdp.Session {
	a := rejectAll(offer, desc, d)
	for i, m := range a.Media {
		om := offer.Media[i]
		if om.Port == 0 || len(om.Formats) == 0 {
			continue
		}
		m.Port = 9
		m.Formats = om.Formats[:1]
		for _, r := range om.RTPMaps {
			if strconv.Itoa(int(r.Payload)) == om.Formats[0] {
				m.RTPMaps = []sdp.RTPMap{r}
			}
		}
		m.Direction = sdp.Inactive
		if d.origin.Addr.IsValid() {
			m.Connection = &sdp.Connection{Addr: d.origin.Addr}
		}
	}
	a.Connection = nil
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
	res.AppendHeader(c.focusContact(d.local.User, d.transport, c.isV6(peer)))
	res.AppendHeader(sip.NewHeader("Allow", allowHeader))
	res.AppendHeader(sip.NewHeader("Allow-Events", allowEvents))
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
