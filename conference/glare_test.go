package conference

import (
	"bytes"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

// answer491Once makes p answer its first INVITE with 491 and the others
// with 200; the returned func gives when each INVITE came.
func answer491Once(p *peer) func() []time.Time {
	var (
		mu    sync.Mutex
		times []time.Time
	)
	p.answerWith(func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session) {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		if len(times) == 1 {
			return 491, nil
		}
		return 200, nil
	})
	return func() []time.Time {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Time(nil), times...)
	}
}

// TestGlareRetryAfter491: the participant answers mcc's re-INVITE with
// 491; mcc owns the Call-ID (it dialled out), so it tries again after 2.1 to
// 4 s (RFC 3261 §14.1), and the change reaches the participant.
func TestGlareRetryAfter491(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	ps, _ := e.c.Invite(e.name, p.uri())
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	times := answer491Once(p)
	ch, err := e.c.AddStream(ctxT(t), e.name, sdp.MediaSpec{Kind: "video"})
	if err != nil {
		t.Fatal(err)
	}
	if r := ch.Results[0]; len(r.Streams) != 3 || r.Streams[2] != "accepted" {
		t.Fatalf("after a 491 and a retry: %+v", r)
	}
	ts := times()
	if len(ts) != 2 {
		t.Fatalf("%d re-INVITEs, want 2", len(ts))
	}
	if gap := ts[1].Sub(ts[0]); gap < 2100*time.Millisecond || gap > 4100*time.Millisecond {
		t.Fatalf("retried after %v, want 2.1-4 s", gap)
	}
}

// TestGlareRetryNotOwner: for a participant that dialled in, mcc does not
// own the Call-ID, so it retries after a 491 within 0 to 2 s (§14.1).
func TestGlareRetryNotOwner(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	p.dialIn(t, e.c.URI(e.name), nil, echo)
	eventually(t, "joined", func() bool { ps, _ := e.c.Participants(e.name); return ps[0].State == Joined })
	times := answer491Once(p)
	if _, err := e.c.AddStream(ctxT(t), e.name, sdp.MediaSpec{Kind: "video"}); err != nil {
		t.Fatal(err)
	}
	ts := times()
	if len(ts) != 2 {
		t.Fatalf("%d re-INVITEs, want 2", len(ts))
	}
	if gap := ts[1].Sub(ts[0]); gap > 2100*time.Millisecond {
		t.Fatalf("retried after %v, want 0-2 s", gap)
	}
}

// TestGlare491And500: while mcc's re-INVITE is pending the participant
// sends its own and gets 491; while the participant's INVITE awaits its
// ACK, another gets 500 with Retry-After (RFC 3261 §14.2).
func TestGlare491And500(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	call := p.dialIn(t, e.c.URI(e.name), nil, echo)
	eventually(t, "joined", func() bool { ps, _ := e.c.Participants(e.name); return ps[0].State == Joined })

	got491 := make(chan int, 1)
	cseq := uint32(2)
	p.answerWith(func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session) {
		// mcc's re-INVITE is pending: send ours now.
		res := p.do(t, p.inDialog(call, sip.INVITE, cseq, nil))
		got491 <- res.StatusCode
		return 200, nil
	})
	if _, err := e.c.AddStream(ctxT(t), e.name, sdp.MediaSpec{Kind: "audio"}); err != nil {
		t.Fatal(err)
	}
	if code := <-got491; code != 491 {
		t.Fatalf("a re-INVITE during mcc's got %d, want 491", code)
	}
	p.answerWith(nil)

	// Our INVITE without SDP gets an offer in the 200; before we ACK it,
	// another INVITE gets 500 with Retry-After.
	res := p.do(t, p.inDialog(call, sip.INVITE, 3, nil))
	if res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %d", res.StatusCode)
	}
	res2 := p.do(t, p.inDialog(call, sip.INVITE, 4, nil))
	ra := res2.GetHeader("Retry-After")
	if res2.StatusCode != 500 || ra == nil {
		t.Fatalf("overlapping INVITE: %d, Retry-After %v", res2.StatusCode, ra)
	}
	if n, err := strconv.Atoi(ra.Value()); err != nil || n < 0 || n > 10 {
		t.Fatalf("Retry-After %q, want 0-10", ra.Value())
	}
	offer, _ := sdp.Parse(res.Body())
	p.ack(t, call, 3, echo(offer))
}

