package conference

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// The conference event package (RFC 4575) over SIP's event framework (RFC
// 6665): a SUBSCRIBE to a conference URI with Event: conference makes a
// subscription dialog, in which mcc sends the roster: full state at once
// and after every refresh, partial documents after each change (the diff
// against what the subscriber has, roster.go), and a last NOTIFY with
// Subscription-State terminated when the subscription or the conference
// ends. REFER's implicit subscriptions (refer.go) live in the same table.

const (
	eventConference = "conference"
	eventRefer      = "refer"
	// subscriptionExpires is what a SUBSCRIBE without Expires gets (RFC
	// 4575 §3.6: 3600 s) and the most any gets; minSubscription is the
	// least (423 with Min-Expires below it, RFC 6665 §4.2.1.1).
	subscriptionExpires = time.Hour
	minSubscription     = 60 * time.Second
	// notifyCoalesce is how long a subscription waits after a change
	// before it sends its NOTIFY, so a burst of changes (a fan-out of
	// invitations) is one document, not one per participant.
	notifyCoalesce = 50 * time.Millisecond
)

// allowEvents is mcc's Allow-Events (RFC 6665 §8.2.2): the conference
// package, and refer for REFER's implicit subscriptions (RFC 3515).
const allowEvents = "conference, refer"

// subscription is one subscription dialog: the conference package's, or
// the implicit one of a REFER (refer.go). Its worker (run) is the only
// sender of its NOTIFYs, so they go out one at a time, in order of
// version.
type subscription struct {
	d     *dialog
	conf  *Conference
	event string // the Event header, as NOTIFYs repeat it: its type and id
	kind  string // eventConference or eventRefer
	src   netip.Addr
	// shared: the dialog is a participant's INVITE dialog (a REFER sent
	// in it), not one of the subscription's own.
	shared bool
	wake   chan struct{} // capacity 1: something changed
	done   chan struct{} // closed when the subscription has ended
	// forgotten, guarded by Controller.mu, says it left the tables.
	forgotten bool

	mu sync.Mutex // guards the fields below
	// expires is when the subscription ends unless refreshed.
	expires time.Time
	// full asks for full state in the next NOTIFY: the first, and after
	// each refresh (RFC 4575 §4.4).
	full bool
	// version is the version of the last document sent (RFC 4575 §4.6:
	// per subscription, only up); sent is that document, as the
	// subscriber has it once it applied it.
	version uint64
	sent    *ConferenceInfo
	// ending, with reason, asks the worker for its last NOTIFY
	// (Subscription-State terminated); ended says it went.
	ending bool
	reason string
	ended  bool
	// answered: the subscriber has answered a NOTIFY with 2xx; noTCP:
	// TCP did not reach it (sendNotify).
	answered, noTCP bool
	// frags are a refer subscription's statuses as sipfrags not sent yet,
	// in order, and frag the last sent (refer.go); final says the last
	// of frags ends the referral.
	frags []string
	frag  string
	final bool
}

// poke wakes the subscription's worker, without waiting.
func (s *subscription) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// terminate asks for the subscription's last NOTIFY, with reason.
func (s *subscription) terminate(reason string) {
	s.mu.Lock()
	if !s.ending {
		s.ending, s.reason = true, reason
	}
	s.mu.Unlock()
	s.poke()
}

// watchers finds the subscriptions of a conference by its name, for the
// events that touch it; its lock is a leaf, taken under the event hub's.
type watchers struct {
	mu     sync.Mutex
	byConf map[string]map[*subscription]bool
	// gen counts the changes of each conference that woke its
	// subscribers: the roster document built at one generation serves
	// every subscriber until the next (sharedDocument).
	gen map[string]uint64
}

func (w *watchers) add(name string, s *subscription) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byConf == nil {
		w.byConf = map[string]map[*subscription]bool{}
	}
	if w.byConf[name] == nil {
		w.byConf[name] = map[*subscription]bool{}
	}
	w.byConf[name][s] = true
}

func (w *watchers) remove(name string, s *subscription) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.byConf[name], s)
	if len(w.byConf[name]) == 0 {
		delete(w.byConf, name)
		if w.gen == nil {
			w.gen = map[string]uint64{}
		}
		w.gen[name]++ // what was built for them is not kept fresh from here
	}
}

