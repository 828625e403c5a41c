package conference

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

// peer is a participant made directly on sipgo: it answers INVITEs with
// answerFn (by default it accepts every stream, RFC 3264 §6.2) and records
// what it got.
type peer struct {
	t         testing.TB
	ua        *sipgo.UserAgent
	srv       *sipgo.Server
	cl        *sipgo.Client
	transport string
	addr      string // host:port it listens on
	tag       string

	mu       sync.Mutex
	invites  []*sip.Request
	acks     []*sip.Request
	byes     []*sip.Request
	answerFn func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session)
	handler  func(req *sip.Request, tx sip.ServerTransaction) // replaces onInvite when set
	extra    func(req *sip.Request, code int) []sip.Header    // more headers for a response
	notify   func(req *sip.Request, tx sip.ServerTransaction) // NOTIFYs go here when set
	mute     bool                                             // BYEs are recorded, never answered
	version  uint64
	// dialogTags are the Call-ID and To tag of each response it sent.
	dialogTags [][2]string
}

// answerWith sets how the peer answers INVITEs.
func (p *peer) answerWith(fn func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answerFn = fn
}

// handleNotifies hands the peer's NOTIFYs to h. sipgo's handlers must be
// set before a server serves, so the peer sets its own once and calls h.
func (p *peer) handleNotifies(h func(req *sip.Request, tx sip.ServerTransaction)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.notify = h
}

// handleInvites replaces the peer's INVITE handling.
func (p *peer) handleInvites(h func(req *sip.Request, tx sip.ServerTransaction)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handler = h
}

func newPeer(t testing.TB, transport, host string, tlsConf *tls.Config) *peer {
	t.Helper()
	return newPeerWith(t, transport, host, tlsConf, nil)
}

// newPeerConn makes a UDP peer on a socket the test opened.
func newPeerConn(t testing.TB, pc net.PacketConn) *peer {
	t.Helper()
	return newPeerWith(t, "udp", "", nil, pc)
}

func newPeerWith(t testing.TB, transport, host string, tlsConf *tls.Config, pc net.PacketConn) *peer {
	t.Helper()
	opts := []sipgo.UserAgentOption{sipgo.WithUserAgent("peer")}
	if tlsConf != nil {
		opts = append(opts, sipgo.WithUserAgenTLSConfig(tlsConf))
	}
	ua, err := sipgo.NewUA(opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua)
	p := &peer{t: t, ua: ua, srv: srv, transport: transport, tag: sip.GenerateTagN(8)}
	t.Cleanup(func() { ua.Close() })
	srv.OnInvite(p.onInvite)
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
		p.mu.Lock()
		p.acks = append(p.acks, req)
		p.mu.Unlock()
	})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		p.mu.Lock()
		p.byes = append(p.byes, req)
		mute := p.mute
		p.mu.Unlock()
		if !mute {
			tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		}
	})
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		p.mu.Lock()
		h := p.notify
		p.mu.Unlock()
		if h == nil {
			tx.Respond(sip.NewResponseFromRequest(req, 481, "Subscription Does Not Exist", nil))
			return
		}
		h(req, tx)
	})
	switch transport {
	case "udp":
		if pc == nil {
			var err error
			if pc, err = net.ListenPacket("udp", net.JoinHostPort(host, "0")); err != nil {
				t.Fatal(err)
			}
		}
		p.addr = pc.LocalAddr().String()
		go srv.ServeUDP(pc)
		t.Cleanup(func() { pc.Close() })
		for i := 0; i < 1000; i++ {
			if conn, _ := ua.TransportLayer().GetConnection("udp", p.addr); conn != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		p.cl, _ = sipgo.NewClient(ua, sipgo.WithClientConnectionAddr(p.addr))
	case "tcp", "tls":
		var ln net.Listener
		var err error
		if transport == "tls" {
			ln, err = tls.Listen("tcp", net.JoinHostPort(host, "0"), tlsConf)
		} else {
			ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
		}
		if err != nil {
			t.Fatal(err)
		}
		p.addr = ln.Addr().String()
		if transport == "tls" {
			go srv.ServeTLS(ln)
		} else {
			go srv.ServeTCP(ln)
		}
		t.Cleanup(func() { ln.Close() })
		p.cl, _ = sipgo.NewClient(ua)
	}
	return p
}

