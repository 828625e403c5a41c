package conference

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

// TestRoleDuringItsReinvite: a role given while the re-INVITE of the role
// before is still unanswered is not lost when that answer comes: a second
// re-INVITE carries it.
func TestRoleDuringItsReinvite(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	ps, err := e.c.Invite(e.name, p.uri())
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	var slow atomic.Bool
	answering := make(chan struct{}, 4)
	p.answerWith(func(req *sip.Request, offer *sdp.Session) (int, *sdp.Session) {
		if slow.Load() {
			answering <- struct{}{}
			time.Sleep(300 * time.Millisecond) // the next role comes meanwhile
		}
		return 200, nil
	})
	slow.Store(true)
	if _, err := e.c.SetRole(e.name, ps[0].ID, RoleSpeaker); err != nil {
		t.Fatal(err)
	}
	select {
	case <-answering:
	case <-time.After(10 * time.Second):
		t.Fatal("no re-INVITE for the speaker's role")
	}
	slow.Store(false)
	if _, err := e.c.SetRole(e.name, ps[0].ID, RoleListener); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a re-INVITE with the listener's offer", func() bool {
		inv := p.lastInvite()
		return strings.Contains(string(inv.Body()), "a=recvonly") && !strings.Contains(string(inv.Body()), "a=sendrecv")
	})
	n, _, _ := p.counts()
	if n < 3 {
		t.Fatalf("%d INVITEs: the first, the speaker's, the listener's", n)
	}
}

// TestRoleRejoin: a user agent that leaves its group on a re-INVITE
// (linphone: mcc rejoins it, BYE and a new INVITE) takes one role, then
// another, at one version of the session: each is a change of its own,
// not the "rejoined for this version already" that stops a loop.
func TestRoleRejoin(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	p.mu.Lock()
	p.extra = func(*sip.Request, int) []sip.Header {
		return []sip.Header{sip.NewHeader("User-Agent", "Linphone Desktop/5.2 (belle-sip/5.2)")}
	}
	p.mu.Unlock()
	ps, err := e.c.Invite(e.name, p.uri())
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.c, e.name, ps[0].ID, Joined)
	for i, role := range []Role{RoleSpeaker, RoleListener} {
		want := "a=sendrecv"
		if role == RoleListener {
			want = "a=recvonly"
		}
		if _, err := e.c.SetRole(e.name, ps[0].ID, role); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the new INVITE with the "+string(role)+"'s offer", func() bool {
			n, _, byes := p.counts()
			return n == 2+i && byes == 1+i && strings.Contains(string(p.lastInvite().Body()), want)
		})
		eventually(t, "joined with the role", func() bool {
			all, _ := e.c.Participants(e.name)
			return len(all) == 1 && all[0].State == Joined && all[0].Role == role && !all[0].Behind
		})
	}
}
