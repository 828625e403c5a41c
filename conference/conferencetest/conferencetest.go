// Package conferencetest has a SIP participant for tests of the packages
// above conference: a UAS on loopback that accepts every multicast stream
// it is offered (RFC 3264 §6.2).
package conferencetest

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

// Participant is a running echoing UAS. An INVITE to the user "busy"
// (sip:busy@ its address) is declined with 486; the user "stubborn"
// joins, and refuses every re-INVITE with 488.
type Participant struct {
	// URI is its address, sip:p@127.0.0.1:PORT.
	URI string
	// Byes receives a value for every BYE it answers.
	Byes chan struct{}

	invites atomic.Int64
	opts    Options
	conn    *LossyConn

	mu      sync.Mutex // guards the fields below
	log     []Invite
	rnd     *rand.Rand
	acks    map[string]chan struct{} // by Call-ID and CSeq: closed by the ACK of that 200
	current *sdp.Session             // the offer it last answered with 200
}

// Options make a participant misbehave as real ones do.
type Options struct {
	// Loss is the share of datagrams dropped, in and out (0 to 1).
	Loss float64
	// Refuse is the share of re-INVITEs answered with 491, or with 500
	// and Retry-After: 1, one or the other at random.
	Refuse float64
	// Seed makes the losses and refusals repeatable.
	Seed uint64
}

// LossyConn drops a share of the datagrams it reads and writes, at
// random but repeatably, or all of them once vanished: a lossy network,
// or a host switched off, in front of a socket.
type LossyConn struct {
	net.PacketConn
	loss     float64
	vanished atomic.Bool
	mu       sync.Mutex // guards r
	r        *rand.Rand
}

// Lossy wraps pc so that it loses that share (0 to 1) of datagrams both
// ways, in a sequence seed fixes.
func Lossy(pc net.PacketConn, loss float64, seed uint64) *LossyConn {
	return &LossyConn{PacketConn: pc, loss: loss, r: rand.New(rand.NewPCG(seed, 11))}
}

// Vanish drops everything from now on.
func (c *LossyConn) Vanish() { c.vanished.Store(true) }

func (c *LossyConn) drop() bool {
	if c.vanished.Load() {
		return true
	}
	if c.loss == 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.r.Float64() < c.loss
}

// ReadFrom reads the next datagram that is not lost.
func (c *LossyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, a, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.drop() {
			return n, a, err
		}
	}
}

// WriteTo sends b, unless it is lost on the way.
func (c *LossyConn) WriteTo(b []byte, a net.Addr) (int, error) {
	if c.drop() {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, a)
}

// Vanish makes the participant silent, as a host that is switched off:
// nothing it is sent arrives, and it sends nothing.
func (p *Participant) Vanish() { p.conn.Vanish() }

// Current returns the description of the last INVITE it answered with
// 200: what it receives (the answer applies once sent, RFC 3264 §8). Nil
// before it joined.
func (p *Participant) Current() *sdp.Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current == nil {
		return nil
	}
	return p.current.Clone()
}

// Groups returns the groups of the active streams (port other than 0)
// of Current.
func (p *Participant) Groups() []netip.Addr {
	cur := p.Current()
	if cur == nil {
		return nil
	}
	var out []netip.Addr
	for _, m := range cur.Media {
		if c := cur.EffectiveConnection(m); m.Port != 0 && c != nil {
			out = append(out, c.Addr)
		}
	}
	return out
}

// Invite is what the participant noted of an INVITE it answered.
type Invite struct {
	CallID         string
	CSeq           uint32
	FromTag, ToTag string
}

// Log returns the INVITEs it answered, in order.
func (p *Participant) Log() []Invite {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Invite(nil), p.log...)
}

// Invites returns how many INVITEs (initial and re-INVITEs) it answered.
func (p *Participant) Invites() int { return int(p.invites.Load()) }