// uri is the peer's address as a participant.
func (p *peer) uri() string {
	h, port, _ := net.SplitHostPort(p.addr)
	u := fmt.Sprintf("sip:alice@%s:%s", hostForURI(h), port)
	if p.transport != "udp" {
		u += ";transport=" + p.transport
	}
	return u
}

func (p *peer) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	p.mu.Lock()
	p.invites = append(p.invites, req)
	fn, custom, extra := p.answerFn, p.handler, p.extra
	p.mu.Unlock()
	if custom != nil {
		custom(req, tx)
		return
	}
	offer, err := sdp.Parse(req.Body())
	if err != nil {
		tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad SDP", nil))
		return
	}
	code, answer := 200, (*sdp.Session)(nil)
	if fn != nil {
		code, answer = fn(req, offer)
	}
	if code == 200 && answer == nil {
		p.mu.Lock()
		p.version++
		answer = sdp.Answer(offer, sdp.Origin{Username: "alice", SessionID: 42, Version: p.version, Host: "alice.example"})
		p.mu.Unlock()
	}
	var body []byte
	if answer != nil {
		body, _ = answer.Marshal()
	}
	res := sip.NewResponseFromRequest(req, code, statusText(code), body)
	if _, ok := res.To().Params.Get("tag"); !ok {
		res.To().Params.Add("tag", p.tag)
	}
	if tag, ok := res.To().Params.Get("tag"); ok {
		p.mu.Lock()
		p.dialogTags = append(p.dialogTags, [2]string{req.CallID().Value(), tag})
		p.mu.Unlock()
	}
	h, port, _ := net.SplitHostPort(p.addr)
	contact := sip.Uri{Scheme: "sip", User: "alice", Host: hostForURI(h), UriParams: sip.NewParams()}
	fmtPort(&contact, port)
	if p.transport != "udp" {
		contact.UriParams.Add("transport", p.transport)
	}
	res.AppendHeader(&sip.ContactHeader{Address: contact})
	if extra != nil {
		for _, h := range extra(req, code) {
			res.AppendHeader(h)
		}
	}
	if body != nil {
		ct := sip.ContentTypeHeader("application/sdp")
		res.AppendHeader(&ct)
	}
	tx.Respond(res)
}

func statusText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 486:
		return "Busy Here"
	case 491:
		return "Request Pending"
	}
	return "Status"
}

func (p *peer) counts() (invites, acks, byes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.invites), len(p.acks), len(p.byes)
}

func (p *peer) lastInvite() *sip.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.invites[len(p.invites)-1]
}