// generation is conference name's change count (gen).
func (w *watchers) generation(name string) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gen[name]
}

// touch wakes every subscription to conference name.
func (w *watchers) touch(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.byConf[name]) == 0 {
		return // nobody builds a document to keep fresh
	}
	if w.gen == nil {
		w.gen = map[string]uint64{}
	}
	w.gen[name]++
	for s := range w.byConf[name] {
		s.poke()
	}
}

// count counts the subscriptions held, by package.
func (w *watchers) count() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{eventConference: 0, eventRefer: 0}
	for _, ss := range w.byConf {
		for s := range ss {
			out[s.kind]++
		}
	}
	return out
}

// of returns the subscriptions to conference name.
func (w *watchers) of(name string) []*subscription {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*subscription, 0, len(w.byConf[name]))
	for s := range w.byConf[name] {
		out = append(out, s)
	}
	return out
}

// endSubscriptions ends every subscription to conf, the conference
// package's and REFER's, with reason (RFC 6665 §4.1.3: noresource when the
// conference is gone).
func (c *Controller) endSubscriptions(conf *Conference, reason string) {
	for _, s := range c.watch.of(conf.name) {
		if s.conf == conf {
			s.terminate(reason)
		}
	}
}

// eventHeader returns the Event header of a request, in either spelling
// (RFC 6665 §8.2.1: compact form o), and its type and id.
func eventHeader(req *sip.Request) (value, typ, id string, ok bool) {
	h := req.GetHeader("Event")
	if h == nil {
		h = req.GetHeader("o")
	}
	if h == nil {
		return "", "", "", false
	}
	value = strings.TrimSpace(h.Value())
	typ, params, _ := strings.Cut(value, ";")
	typ = strings.TrimSpace(typ)
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "id") {
			id = strings.Trim(v, `"`)
		}
	}
	return value, typ, id, true
}

// requestedExpires reads Expires (RFC 6665 §4.1.2.1); absent gives def.
func requestedExpires(req *sip.Request, def time.Duration) (time.Duration, error) {
	h := req.GetHeader("Expires")
	if h == nil {
		return def, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("the Expires header is not a number of seconds: %q", h.Value())
	}
	return time.Duration(n) * time.Second, nil
}

// acceptsConferenceInfo reports whether a SUBSCRIBE's Accept, if any,
// takes application/conference-info+xml (RFC 6665 §4.1.2: absent means
// the package's default type; an empty one, that none is acceptable:
// RFC 3261 §20.1); a range with q=0 is one it refuses (RFC 9110 §12.4.2).
func acceptsConferenceInfo(req *sip.Request) bool {
	hs := req.GetHeaders("Accept")
	if len(hs) == 0 {
		return true
	}
	// The most specific range that matches decides (RFC 9110 §12.5.1):
	// the type itself, then application/*, then */*.
	best, refused := 0, false
	for _, h := range hs {
		for _, v := range strings.Split(h.Value(), ",") {
			mt, params, _ := strings.Cut(v, ";")
			rank := 0
			switch strings.ToLower(strings.TrimSpace(mt)) {
			case ConferenceInfoType:
				rank = 3
			case "application/*":
				rank = 2
			case "*/*":
				rank = 1
			}
			if rank > best {
				best, refused = rank, zeroQ(params)
			}
		}
	}
	return best > 0 && !refused
}

// zeroQ reports whether media-range parameters say q=0 (q=0.0, q=0.000).
func zeroQ(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), "q") {
			v = strings.TrimSpace(v)
			return v != "" && strings.Trim(v, "0.") == "" && v[0] == '0'
		}
	}
	return false
}

// badEvent answers a SUBSCRIBE for a package mcc does not have: 489 with
// Allow-Events (RFC 6665 §4.2.1.1, §8.3.2).
func badEvent(tx sip.ServerTransaction, req *sip.Request, why string) {
	respond(tx, req, statusBadEvent, "Bad Event", sip.NewHeader("Allow-Events", eventConference), warning(why))
}

const statusBadEvent = 489

// tooBrief answers a subscription shorter than minSubscription with 423
// and Min-Expires (RFC 6665 §4.2.1.1); 0 (a fetch, an unsubscription) is
// never too brief.
func tooBrief(tx sip.ServerTransaction, req *sip.Request, expires time.Duration) bool {
	if expires == 0 || expires >= minSubscription {
		return false
	}
	respond(tx, req, sip.StatusIntervalToBrief, "Interval Too Brief",
		sip.NewHeader("Min-Expires", strconv.Itoa(int(minSubscription/time.Second))))
	return true
}

