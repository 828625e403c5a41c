package conference

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

// dialog is one SIP dialog with a participant (RFC 3261 §12): its
// identifiers, both CSeq spaces, the route set and remote target, and the
// offer/answer state. sipgo hands each message to its own goroutine, so
// every field sits behind mu and requests of one dialog are ordered by it.
type dialog struct {
	callID    string
	owner     bool // we sent the INVITE that made it, so we own the Call-ID (§14.1)
	transport string

	mu           sync.Mutex // guards the fields below
	local        sip.Uri    // our address (From when we send)
	localTag     string
	remote       sip.Uri // their address (To when we send)
	remoteTag    string
	localCSeq    uint32
	remoteCSeq   uint32 // 0 until they send an in-dialog request (sipgo#187: tracked here, not by sipgo)
	remoteTarget sip.Uri
	routeSet     []sip.Uri
	// offer/answer
	// origin is the o= this dialog's offers carry, fixed by its first
	// (RFC 3264 §8: only the version changes): the session's own, or
	// with mcc's address of the participant's family.
	origin  *sdp.Origin
	offered *sdp.Session // the last description we sent that the participant accepted
	// inflight is our offer in a re-INVITE not answered yet, and
	// pendingCSeq its CSeq: its groups are in use (settle), and it is
	// saved so that a restarted mcc ACKs its 2xx (§13.2.2.4).
	inflight    *sdp.Session
	pendingCSeq uint32
	// maybe are offers the participant may have taken without mcc
	// knowing (in flight when mcc stopped): their groups are in use until
	// it answers a later offer.
	maybe    []*sdp.Session
	version  uint64        // o= version of the last description we sent in this dialog
	inviteTx bool          // our INVITE (initial or re-INVITE) is in progress
	inviteRx bool          // an INVITE of theirs is in progress: answered but not ACKed
	rxCSeq   uint32        // CSeq of that INVITE
	acked    chan struct{} // closed by the ACK of their INVITE
	ackReq   *sip.Request  // that ACK
	// lastACKCSeq is the CSeq of the INVITE whose 2xx we last ACKed: a
	// retransmission of that 2xx is ACKed again (§13.2.2.4). The ACK is
	// rebuilt from the dialog rather than kept, to keep dialogs small.
	lastACKCSeq uint32
	ended       bool
	// v6 says the dialog's next hop (first route, else remote target) is
	// reached over IPv6. Looked up once, since a name costs a DNS query:
	// never under d.mu.
	v6 bool
	// early is a dial-in's dialog until its 200 is ACKed (or given up on):
	// no BYE before that (§15).
	early bool
	// fixTo, for a dial-in, is the source address of its last request,
	// the hop mcc's own requests then go to first: the top Record-Route
	// entry when there is one, else the remote target (RFC 3261 §12.2.1.1).
	// When that hop names another host than fixTo, it is set to fixTo, so
	// a stranger cannot aim mcc's requests at a third party (by Contact or
	// by Record-Route), and a caller behind NAT is reached (as kamailio's
	// fix_nated_contact does). A hop on the source's own host is taken as
	// it is (§12.2 target refresh may move to another port). Over UDP the
	// source's port goes with it; over TCP the hop's own port (the source's
	// is the caller's ephemeral one); TLS is left alone, its certificate
	// names the host. A proxy in front of mcc must record-route.
	fixTo netip.AddrPort
	// pinned: the first hop is fixTo's, written by fixTargetLocked (not
	// the caller's own): over UDP it follows fixTo's port when that moves.
	pinned bool
	// Liveness (liveness.go): the RFC 4028 session timer, the largest
	// Min-SE a 422 asked for, when the participant was last heard from,
	// whether a probe or a refresh is out, and the local CSeq last saved.
	timer      sessionTimer
	minSE      time.Duration
	seen       time.Time
	probing    bool
	refreshing bool
	savedCSeq  uint32
}

// fixTargetLocked applies fixTo to the first hop. Called with d.mu held.
func (d *dialog) fixTargetLocked() {
	if !d.fixTo.IsValid() || strings.EqualFold(d.transport, "TLS") {
		return
	}
	hop := &d.remoteTarget
	if len(d.routeSet) > 0 {
		hop = &d.routeSet[0]
	}
	if a, err := netip.ParseAddr(strings.Trim(hop.Host, "[]")); err == nil && a.Unmap() == d.fixTo.Addr().Unmap() {
		if d.pinned && !strings.EqualFold(d.transport, "TCP") {
			hop.Port = int(d.fixTo.Port()) // ours from before: it follows a new source port
		}
		return
	}
	hop.Host = hostForURI(d.fixTo.Addr().Unmap().WithZone("").String())
	if !strings.EqualFold(d.transport, "TCP") || hop.Port == 0 {
		hop.Port = int(d.fixTo.Port())
	}
	d.pinned = true
}

