package conference

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

// Each participant converges on its own: the conference's description has
// a version (its o= version, which every change raises by one), and each
// participant records the version it last acknowledged (offer, answer,
// ACK). A participant's worker, one at a time per participant, re-INVITEs
// it until it has the latest version, whatever state it was in when a
// change was made: it is started by every change, by the participant's
// join, and by a restart (Resume). Changes that come while a re-INVITE is
// out coalesce: the next one carries the latest version.

// kick asks p's worker to bring p to its conference's latest description.
// A worker that is running runs once more; otherwise one starts.
func (c *Controller) kick(conf *Conference, p *participant) {
	p.mu.Lock()
	if p.state >= Declined {
		p.mu.Unlock()
		return
	}
	if p.working {
		p.again = true
		p.mu.Unlock()
		return
	}
	p.working = true
	p.mu.Unlock()
	if !c.goOwned(func() { c.work(conf, p) }) {
		p.mu.Lock()
		p.working = false
		p.mu.Unlock()
	}
}

// work is p's worker: it converges p, again while changes came meanwhile.
func (c *Controller) work(conf *Conference, p *participant) {
	defer conf.progressed() // a waiter sees the worker's end
	finished := false
	defer func() {
		if !finished {
			// A panic, recovered by goOwned's barrier: the participant
			// is left to the next change rather than to no worker ever.
			p.mu.Lock()
			p.working, p.again, p.behind = false, false, true
			p.mu.Unlock()
		}
	}()
	for {
		c.converge(conf, p)
		p.mu.Lock()
		if !p.again || p.state >= Declined || c.ctx.Err() != nil {
			p.working, p.again = false, false
			p.mu.Unlock()
			finished = true
			return
		}
		p.again = false
		p.mu.Unlock()
	}
}

// The bounds of one participant's attempts at one version: after them it
// is shown as behind, and the next change (or restart) tries again.
const (
	// maxGlares bounds the 491s in a row (RFC 3261 §14.1 sets the waits,
	// not their number).
	maxGlares = 6
	// maxRetryAfter bounds the wait a participant's Retry-After asks for,
	// and maxRetriesAfter how many such waits one version makes. No wait
	// holds a fan-out slot.
	maxRetryAfter   = 30 * time.Second
	maxRetriesAfter = 4
)

// converge re-INVITEs p until it has the latest description, the attempts
// run out, or it ends. Each attempt holds one of the fan-out's slots
// (Config.Fanout); the waits between them hold none.
func (c *Controller) converge(conf *Conference, p *participant) {
	var want uint64
	glares, retries := 0, 0
	var last error
	for {
		v := conf.version()
		if v != want {
			want, glares, retries = v, 0, 0 // a new change: fresh attempts
		}
		ok, err := c.attempt(conf, p)
		if !ok {
			return
		}
		var wait time.Duration
		var busy *dialogBusy
		var ra *retryAfter
		var no *refused
		switch {
		case err == nil:
			return
		case errors.Is(err, ErrClosed):
			return
		case errors.As(err, &busy):
			// Their INVITE is in progress (§14.1: one at a time): once it
			// is ACKed, ours goes.
			select {
			case <-busy.acked:
			case <-time.After(64 * sip.T1):
			case <-c.ctx.Done():
				return
			}
			continue
		case errors.Is(err, errGlare):
			last = err
			if glares++; glares >= maxGlares {
				c.behind(conf, p, fmt.Sprintf("%d re-INVITEs in a row met 491 Request Pending", glares))
				return
			}
			// §14.1: 2.1-4 s when we own the Call-ID, 0-2 s otherwise, in
			// units of 10 ms.
			wait = time.Duration(rand.IntN(200)) * 10 * time.Millisecond
			p.mu.Lock()
			if p.dlg != nil && p.dlg.owner {
				wait = 2100*time.Millisecond + time.Duration(rand.IntN(190))*10*time.Millisecond
			}
			p.mu.Unlock()
		case errors.As(err, &ra):
			last = err
			if retries++; retries > maxRetriesAfter {
				c.behind(conf, p, fmt.Sprintf("refused %d times, last: %v", retries, last))
				return
			}
			wait = ra.after
			if ra.code != statusIntervalTooSmall {
				wait = max(wait, time.Second) // a Retry-After of 0 is not a loop
			}
		case errors.As(err, &no):
			c.behind(conf, p, "re-INVITE refused: "+no.Error())
			return
		default:
			// It could not be sent (no listener of its transport, an
			// offer that does not marshal): shown, and the next change
			// tries again.
			c.behind(conf, p, err.Error())
			return
		}
		select {
		case <-time.After(wait):
		case <-c.ctx.Done():
			return
		}
	}
}