func (c *Controller) onSubscribe(req *sip.Request, tx sip.ServerTransaction) {
	value, typ, id, ok := eventHeader(req)
	if !ok {
		respond(tx, req, sip.StatusBadRequest, "Bad Request", warning("a SUBSCRIBE names its package in Event (RFC 6665 §7.2.1)"))
		return
	}
	if len(value) > maxEventHeader {
		// Every NOTIFY repeats it: a long one would make each of them
		// as large as the subscriber likes.
		respond(tx, req, sip.StatusBadRequest, "Bad Request", warning(fmt.Sprintf("an Event header of more than %d bytes", maxEventHeader)))
		return
	}
	expires, err := requestedExpires(req, subscriptionExpires)
	if err != nil {
		respond(tx, req, sip.StatusBadRequest, "Bad Request", warning(err.Error()))
		return
	}
	if _, inDialog := tagOf(req.To().Params); inDialog {
		c.onResubscribe(req, tx, typ, id, expires)
		return
	}
	if typ != eventConference {
		// A refer subscription is made by REFER alone (RFC 3515 §2.4.4).
		badEvent(tx, req, fmt.Sprintf("mcc serves the conference package, not %q", typ))
		return
	}
	conf, err := c.conference(req.Recipient.User)
	if err != nil {
		respond(tx, req, sip.StatusNotFound, "Not Found", warning("no conference "+req.Recipient.User))
		return
	}
	if !acceptsConferenceInfo(req) {
		respond(tx, req, sip.StatusNotAcceptable, "Not Acceptable", sip.NewHeader("Accept", ConferenceInfoType),
			warning("the conference package sends application/conference-info+xml, which Accept leaves out"))
		return
	}
	if tooBrief(tx, req, expires) {
		return
	}
	// Who may join may watch (the roster names who is there): the
	// conference's access, digest and sources included.
	if r := c.admit(conf, req); r != nil {
		tx.Respond(r.response(req))
		return
	}
	s, r := c.newSubscription(req, conf, value, eventConference)
	if r != nil {
		tx.Respond(r.response(req))
		return
	}
	expires = min(expires, subscriptionExpires)
	s.expires = time.Now().Add(expires)
	s.full = true
	if expires == 0 {
		// A fetch (RFC 6665 §4.4.3): one NOTIFY with the state, and the
		// subscription ends with it.
		s.ending, s.reason = true, "timeout"
	}
	res := c.subscribeOK(req, s.d, expires)
	if !c.startSubscription(s) {
		respond(tx, req, sip.StatusServiceUnavailable, "Service Unavailable", sip.NewHeader("Retry-After", "5"))
		return
	}
	tx.Respond(res)
	s.poke()
}

// subscribeOK builds the 200 to a SUBSCRIBE (RFC 6665 §4.2.1.1: 200, not
// 202), with the dialog's tag, the granted Expires and mcc's Contact.
func (c *Controller) subscribeOK(req *sip.Request, d *dialog, expires time.Duration) *sip.Response {
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	if to := res.To(); to != nil {
		to.Params.Remove("tag")
		to.Params.Add("tag", d.localTag)
	}
	res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	d.mu.Lock()
	v6, tr, user := d.v6, d.transport, d.local.User
	d.mu.Unlock()
	res.AppendHeader(c.focusContact(user, tr, v6))
	res.AppendHeader(sip.NewHeader("Allow", allowHeader))
	res.AppendHeader(sip.NewHeader("Allow-Events", allowEvents))
	return res
}

// focusContact is mcc's Contact for a conference: the conference URI's
// host and port, with the isfocus feature tag (RFC 4579 §3, RFC 3840).
func (c *Controller) focusContact(user, transport string, v6 bool) *sip.ContactHeader {
	h := c.contactFor(user, transport, v6)
	h.Params = sip.NewParams()
	h.Params.Add("isfocus", "")
	return h
}

