package conference

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Liveness: a participant that vanishes (its host gone, no BYE) must not
// stay joined, nor hold groups, forever. Two means, one per participant:
//
//   - RFC 4028 session timers, with participants that do them: mcc's
//     INVITEs carry Supported: timer, Session-Expires and Min-SE; a
//     dial-in's Session-Expires is honoured (422 below mcc's Min-SE, §9).
//     When mcc is the refresher it re-INVITEs at half the interval (§10);
//     when the participant is, a session with no refresh by the interval
//     less min(32 s, a third of it) gets BYE (§10).
//   - For the others, in-dialog OPTIONS probes: a participant mcc has not
//     heard from for Config.ProbeInterval is sent OPTIONS; any answer but
//     408 or 481 shows it there. No answer within the probe's bound (at
//     most 32 s, and less than the interval) ends the dialog with BYE and
//     marks the participant failed, so it is found within two intervals.
//
// One goroutine (the liveness loop) walks the dialogs every tenth of the
// interval: no timer per dialog.

// Session timer defaults (RFC 4028).
const (
	// statusIntervalTooSmall is 422 Session Interval Too Small (§6).
	statusIntervalTooSmall = 422
	// defaultSessionExpires is the interval mcc asks for (§4 recommends
	// 1800 s).
	defaultSessionExpires = 1800 * time.Second
	// minSE is the smallest interval mcc accepts (§5: at least 90 s).
	minSE = 90 * time.Second
	// maxMinSE bounds the Min-SE a 422 can make mcc ask for: beyond it
	// the next 422 ends the attempt, rather than liveness for a day.
	maxMinSE = 24 * time.Hour
	// defaultProbeInterval is Config.ProbeInterval's default.
	defaultProbeInterval = 30 * time.Second
	// probeSlots bounds the probes in flight at once: up to this many
	// participants that vanish together are found within two intervals
	// (each unanswered probe holds one for 0.8 of an interval).
	probeSlots = 2048
	// cseqSlack is how far a probe's CSeq may run ahead of the saved one
	// before the dialog is saved again; a restored dialog starts that far
	// above what was saved, so it never reuses a CSeq (§12.2.1.1).
	cseqSlack = 64
)

// sessionTimer is a dialog's RFC 4028 state: zero interval for none.
type sessionTimer struct {
	interval time.Duration
	// ours says mcc is the refresher.
	ours bool
	// refreshed is when the session was last refreshed (a 2xx to an
	// INVITE of either side, §10).
	refreshed time.Time
}

// supportsTimer reports whether m lists the timer option tag in
// Supported (k is its compact form, RFC 3261 §7.3.3).
func supportsTimer(m sip.Message) bool {
	for _, name := range []string{"Supported", "k"} {
		for _, h := range m.GetHeaders(name) {
			for _, tag := range strings.Split(h.Value(), ",") {
				if strings.EqualFold(strings.TrimSpace(tag), "timer") {
					return true
				}
			}
		}
	}
	return false
}

// sessionExpiresOf reads Session-Expires (x in compact form, RFC 4028
// §4): delta-seconds and the refresher parameter ("uac", "uas" or "").
func sessionExpiresOf(m sip.Message) (time.Duration, string, bool) {
	hs := append(m.GetHeaders("Session-Expires"), m.GetHeaders("x")...)
	if len(hs) == 0 {
		return 0, "", false
	}
	h := hs[0]
	parts := strings.Split(h.Value(), ";")
	n, err := strconv.ParseUint(strings.TrimSpace(parts[0]), 10, 32)
	if err != nil || n == 0 {
		return 0, "", false
	}
	refresher := ""
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), "refresher") {
			refresher = strings.ToLower(strings.TrimSpace(v))
		}
	}
	return time.Duration(n) * time.Second, refresher, true
}

// minSEOf reads Min-SE (§5), or returns 0.
func minSEOf(m sip.Message) time.Duration {
	hs := m.GetHeaders("Min-SE")
	if len(hs) == 0 {
		return 0
	}
	v, _, _ := strings.Cut(hs[0].Value(), ";")
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil {
		return 0
	}
	return time.Duration(n) * time.Second
}

func seconds(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }

