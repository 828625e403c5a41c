package conference

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

// The invitation: mcc dials a participant out (RFC 3261 §13.2, §17.1.1):
// the INVITE with the session's offer, its provisional responses and
// CANCEL (§9.1), redirects and digest challenges, the 2xx and its ACK.

// udpLimit is the largest message mcc sends over UDP; a larger one goes
// over TCP (RFC 3261 §18.1.1 says 200 bytes under the path MTU; sipgo
// refuses more than 1300).
const udpLimit = 1300

// Invite invites each URI into conference name. It returns at once with
// the new participants; their invitations go on in the background, at most
// Config.Fanout at a time, and Participants shows how they end.
func (c *Controller) Invite(name string, uris ...string) ([]Participant, error) {
	return c.InviteAs(name, NoRole, uris...)
}

// InviteAs is Invite with a role for each participant (roles.go).
func (c *Controller) InviteAs(name string, role Role, uris ...string) ([]Participant, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return nil, err
	}
	conf, err := c.conference(name)
	if err != nil {
		return nil, err
	}
	var targets []sip.Uri
	for _, s := range uris {
		u, err := parseTarget(s)
		if err != nil {
			return nil, err
		}
		var uri sip.Uri
		if err := sip.ParseUri(u, &uri); err != nil || uri.Host == "" {
			return nil, fmt.Errorf("%w: %q", ErrBadURI, s)
		}
		targets = append(targets, uri)
	}
	ps, err := c.invite(conf, targets, uris, "", role)
	var out []Participant
	for _, p := range ps {
		out = append(out, p.snapshot())
	}
	return out, err
}

// invite invites targets (uris as the caller wrote them) into conf, by
// the referrer by when a REFER asked for it.
func (c *Controller) invite(conf *Conference, targets []sip.Uri, uris []string, by string, role Role) ([]*participant, error) {
	if c.notOnAir(conf) != nil {
		return nil, fmt.Errorf("%w: %q", ErrNotOnAir, conf.name)
	}
	var out []*participant
	for i, t := range targets {
		p := &participant{id: newID(), uri: uris[i], by: by, role: role, state: Invited, since: time.Now(), in: conf, conf: conf.name, c: c}
		if !c.addParticipant(conf, p) {
			if c.notOnAir(conf) != nil {
				return out, fmt.Errorf("%w: %q", ErrNotOnAir, conf.name)
			}
			return out, fmt.Errorf("%w: %q is being deleted", ErrUnknown, conf.name)
		}
		out = append(out, p)
		if !c.goOwned(func() { c.dialOut(conf, p, t) }) {
			p.set(Failed, 0, "controller closed")
		}
	}
	return out, nil
}

func newID() string { return sip.GenerateTagN(10) }

func uriTransport(u sip.Uri) string {
	if v, ok := u.UriParams.Get("transport"); ok && v != "" {
		return strings.ToUpper(v)
	}
	if u.IsEncrypted() {
		return "TLS"
	}
	return "UDP"
}

// pickTransport moves a request too large for UDP to TCP when mcc listens
// on TCP.
func (c *Controller) pickTransport(req *sip.Request, tr string) string {
	if tr == "UDP" && len(req.String()) > udpLimit {
		if _, ok := c.clients["tcp"]; ok {
			return "TCP"
		}
	}
	return tr
}

// dialOut runs one invitation to its end.
func (c *Controller) dialOut(conf *Conference, p *participant, target sip.Uri) {
	for redirects := 0; ; redirects++ {
		s := c.acquire(c.ctx)
		if s == nil {
			return
		}
		next, err := func() (*sip.Uri, error) {
			defer s.free() // a panic gives it back too
			return c.inviteOnce(conf, p, target, s)
		}()
		if err != nil {
			if c.ctx.Err() != nil {
				return // shutting down: not the participant's doing, and its record stays
			}
			p.set(Failed, 0, err.Error())
			return
		}
		if next == nil {
			return
		}
		if redirects >= c.cfg.MaxRedirects {
			p.set(Failed, 0, fmt.Sprintf("more than %d redirections", c.cfg.MaxRedirects))
			return
		}
		target = *next
	}
}