// attempt makes one re-INVITE attempt under a fan-out slot; ok is false
// when the controller is closing.
func (c *Controller) attempt(conf *Conference, p *participant) (ok bool, err error) {
	s := c.acquire(c.ctx)
	if s == nil {
		return false, nil
	}
	defer s.free() // a panic gives it back too
	if attemptHook != nil {
		attemptHook()
	}
	return true, c.reinviteOnce(conf, p, s)
}

// attemptHook, when set by a test, runs at the start of each attempt.
var attemptHook func()

// behind records that p keeps an older description for now, and why.
func (c *Controller) behind(conf *Conference, p *participant, why string) {
	p.mu.Lock()
	if p.state >= Declined {
		p.mu.Unlock()
		return
	}
	p.behind = true
	p.reason = "behind: " + why + "; the next change tries again"
	p.mu.Unlock()
	c.publishParticipant(p, "reinvite")
	conf.progressed()
	c.log.Warn("re-INVITE gave up for now", "conference", conf.name, "participant", p.uri, "why", why)
}

// errGlare is a 491 to our re-INVITE (§14.1).
var errGlare = errors.New("491 Request Pending")

// dialogBusy says an INVITE of the participant's is in progress in the
// dialog: ours waits for its ACK.
type dialogBusy struct{ acked <-chan struct{} }

func (b *dialogBusy) Error() string { return "an INVITE of the participant's is in progress" }

// refused is a final refusal of a re-INVITE: the participant keeps the
// session it had (§14.1).
type refused struct {
	code   int
	reason string
}

func (r *refused) Error() string { return strconv.Itoa(r.code) + " " + r.reason }

// retryAfter is a 500 (or 503) to our re-INVITE with a Retry-After: the
// participant asks to be sent it again after that long (RFC 3261 §21.5.1,
// §20.33).
type retryAfter struct {
	code  int
	after time.Duration
}

func (r *retryAfter) Error() string { return fmt.Sprintf("%d, retry after %v", r.code, r.after) }

// retryAfterOf reads the Retry-After of a 500 or 503 (delta-seconds,
// §20.33), or returns nil.
func retryAfterOf(res *sip.Response) *retryAfter {
	if res.StatusCode != sip.StatusInternalServerError && res.StatusCode != sip.StatusServiceUnavailable {
		return nil
	}
	h := res.GetHeader("Retry-After")
	if h == nil {
		return nil
	}
	v, _, _ := strings.Cut(strings.TrimSpace(h.Value()), ";")
	v, _, _ = strings.Cut(v, "(")
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil {
		return nil
	}
	return &retryAfter{code: res.StatusCode, after: min(time.Duration(n)*time.Second, maxRetryAfter)}
}

