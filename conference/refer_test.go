package conference

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// frags records the sipfrag NOTIFYs a referrer gets.
type frags struct {
	mu     sync.Mutex
	bodies []string
	states []string
	events []string
}

func (f *frags) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bodies = append(f.bodies, string(req.Body()))
	if h := req.GetHeader("Subscription-State"); h != nil {
		f.states = append(f.states, h.Value())
	}
	if h := req.GetHeader("Event"); h != nil {
		f.events = append(f.events, h.Value())
	}
}

// reset forgets what came so far: sipgo's handlers are set before the
// peer serves, never while it does, so a test reuses one frags.
func (f *frags) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bodies, f.states, f.events = nil, nil, nil
}

func (f *frags) final() (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.states)
	if n == 0 || !strings.HasPrefix(f.states[n-1], "terminated") {
		return "", false
	}
	return f.bodies[n-1], true
}

// referInDialog sends REFER from peer p in its dialog with mcc (p
// answered mcc's INVITE inv).
func referInDialog(t *testing.T, p *peer, inv *sip.Request, referTo string, cseq uint32) *sip.Response {
	t.Helper()
	tag := p.tag // the tag of the peer's 2xx, as mcc's dialog has it
	p.mu.Lock()
	for _, d := range p.dialogTags {
		if d[0] == inv.CallID().Value() {
			tag = d[1]
		}
	}
	p.mu.Unlock()
	var contact sip.Uri
	if h := inv.GetHeader("Contact"); h != nil {
		contact = h.(*sip.ContactHeader).Address
	}
	req := sip.NewRequest(sip.REFER, sip.Uri{Scheme: "sip", User: contact.User, Host: contact.Host, Port: contact.Port})
	req.SetTransport(strings.ToUpper(p.transport))
	from := &sip.FromHeader{Address: inv.To().Address, Params: sip.NewParams()}
	from.Params.Add("tag", tag)
	fromTag, _ := inv.From().Params.Get("tag")
	to := &sip.ToHeader{Address: inv.From().Address, Params: sip.NewParams()}
	to.Params.Add("tag", fromTag)
	callID := sip.CallIDHeader(inv.CallID().Value())
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.REFER})
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: hostForURI(strings.Split(p.addr, ":")[0]), Port: portOf(p.addr)}})
	req.AppendHeader(sip.NewHeader("Refer-To", "<"+referTo+">"))
	req.AppendHeader(sip.NewHeader("Referred-By", "<"+inv.To().Address.String()+">"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.cl.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func portOf(addr string) int {
	i := strings.LastIndex(addr, ":")
	n, _ := strconv.Atoi(addr[i+1:])
	return n
}

// TestReferInDialog: a moderator in the conference refers a third party
// in (RFC 4579 §5.5): 202, then sipfrag NOTIFYs in its own dialog, 100
// first and 200 last; the joiner's by is the referrer; then it refers
// them out again with method=BYE, and the roster says booted.
func TestReferInDialog(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", nil, "udp")
	mod := e.peer(t, "udp")
	u := userEntity(mod.uri())
	e.withAccess(t, Access{Moderators: []string{strings.TrimPrefix(strings.Split(u, ":"+strconv.Itoa(portOf(mod.addr)))[0], "sip:")}})
	f := &frags{}
	mod.handleNotifies(f.onNotify)
	ps, err := e.c.Invite(e.name, mod.uri())
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	bob := e.peer(t, "udp")
	res := referInDialog(t, mod, mod.lastInvite(), bob.uri(), 10)
	if res.StatusCode != 202 {
		t.Fatalf("REFER: %d %s", res.StatusCode, res.Reason)
	}
	eventually(t, "the referral's last NOTIFY", func() bool { _, ok := f.final(); return ok })
	body, _ := f.final()
	f.mu.Lock()
	first, ev := f.bodies[0], f.events[0]
	f.mu.Unlock()
	if !strings.HasPrefix(first, "SIP/2.0 100 ") || !strings.HasPrefix(body, "SIP/2.0 200 ") || ev != "refer;id=10" {
		t.Fatalf("NOTIFYs: first %q, last %q, event %q", first, body, ev)
	}
	var joined Participant
	eventually(t, "bob joined", func() bool {
		all, _ := e.c.Participants(e.name)
		for _, p := range all {
			if p.URI == bob.uri() && p.State == Joined {
				joined = p
				return true
			}
		}
		return false
	})
	if joined.By != mod.lastInvite().To().Address.String() {
		t.Fatalf("by %q", joined.By)
	}
	if h := bob.lastInvite().GetHeader("Referred-By"); h == nil || !strings.Contains(h.Value(), joined.By) {
		t.Fatalf("mcc's INVITE to bob: Referred-By %v", h)
	}

	// And out again.
	f.reset()
	if res := referInDialog(t, mod, mod.lastInvite(), bob.uri()+";method=BYE", 11); res.StatusCode != 202 {
		t.Fatalf("REFER BYE: %d", res.StatusCode)
	}
	waitState(t, e.c, e.name, joined.ID, Removed)
	eventually(t, "the BYE referral's last NOTIFY", func() bool { b, ok := f.final(); return ok && strings.HasPrefix(b, "SIP/2.0 200") })
	if res := referInDialog(t, mod, mod.lastInvite(), bob.uri()+";method=BYE", 12); res.StatusCode != 404 {
		t.Fatalf("REFER BYE of nobody: %d", res.StatusCode)
	}
}

// TestReferAccess: who may not refer gets 403; a Refer-To mcc cannot
// act on gets 400 or 403.
func TestReferAccess(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	ps, _ := e.c.Invite(e.name, p.uri())
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	// No moderators: nobody may.
	if res := referInDialog(t, p, p.lastInvite(), "sip:bob@127.0.0.1:9", 10); res.StatusCode != 403 {
		t.Fatalf("a participant that is no moderator: %d", res.StatusCode)
	}
	e.withAccess(t, Access{Moderators: []string{"127.0.0.1"}})
	ps, _ = e.c.Invite(e.name, p.uri())
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	for i, tc := range []struct {
		to   string
		want int
	}{
		{"tel:+15551234", 403},
		{"sip:bob@127.0.0.1;method=MESSAGE", 403},
		{"sip:bob@127.0.0.1?Replaces=abc", 403},
		{"not a uri", 400},
	} {
		if res := referInDialog(t, p, p.lastInvite(), tc.to, uint32(20+i)); res.StatusCode != tc.want {
			t.Errorf("Refer-To %q: %d, want %d", tc.to, res.StatusCode, tc.want)
		}
	}
}