// inviteOnce sends one INVITE and follows it to its final response. It
// returns the next target for a 3xx.
func (c *Controller) inviteOnce(conf *Conference, p *participant, target sip.Uri, s *slot) (*sip.Uri, error) {
	if conf.isDeleted() {
		return nil, errors.New("the conference ended before the invitation went out")
	}
	if p.ended() {
		return nil, nil // removed before its invitation went out
	}
	d := &dialog{callID: sip.GenerateTagN(20) + "@mcc", owner: true, localTag: sip.GenerateTagN(10), localCSeq: 1, acked: make(chan struct{})}
	d.local = sip.Uri{Scheme: "sip", User: conf.name, Host: c.cfg.Host}
	d.remote = sip.Uri{Scheme: target.Scheme, User: target.User, Host: target.Host, Port: target.Port}
	d.remoteTarget = target
	d.v6 = c.isV6(target.Host) // the one lookup of this invitation
	// Counted as being built until the dialog is where settle looks.
	desc, built := c.offerDesc(conf)
	defer built()
	ver := desc.Origin.Version
	d.origin = c.originFor(desc, conf.isExternal(), d.v6)
	offer := d.nextOfferLocked(offerFor(desc, p)) // a rejoin's offers its rejected streams at port 0
	d.inflight = offer                            // its groups are in use until it is answered (settle)
	body, err := offer.Marshal()
	if err != nil {
		return nil, err
	}
	tr := uriTransport(target)
	req := c.newInvite(d, target, tr, body, p.by)
	var overUDP *sip.Request // the same INVITE over UDP, should TCP not reach the participant
	if t := c.pickTransport(req, tr); t != tr {
		overUDP, tr = req, t
		req = c.newInvite(d, target, tr, body, p.by)
	}
	d.transport = tr
	cl, err := c.clientFor(tr, d.v6)
	if err != nil {
		return nil, err
	}
	c.track(d, conf, p)
	p.mu.Lock()
	p.dlg = d
	p.mu.Unlock()
	built() // d.inflight is where settle looks now

	ringCtx, stopRing := context.WithTimeout(c.ctx, c.cfg.RingTimeout)
	defer stopRing()
	p.mu.Lock()
	p.cancelRing = stopRing // Remove and Delete cancel through it
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.cancelRing = nil
		p.mu.Unlock()
	}()
	tx, err := cl.TransactionRequest(c.ctx, req)
	if err != nil && overUDP != nil && c.ctx.Err() == nil {
		// A participant with no TCP: the large INVITE goes over UDP,
		// fragmented (§18.1.1 wants a congestion-controlled transport,
		// which this participant does not offer).
		c.log.Info("INVITE: TCP failed, sending it over UDP", "participant", p.uri, "bytes", len(req.String()), "err", err)
		d.mu.Lock()
		d.transport = "UDP"
		d.mu.Unlock()
		req = overUDP
		if cl, err = c.clientFor("UDP", d.v6); err == nil {
			tx, err = cl.TransactionRequest(c.ctx, req)
		}
	}
	if err != nil {
		c.untrack(d)
		return nil, fmt.Errorf("send INVITE: %w", err)
	}
	defer tx.Terminate()
	slotDue, stopSlot := s.freeAfter()
	defer stopSlot()
	// cancelled: the ring timeout or a removal wants the INVITE ended; a
	// CANCEL goes out only once a provisional response came (§9.1: until
	// then it MUST NOT be sent), so provisional says whether one did.
	authed, cancelled, provisional, retried422 := false, false, false, false
	for {
		select {
		case <-slotDue:
			s.free()
			continue
		case <-ringCtx.Done():
			if c.ctx.Err() != nil {
				// Close: the invitation is left to its transaction, which
				// sipgo's layers end as they close.
				c.untrack(d)
				return nil, ErrClosed
			}
			if !cancelled {
				cancelled = true
				if provisional {
					c.cancelAsync(cl, req)
				}
				// Wait for the 487, or for a provisional to cancel after,
				// at most 64·T1: a callee that answers neither is given up
				// (§9.1), and sipgo's Timer B no longer runs once a 1xx
				// came. Close ends the wait too.
				var stop context.CancelFunc
				ringCtx, stop = context.WithTimeout(c.ctx, 64*sip.T1)
				defer stop()
				continue
			}
			// Cancelled 64·T1 ago and still no final response.
			c.untrack(d)
			if c.ctx.Err() != nil {
				return nil, ErrClosed
			}
			if !p.ended() {
				p.set(Failed, sip.StatusRequestTimeout, "no final response after CANCEL")
			}
			return nil, nil
		case <-tx.Done():
			c.untrack(d)
			if cancelled {
				if !p.ended() {
					p.set(Failed, sip.StatusRequestTimeout, "no answer before the ring timeout")
				}
				return nil, nil
			}
			return nil, fmt.Errorf("INVITE: %w", tx.Err())
		case res := <-tx.Responses():
			if checkResponse(res) != nil {
				// From a connection mcc opened, which the guard does not
				// screen: a response without the headers a dialog needs is
				// dropped, as §17.1.3 would not match it.
				c.guard.count("response", false)
				continue
			}
			s.free()
			c.metrics.response("received", sip.INVITE, res.StatusCode)
			switch {
			case res.StatusCode < 200:
				if cancelled && !provisional {
					c.cancelAsync(cl, req) // the CANCEL that waited for this
				}
				provisional = true
				if res.StatusCode > 100 {
					p.mu.Lock()
					rejoining := p.rejoining
					p.mu.Unlock()
					if !rejoining { // a rejoin stays joined, and saved, while it rings
						p.set(Ringing, res.StatusCode, "")
					}
				}
				continue
			case res.StatusCode < 300:
				if cancelled && !p.ended() {
					// The 2xx crossed the CANCEL of the ring timeout: the
					// dialog is made, ACKed and ended at once with BYE
					// (established sees an ended participant).
					p.set(Failed, sip.StatusRequestTimeout, "answered after the ring timeout")
				}
				c.established(conf, p, d, cl, tx, req, res, offer, ver)
				return nil, nil
			case res.StatusCode < 400:
				c.untrack(d)
				if h := res.Contact(); h != nil {
					next := *h.Address.Clone()
					return &next, nil
				}
				return nil, fmt.Errorf("%d without a Contact", res.StatusCode)
			case res.StatusCode == statusIntervalTooSmall && !retried422 && !cancelled && minSEOf(res) > 0:
				// RFC 4028 §7.3: again, asking for at least the Min-SE the
				// 422 names, with the next CSeq.
				retried422, provisional = true, false
				tx.Terminate()
				d.mu.Lock()
				d.minSE = min(max(d.minSE, minSEOf(res)), maxMinSE)
				d.localCSeq++
				d.mu.Unlock()
				req = c.newInvite(d, target, tr, body, p.by)
				if tx, err = cl.TransactionRequest(c.ctx, req); err != nil {
					c.untrack(d)
					return nil, fmt.Errorf("send INVITE: %w", err)
				}
				continue
			case (res.StatusCode == 401 || res.StatusCode == 407) && !authed && c.cfg.Credentials != nil && !cancelled:
				// (Once cancelled, a challenge is a final answer like any:
				// a removed participant is not rung again.)
				authed, provisional = true, false // a new transaction: no 1xx of its own yet
				tx.Terminate()
				tx, err = cl.TransactionDigestAuth(c.ctx, req, res, sipgo.DigestAuth{Username: c.cfg.Credentials.Username, Password: c.cfg.Credentials.Password})
				if err != nil {
					c.untrack(d)
					return nil, fmt.Errorf("digest: %w", err)
				}
				d.mu.Lock()
				d.localCSeq = req.CSeq().SeqNo
				d.mu.Unlock()
				continue
			default:
				c.untrack(d)
				state := Declined
				if res.StatusCode == sip.StatusRequestTimeout || (cancelled && res.StatusCode == sip.StatusRequestTerminated) {
					state = Failed
				}
				if !p.ended() { // removed meanwhile: it stays so
					p.set(state, res.StatusCode, res.Reason)
				}
				return nil, nil
			}
		}
	}
}