// key is the dialog's key in the controller's table; the remote tag
// arrives with the 2xx, so it is read under d.mu.
func (d *dialog) key() dialogKey {
	d.mu.Lock()
	defer d.mu.Unlock()
	return dialogKey{d.callID, d.localTag, d.remoteTag}
}

type dialogKey struct{ callID, localTag, remoteTag string }

// newRequest builds an in-dialog request (§12.2.1.1): Request-URI is the
// remote target, Route is the route set (loose routing), From/To carry our
// tags, and CSeq is our next one unless the method is ACK or CANCEL.
// Called with d.mu held.
func (d *dialog) newRequestLocked(method sip.RequestMethod, contact *sip.ContactHeader, cseq uint32) *sip.Request {
	req := sip.NewRequest(method, d.remoteTarget)
	req.SetTransport(d.transport)
	from := &sip.FromHeader{Address: d.local, Params: sip.NewParams()}
	from.Params.Add("tag", d.localTag)
	to := &sip.ToHeader{Address: d.remote, Params: sip.NewParams()}
	to.Params.Add("tag", d.remoteTag)
	callID := sip.CallIDHeader(d.callID)
	if cseq == 0 {
		d.localCSeq++
		cseq = d.localCSeq
	}
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	req.AppendHeader(&mf)
	for _, r := range d.routeSet {
		req.AppendHeader(&sip.RouteHeader{Address: r})
	}
	if contact != nil {
		req.AppendHeader(contact.Clone())
	}
	return req
}

// nextOffer returns the session's description as the next offer of this
// dialog: the session's origin with this dialog's own version, one above
// the last it sent (RFC 3264 §8). Called with d.mu held.
//
// The offer shares s's media, attributes and times, copying only the
// session's header: descriptions are replaced, never edited in place (a
// change makes a new one; whoever edits one clones it first), so every
// dialog offered one version holds one copy of its media, not one each.
func (d *dialog) nextOfferLocked(s *sdp.Session) *sdp.Session {
	shallow := *s
	o := &shallow
	if d.origin == nil {
		d.origin = &sdp.Origin{}
		*d.origin = s.Origin
	}
	o.Origin = *d.origin
	if d.version == 0 && d.offered == nil && d.inflight == nil {
		// A dialog's first offer carries the session's own version, so a
		// participant sees what "mcc session sdp" shows, 0 included
		// (ffmpeg's); each later one the next (RFC 3264 §8).
		d.version = s.Origin.Version
	} else {
		d.version++
	}
	o.Origin.Version = d.version
	return o
}

// checkRemoteCSeq applies §12.2.2: a request with a CSeq lower than or
// equal to the last one is out of order. Called with d.mu held.
func (d *dialog) checkRemoteCSeqLocked(req *sip.Request) error {
	c := req.CSeq()
	if c == nil {
		return fmt.Errorf("no CSeq")
	}
	if d.remoteCSeq != 0 && c.SeqNo <= d.remoteCSeq {
		return fmt.Errorf("CSeq %d is not above %d", c.SeqNo, d.remoteCSeq)
	}
	d.remoteCSeq = c.SeqNo
	return nil
}

// refreshTarget takes a new remote target from a Contact (§12.2, target
// refresh). Called with d.mu held.
func (d *dialog) refreshTargetLocked(m sip.Message) {
	if h := m.GetHeaders("Contact"); len(h) > 0 {
		if c, ok := h[0].(*sip.ContactHeader); ok {
			d.remoteTarget = *c.Address.Clone()
			d.pinned = false
			// A dial-in's first hop stays the address it came from,
			// whatever a later 2xx or re-INVITE names (see fixTo).
			d.fixTargetLocked()
			d.nextHopFamilyLocked()
		}
	}
}

// nextHopFamilyLocked sets the family mcc sends the dialog's requests
// over from their next hop (§12.2.1.1: the first route, else the remote
// target) when it is an address literal; a host name keeps the family
// looked up before (no lookup under the dialog's lock).
func (d *dialog) nextHopFamilyLocked() {
	host := d.remoteTarget.Host
	if len(d.routeSet) > 0 {
		host = d.routeSet[0].Host
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		d.v6 = a.Is6() && !a.Is4In6()
	}
}