// addTimerHeaders puts mcc's session timer request on one of its
// INVITEs (§7.1): the dialog's interval, or the configured one, and
// mcc's Min-SE. With timers off it adds nothing.
func (c *Controller) addTimerHeaders(req *sip.Request, d *dialog, refresh bool) {
	if c.sessionExpires <= 0 {
		return
	}
	req.AppendHeader(sip.NewHeader("Supported", "timer"))
	d.mu.Lock()
	se := max(cmpDur(d.timer.interval, c.sessionExpires), d.minSE, c.minSE)
	active, ours := d.timer.interval > 0, d.timer.ours
	d.mu.Unlock()
	v := seconds(se)
	switch {
	case refresh || active && ours:
		v += ";refresher=uac" // mcc goes on refreshing (§7.4)
	case active:
		v += ";refresher=uas" // the participant does, as before
	}
	req.AppendHeader(sip.NewHeader("Session-Expires", v))
	d.mu.Lock()
	floor := max(c.minSE, d.minSE) // the largest a 422 asked for (§7.3)
	d.mu.Unlock()
	req.AppendHeader(sip.NewHeader("Min-SE", seconds(floor)))
}

func cmpDur(a, b time.Duration) time.Duration {
	if a > 0 {
		return a
	}
	return b
}

// timerFromAnswer takes the session timer a 2xx to one of mcc's INVITEs
// sets (§7.2): none without Session-Expires; mcc refreshes when the
// refresher is uac (mcc sent the INVITE). Called with d.mu held.
// An interval above limit (what mcc asked for; §9 lets the UAS only
// lower it) is taken as limit, so no peer can turn liveness off with a
// huge one.
func (d *dialog) timerFromAnswerLocked(res *sip.Response, now time.Time, limit time.Duration) {
	se, refresher, ok := sessionExpiresOf(res)
	if !ok {
		d.timer = sessionTimer{}
		return
	}
	d.timer = sessionTimer{interval: min(se, limit), ours: refresher != "uas", refreshed: now}
}

// timerForRequest is what mcc answers to an INVITE of the participant's
// (§9): the Session-Expires to send back, or a 422 when it asks for less
// than mcc's Min-SE. It reads only the request.
func (c *Controller) timerForRequest(req *sip.Request) (t sessionTimer, hdrs []sip.Header, too422 bool) {
	if c.sessionExpires <= 0 {
		return sessionTimer{}, nil, false
	}
	se, refresher, ok := sessionExpiresOf(req)
	if !ok {
		return sessionTimer{}, nil, false
	}
	if se < c.minSE {
		return sessionTimer{}, []sip.Header{sip.NewHeader("Min-SE", seconds(c.minSE))}, true
	}
	// §9: the UAS may lower the interval, not below Min-SE (mcc's, or the
	// request's): a huge one would turn liveness off for the dialog.
	se = min(se, max(c.sessionExpires, c.minSE, minSEOf(req)))
	// §9: the caller refreshes when it supports timers and did not ask
	// mcc to; otherwise mcc does.
	uac := supportsTimer(req) && refresher != "uas"
	t = sessionTimer{interval: se, ours: !uac, refreshed: time.Now()}
	side := "uas"
	if uac {
		side = "uac"
		hdrs = append(hdrs, sip.NewHeader("Require", "timer")) // §9: the caller supports it
	}
	hdrs = append(hdrs, sip.NewHeader("Session-Expires", seconds(se)+";refresher="+side))
	return t, hdrs, false
}

// livenessLoop is the one goroutine that probes silent participants and
// watches session timers, every tenth of the probe interval (at most
// 5 s).
func (c *Controller) livenessLoop() {
	tick := 5 * time.Second
	if c.probeInterval > 0 {
		tick = min(tick, c.probeInterval/10)
	}
	if c.sessionExpires > 0 {
		tick = min(tick, c.minSE/10)
	}
	t := time.NewTicker(max(tick, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case now := <-t.C:
			c.checkLiveness(now)
		}
	}
}

// probeWait bounds one probe: less than the interval, so a participant
// that stops answering is found within two, and at most a non-INVITE
// transaction's 64·T1.
func (c *Controller) probeWait() time.Duration {
	return min(64*sip.T1, c.probeInterval*8/10)
}