// reinviteOnce sends one re-INVITE with the conference's latest
// description, unless the participant has it already (or is not joined).
// It returns nil when there is nothing more to do: the participant has
// the latest version, or its dialog ended.
func (c *Controller) reinviteOnce(conf *Conference, p *participant, s *slot) error {
	p.mu.Lock()
	d, state, have, refresh, behind, reoffer, roleGen := p.dlg, p.state, p.acked, p.refresh, p.behind, p.reoffer, p.roleGen
	has := p.hasLocked(conf.version())
	p.mu.Unlock()
	if d == nil || state != Joined {
		return nil
	}
	upToDate := has && !hasRejectedActive(p)
	if upToDate {
		p.mu.Lock()
		p.behind = false
		p.mu.Unlock()
		if !refresh && !reoffer {
			return nil
		}
	}
	p.mu.Lock()
	rejoin := p.rejoin
	p.mu.Unlock()

	if rejoin {
		// A session refresh by re-INVITE would take it out of its group
		// too: it is refreshed by a rejoin (RFC 4028 §10 lets any
		// request that gets a 2xx refresh; a new dialog starts anew).
		return c.rejoinOnce(conf, p, d, s, !upToDate, roleGen)
	}
	d.mu.Lock()
	if d.ended {
		d.mu.Unlock()
		return nil
	}
	if d.inviteRx {
		acked := d.acked
		d.mu.Unlock()
		return &dialogBusy{acked}
	}
	if d.inviteTx {
		d.mu.Unlock()
		return errGlare // ours is in progress already; try again later
	}
	d.inviteTx = true
	// The description is read under the dialog's lock, and the offer made
	// from it is in d.inflight before that lock goes (see settle).
	desc := conf.current() // never edited in place: shared by the offers made from it
	want := desc.Origin.Version
	var offer *sdp.Session
	if refresh && (upToDate || behind) && d.offered != nil {
		// A session refresh with nothing to change, or for a participant
		// that refused the latest: what it has, with the same version
		// (RFC 3264 §8, RFC 4028 §7.4), so the refresh is not refused.
		offer, want = d.offered.Clone(), have
		reoffer = false // this offer is not the role's: its answer leaves reoffer due
	} else {
		offer = d.nextOfferLocked(offerFor(desc, p))
	}
	body, err := offer.Marshal()
	if err != nil {
		d.inviteTx = false
		d.mu.Unlock()
		return err
	}
	req := d.newRequestLocked(sip.INVITE, c.focusContact(d.local.User, d.transport, d.v6), 0)
	ours := d.timer.ours && d.timer.interval > 0
	// In flight: its groups are in use until it is answered (settle), and
	// a 2xx to it that reaches a restarted mcc is ACKed (RestoreParticipant).
	d.inflight, d.pendingCSeq = offer, req.CSeq().SeqNo
	v6, transport := d.v6, strings.ToUpper(d.transport)
	d.mu.Unlock()
	defer func() { // also after a panic: the dialog takes INVITEs again
		d.mu.Lock()
		d.inviteTx, d.inflight, d.pendingCSeq, d.refreshing = false, nil, 0, false
		d.mu.Unlock()
		c.settle(conf)
	}()
	c.addTimerHeaders(req, d, ours)
	ct := sip.ContentTypeHeader("application/sdp")
	req.AppendHeader(&ct)
	req.SetBody(body)
	var overUDP *sip.Request // the same re-INVITE over UDP, should TCP not reach the participant
	if tr := c.pickTransport(req, transport); tr != transport {
		overUDP = req.Clone()
		req.SetTransport(tr)
		req.RemoveHeader("Contact")
		req.AppendHeader(c.focusContact(d.local.User, tr, v6))
	}
	c.persist(p) // the CSeq just taken is saved before it goes out, so a crash never reuses it
	cl, err := c.clientFor(req.Transport(), v6)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.ctx, 64*sip.T1)
	defer cancel()
	tx, err := cl.TransactionRequest(ctx, req)
	if err != nil && overUDP != nil && c.ctx.Err() == nil {
		// A participant with no TCP: the large re-INVITE goes over UDP,
		// fragmented; it never reached the participant over TCP, so its
		// CSeq is still unused.
		c.log.Info("re-INVITE: TCP failed, sending it over UDP", "participant", p.uri, "bytes", len(req.String()), "err", err)
		req = overUDP
		cancel()
		ctx, cancel = context.WithTimeout(c.ctx, 64*sip.T1) // its own transaction's time
		defer cancel()
		if cl, err = c.clientFor(transport, v6); err == nil {
			tx, err = cl.TransactionRequest(ctx, req)
		}
	}
	if err != nil {
		if c.ctx.Err() != nil {
			return ErrClosed
		}
		return fmt.Errorf("send re-INVITE: %w", err)
	}
	defer tx.Terminate()
	sent := time.Now()
	slotDue, stopSlot := s.freeAfter()
	defer stopSlot()
	for {
		select {
		case <-slotDue:
			s.free()
			continue
		case <-tx.Done():
			if c.ctx.Err() != nil {
				// Shutting down (SIGTERM): the participant is not failed
				// and its saved dialog stays, so the restart brings it
				// back and converges it.
				return ErrClosed
			}
			// No final response: the dialog is over (§12.2.1.2), with a
			// BYE where it can still arrive (RFC 4028 §10).
			c.expire(p, d, fmt.Sprintf("no answer to a re-INVITE: %v", tx.Err()))
			return nil
		case <-ctx.Done():
			if c.ctx.Err() != nil {
				return ErrClosed // as above
			}
			c.expire(p, d, "no final answer to a re-INVITE in 64·T1")
			return nil
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
			if res.StatusCode >= 200 {
				c.metrics.reinvite(time.Since(sent))
			}
			d.touch()
			switch {
			case res.StatusCode < 200:
				continue
			case res.StatusCode < 300:
				p.mu.Lock()
				p.refresh = false
				if reoffer && p.roleGen == roleGen {
					p.reoffer = false // else a role came after this offer: its own re-INVITE follows
				}
				p.mu.Unlock()
				d.mu.Lock()
				d.timerFromAnswerLocked(res, time.Now(), max(c.sessionExpires, d.minSE)) // at most what mcc asked for // a refresh, whatever it changed (§7.4)
				d.refreshTargetLocked(res)
				ack := d.newRequestLocked(sip.ACK, nil, req.CSeq().SeqNo)
				d.lastACKCSeq = req.CSeq().SeqNo
				d.mu.Unlock()
				c.sendACK(cl, ack)
				tx.OnRetransmission(func(r *sip.Response) {
					if r.IsSuccess() {
						c.sendACK(cl, ack.Clone())
					}
				})
				c.applyAnswer(conf, p, d, offer, res.Body(), want, false)
				c.publishParticipant(p, "reinvite")
				return nil
			case res.StatusCode == sip.StatusRequestPending:
				return errGlare
			case res.StatusCode == statusIntervalTooSmall && minSEOf(res) > 0:
				// RFC 4028 §7.3: again at once, with at least its Min-SE.
				d.mu.Lock()
				d.minSE = min(max(d.minSE, minSEOf(res)), maxMinSE)
				d.mu.Unlock()
				return &retryAfter{code: res.StatusCode}
			case retryAfterOf(res) != nil:
				p.mu.Lock()
				p.status, p.reason = res.StatusCode, "re-INVITE refused, to be retried: "+res.Reason
				p.mu.Unlock()
				return retryAfterOf(res)
			case res.StatusCode == sip.StatusCallTransactionDoesNotExists:
				// §12.2.1.2: the participant knows no such dialog; no BYE.
				c.endDialog(d, p, Failed, fmt.Sprintf("re-INVITE: %d %s", res.StatusCode, res.Reason))
				return nil
			case res.StatusCode == sip.StatusRequestTimeout:
				// §12.2.1.2: the dialog ends, with a BYE (RFC 4028 §10).
				c.expire(p, d, fmt.Sprintf("re-INVITE: %d %s", res.StatusCode, res.Reason))
				return nil
			default:
				// The session stays as it was for this participant (§14.1).
				p.mu.Lock()
				p.status = res.StatusCode
				p.mu.Unlock()
				return &refused{res.StatusCode, res.Reason}
			}
		}
	}
}