// tagOf reads the tag parameter of a To or From header (RFC 3261 §19.3):
// its name is case-insensitive, and RFC 4475 §3.1.1.1 puts spaces around
// its "=", which sipgo keeps in the name and value.
func tagOf(params sip.HeaderParams) (string, bool) {
	for _, kv := range params {
		if strings.EqualFold(strings.TrimSpace(kv.K), "tag") {
			return strings.TrimSpace(kv.V), true
		}
	}
	return "", false
}

// remoteTagIs reports whether the dialog's remote tag is tag.
func (d *dialog) remoteTagIs(tag string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.remoteTag == tag
}

// live reports whether the dialog has not ended.
func (d *dialog) live() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.ended
}

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

// track registers a dialog whose remote tag is not known yet by Call-ID.
func (c *Controller) track(d *dialog, conf *Conference, p *participant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := &participantRef{conf, p, d}
	c.byCallID[d.callID] = r
	c.byDialog[d] = r
}

// retrack files a dialog under its full key once both tags are known.
// The key is read before c.mu is taken: d.mu is never held under c.mu.
func (c *Controller) retrack(d *dialog) {
	k := d.key()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dialogs[k] = d
}

func (c *Controller) untrack(d *dialog) {
	k := d.key()
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.dialogs, k)
	delete(c.byDialog, d)
	if r := c.byCallID[d.callID]; r != nil && r.d == d {
		delete(c.byCallID, d.callID) // not another dialog's of that Call-ID
	}
}

// onStrayResponse gets responses no transaction matches, such as a 2xx
// retransmitted after the INVITE transaction ended: it ACKs them again
// (§13.2.2.4).
func (c *Controller) onStrayResponse(res *sip.Response) {
	defer c.recoverIn("the stray response handler")
	if checkResponse(res) != nil {
		c.guard.count("response", false) // from a connection mcc opened: not screened before
		return
	}
	if !res.IsSuccess() || res.CSeq().MethodName != sip.INVITE {
		return
	}
	fromTag, _ := tagOf(res.From().Params)
	toTag, _ := tagOf(res.To().Params)
	c.mu.Lock()
	d := c.dialogs[dialogKey{res.CallID().Value(), fromTag, toTag}]
	c.mu.Unlock()
	if d == nil {
		return
	}
	d.mu.Lock()
	if d.ended || d.lastACKCSeq == 0 || d.lastACKCSeq != res.CSeq().SeqNo {
		d.mu.Unlock()
		return
	}
	ack := d.newRequestLocked(sip.ACK, nil, d.lastACKCSeq)
	v6 := d.v6
	d.mu.Unlock()
	if cl, err := c.clientFor(ack.Transport(), v6); err == nil {
		c.sendACK(cl, ack)
	}
}

// hangUp ends a dialog with BYE and records why.
func (c *Controller) hangUp(d *dialog, p *participant, s State, reason string) {
	c.sendBye(d)
	if p.onDialog(d) {
		p.set(s, 0, reason)
	}
}

// sendBye sends BYE in dialog d and forgets it.
func (c *Controller) sendBye(d *dialog) error {
	d.mu.Lock()
	if d.ended {
		d.mu.Unlock()
		return nil
	}
	d.ended = true
	req := d.newRequestLocked(sip.BYE, nil, 0)
	v6 := d.v6
	d.mu.Unlock()
	defer c.untrack(d)
	cl, err := c.clientFor(d.transport, v6)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.ctx, 64*sip.T1) // Timer F
	defer cancel()
	res, err := cl.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("BYE: %w", err)
	}
	c.metrics.response("received", sip.BYE, res.StatusCode)
	if !res.IsSuccess() && res.StatusCode != sip.StatusCallTransactionDoesNotExists {
		return fmt.Errorf("BYE: %d %s", res.StatusCode, res.Reason)
	}
	return nil
}

// endDialog forgets a dialog that is over without a BYE of ours.
func (c *Controller) endDialog(d *dialog, p *participant, s State, reason string) {
	d.mu.Lock()
	d.ended = true
	d.mu.Unlock()
	c.untrack(d)
	if p.onDialog(d) {
		p.set(s, 0, reason)
	}
}

// onDialog reports whether d is p's dialog now: what ends an older one
// (a rejoin's, profile.go) does not end p.
func (p *participant) onDialog(d *dialog) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dlg == d
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
	res.AppendHeader(sip.NewHeader("Allow-Events", allowEvents))
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	supported := ""
	if c.sessionExpires > 0 {
		supported = "timer" // RFC 4028
	}
	res.AppendHeader(sip.NewHeader("Supported", supported))
	tx.Respond(res)
}
