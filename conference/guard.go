package conference

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// guard screens every SIP message mcc receives on its listeners before
// sipgo builds a transaction for it (UDP through sipgo's read filter, TCP
// and TLS through guardedConn): a message that breaks RFC 3261 §8.1.1,
// §8.2 or §18.3 is answered statelessly or dropped, each outcome counted;
// a source over its rate gets 503; and what a stranger can make mcc hold
// (sources, transactions, connections, unACKed dial-ins) is bounded by
// Limits. sipgo itself recovers no panic and logs every message it cannot
// parse, so nothing it would choke on reaches it from here.
type guard struct {
	lim    Limits
	parser *sip.Parser
	allow  map[sip.RequestMethod]bool
	// timers: mcc does RFC 4028 session timers, so Require: timer is
	// met.
	timers bool
	// hasConference says whether a conference of that name exists: a
	// request to one that does not gets 404 before its Require and body
	// are looked at (§8.2.2.1 comes first). Nil: every name exists.
	hasConference func(name string) bool
	// hasDialog says whether a request belongs to a dialog mcc holds (for
	// an RFC 2543 ACK, see normalize). Nil: none does.
	hasDialog func(req *sip.Request) bool
	now       func() time.Time

	live    atomic.Int64 // server transactions alive
	pending atomic.Int64 // dial-ins answered and not ACKed
	conns   atomic.Int64 // accepted TCP and TLS connections

	mu        sync.Mutex // guards the fields below
	sources   map[netip.Prefix]*source
	overflow  source    // the bucket new sources share when the table is full
	lastSweep time.Time // sweeps of idle sources run at most once a second
	udp       map[string]net.PacketConn
	joined    int            // dial-ins joined, from every source
	accepted  map[string]int // remote addresses of the streams guardedConn screens
	// udpPeers are the UDP addresses (ip:port) whose packets went on to
	// sipgo since its read loops were last replaced (see udpMux).
	udpPeers map[string]struct{}
	rejected map[Rejection]uint64
}

// source is one sender's token bucket and what it holds.
type source struct {
	tokens  float64
	last    time.Time
	refused int       // 503s sent to it in the second that began at since
	since   time.Time // start of that second
	pending int       // its dial-ins answered and not ACKed
	conns   int       // its accepted TCP and TLS connections
	joined  int       // its dial-ins joined
	// responses have a bucket of their own, ten times as large: a
	// participant answers every re-INVITE of a fan-out at once.
	rtokens float64
	rlast   time.Time
}

func (s *source) holds() bool { return s.pending > 0 || s.conns > 0 || s.joined > 0 }

// Rejection says what the guard did with a message it did not pass on.
type Rejection struct {
	// Reason is one of a fixed set: "unparseable", "malformed",
	// "version", "method", "extension", "media_type", "scheme",
	// "too_large", "rate", "overload", "pending", "tcp_conns", "tcp_idle",
	// "tcp_slow", "response", "panic".
	Reason string
	// Answered says whether a response went back (else it was dropped).
	Answered bool
}

// refusal is a request the guard or a handler refuses: the status, the
// reason phrase, a Warning text and headers to add. Code 0 drops it.
type refusal struct {
	Code    int
	Reason  string
	Warning string
	Headers []sip.Header
	key     string // the Rejection reason
}

func refuse(key string, code int, reason, warn string, hdrs ...sip.Header) *refusal {
	return &refusal{Code: code, Reason: reason, Warning: warn, Headers: hdrs, key: key}
}

// response builds the stateless answer to req.
func (r *refusal) response(req *sip.Request) *sip.Response {
	res := sip.NewResponseFromRequest(req, r.Code, r.Reason, nil)
	res.SipVersion = "SIP/2.0" // mcc's version, even to a request of another (§7.1, §21.5.10)
	if r.Warning != "" {
		res.AppendHeader(warning(r.Warning))
	}
	for _, h := range r.Headers {
		res.AppendHeader(h)
	}
	return res
}

func newGuard(lim Limits, allow []sip.RequestMethod) *guard {
	g := &guard{lim: lim.withDefaults(), parser: sip.NewParser(), allow: map[sip.RequestMethod]bool{}, now: time.Now,
		sources: map[netip.Prefix]*source{}, udp: map[string]net.PacketConn{}, accepted: map[string]int{}, udpPeers: map[string]struct{}{}, rejected: map[Rejection]uint64{}}
	g.parser.MaxMessageLength = math.MaxInt32 // sizes are ours to check, with an answer
	for _, m := range allow {
		g.allow[m] = true
	}
	return g
}