// newSubscription makes the dialog of a SUBSCRIBE or REFER received out
// of any dialog (RFC 6665 §4.1.2.1, RFC 3515 §2.4.4), the UAS's side of
// it (RFC 3261 §12.1.1), and counts it against the bounds.
func (c *Controller) newSubscription(req *sip.Request, conf *Conference, event, kind string) (*subscription, *refusal) {
	d := &dialog{callID: req.CallID().Value(), transport: strings.ToUpper(req.Transport()), localTag: sip.GenerateTagN(10), localCSeq: 1, acked: make(chan struct{})}
	d.local = sip.Uri{Scheme: "sip", User: conf.name, Host: c.cfg.Host}
	d.remote = *req.From().Address.Clone()
	d.remoteTag, _ = tagOf(req.From().Params)
	d.remoteCSeq = req.CSeq().SeqNo
	d.refreshTargetLocked(req)
	if d.remoteTarget.Host == "" {
		d.remoteTarget = d.remote
	}
	d.v6 = sourceOf(req).Is6()
	for _, h := range req.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			d.routeSet = append(d.routeSet, *rr.Address.Clone())
		}
	}
	// NOTIFYs go where the SUBSCRIBE came from, whatever its Contact
	// says (dialog.fixTo): nobody aims mcc's NOTIFYs at a third party.
	d.fixTo, _ = netip.ParseAddrPort(req.Source())
	d.fixTargetLocked()
	s := &subscription{d: d, conf: conf, event: event, kind: kind, src: sourceOf(req),
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	if r := c.countSubscription(s); r != nil {
		return nil, r
	}
	return s, nil
}

// countSubscription takes one from the bounds on subscriptions, in all and
// per source (Limits.MaxSubscriptions, SubscriptionsPerSource): each
// makes mcc send a NOTIFY at every change.
func (c *Controller) countSubscription(s *subscription) *refusal {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subCount >= c.guard.lim.MaxSubscriptions {
		return &refusal{Code: sip.StatusServiceUnavailable, Reason: "Service Unavailable", Warning: "too many subscriptions",
			Headers: []sip.Header{sip.NewHeader("Retry-After", "60")}}
	}
	key := sourceKey(s.src)
	if !s.shared && c.guard.lim.SourceRate >= 0 && c.subsFrom[key] >= c.guard.lim.SubscriptionsPerSource {
		return &refusal{Code: sip.StatusServiceUnavailable, Reason: "Service Unavailable", Warning: "too many subscriptions from this source",
			Headers: []sip.Header{sip.NewHeader("Retry-After", "60")}}
	}
	c.subsFrom[key]++
	c.subCount++
	if !s.shared { // a shared dialog is the participant's: found by c.dialogs
		c.subs[s.d.key()] = s
	}
	return nil
}

// startSubscription runs the subscription's worker; false when the
// controller is closing, or the conference went meanwhile.
func (c *Controller) startSubscription(s *subscription) bool {
	c.watch.add(s.conf.name, s)
	if s.conf.isDeleted() || !c.goOwned(func() { c.runSubscription(s) }) {
		c.forgetSubscription(s)
		return false
	}
	return true
}

// forgetSubscription removes an ended subscription from the tables.
func (c *Controller) forgetSubscription(s *subscription) {
	// The bounds' counts come back even should the watchers' removal
	// fail: a slot lost is a source refused for the process's life.
	defer c.watch.remove(s.conf.name, s)
	key := s.d.key()
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.forgotten {
		return
	}
	s.forgotten = true
	if c.subs[key] == s {
		delete(c.subs, key)
	}
	c.subCount--
	k := sourceKey(s.src)
	if c.subsFrom[k]--; c.subsFrom[k] <= 0 {
		delete(c.subsFrom, k)
	}
}