// faultyConn drops or duplicates the first packets that start with given
// prefixes, on the way out.
type faultyConn struct {
	net.PacketConn
	mu   sync.Mutex
	drop map[string]int
	dup  map[string]int
	seen map[string]int
}

func (f *faultyConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	f.mu.Lock()
	var drop, dup bool
	for prefix, n := range f.drop {
		if bytes.HasPrefix(b, []byte(prefix)) && n > 0 {
			f.drop[prefix]--
			f.seen[prefix]++
			drop = true
		}
	}
	for prefix, n := range f.dup {
		if bytes.HasPrefix(b, []byte(prefix)) && n > 0 {
			f.dup[prefix]--
			f.seen[prefix]++
			dup = true
		}
	}
	f.mu.Unlock()
	if drop {
		return len(b), nil
	}
	if dup {
		f.PacketConn.WriteTo(b, addr)
	}
	return f.PacketConn.WriteTo(b, addr)
}

func (f *faultyConn) dropped(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[prefix]
}

func faulty(t testing.TB, drop, dup map[string]int) *faultyConn {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &faultyConn{PacketConn: pc, drop: drop, dup: dup, seen: map[string]int{}}
}

// TestLostAndDuplicated loses the first transmission of mcc's INVITE, of
// its 2xx to a dial-in and of its ACK, and duplicates its first 2xx: every
// participant still joins, once.
func TestLostAndDuplicated(t *testing.T) {
	fc := faulty(t, map[string]int{"INVITE ": 1, "SIP/2.0 200": 1, "ACK ": 1}, nil)
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.Listeners = []Listener{{Transport: "udp", PacketConn: fc}} })

	// Dial-out: the INVITE is lost once (sipgo's Timer A sends it again);
	// then our ACK is lost once, and the peer's retransmitted 2xx must be
	// ACKed again.
	p := e.peer(t, "udp")
	p.handleInvites(func(req *sip.Request, tx sip.ServerTransaction) {
		offer, _ := sdp.Parse(req.Body())
		res := sip.NewResponseFromRequest(req, 200, "OK", echo(offer))
		p.mu.Lock()
		p.invites = append(p.invites, req)
		p.mu.Unlock()
		res.AppendHeader(p.contactHeader())
		ct := sip.ContentTypeHeader("application/sdp")
		res.AppendHeader(&ct)
		tx.Respond(res)
		// Retransmit the 2xx like a UAS core (§13.3.1.4) until the ACK.
		for i := 0; i < 6; i++ {
			time.Sleep(sip.T1)
			if _, acks, _ := p.counts(); acks > 0 {
				return
			}
			p.srv.WriteResponse(res)
		}
	})
	ps, _ := e.c.Invite(e.name, p.uri())
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	eventually(t, "the second ACK to arrive", func() bool { _, acks, _ := p.counts(); return acks >= 1 })
	if fc.dropped("INVITE ") != 1 || fc.dropped("ACK ") != 1 {
		t.Fatalf("dropped INVITE %d, ACK %d", fc.dropped("INVITE "), fc.dropped("ACK "))
	}

	// Dial-in: mcc's first 2xx is lost; its own retransmission gets
	// through and the participant joins.
	q := e.peer(t, "udp")
	call := q.dialIn(t, e.c.URI(e.name), nil, echo)
	if call.res.StatusCode != 200 || fc.dropped("SIP/2.0 200") != 1 {
		t.Fatalf("dial-in after a lost 2xx: %d (dropped %d)", call.res.StatusCode, fc.dropped("SIP/2.0 200"))
	}
	eventually(t, "the dial-in to join", func() bool {
		ps, _ := e.c.Participants(e.name)
		return len(ps) == 2 && ps[1].State == Joined
	})

	// A duplicated INVITE from a participant makes one participant.
	dc := faulty(t, nil, map[string]int{"INVITE ": 1})
	r := newPeerConn(t, dc)
	call = r.dialIn(t, e.c.URI(e.name), nil, echo)
	if call.res.StatusCode != 200 || dc.dropped("INVITE ") != 1 {
		t.Fatalf("duplicated INVITE: %d", call.res.StatusCode)
	}
	eventually(t, "the third participant", func() bool {
		ps, _ := e.c.Participants(e.name)
		return len(ps) == 3 && ps[2].State == Joined
	})
	time.Sleep(100 * time.Millisecond)
	if ps, _ := e.c.Participants(e.name); len(ps) != 3 {
		t.Fatalf("a duplicated INVITE made %d participants", len(ps))
	}
}