func (g *guard) count(key string, answered bool) {
	g.mu.Lock()
	g.rejected[Rejection{key, answered}]++
	g.mu.Unlock()
}

// Rejections returns how many messages the guard refused, by reason.
func (g *guard) rejections() map[Rejection]uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[Rejection]uint64, len(g.rejected))
	for k, v := range g.rejected {
		out[k] = v
	}
	return out
}

// sourceKey is what a sender is counted by: an IPv4 address, or the /64 of
// an IPv6 one (a link-local one by itself).
func sourceKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() && !a.IsLinkLocalUnicast() { // every link's fe80::/64 is the same prefix
		bits = 64
	}
	if a.Is6() && a.IsLinkLocalUnicast() {
		bits = 128
		a = a.WithZone("")
	}
	p, _ := a.Prefix(bits)
	return p
}

// sourceLocked returns src's entry, making one if there is room. Called
// with g.mu held.
func (g *guard) sourceLocked(src netip.Addr, now time.Time) *source {
	k := sourceKey(src)
	if s := g.sources[k]; s != nil {
		return s
	}
	if len(g.sources) >= g.lim.MaxSources && !unlimited(g.lim.MaxSources) {
		if now.Sub(g.lastSweep) >= time.Second {
			g.lastSweep = now
			full := float64(g.lim.SourceBurst) / max(g.lim.SourceRate, 1)
			for k, s := range g.sources {
				if !s.holds() && now.Sub(s.last).Seconds() > full {
					delete(g.sources, k)
				}
			}
		}
		// Still full (a flood from many addresses): one source that holds
		// nothing makes room, the first the map's random order gives. A
		// source evicted so comes back with a full bucket, so a flood of
		// new addresses cannot lock the others out.
		for k, s := range g.sources {
			if len(g.sources) < g.lim.MaxSources {
				break
			}
			if !s.holds() {
				delete(g.sources, k)
			}
		}
		if len(g.sources) >= g.lim.MaxSources {
			return &g.overflow
		}
	}
	s := &source{tokens: float64(g.lim.SourceBurst), last: now, rtokens: 10 * float64(g.lim.SourceBurst), rlast: now}
	g.sources[k] = s
	return s
}