// newInvite builds an invitation's INVITE; by, when a REFER asked for it,
// is its Referred-By (RFC 3892 §3).
func (c *Controller) newInvite(d *dialog, target sip.Uri, tr string, body []byte, by string) *sip.Request {
	req := sip.NewRequest(sip.INVITE, target)
	req.SetTransport(tr)
	from := &sip.FromHeader{Address: d.local, Params: sip.NewParams()}
	from.Params.Add("tag", d.localTag)
	callID := sip.CallIDHeader(d.callID)
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: d.remote, Params: sip.NewParams()})
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: d.localCSeq, MethodName: sip.INVITE})
	req.AppendHeader(&mf)
	req.AppendHeader(c.focusContact(d.local.User, tr, d.v6))
	req.AppendHeader(sip.NewHeader("Allow", allowHeader))
	req.AppendHeader(sip.NewHeader("Allow-Events", allowEvents))
	if by != "" {
		req.AppendHeader(sip.NewHeader("Referred-By", "<"+by+">"))
	}
	c.addTimerHeaders(req, d, false)
	ct := sip.ContentTypeHeader("application/sdp")
	req.AppendHeader(&ct)
	req.SetBody(body)
	return req
}

// cancelAsync sends the CANCEL of inv on its own goroutine: its answer
// may take up to 32 s, and meanwhile the INVITE's own responses (a 487,
// or a 2xx that crossed it) are read on.
func (c *Controller) cancelAsync(cl *sipgo.Client, inv *sip.Request) {
	req := cancelFor(inv) // now: a digest retry changes inv in place
	c.goOwned(func() { c.sendCancel(cl, req) })
}