// Start starts a participant on 127.0.0.1 over UDP; the test's cleanup
// stops it.
func Start(t testing.TB) *Participant {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith starts a participant that loses and refuses as opts say.
func StartWith(t testing.TB, opts Options) *Participant {
	t.Helper()
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua)
	p := &Participant{Byes: make(chan struct{}, 100), opts: opts, rnd: rand.New(rand.NewPCG(opts.Seed, 7)), acks: map[string]chan struct{}{}}
	var version atomic.Uint64
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		if req.Recipient.User == "busy" { // sip:busy@... declines
			tx.Respond(sip.NewResponseFromRequest(req, 486, "Busy Here", nil))
			return
		}
		offer, err := sdp.Parse(req.Body())
		if err != nil {
			tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad SDP", nil))
			return
		}
		p.invites.Add(1)
		from, _ := req.From().Params.Get("tag")
		to, _ := req.To().Params.Get("tag")
		if req.Recipient.User == "stubborn" && to != "" {
			tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
			return
		}
		if to != "" && opts.Refuse > 0 {
			p.mu.Lock()
			refuse, glare := p.rnd.Float64() < opts.Refuse, p.rnd.IntN(2) == 0
			p.mu.Unlock()
			if refuse {
				res := sip.NewResponseFromRequest(req, 491, "Request Pending", nil)
				if !glare {
					res = sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil)
					res.AppendHeader(sip.NewHeader("Retry-After", strconv.Itoa(1)))
				}
				res.To().Params.Remove("tag")
				res.To().Params.Add("tag", to)
				tx.Respond(res)
				return
			}
		}
		p.mu.Lock()
		p.log = append(p.log, Invite{req.CallID().Value(), req.CSeq().SeqNo, from, to})
		p.mu.Unlock()
		b, _ := sdp.Answer(offer, sdp.Origin{Username: "p", SessionID: 1, Version: version.Add(1), Host: "p.example"}).Marshal()
		res := sip.NewResponseFromRequest(req, 200, "OK", b)
		if to != "" { // in a dialog: keep our tag (sipgo would put a new one)
			res.To().Params.Remove("tag")
			res.To().Params.Add("tag", to)
		}
		res.AppendHeader(&sip.ContactHeader{Address: req.Recipient})
		ct := sip.ContentTypeHeader("application/sdp")
		res.AppendHeader(&ct)
		k := req.CallID().Value() + " " + strconv.FormatUint(uint64(req.CSeq().SeqNo), 10)
		acked := make(chan struct{})
		p.mu.Lock()
		p.current = offer // the answer is sent: the new session applies (RFC 3264 §8)
		p.acks[k] = acked
		p.mu.Unlock()
		tx.Respond(res)
		// The UAS core sends the 2xx again until its ACK comes: T1
		// doubling up to T2, for 64·T1 (RFC 3261 §13.3.1.4).
		go func() {
			every, give := sip.T1, time.After(64*sip.T1)
			for {
				select {
				case <-acked:
					return
				case <-give:
					return
				case <-time.After(every):
					tx.Respond(res)
					every = min(2*every, sip.T2)
				}
			}
		}()
	})
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	srv.OnAck(func(req *sip.Request, _ sip.ServerTransaction) {
		p.mu.Lock()
		defer p.mu.Unlock()
		k := req.CallID().Value() + " " + strconv.FormatUint(uint64(req.CSeq().SeqNo), 10)
		if ch, ok := p.acks[k]; ok {
			close(ch)
			delete(p.acks, k)
		}
	})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		select {
		case p.Byes <- struct{}{}:
		default: // the test reads them; beyond 100 the count no longer matters
		}
	})
	raw, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.conn = Lossy(raw, opts.Loss, opts.Seed)
	go srv.ServeUDP(p.conn)
	t.Cleanup(func() { raw.Close(); ua.Close() })
	p.URI = "sip:p@" + raw.LocalAddr().String()
	return p
}