// hasRejectedActive reports whether p was last offered a stream it had
// answered wrongly with a port other than 0. The locks are taken one at a
// time, participant then dialog, against the lock order (see doc.go).
func hasRejectedActive(p *participant) bool {
	p.mu.Lock()
	d := p.dlg
	rejected := make([]int, 0, len(p.rejected))
	for i := range p.rejected {
		rejected = append(rejected, i)
	}
	p.mu.Unlock()
	if d == nil || len(rejected) == 0 {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.offered == nil {
		return false
	}
	for _, i := range rejected {
		if i < len(d.offered.Media) && d.offered.Media[i].Port != 0 {
			return true
		}
	}
	return false
}

// slot is one of the fan-out's (Config.Fanout): it bounds the INVITEs
// sent and not answered yet. It is given back at the first response, or
// slotHold after the request went, whichever comes first: a participant
// that has vanished holds one for that long, not for its transaction's
// 32 s, so it never delays a change to the others for long. free may be
// called more than once.
type slot struct {
	c    *Controller
	once sync.Once
}

// acquire takes a fan-out slot, or returns nil when ctx ends first.
func (c *Controller) acquire(ctx context.Context) *slot {
	select {
	case c.sem <- struct{}{}:
		return &slot{c: c}
	case <-ctx.Done():
		return nil
	}
}

func (s *slot) free() { s.once.Do(func() { <-s.c.sem }) }

// slotHold is how long a request with no answer yet holds its slot: a
// quarter of T1, so that the slots bound the INVITEs sent to silent
// participants to Fanout per 125 ms, and a participant that answers
// within a round trip is never waited for.
func slotHold() time.Duration { return sip.T1 / 4 } // sip.T1 is the process's (SetT1)

// freeAfter returns a channel that says when s is to be given back
// (slotHold from now), and the timer's stop.
func (s *slot) freeAfter() (<-chan time.Time, func() bool) {
	t := time.NewTimer(slotHold())
	return t.C, t.Stop
}

// rejoinOnce brings p, whose user agent leaves its group on a re-INVITE
// (profile.go), to the latest description by a BYE and a new INVITE to
// its URI: a new dialog, offered the session as it is now, with the
// streams p had refused at port 0. A change does it once per version
// (change): a rejoin answered wrongly again is shown behind, not tried in
// a loop. The slot is given back before the BYE.
func (c *Controller) rejoinOnce(conf *Conference, p *participant, d *dialog, s *slot, change bool, roleGen uint64) error {
	d.mu.Lock()
	if d.inviteRx { // their INVITE first (§14.1)
		acked := d.acked
		d.mu.Unlock()
		return &dialogBusy{acked}
	}
	d.mu.Unlock()
	var target sip.Uri
	if err := sip.ParseUri(p.uri, &target); err != nil {
		return err
	}
	if p.dialIn {
		// Its From is an address of record; its Contact is where it is.
		d.mu.Lock()
		if d.remoteTarget.Host != "" {
			target = *d.remoteTarget.Clone()
		}
		d.mu.Unlock()
	}
	v := conf.version()
	p.mu.Lock()
	if change && p.rejoinedAt >= v && p.rejoinedRole == roleGen {
		p.mu.Unlock()
		return &refused{reason: fmt.Sprintf("rejoined for version %d already, and its answer still needs another", v)}
	}
	if change {
		p.rejoinedAt, p.rejoinedRole = v, roleGen
	}
	p.rejoining = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.rejoining = false
		p.mu.Unlock()
	}()
	c.log.Info("rejoin: BYE and a new INVITE, for a user agent that leaves its group on a re-INVITE", "conference", conf.name, "participant", p.uri, "change", change)
	s.free()
	if err := c.sendBye(d); err != nil {
		c.log.Info("rejoin: BYE", "participant", p.uri, "err", err)
	}
	c.dialOut(conf, p, target)
	if c.ctx.Err() != nil {
		return ErrClosed // shutting down: the saved record stays as it was
	}
	p.mu.Lock()
	p.refresh = false // the new dialog's session interval starts now
	if p.roleGen == roleGen {
		p.reoffer = false // its new INVITE was made with its role (offerFor)
	}
	p.mu.Unlock()
	c.persist(p) // the new dialog, whether or not its join changed p's state
	c.publishParticipant(p, "reinvite")
	return nil
}