// sendCancel cancels a pending INVITE (§9.1): same Request-URI, Call-ID,
// From, To, CSeq number and top Via.
func (c *Controller) sendCancel(cl *sipgo.Client, req *sip.Request) {
	ctx, cancel := context.WithTimeout(c.ctx, 64*sip.T1) // Timer F
	defer cancel()
	if res, err := cl.Do(ctx, req); err != nil {
		c.log.Warn("CANCEL", "call_id", req.CallID().Value(), "err", err)
	} else if res.StatusCode >= 300 {
		c.log.Warn("CANCEL refused", "call_id", req.CallID().Value(), "status", res.StatusCode)
	}
}

// cancelFor builds the CANCEL of inv.
func cancelFor(inv *sip.Request) *sip.Request {
	req := sip.NewRequest(sip.CANCEL, inv.Recipient)
	req.SetTransport(inv.Transport())
	req.AppendHeader(inv.Via().Clone())
	for _, name := range []string{"From", "To", "Call-ID", "Route"} {
		for _, h := range inv.GetHeaders(name) {
			req.AppendHeader(sip.HeaderClone(h))
		}
	}
	req.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.SetBody(nil)
	return req
}

// established handles the 2xx of a dial-out INVITE: the dialog is made,
// ACKed, and the answer checked.
func (c *Controller) established(conf *Conference, p *participant, d *dialog, cl *sipgo.Client, tx sip.ClientTransaction, req *sip.Request, res *sip.Response, offer *sdp.Session, ver uint64) {
	d.mu.Lock()
	d.remoteTag, _ = tagOf(res.To().Params)
	d.refreshTargetLocked(res)
	d.routeSet = nil
	rr := res.GetHeaders("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- { // the UAC's route set is the reverse (§12.1.2)
		if h, ok := rr[i].(*sip.RecordRouteHeader); ok {
			d.routeSet = append(d.routeSet, *h.Address.Clone())
		}
	}
	d.nextHopFamilyLocked() // the first route's now, or the 2xx's Contact
	now := time.Now()
	d.timerFromAnswerLocked(res, now, max(c.sessionExpires, d.minSE)) // at most what mcc asked for
	d.seen = now
	ack := d.newRequestLocked(sip.ACK, nil, req.CSeq().SeqNo)
	d.lastACKCSeq = req.CSeq().SeqNo
	d.mu.Unlock()
	c.retrack(d)
	c.sendACK(cl, ack)
	tx.OnRetransmission(func(r *sip.Response) {
		if r.IsSuccess() {
			c.sendACK(cl, ack.Clone())
		}
	})
	if rejoins(res, res.Body()) {
		p.mu.Lock()
		p.rejoin = true // its changes go by BYE and INVITE (profile.go); saved with the join below
		p.mu.Unlock()
	}
	c.applyAnswer(conf, p, d, offer, res.Body(), ver, true)
}

func (c *Controller) sendACK(cl *sipgo.Client, ack *sip.Request) {
	if err := cl.WriteRequest(ack); err != nil {
		c.log.Warn("ACK", "call_id", ack.CallID().Value(), "err", err)
	}
}