// take spends one of src's tokens. It returns nil, or the refusal for a
// source over its rate: 503 with Retry-After, or a drop once the source
// has been told ten times in a second.
func (g *guard) take(src netip.Addr) *refusal {
	if g.lim.SourceRate < 0 {
		return nil
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.sourceLocked(src, now)
	s.tokens = min(float64(g.lim.SourceBurst), s.tokens+now.Sub(s.last).Seconds()*g.lim.SourceRate)
	s.last = now
	if s.tokens >= 1 {
		s.tokens--
		return nil
	}
	if now.Sub(s.since) >= time.Second {
		s.since, s.refused = now, 0
	}
	if s.refused >= 10 {
		return refuse("rate", 0, "", "")
	}
	s.refused++
	wait := int(math.Ceil((1 - s.tokens) / g.lim.SourceRate))
	return refuse("rate", sip.StatusServiceUnavailable, "Service Unavailable", "too many requests from this source",
		sip.NewHeader("Retry-After", strconv.Itoa(max(wait, 1))))
}

// takeResponse spends one of src's response tokens; false means drop it.
func (g *guard) takeResponse(src netip.Addr) bool {
	if g.lim.SourceRate < 0 {
		return true
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.sourceLocked(src, now)
	s.rtokens = min(10*float64(g.lim.SourceBurst), s.rtokens+now.Sub(s.rlast).Seconds()*10*g.lim.SourceRate)
	s.rlast = now
	if s.rtokens < 1 {
		return false
	}
	s.rtokens--
	return true
}

// join counts a dial-in from src that joined; it reports false when src
// has Limits.JoinedPerSource joined already.
func (g *guard) join(src netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !unlimited(g.lim.MaxJoined) && g.joined >= g.lim.MaxJoined {
		return false
	}
	s := g.sourceLocked(src, g.now())
	if !unlimited(g.lim.JoinedPerSource) && g.lim.SourceRate >= 0 && s.joined >= g.lim.JoinedPerSource {
		return false
	}
	s.joined++
	g.joined++
	return true
}

func (g *guard) unjoin(src netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.sources[sourceKey(src)]; s != nil && s.joined > 0 {
		s.joined--
	} else if g.overflow.joined > 0 {
		g.overflow.joined--
	}
	g.joined--
}

// hold counts a dial-in from src answered and waiting for its ACK; it
// reports false when src or everyone holds too many already.
func (g *guard) hold(src netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !unlimited(g.lim.MaxPending) && g.pending.Load() >= int64(g.lim.MaxPending) {
		return false
	}
	s := g.sourceLocked(src, g.now())
	if !unlimited(g.lim.PendingPerSource) && g.lim.SourceRate >= 0 && s.pending >= g.lim.PendingPerSource {
		return false
	}
	s.pending++
	g.pending.Add(1)
	return true
}

func (g *guard) unhold(src netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.sources[sourceKey(src)]; s != nil && s.pending > 0 {
		s.pending--
	} else if g.overflow.pending > 0 {
		g.overflow.pending--
	}
	g.pending.Add(-1)
}

// openConn counts a TCP or TLS connection accepted from src; it reports
// false when src or everyone has too many already.
func (g *guard) openConn(src netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !unlimited(g.lim.TCPConns) && g.conns.Load() >= int64(g.lim.TCPConns) {
		return false
	}
	s := g.sourceLocked(src, g.now())
	if !unlimited(g.lim.TCPConnsPerSource) && g.lim.SourceRate >= 0 && s.conns >= g.lim.TCPConnsPerSource {
		return false
	}
	s.conns++
	g.conns.Add(1)
	return true
}

// screened reports whether req came in where the guard reads: on UDP, or
// on a stream it accepted. A request on a connection mcc opened did not.
func (g *guard) screened(req *sip.Request) bool {
	if strings.EqualFold(req.Transport(), "udp") {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.accepted[req.Source()] > 0
}

func (g *guard) closeConn(src netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.sources[sourceKey(src)]; s != nil && s.conns > 0 {
		s.conns--
	} else if g.overflow.conns > 0 {
		g.overflow.conns--
	}
	g.conns.Add(-1)
}

// screen decides what becomes of one message from src: passed on to
// sipgo (true), or refused, with the response to send back (nil: drop).
func (g *guard) screen(data []byte, transport string, src netip.AddrPort) (pass bool, reply *sip.Response) {
	pass, reply, _ = g.screenMsg(data, transport, src)
	return pass, reply
}

// forward is screen for a message on its way to sipgo: it returns the
// bytes to hand on (nil when refused), written again where sipgo would
// misread them (see normalize).
func (g *guard) forward(data []byte, transport string, src netip.AddrPort) ([]byte, *sip.Response) {
	pass, reply, msg := g.screenMsg(data, transport, src)
	if !pass {
		return nil, reply
	}
	if req, ok := msg.(*sip.Request); ok {
		ack2xx := req.Method == sip.ACK && g.hasDialog != nil && g.hasDialog(req)
		if b := normalize(req, ack2xx); b != nil {
			// A rewrite sipgo's parser would not read back (a header it took
			// leniently, written out as it holds it) is refused: handing on
			// the original instead would lose its received=.
			if !g.reads(b) {
				g.count("malformed", true)
				return nil, refuse("malformed", sip.StatusBadRequest, "Bad Request", "a header mcc cannot write back as it reads it").response(req)
			}
			return b, nil
		}
	}
	return data, nil
}

func (g *guard) screenMsg(data []byte, transport string, src netip.AddrPort) (pass bool, reply *sip.Response, msg sip.Message) {
	if len(bytes.Trim(data, "\r\n")) == 0 {
		return true, nil, nil // a keep-alive (RFC 5626 §3.5.1): sipgo answers it
	}
	msg, err := g.parse(data)
	switch m := msg.(type) {
	case *sip.Response:
		if err != nil || checkResponse(m) != nil {
			g.count("response", false)
			return false, nil, nil
		}
		if !g.takeResponse(src.Addr()) {
			g.count("rate", false)
			return false, nil, nil
		}
		return true, nil, m
	case *sip.Request:
		m.SetTransport(transport)
		m.SetSource(src.String())
		r := g.take(src.Addr())
		if r == nil {
			r = g.check(m, data, err)
		}
		if r == nil {
			if m.Method != sip.ACK && !unlimited(g.lim.MaxTransactions) && g.live.Load() >= int64(g.lim.MaxTransactions) {
				r = refuse("overload", sip.StatusServiceUnavailable, "Service Unavailable", "too many transactions in progress",
					sip.NewHeader("Retry-After", "5"))
			} else {
				return true, nil, m
			}
		}
		// No response to an ACK (§17.2.3), nor to a request whose Via
		// says nowhere to send it (§18.2.2).
		if r.Code == 0 || m.Method == sip.ACK || m.GetHeader("Via") == nil {
			g.count(r.key, false)
			return false, nil, nil
		}
		g.count(r.key, true)
		return false, r.response(m), nil
	}
	g.count("unparseable", false)
	return false, nil, nil
}

// normalize writes a request again, or returns nil when sipgo reads it
// right as it came. It adds the received= of §18.2.1 (below), and mends
// two things, both of RFC 4475, that make sipgo's transaction layer
// refuse a request mcc has passed:
//
//   - a parameter written with spaces around its "=" (§3.1.1.1: "branch =
//     z9hG4bK...", "tag = ..."), which sipgo keeps in the name, so it finds
//     no branch and no tag: the top Via's and From's and To's parameters
//     are trimmed;
//   - a top Via without an RFC 3261 branch, from an RFC 2543 client
//     (§3.4.1), which sipgo matches by From tag and refuses when there is
//     none: such a Via gets a branch derived from what RFC 3261 §17.2.3
//     matches RFC 2543 requests by (Request-URI, From tag, Call-ID, CSeq
//     number, Via), so a retransmission, its ACK and its CANCEL map to
//     the same transaction. An RFC 2543 client matches responses by
//     neither, so the branch it gets back in the Via does it no harm.
func normalize(req *sip.Request, ack2xx bool) []byte {
	changed := false
	trim := func(p sip.HeaderParams) {
		for i, kv := range p {
			if k, v := strings.TrimSpace(kv.K), strings.TrimSpace(kv.V); k != kv.K || v != kv.V {
				p[i], changed = sip.HeaderKV{K: strings.ToLower(k), V: v}, true
			}
		}
	}
	via := req.Via()
	if via == nil {
		return nil
	}
	trim(via.Params)
	// §18.2.1: a sent-by that is a name or another address than the
	// packet's source gets received=. sipgo answers to it (§18.2.2), and
	// when a stream's connection is gone, dials it back: the source, never
	// a host a stranger names.
	if src, err := netip.ParseAddrPort(req.Source()); err == nil {
		host, _ := netip.ParseAddr(strings.Trim(via.Host, "[]"))
		if rcv, ok := via.Params.Get("received"); (host.Unmap() != src.Addr().Unmap() || ok) && rcv != src.Addr().Unmap().String() {
			via.Params.Remove("received")
			via.Params.Add("received", src.Addr().Unmap().String())
			changed = true
		}
	}
	if from := req.From(); from != nil {
		trim(from.Params)
	}
	if to := req.To(); to != nil {
		trim(to.Params)
	}
	// §20.16: LWS may surround the CSeq method, which sipgo keeps.
	if cs := req.CSeq(); cs != nil && strings.TrimSpace(string(cs.MethodName)) != string(cs.MethodName) {
		cs.MethodName = sip.RequestMethod(strings.TrimSpace(string(cs.MethodName)))
		changed = true
	}
	if b, _ := via.Params.Get("branch"); !strings.HasPrefix(b, sip.RFC3261BranchMagicCookie) || len(b) == len(sip.RFC3261BranchMagicCookie) {
		fromTag, _ := tagOf(req.From().Params)
		h := sha256.New()
		// The ACK of a 2xx is a transaction of its own (§17.1.1.3), not the
		// INVITE's, whose ACK of a non-2xx it would otherwise look like.
		salt := ""
		if ack2xx {
			salt = "ack-2xx"
		}
		for _, part := range []string{req.Recipient.String(), fromTag, req.CallID().Value(),
			strconv.FormatUint(uint64(req.CSeq().SeqNo), 10), via.Host, strconv.Itoa(via.Port), salt} {
			h.Write([]byte(part))
			h.Write([]byte{0})
		}
		via.Params.Remove("branch")
		via.Params.Add("branch", sip.RFC3261BranchMagicCookie+"-2543-"+hex.EncodeToString(h.Sum(nil)[:8]))
		changed = true
	}
	if !changed {
		return nil
	}
	return []byte(req.String())
}

// reads reports whether sipgo's parser takes b, and the guard would pass
// it as it is.
func (g *guard) reads(b []byte) bool {
	msg, err := g.parse(b)
	req, ok := msg.(*sip.Request)
	return err == nil && ok && checkControl(b) == nil && checkRequest(req) == nil
}

// parse reads a message with sipgo's parser, which must not take the
// process down with it. A request that parser refuses is read again
// leniently, so that it can still be answered.
func (g *guard) parse(data []byte) (msg sip.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("parser panic: %v", r)
		}
	}()
	msg, err = g.parser.ParseSIP(data)
	if err == nil {
		return msg, nil
	}
	if req, lerr := lenientRequest(data); lerr == nil {
		return req, err
	}
	if res, ok := msg.(*sip.Response); ok {
		return res, err
	}
	return nil, err
}

// check applies RFC 3261 §8.2 to a request, in its order, before any
// handler sees it. perr is the strict parser's error, if it had one.
func (g *guard) check(req *sip.Request, data []byte, perr error) *refusal {
	if len(data) > g.lim.MaxMessage && !unlimited(g.lim.MaxMessage) || len(data) >= int(sip.TransportBufferReadSize) && req.Transport() == "UDP" {
		return refuse("too_large", sip.StatusMessageTooLarge, "Message Too Large", fmt.Sprintf("messages are limited to %d bytes", g.lim.MaxMessage))
	}
	if r := checkControl(data); r != nil {
		return r
	}
	if perr != nil {
		if r := checkVersion(req); r != nil {
			return r
		}
		if r := checkScheme(req); r != nil {
			return r
		}
		return refuse("malformed", sip.StatusBadRequest, "Bad Request", parseProblem(data, perr))
	}
	if r := checkRequest(req); r != nil {
		return r
	}
	// §18.3: a message on a stream says where it ends.
	if req.Transport() != "UDP" && req.ContentLength() == nil {
		return refuse("malformed", sip.StatusBadRequest, "Bad Request", "no Content-Length on a stream transport (RFC 3261 §18.3)")
	}
	// §8.2.1: a method mcc knows but does not handle gets 405; one it
	// does not know, 501 (§21.5.2, RFC 4475 §3.1.1.2). Both say Allow.
	// Methods are case-sensitive (§7.1): sipgo upper-cases the request
	// line's, so "invite" is checked here, as written.
	if m, _, _ := bytes.Cut(data, []byte(" ")); len(data) > 0 && string(m) != string(req.Method) {
		return refuse("method", sip.StatusNotImplemented, "Not Implemented", "",
			sip.NewHeader("Allow", allowHeader))
	}
	if !g.allow[req.Method] {
		if !knownMethods[req.Method] {
			return refuse("method", sip.StatusNotImplemented, "Not Implemented", "",
				sip.NewHeader("Allow", allowHeader))
		}
		return refuse("method", sip.StatusMethodNotAllowed, "Method Not Allowed", "",
			sip.NewHeader("Allow", allowHeader))
	}
	if r := checkScheme(req); r != nil {
		return r
	}
	// §8.2.2.1: a request outside a dialog to a conference that does not
	// exist is answered 404 by its handler; its extensions and body do not
	// matter then.
	if _, inDialog := tagOf(req.To().Params); !inDialog && (req.Method == sip.INVITE || req.Method == sip.SUBSCRIBE || req.Method == sip.REFER) && g.hasConference != nil && !g.hasConference(req.Recipient.User) {
		return nil
	}
	// §8.2.2.3: option tags mcc does not support. ACK and CANCEL carry
	// none of their own.
	if req.Method != sip.ACK && req.Method != sip.CANCEL {
		var unsupported []string
		for _, h := range req.GetHeaders("Require") {
			for _, tag := range strings.Split(h.Value(), ",") {
				if tag = strings.TrimSpace(tag); tag != "" && !g.supportedOption(tag) {
					unsupported = append(unsupported, tag)
				}
			}
		}
		if len(unsupported) > 0 {
			return refuse("extension", sip.StatusBadExtension, "Bad Extension", "",
				sip.NewHeader("Unsupported", strings.Join(unsupported, ", ")))
		}
	}
	// §8.2.3: mcc reads SDP from INVITE bodies, unencoded, and answers
	// with SDP.
	if req.Method == sip.INVITE {
		if r := checkSDPBody(req); r != nil {
			return r
		}
		if !acceptsSDP(req) {
			return refuse("media_type", sip.StatusNotAcceptable, "Not Acceptable", "mcc answers with application/sdp, which Accept leaves out",
				sip.NewHeader("Accept", "application/sdp"))
		}
	}
	return nil
}

// acceptsSDP reports whether a request's Accept, if it has one, lets mcc
// answer with application/sdp (RFC 3261 §20.1: an empty Accept, or none,
// means application/sdp for INVITE).
func acceptsSDP(req *sip.Request) bool {
	hs := req.GetHeaders("Accept")
	if len(hs) == 0 {
		return true
	}
	empty := true
	for _, h := range hs {
		for _, v := range strings.Split(h.Value(), ",") {
			mt, _, _ := strings.Cut(v, ";")
			mt = strings.ToLower(strings.TrimSpace(mt))
			if mt == "" {
				continue
			}
			empty = false
			if mt == "application/sdp" || mt == "application/*" || mt == "*/*" {
				return true
			}
		}
	}
	return empty
}

// checkScheme applies §8.2.2.1: mcc serves sip: and sips: URIs only.
func checkScheme(req *sip.Request) *refusal {
	if s := strings.ToLower(req.Recipient.Scheme); s != "sip" && s != "sips" {
		return refuse("scheme", 416, "Unsupported URI Scheme", "mcc takes sip: and sips: Request-URIs")
	}
	return nil
}

// supportedOption reports whether mcc supports a Require option tag:
// "timer" (RFC 4028 §3) while it does session timers.
func (g *guard) supportedOption(tag string) bool { return g.timers && strings.EqualFold(tag, "timer") }

// checkSDPBody applies §8.2.3 to a request whose body mcc reads as SDP.
func checkSDPBody(req *sip.Request) *refusal {
	if len(req.Body()) == 0 {
		return nil
	}
	if ce := req.GetHeader("Content-Encoding"); ce != nil {
		for _, e := range strings.Split(ce.Value(), ",") {
			if e = strings.TrimSpace(e); !strings.EqualFold(e, "identity") && e != "" {
				return refuse("media_type", sip.StatusUnsupportedMediaType, "Unsupported Media Type", "content encoding "+e+" is not supported",
					sip.NewHeader("Accept-Encoding", "identity"), sip.NewHeader("Accept", "application/sdp"))
			}
		}
	}
	ct := req.ContentType()
	if ct == nil {
		return refuse("malformed", sip.StatusBadRequest, "Bad Request", "a body without Content-Type (RFC 3261 §20.15)")
	}
	mt, _, _ := strings.Cut(ct.Value(), ";")
	if !strings.EqualFold(strings.TrimSpace(mt), "application/sdp") {
		return refuse("media_type", sip.StatusUnsupportedMediaType, "Unsupported Media Type", "mcc reads application/sdp bodies only",
			sip.NewHeader("Accept", "application/sdp"))
	}
	return nil
}

// mandatory are the header fields a request must carry for mcc to answer
// it: exactly once, but Via at least once (RFC 3261 §8.1.1). Max-Forwards
// is not among them: RFC 3261 makes a UAC send it but no UAS check it,
// and RFC 4475 §3.4.1 has an RFC 2543 INVITE without one accepted; two of
// them, or one that does not parse, are refused all the same.
var mandatory = []string{"Via", "To", "From", "Call-ID", "CSeq"}

// checkRequest applies the structural rules of RFC 3261 §8.1.1 and §7.1
// to a parsed request. It needs no raw bytes, so handlers use it too.
func checkRequest(req *sip.Request) *refusal {
	if r := checkVersion(req); r != nil {
		return r
	}
	for _, name := range mandatory {
		hs := req.GetHeaders(name)
		switch {
		case len(hs) == 0:
			return refuse("malformed", sip.StatusBadRequest, "Bad Request", "missing "+name+" header")
		case len(hs) > 1 && name != "Via":
			return refuse("malformed", sip.StatusBadRequest, "Bad Request", "more than one "+name+" header")
		}
	}
	if req.To() == nil || req.From() == nil || req.CallID() == nil || req.CSeq() == nil || req.Via() == nil {
		return refuse("malformed", sip.StatusBadRequest, "Bad Request", "an unreadable To, From, Call-ID, CSeq or Via header")
	}
	if req.CallID().Value() == "" {
		return refuse("malformed", sip.StatusBadRequest, "Bad Request", "an empty Call-ID")
	}
	for _, name := range []string{"Content-Length", "Content-Type", "Max-Forwards"} {
		if len(req.GetHeaders(name)) > 1 {
			return refuse("malformed", sip.StatusBadRequest, "Bad Request", "more than one "+name+" header")
		}
	}
	cseq := req.CSeq()
	// §8.1.1.5: the method matches, and the number is below 2**31.
	// sipgo upper-cases the request line's method, not CSeq's.
	if !strings.EqualFold(strings.TrimSpace(string(cseq.MethodName)), string(req.Method)) {
		return refuse("malformed", sip.StatusBadRequest, "Bad Request",
			fmt.Sprintf("CSeq method %s does not match the request's %s", cseq.MethodName, req.Method))
	}
	if cseq.SeqNo >= 1<<31 {
		return refuse("malformed", sip.StatusBadRequest, "Bad Request", "a CSeq number of 2**31 or more")
	}
	return nil
}

// checkVersion applies §7.1: the version is case-insensitive, and mcc
// speaks 2.0 only (§21.5.10: 505 for the rest).
func checkVersion(req *sip.Request) *refusal {
	if !strings.EqualFold(req.SipVersion, "SIP/2.0") {
		return refuse("version", sip.StatusVersionNotSupported, "Version Not Supported", "mcc speaks SIP/2.0 only")
	}
	return nil
}

// checkResponse reports why a response cannot be matched to anything:
// it needs the headers a transaction and a dialog are found by.
func checkResponse(res *sip.Response) error {
	if res.Via() == nil || res.From() == nil || res.To() == nil || res.CallID() == nil || res.CSeq() == nil {
		return fmt.Errorf("a response without Via, From, To, Call-ID or CSeq")
	}
	if !strings.EqualFold(res.SipVersion, "SIP/2.0") || res.StatusCode < 100 || res.StatusCode > 699 {
		return fmt.Errorf("status line %q", res.StartLine())
	}
	return nil
}

// checkControl refuses a control character in the start line or a header
// (RFC 3261 §25.1 allows HTAB, CR and LF only as CRLF, and any but CR and
// LF inside a quoted string as a quoted-pair), and a message whose header
// section never ends.
func checkControl(data []byte) *refusal {
	end := bytes.Index(data, []byte("\r\n\r\n"))
	if end < 0 {
		return refuse("malformed", sip.StatusBadRequest, "Bad Request", "no empty line after the headers")
	}
	quoted, escaped := false, false
	for i, b := range data[:end+2] {
		switch {
		case b == '\r':
			escaped = false
			if data[i+1] != '\n' {
				return refuse("malformed", sip.StatusBadRequest, "Bad Request", "a CR that is not followed by LF")
			}
		case b == '\n':
			if i == 0 || data[i-1] != '\r' {
				return refuse("malformed", sip.StatusBadRequest, "Bad Request", "an LF that does not follow CR")
			}
			if next := data[i+1]; next != ' ' && next != '\t' {
				quoted, escaped = false, false // a new header line, not a folded one
			}
			continue
		case escaped:
			escaped = false
			continue
		case quoted && b == '\\':
			escaped = true
			continue
		case b == '"':
			quoted = !quoted
		case b < 0x20 && b != '\t' || b == 0x7f:
			return refuse("malformed", sip.StatusBadRequest, "Bad Request", fmt.Sprintf("control character 0x%02x in a header", b))
		}
	}
	return nil
}

// parseProblem says what the strict parser refused, naming the header
// when it can.
func parseProblem(data []byte, err error) string {
	if err == sip.ErrParseReadBodyIncomplete {
		return "the body is shorter than Content-Length (RFC 3261 §18.3)"
	}
	if _, bad := lenientHeaders(data); len(bad) > 0 {
		return "unreadable " + bad[0] + " header"
	}
	return "unreadable message: " + err.Error()
}

// lenientRequest reads a request that sipgo's parser refused, keeping
// the header fields that parse on their own, so it can be answered.
func lenientRequest(data []byte) (*sip.Request, error) {
	line, _, ok := bytes.Cut(data, []byte("\r\n"))
	if !ok {
		return nil, fmt.Errorf("no start line")
	}
	// Method SP Request-URI SP SIP-Version (§7.1), read with any run of
	// spaces between them (RFC 4475 §3.1.2.8-10 send such lines).
	f := strings.Fields(string(line))
	if len(f) < 3 || !strings.HasPrefix(strings.ToUpper(f[len(f)-1]), "SIP/") {
		return nil, fmt.Errorf("not a request line")
	}
	for _, r := range f[0] {
		if r <= ' ' || r >= 0x7f {
			return nil, fmt.Errorf("not a method")
		}
	}
	var uri sip.Uri
	raw := strings.Join(f[1:len(f)-1], " ")
	if err := sip.ParseUri(raw, &uri); err != nil {
		// Keep the scheme, so that one mcc does not serve gets 416.
		scheme, _, _ := strings.Cut(strings.Trim(raw, "<>"), ":")
		if !isScheme(scheme) {
			scheme = "sip"
		}
		uri = sip.Uri{Scheme: strings.ToLower(scheme), Host: "invalid"}
	}
	req := sip.NewRequest(sip.RequestMethod(strings.ToUpper(f[0])), uri)
	req.SipVersion = f[len(f)-1]
	hdrs, _ := lenientHeaders(data)
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	return req, nil
}

// isScheme reports whether s is a URI scheme (RFC 3986 §3.1).
func isScheme(s string) bool {
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// lenientHeaders parses the header fields of a message one by one, and
// names those that do not parse.
func lenientHeaders(data []byte) (hdrs []sip.Header, bad []string) {
	head, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\r\n")
	if len(lines) < 2 {
		return nil, nil
	}
	var unfolded []string
	for _, l := range lines[1:] {
		if (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")) && len(unfolded) > 0 {
			unfolded[len(unfolded)-1] += " " + strings.TrimSpace(l) // §7.3.1 folding
			continue
		}
		unfolded = append(unfolded, l)
	}
	parser := sip.DefaultHeadersParser()
	for _, l := range unfolded {
		before := len(hdrs)
		var err error
		func() {
			defer func() {
				if recover() != nil {
					err = fmt.Errorf("panic")
				}
			}()
			hdrs, err = sip.HeadersParser(parser).ParseHeader(hdrs, []byte(l))
		}()
		if err != nil {
			// Kept as it came, so an answer can still carry its Via.
			name, value, _ := strings.Cut(l, ":")
			name = canonicalHeader(strings.TrimSpace(name))
			hdrs = append(hdrs[:before], sip.NewHeader(name, strings.TrimSpace(value)))
			bad = append(bad, name)
		}
	}
	return hdrs, bad
}

// canonicalHeader spells a header name, compact or not, as RFC 3261 §7.3.3
// and §20 do, and keeps a name it does not know to 40 printable bytes.
func canonicalHeader(name string) string {
	switch strings.ToLower(name) {
	case "v", "via":
		return "Via"
	case "f", "from":
		return "From"
	case "t", "to":
		return "To"
	case "i", "call-id":
		return "Call-ID"
	case "cseq":
		return "CSeq"
	case "m", "contact":
		return "Contact"
	case "l", "content-length":
		return "Content-Length"
	case "c", "content-type":
		return "Content-Type"
	case "max-forwards":
		return "Max-Forwards"
	}
	out := []rune{}
	for _, r := range name {
		if r > ' ' && r < 0x7f && r != '"' && len(out) < 40 {
			out = append(out, r)
		}
	}
	return string(out)
}

// udpFilter is sipgo's read filter for UDP: a message the guard refuses
// never reaches the parser or the transaction layer, and its response
// leaves from the socket it came in on.
func (g *guard) udpFilter(info sip.TransportReadProps, data []byte) ([]byte, error) {
	if !strings.EqualFold(info.Transport, "udp") {
		return data, nil // stream transports are screened by guardedConn
	}
	src := addrPortOf(info.RemoteAddr)
	out, reply := g.forward(data, "UDP", src)
	if out != nil {
		g.mu.Lock()
		if len(g.udpPeers) < maxUDPPeers {
			g.udpPeers[info.RemoteAddr.String()] = struct{}{}
		}
		g.mu.Unlock()
		return out, nil
	}
	if reply != nil {
		g.mu.Lock()
		pc := g.udp[info.LocalAddr.String()]
		g.mu.Unlock()
		if pc != nil {
			pc.WriteTo([]byte(reply.String()), net.UDPAddrFromAddrPort(responseAddr(reply, src)))
		}
	}
	return nil, nil // an error would stop sipgo's read loop
}

// udpPeersSeen is how many UDP peer addresses the guard passed packets
// from since resetUDPPeers; past maxUDPPeers it stops counting.
func (g *guard) udpPeersSeen() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.udpPeers)
}

func (g *guard) resetUDPPeers() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.udpPeers = map[string]struct{}{} // a new map: Go's maps do not shrink
}

// maxUDPPeers bounds the addresses udpPeers counts.
const maxUDPPeers = 4 * udpRotateAfter

// responseAddr is where a response to a request from src goes over UDP
// (RFC 3261 §18.2.2, RFC 3581 §4): src's address, at the top Via's port
// or, with rport, src's port.
func responseAddr(res *sip.Response, src netip.AddrPort) netip.AddrPort {
	port := src.Port() // a Via too broken to read says nothing better
	if v := res.Via(); v != nil {
		port = 5060
		if v.Port > 0 && v.Port < 65536 {
			port = uint16(v.Port)
		}
		if _, ok := v.Params.Get("rport"); ok {
			port = src.Port()
		}
	}
	return netip.AddrPortFrom(src.Addr(), port)
}

func addrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort()
	case *net.TCPAddr:
		return a.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
