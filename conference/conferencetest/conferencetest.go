// Package conferencetest has a SIP participant for tests of the packages
// above conference: a UAS on loopback that accepts every multicast stream
// it is offered (RFC 3264 §6.2).
package conferencetest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"

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

	mu  sync.Mutex // guards log
	log []Invite
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
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua)
	p := &Participant{Byes: make(chan struct{}, 100)}
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
		tx.Respond(res)
	})
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		select {
		case p.Byes <- struct{}{}:
		default: // the test reads them; beyond 100 the count no longer matters
		}
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeUDP(pc)
	t.Cleanup(func() { pc.Close(); ua.Close() })
	p.URI = "sip:p@" + pc.LocalAddr().String()
	return p
}
