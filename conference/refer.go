package conference

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// REFER to the focus (RFC 4579 §5.5, RFC 3515, RFC 3892): a participant,
// or a moderator out of any dialog, asks mcc to invite someone
// (Refer-To: <sip:bob@example.org>) or to remove them (Refer-To:
// <sip:bob@example.org;method=BYE>). mcc answers 202 and tells how it went
// on the REFER's implicit subscription: NOTIFYs with message/sipfrag, 100
// Trying first, the final status last (RFC 3515 §2.4.5). The referrer's
// Referred-By (or its From, when it sent none) is the joiner's "by" in
// the roster, and goes into mcc's INVITE (RFC 3892 §3).

// referExpires is how long a REFER's implicit subscription lasts: longer
// than an invitation can ring (Config.RingTimeout, 30 s by default) and
// its redirects.
const referExpires = 5 * time.Minute

// referral is what a REFER asks for.
type referral struct {
	target sip.Uri
	bye    bool
	by     string // the Referred-By, or the referrer's From
}

// parseReferral reads a REFER's Refer-To (exactly one, RFC 3515 §2.4.1)
// and Referred-By (RFC 3892 §3).
func parseReferral(req *sip.Request) (*referral, *refusal) {
	hs := append(req.GetHeaders("Refer-To"), req.GetHeaders("r")...)
	if len(hs) != 1 {
		return nil, badRequest("a REFER carries exactly one Refer-To (RFC 3515 §2.4.1)")
	}
	var u sip.Uri
	params := sip.NewParams()
	if _, err := sip.ParseAddressValue(strings.TrimSpace(hs[0].Value()), &u, &params); err != nil {
		return nil, badRequest("Refer-To is not a URI")
	}
	if u.Scheme != "sip" && u.Scheme != "sips" {
		return nil, forbidden("mcc refers sip: and sips: URIs only")
	}
	if u.Host == "" {
		return nil, badRequest("Refer-To names no host")
	}
	r := &referral{}
	method, _ := u.UriParams.Get("method")
	switch strings.ToUpper(method) {
	case "", "INVITE":
	case "BYE":
		r.bye = true
	default:
		return nil, forbidden("the focus acts on INVITE and BYE referrals only (RFC 4579 §5.5)")
	}
	if u.Headers != nil && u.Headers.Length() > 0 {
		return nil, forbidden("mcc takes no headers in a Refer-To URI")
	}
	u.UriParams.Remove("method")
	r.target = u
	by := req.GetHeader("Referred-By")
	if by == nil {
		by = req.GetHeader("b")
	}
	if by != nil {
		var bu sip.Uri
		bp := sip.NewParams()
		if _, err := sip.ParseAddressValue(strings.TrimSpace(by.Value()), &bu, &bp); err != nil || bu.Host == "" {
			return nil, badRequest("Referred-By is not a SIP URI (RFC 3892 §3)")
		}
		r.by = bu.String()
	} else if f := req.From(); f != nil {
		r.by = f.Address.String()
	}
	if checkHeaderValue(r.by) != nil || checkHeaderValue(r.target.String()) != nil {
		return nil, badRequest("a control character in Refer-To or Referred-By")
	}
	return r, nil
}

func badRequest(why string) *refusal {
	return &refusal{Code: sip.StatusBadRequest, Reason: "Bad Request", Warning: why}
}