// onResubscribe is a SUBSCRIBE in a subscription's dialog: a refresh, or
// with Expires 0 an unsubscription (RFC 6665 §4.1.2.2, §4.1.2.3).
func (c *Controller) onResubscribe(req *sip.Request, tx sip.ServerTransaction, typ, id string, expires time.Duration) {
	s := c.subscriptionOf(req)
	if s == nil {
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	if typ != s.kind || (s.kind == eventConference && id != eventID(s.event)) {
		// Another subscription in this dialog: mcc keeps one per dialog.
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist",
			warning("no subscription to this event in this dialog"))
		return
	}
	if tooBrief(tx, req, expires) {
		return
	}
	d := s.d
	d.mu.Lock()
	if err := d.checkRemoteCSeqLocked(req); err != nil {
		d.mu.Unlock()
		respond(tx, req, sip.StatusInternalServerError, "Server Internal Error", warning(err.Error()))
		return
	}
	d.refreshTargetLocked(req)
	d.mu.Unlock()
	if s.kind == eventRefer {
		expires = min(expires, referExpires)
	}
	expires = min(expires, subscriptionExpires)
	s.mu.Lock()
	if s.ended || s.ending {
		s.mu.Unlock()
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	s.expires = time.Now().Add(expires)
	if expires == 0 {
		s.ending, s.reason = true, "timeout"
	}
	if s.kind == eventConference {
		s.full = true // a refresh gets full state (RFC 4575 §4.4)
	}
	s.mu.Unlock()
	tx.Respond(c.subscribeOK(req, d, expires))
	s.poke()
}

// maxEventHeader is the longest Event header a SUBSCRIBE may have.
const maxEventHeader = 256

// eventID is the id parameter of an Event header's value.
func eventID(event string) string {
	_, params, _ := strings.Cut(event, ";")
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "id") {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// subscriptionOf finds the subscription of an in-dialog request.
func (c *Controller) subscriptionOf(req *sip.Request) *subscription {
	if req.To() == nil || req.From() == nil || req.CallID() == nil {
		return nil
	}
	toTag, _ := tagOf(req.To().Params)
	fromTag, _ := tagOf(req.From().Params)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subs[dialogKey{req.CallID().Value(), toTag, fromTag}]
}

// runSubscription is a subscription's worker: it sends a NOTIFY when the
// roster changed (after notifyCoalesce), when the subscription is
// refreshed, and its last one when it expires or is ended. A NOTIFY that
// fails, or gets 481 or any other error, ends the subscription (RFC 6665
// §4.2.2); a shutdown leaves it to expire at the subscriber's end.
func (c *Controller) runSubscription(s *subscription) {
	defer close(s.done)
	defer c.forgetSubscription(s)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		wait := time.Until(s.expires)
		s.mu.Unlock()
		timer.Reset(max(wait, 0))
		select {
		case <-c.ctx.Done():
			return
		case <-timer.C:
			s.mu.Lock()
			if time.Now().Before(s.expires) {
				s.mu.Unlock()
				continue // refreshed meanwhile
			}
			if !s.ending {
				s.ending, s.reason = true, "timeout"
			}
			s.mu.Unlock()
		case <-s.wake:
			select { // a burst of changes is one NOTIFY
			case <-time.After(notifyCoalesce):
			case <-c.ctx.Done():
				return
			}
		}
		if !c.notify(s) {
			return
		}
	}
}

// notify sends the NOTIFY the subscription is due, if any; false once
// the subscription is over.
func (c *Controller) notify(s *subscription) bool {
	var body []byte
	var ctype string
	var state string
	s.mu.Lock()
	left := time.Until(s.expires)
	if left <= 0 && !s.ending {
		// A change that woke the worker just as the subscription ran out:
		// it is over (RFC 6665 §4.1.3), not active for one more second.
		s.ending, s.reason = true, "timeout"
	}
	ending, reason := s.ending, s.reason
	s.mu.Unlock()
	switch s.kind {
	case eventConference:
		doc, ok := c.nextDocument(s, ending)
		if !ok && !ending {
			return true // nothing changed for this subscriber
		}
		if doc != nil {
			b, err := doc.Marshal()
			if err != nil && !ending {
				c.log.Error("conference package: write a document", "conference", s.conf.name, "err", err)
				return true
			}
			if err == nil {
				body, ctype = b, ConferenceInfoType
			} // ending: the terminated NOTIFY goes without a body
		}
	case eventRefer:
		// Every NOTIFY of a refer subscription carries the status it has
		// got to (RFC 3515 §2.4.5), the last one too.
		s.mu.Lock()
		fresh := len(s.frags) > 0
		if fresh {
			s.frag, s.frags = s.frags[0], s.frags[1:]
		}
		frag, more := s.frag, len(s.frags) > 0
		if !fresh && !ending {
			s.mu.Unlock()
			return true
		}
		if s.final && !more && !ending {
			ending, reason = true, "noresource" // the referral is over (RFC 3515 §2.4.7)
		}
		s.mu.Unlock()
		if more {
			defer s.poke() // the next status after this one
		}
		body, ctype = []byte(frag), "message/sipfrag;version=2.0"
	}
	if ending {
		state = "terminated;reason=" + reason
	} else {
		state = "active;expires=" + strconv.Itoa(max(int(left/time.Second), 1))
	}
	err := c.sendNotify(s, state, ctype, body)
	if ending || err != nil {
		if err != nil && c.ctx.Err() == nil {
			c.log.Info("subscription ended: its NOTIFY failed", "conference", s.conf.name, "event", s.kind, "err", err)
		}
		s.mu.Lock()
		s.ended = true
		s.mu.Unlock()
		return false
	}
	return true
}

// sendNotify sends one NOTIFY in the subscription's dialog and waits for
// its answer.
func (c *Controller) sendNotify(s *subscription, state, ctype string, body []byte) error {
	d := s.d
	d.mu.Lock()
	if d.ended && !s.shared {
		d.mu.Unlock()
		return fmt.Errorf("the dialog ended")
	}
	contact := c.focusContact(d.local.User, d.transport, d.v6)
	req := d.newRequestLocked(sip.NOTIFY, contact, 0)
	save := s.shared && d.localCSeq >= d.savedCSeq+cseqSlack/2
	v6 := d.v6
	d.mu.Unlock()
	req.AppendHeader(sip.NewHeader("Event", s.event))
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	req.AppendHeader(sip.NewHeader("Allow-Events", allowEvents))
	if body != nil {
		ct := sip.ContentTypeHeader(ctype)
		req.AppendHeader(&ct)
		req.SetBody(body)
	}
	if save {
		// A NOTIFY in a participant's dialog takes a CSeq of its: saved
		// as a probe's is, so a restart never reuses it (cseqSlack).
		if _, p := c.participantOf(d); p != nil {
			c.persist(p)
		}
	}
	// A roster too large for UDP goes over TCP where mcc has it (RFC
	// 3261 §18.1.1), to a subscriber that has answered a NOTIFY already
	// (so that a SUBSCRIBE with a forged source makes mcc connect to
	// nobody) and that TCP has not failed to reach; else over UDP,
	// fragmented. The Contact stays the dialog's: the subscriber's
	// requests keep to the transport they had.
	transport := req.Transport()
	var overUDP *sip.Request
	s.mu.Lock()
	tcpOK := s.answered && !s.noTCP
	s.mu.Unlock()
	if tr := c.pickTransport(req, transport); tr != transport && tcpOK {
		overUDP = req.Clone()
		req.SetTransport(tr)
	}
	cl, err := c.clientFor(req.Transport(), v6)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.ctx, 64*sip.T1) // Timer F
	defer cancel()
	tx, err := cl.TransactionRequest(ctx, req)
	if err != nil && overUDP != nil && c.ctx.Err() == nil {
		// TCP did not take it (no connection): it never reached the
		// subscriber, so its CSeq is unused, and UDP it is from here.
		c.log.Info("NOTIFY: TCP failed, sending it over UDP", "conference", s.conf.name, "bytes", len(req.String()), "err", err)
		s.mu.Lock()
		s.noTCP = true
		s.mu.Unlock()
		if cl, err = c.clientFor(transport, v6); err == nil {
			tx, err = cl.TransactionRequest(ctx, overUDP)
		}
	}
	if err != nil {
		return fmt.Errorf("NOTIFY: %w", err)
	}
	defer tx.Terminate()
	res, err := finalResponse(ctx, tx)
	if err != nil {
		return fmt.Errorf("NOTIFY: %w", err)
	}
	c.metrics.response("received", sip.NOTIFY, res.StatusCode)
	if !res.IsSuccess() {
		return fmt.Errorf("NOTIFY: %d %s", res.StatusCode, res.Reason)
	}
	s.mu.Lock()
	s.answered = true
	s.mu.Unlock()
	d.touch()
	return nil
}

// finalResponse waits for the final response of a non-INVITE client
// transaction.
func finalResponse(ctx context.Context, tx sip.ClientTransaction) (*sip.Response, error) {
	for {
		select {
		case res := <-tx.Responses():
			if res.StatusCode >= 200 {
				return res, nil
			}
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, err
			}
			return nil, errors.New("transaction ended without a final response")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