// checkLiveness walks every joined participant's dialog once.
func (c *Controller) checkLiveness(now time.Time) {
	confs := c.allConferences()
	for _, conf := range confs {
		parts := conf.members()
		for _, p := range parts {
			p.mu.Lock()
			d, joined := p.dlg, p.state == Joined
			p.mu.Unlock()
			if d == nil || !joined {
				continue
			}
			switch c.due(d, now) {
			case dueRefresh:
				p.mu.Lock()
				p.refresh = true
				p.mu.Unlock()
				c.kick(conf, p)
			case dueExpired:
				c.expire(p, d, "the session expired: no refresh within its Session-Expires (RFC 4028 §10)")
			case dueProbe:
				select {
				case c.probes <- struct{}{}:
					if !c.goOwned(func() { defer func() { <-c.probes }(); c.probe(p, d) }) {
						<-c.probes
					}
				default: // as many probes out as allowed: the next tick
					d.mu.Lock()
					d.probing = false
					d.mu.Unlock()
				}
			}
		}
	}
}

type dueKind int

const (
	dueNothing dueKind = iota
	dueRefresh
	dueExpired
	dueProbe
)

// due says what a dialog needs now; for a probe it marks it probing.
func (c *Controller) due(d *dialog, now time.Time) dueKind {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ended || d.early {
		return dueNothing
	}
	if d.seen.IsZero() {
		d.seen = now // restored, or joined a moment ago: heard from now
	}
	if t := d.timer; t.interval > 0 {
		switch {
		case now.Sub(t.refreshed) >= t.interval-min(64*sip.T1, t.interval/3):
			// No refresh of theirs came, or none of ours got through
			// (§10: BYE before the session expires).
			return dueExpired
		case t.ours && now.Sub(t.refreshed) >= t.interval/2 && !d.inviteTx && !d.refreshing:
			d.refreshing = true
			return dueRefresh
		}
		return dueNothing // the refreshes show it is there
	}
	if c.probeInterval <= 0 || d.probing || d.inviteTx || d.inviteRx || now.Sub(d.seen) < c.probeInterval-spread(d.callID, c.probeInterval/5) {
		return dueNothing
	}
	d.probing = true
	return dueProbe
}

// probe sends one in-dialog OPTIONS and ends the dialog if it gets no
// answer, or 408 or 481 (§12.2.1.2).
func (c *Controller) probe(p *participant, d *dialog) {
	d.mu.Lock()
	if d.ended {
		d.probing = false
		d.mu.Unlock()
		return
	}
	req := d.newRequestLocked(sip.OPTIONS, nil, 0)
	req.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	save := d.localCSeq >= d.savedCSeq+cseqSlack/2
	v6 := d.v6
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.probing = false
		d.mu.Unlock()
	}()
	if save {
		c.persist(p)
	}
	cl, err := c.clientFor(req.Transport(), v6)
	if err != nil {
		return
	}
	wait := c.probeWait()
	ctx, cancel := context.WithTimeout(c.ctx, wait)
	defer cancel()
	res, err := cl.Do(ctx, req)
	if c.ctx.Err() != nil {
		return // shutting down: not the participant's doing
	}
	c.metrics.probe(err == nil)
	switch {
	case err != nil:
		c.expire(p, d, fmt.Sprintf("no answer to an in-dialog OPTIONS within %v", wait))
	case res.StatusCode == sip.StatusCallTransactionDoesNotExists:
		c.metrics.response("received", sip.OPTIONS, res.StatusCode)
		c.endDialog(d, p, Failed, "the participant no longer knows the dialog (481 to OPTIONS)")
	case res.StatusCode == sip.StatusRequestTimeout:
		c.metrics.response("received", sip.OPTIONS, res.StatusCode)
		c.expire(p, d, "408 to an in-dialog OPTIONS")
	default:
		c.metrics.response("received", sip.OPTIONS, res.StatusCode)
		d.touch()
	}
}

// expire ends a participant that is gone: failed at once, with why, and
// BYE on its way (where it can still arrive: it may not).
func (c *Controller) expire(p *participant, d *dialog, why string) {
	if p.ended() || !p.onDialog(d) {
		return
	}
	p.set(Failed, 0, why)
	c.log.Info("participant gone", "conference", p.conf, "participant", p.uri, "why", why)
	c.goOwned(func() {
		if err := c.sendBye(d); err != nil {
			c.log.Debug("BYE to a participant that is gone", "participant", p.uri, "err", err)
		}
	})
}

// touch records that the participant was heard from in this dialog.
func (d *dialog) touch() {
	d.mu.Lock()
	d.seen = time.Now()
	d.mu.Unlock()
}

// spread is a dialog's own share of up to max, from its Call-ID: the
// probes of participants that joined together (a fan-out, a restart) go
// out spread over a fifth of the interval, not in one burst.
func spread(callID string, max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(callID))
	return time.Duration(uint64(h.Sum32()) % uint64(max))
}