func (c *Controller) onRefer(req *sip.Request, tx sip.ServerTransaction) {
	var conf *Conference
	var p *participant // the referrer, when it refers in its own dialog
	var d *dialog
	if _, inDialog := tagOf(req.To().Params); inDialog {
		if d = c.lookup(req); d != nil {
			conf, p = c.participantOf(d)
		} else if s := c.subscriptionOf(req); s != nil {
			d, conf = s.d, s.conf // the dialog of an earlier REFER
		}
		if d == nil || conf == nil {
			respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
			return
		}
		d.mu.Lock()
		err := d.checkRemoteCSeqLocked(req)
		d.mu.Unlock()
		if err != nil {
			respond(tx, req, sip.StatusInternalServerError, "Server Internal Error", warning(err.Error()))
			return
		}
		d.touch()
	} else {
		var err error
		if conf, err = c.conference(req.Recipient.User); err != nil {
			respond(tx, req, sip.StatusNotFound, "Not Found", warning("no conference "+req.Recipient.User))
			return
		}
	}
	if p == nil {
		// Not a participant's own dialog (out of any, or an earlier
		// REFER's or SUBSCRIBE's): the request proves who sends it, as a
		// dial-in does; its digest credentials are checked here, never
		// taken as written (mayRefer).
		if r := c.admit(conf, req); r != nil {
			tx.Respond(r.response(req))
			return
		}
	}
	if r := c.mayRefer(conf, req, p); r != nil {
		tx.Respond(r.response(req))
		return
	}
	ref, r := parseReferral(req)
	if r != nil {
		tx.Respond(r.response(req))
		return
	}
	var gone []*participant
	if ref.bye {
		if gone = conf.activeByURI(ref.target); len(gone) == 0 {
			respond(tx, req, sip.StatusNotFound, "Not Found", warning(fmt.Sprintf("nobody in %s is %s", conf.name, ref.target.String())))
			return
		}
	}
	// RFC 4488: Refer-Sub: false asks for no subscription.
	norefersub := false
	if h := req.GetHeader("Refer-Sub"); h != nil && strings.EqualFold(strings.TrimSpace(h.Value()), "false") {
		norefersub = true
	}
	event := fmt.Sprintf("refer;id=%d", req.CSeq().SeqNo) // RFC 3515 §2.4.6
	var s *subscription
	if !norefersub {
		if d != nil {
			s = &subscription{d: d, conf: conf, event: event, kind: eventRefer, src: sourceOf(req), shared: true,
				wake: make(chan struct{}, 1), done: make(chan struct{})}
			if r := c.countSubscription(s); r != nil {
				tx.Respond(r.response(req))
				return
			}
		} else if s, r = c.newSubscription(req, conf, event, eventRefer); r != nil {
			tx.Respond(r.response(req))
			return
		}
		s.expires = time.Now().Add(referExpires)
		s.frags = []string{sipfrag(100, "Trying")}
	}
	res := sip.NewResponseFromRequest(req, sip.StatusAccepted, "Accepted", nil)
	if s != nil && !s.shared {
		if to := res.To(); to != nil {
			to.Params.Remove("tag")
			to.Params.Add("tag", s.d.localTag)
		}
	}
	v6 := sourceOf(req).Is6()
	res.AppendHeader(c.focusContact(conf.name, strings.ToUpper(req.Transport()), v6))
	if s == nil {
		res.AppendHeader(sip.NewHeader("Refer-Sub", "false"))
	} else if !c.startSubscription(s) {
		respond(tx, req, sip.StatusServiceUnavailable, "Service Unavailable", sip.NewHeader("Retry-After", "5"))
		return
	}
	if err := tx.Respond(res); err != nil {
		if s != nil {
			s.terminate("noresource")
		}
		return
	}
	if s != nil {
		s.poke()
	}
	c.log.Info("REFER accepted", "conference", conf.name, "target", ref.target.String(), "bye", ref.bye, "by", ref.by)
	if ref.bye {
		if !c.goOwned(func() { c.referBye(s, gone, ref.by) }) && s != nil {
			s.terminate("noresource")
		}
		return
	}
	c.referInvite(conf, s, ref)
}

// mayRefer applies who may refer (RFC 4579 §5.5 leaves it to the focus):
// the conference's moderators (Access.Moderators): with digest, by the
// user its credentials proved (every digest user when none are listed);
// without, by their URI (a claim, as the allow list's is: Access.Sources
// ties it to a network). Everyone else gets 403. The caller has checked
// the credentials of a request from outside a participant's dialog.
func (c *Controller) mayRefer(conf *Conference, req *sip.Request, p *participant) *refusal {
	a := &conf.access
	var user, uri string
	if p != nil {
		p.mu.Lock()
		user, uri = p.authUser, p.uri
		p.mu.Unlock()
	} else {
		if a.Mode == Digest {
			user = digestUser(req, realmOf(conf))
		}
		if f := req.From(); f != nil {
			uri = f.Address.String()
		}
	}
	if a.Mode == Digest {
		// Only the user the credentials proved counts, never a From.
		if user != "" && (len(a.Moderators) == 0 || slices.Contains(a.Moderators, user)) {
			return nil
		}
		return forbidden("only the conference's moderators may refer")
	}
	var u sip.Uri
	if uri != "" && sip.ParseUri(uri, &u) == nil && allowed(a.Moderators, u) {
		return nil
	}
	return forbidden("only the conference's moderators may refer")
}