// eventually polls f until it holds or 10 s pass.
func eventually(t testing.TB, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitState(t testing.TB, c *Controller, conf, id string, want State) Participant {
	t.Helper()
	var got Participant
	defer func() {
		if t.Failed() {
			t.Logf("last seen: %+v", got)
		}
	}()
	eventually(t, fmt.Sprintf("participant %s to be %v", id, want), func() bool {
		ps, _ := c.Participants(conf)
		for _, p := range ps {
			if p.ID == id {
				got = p
				return p.State == want
			}
		}
		return false
	})
	return got
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// call is a dialog the peer started by dialling in.
type call struct {
	p       *peer
	req     *sip.Request // the INVITE
	res     *sip.Response
	cseq    uint32
	target  sip.Uri
	toTag   string
	fromTag string
}

// dialIn sends an INVITE to uri with body (nil: no offer) and ACKs a 2xx,
// with answerBody in the ACK when the 2xx carried the offer.
func (p *peer) dialIn(t testing.TB, uri string, body []byte, answer func(offer *sdp.Session) []byte, extra ...sip.Header) *call {
	t.Helper()
	cl := p.dialInNoACK(t, uri, body, extra...)
	res := cl.res
	if res.StatusCode != 200 {
		return cl
	}
	var ackBody []byte
	if body == nil && answer != nil {
		offer, err := sdp.Parse(res.Body())
		if err != nil {
			t.Fatalf("the 200 carries no offer: %v", err)
		}
		ackBody = answer(offer)
	}
	p.ack(t, cl, 1, ackBody)
	return cl
}

// dialInNoACK sends an INVITE to uri with body (nil: no offer) and
// returns the call with its final answer, which it does not ACK.
func (p *peer) dialInNoACK(t testing.TB, uri string, body []byte, extra ...sip.Header) *call {
	t.Helper()
	var target sip.Uri
	if err := sip.ParseUri(uri, &target); err != nil {
		t.Fatal(err)
	}
	req := sip.NewRequest(sip.INVITE, target)
	req.SetTransport(strings.ToUpper(p.transport))
	cl := &call{p: p, req: req, fromTag: sip.GenerateTagN(8), cseq: 1}
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "example.org"}, Params: sip.NewParams()}
	from.Params.Add("tag", cl.fromTag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: target})
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	req.AppendHeader(p.contactHeader())
	for _, h := range extra {
		req.AppendHeader(h)
	}
	if body != nil {
		ct := sip.ContentTypeHeader("application/sdp")
		req.AppendHeader(&ct)
	}
	req.SetBody(body)
	cl.res = p.do(t, req)
	if cl.res.StatusCode == 200 {
		cl.toTag, _ = cl.res.To().Params.Get("tag")
		cl.target = cl.res.Contact().Address
	}
	return cl
}

func (p *peer) contactHeader() *sip.ContactHeader {
	h, port, _ := net.SplitHostPort(p.addr)
	u := sip.Uri{Scheme: "sip", User: "bob", Host: hostForURI(h), UriParams: sip.NewParams()}
	fmtPort(&u, port)
	if p.transport != "udp" {
		u.UriParams.Add("transport", p.transport)
	}
	return &sip.ContactHeader{Address: u}
}

func (p *peer) do(t testing.TB, req *sip.Request) *sip.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := p.cl.Do(ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", req.Method, err)
	}
	return res
}

// inDialog builds the peer's next request in a call.
func (p *peer) inDialog(cl *call, method sip.RequestMethod, cseq uint32, body []byte) *sip.Request {
	req := sip.NewRequest(method, cl.target)
	req.SetTransport(strings.ToUpper(p.transport))
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "example.org"}, Params: sip.NewParams()}
	from.Params.Add("tag", cl.fromTag)
	to := &sip.ToHeader{Address: cl.req.Recipient, Params: sip.NewParams()}
	to.Params.Add("tag", cl.toTag)
	callID := sip.CallIDHeader(cl.req.CallID().Value())
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	req.AppendHeader(p.contactHeader())
	if body != nil {
		ct := sip.ContentTypeHeader("application/sdp")
		req.AppendHeader(&ct)
	}
	req.SetBody(body)
	return req
}

func (p *peer) ack(t testing.TB, cl *call, cseq uint32, body []byte) {
	t.Helper()
	if err := p.cl.WriteRequest(p.inDialog(cl, sip.ACK, cseq, body)); err != nil {
		t.Fatal(err)
	}
}

// newPeerOn serves another transport on the same address for peer p.
func newPeerOn(t testing.TB, transport, addr string, p *peer) *peer {
	t.Helper()
	pc, err := net.ListenPacket(transport, addr)
	if err != nil {
		t.Fatal(err)
	}
	go p.srv.ServeUDP(pc)
	t.Cleanup(func() { pc.Close() })
	return p
}
