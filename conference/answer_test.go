package conference

import (
	"strings"
	"sync"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"mcc/sdp"
)

// TestDigestChallengedInvite: a participant that answers 401 gets the
// INVITE again with credentials from the configuration.
func TestDigestChallengedInvite(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.Credentials = &Credentials{Username: "mcc", Password: "pw"} }, "udp")
	p := e.peer(t, "udp")
	var mu sync.Mutex
	var authorized bool
	p.answerWith(func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session) {
		h := req.GetHeader("Authorization")
		if h == nil {
			return 401, nil
		}
		cred, err := digest.ParseCredentials(h.Value())
		if err != nil || cred.Username != "mcc" {
			return 403, nil
		}
		want, _ := digest.Digest(&digest.Challenge{Realm: "peer", Nonce: "n0nce", Algorithm: "MD5"},
			digest.Options{Method: "INVITE", URI: cred.URI, Username: "mcc", Password: "pw"})
		if want.Response != cred.Response {
			return 403, nil
		}
		mu.Lock()
		authorized = true
		mu.Unlock()
		return 200, nil
	})
	// The 401 carries the challenge; the INVITE with credentials goes to
	// the answer function above.
	p.handleInvites(func(req *sip.Request, tx sip.ServerTransaction) {
		if req.GetHeader("Authorization") == nil {
			res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
			res.AppendHeader(sip.NewHeader("WWW-Authenticate", `Digest realm="peer", nonce="n0nce", algorithm=MD5`))
			tx.Respond(res)
			return
		}
		p.handleInvites(nil) // answer the rest normally
		p.onInvite(req, tx)
	})
	ps, _ := e.c.Invite(e.name, p.uri())
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	mu.Lock()
	defer mu.Unlock()
	if !authorized {
		t.Fatal("joined without a valid Authorization")
	}
}

// TestAnswerBreaksRules: an answer that changes one stream's port counts
// that stream as declined and gets a re-INVITE offering it at port 0; an
// answer that changes every stream gets BYE; a participant that declines
// a new stream stays joined with the others.
func TestAnswerBreaksRules(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	var calls int
	var mu sync.Mutex
	p.answerWith(func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		a := sdp.Answer(offer, sdp.Origin{Username: "p", SessionID: 5, Version: uint64(n), Host: "p.example"})
		switch n {
		case 1:
			a.Media[1].Port++ // breaks RFC 3264 §6.2 for the video stream
		case 3:
			a.Media[2].Port = 0 // declines the stream added for everyone
		}
		return 200, a
	})
	ps, _ := e.c.Invite(e.name, p.uri())
	eventually(t, "the corrective re-INVITE", func() bool { n, _, _ := p.counts(); return n == 2 })
	re, _ := sdp.Parse(p.lastInvite().Body())
	if re.Media[1].Port != 0 || re.Media[0].Port == 0 || re.Origin.Version != 2 {
		t.Fatalf("the re-INVITE after a broken answer must offer video at port 0:\n%s", p.lastInvite().Body())
	}
	got := waitState(t, e.c, e.name, ps[0].ID, Joined)
	eventually(t, "the stream states", func() bool {
		pp, _ := e.c.Participants(e.name)
		got = pp[0]
		return strings.Join(got.Streams, ",") == "accepted,removed"
	})
	ch, err := e.c.AddStream(ctxT(t), e.name, sdp.MediaSpec{Kind: "audio"})
	if err != nil {
		t.Fatal(err)
	}
	if r := ch.Results[0]; r.State != Joined || strings.Join(r.Streams, ",") != "accepted,removed,declined" {
		t.Fatalf("after declining the new stream: %+v", r)
	}

	// Every stream broken: BYE.
	q := e.peer(t, "udp")
	q.answerWith(func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session) {
		a := sdp.Answer(offer, sdp.Origin{Username: "q", SessionID: 6, Version: 1, Host: "q.example"})
		for _, m := range a.Media {
			if m.Connection != nil {
				m.Connection.Addr = m.Connection.Addr.Next()
			}
		}
		return 200, a
	})
	ps, _ = e.c.Invite(e.name, q.uri())
	got = waitState(t, e.c, e.name, ps[0].ID, Failed)
	if !strings.Contains(got.Reason, "unacceptable answer") {
		t.Fatalf("every stream broken: %+v", got)
	}
	eventually(t, "BYE to the participant", func() bool { _, _, byes := q.counts(); return byes == 1 })
}

// TestTargetRefresh: a participant's re-INVITE with a new Contact moves
// the dialog's remote target (RFC 3261 §12.2): mcc's next request goes
// there.
func TestTargetRefresh(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	call := p.dialIn(t, e.c.URI(e.name), nil, echo)
	eventually(t, "joined", func() bool { ps, _ := e.c.Participants(e.name); return ps[0].State == Joined })
	// A second socket of the same peer becomes its new Contact.
	moved := newPeer(t, "udp", "127.0.0.1", nil)
	req := p.inDialog(call, sip.INVITE, 2, nil)
	req.RemoveHeader("Contact")
	req.AppendHeader(moved.contactHeader())
	res := p.do(t, req)
	if res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %d", res.StatusCode)
	}
	offer, _ := sdp.Parse(res.Body())
	p.ack(t, call, 2, echo(offer))
	if _, err := e.c.AddStream(ctxT(t), e.name, sdp.MediaSpec{Kind: "audio"}); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := moved.counts(); n != 1 {
		ps, _ := e.c.Participants(e.name)
		old, _, _ := p.counts()
		t.Fatalf("the new target got %d INVITEs, want mcc's re-INVITE (old target got %d; participant %+v)", n, old, ps[0])
	}
	if n, _, _ := p.counts(); n != 0 {
		t.Fatalf("the old target still got %d INVITEs", n)
	}
}