// realmOf is the digest realm of conf.
func realmOf(conf *Conference) string {
	if conf.access.Realm != "" {
		return conf.access.Realm
	}
	return conf.name
}

// digestUser is the user name of the credentials for realm in req, which
// admit has checked already; "" for none.
func digestUser(req *sip.Request, realm string) string {
	for i, h := range req.GetHeaders("Authorization") {
		if i == maxCredentials {
			break
		}
		if cr, err := parseCredentials(h.Value()); err == nil && cr.realm == realm {
			return cr.username
		}
	}
	return ""
}

// activeByURI returns the participants of conf whose URI is u's (user and
// host, RFC 3261 §19.1.4's way for the host) that have not ended.
func (conf *Conference) activeByURI(u sip.Uri) []*participant {
	var out []*participant
	for _, p := range conf.members() {
		var pu sip.Uri
		p.mu.Lock()
		uri, ended := p.uri, p.state >= Declined
		p.mu.Unlock()
		if ended || sip.ParseUri(uri, &pu) != nil {
			continue
		}
		if pu.User == u.User && sameHost(pu.Host, u.Host) && (pu.Port == u.Port || pu.Port == 0 || u.Port == 0) {
			out = append(out, p)
		}
	}
	return out
}

// maxFrags bounds the statuses a refer subscription queues: 100, 180,
// the final one, with room to spare.
const maxFrags = 8

// sipfrag is a message/sipfrag body of one status line (RFC 3420).
func sipfrag(code int, reason string) string {
	return fmt.Sprintf("SIP/2.0 %d %s\r\n", code, reason)
}

// report sets the status a refer subscription's next NOTIFY carries;
// final makes it the last.
func (s *subscription) report(code int, reason string, final bool) {
	if s == nil {
		return
	}
	s.mu.Lock()
	if len(s.frags) < maxFrags || final {
		s.frags = append(s.frags, sipfrag(code, reason))
	}
	s.final = s.final || final
	s.mu.Unlock()
	s.poke()
}

// referBye removes the participants a BYE referral names.
func (c *Controller) referBye(s *subscription, ps []*participant, by string) {
	for _, p := range ps {
		c.end(p, "removed at the request of "+by)
	}
	s.report(sip.StatusOK, "OK", true)
}

// referInvite invites the target of an INVITE referral, and follows the
// invitation to its end for the refer subscription.
func (c *Controller) referInvite(conf *Conference, s *subscription, ref *referral) {
	if ps := conf.activeByURI(ref.target); len(ps) > 0 {
		s.report(sip.StatusOK, "OK", true) // there already
		return
	}
	ps, err := c.invite(conf, []sip.Uri{ref.target}, []string{ref.target.String()}, ref.by, NoRole)
	if errors.Is(err, ErrNotOnAir) {
		s.report(sip.StatusTemporarilyUnavailable, "Temporarily Unavailable", true)
		return
	}
	if err != nil || len(ps) == 0 {
		s.report(sip.StatusServiceUnavailable, "Service Unavailable", true)
		return
	}
	if s == nil {
		return
	}
	p := ps[0]
	events, _, cancel := c.Subscribe()
	follow := func() {
		defer cancel()
		tick := time.NewTicker(time.Second) // events may be dropped: look anyway
		defer tick.Stop()
		ringing := false
		for {
			p.mu.Lock()
			st, status, reason := p.state, p.status, p.reason
			p.mu.Unlock()
			switch {
			case st == Ringing && !ringing:
				ringing = true
				s.report(sip.StatusRinging, "Ringing", false)
			case st == Joined:
				s.report(sip.StatusOK, "OK", true)
				return
			case st >= Declined:
				if status < 300 {
					status, reason = sip.StatusRequestTerminated, "Request Terminated"
				}
				if reason == "" || checkHeaderValue(reason) != nil {
					reason = "Failed"
				}
				s.report(status, reason, true)
				return
			}
			select {
			case <-c.ctx.Done():
				return
			case <-s.done:
				return
			case <-events:
			case <-tick.C:
			}
		}
	}
	if !c.goOwned(follow) {
		cancel()
		s.terminate("noresource")
	}
}
