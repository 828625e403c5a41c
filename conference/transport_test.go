package conference

import (
	"strings"
	"testing"

	"mcc/sdp"
)

// TestTransports runs dial-out, a stream added for everyone and a dial-in
// over UDP, TCP and TLS, on IPv4 and IPv6 loopback.
func TestTransports(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		for _, tr := range []string{"udp", "tcp", "tls"} {
			t.Run(tr+"-"+host, func(t *testing.T) {
				e := newEnv(t, host, tr)
				p := e.peer(t, tr)
				ps, err := e.c.Invite(e.name, p.uri())
				if err != nil {
					t.Fatal(err)
				}
				waitState(t, e.c, e.name, ps[0].ID, Joined)
				ch, err := e.c.AddStream(ctxT(t), e.name, sdp.MediaSpec{Kind: "video"})
				if err != nil {
					t.Fatal(err)
				}
				if r := ch.Results[0]; len(r.Streams) != 3 || r.Streams[2] != "accepted" || r.Version != 2 {
					t.Fatalf("after AddStream: %+v", r)
				}
				if got := p.lastInvite().Transport(); got != map[string]string{"udp": "UDP", "tcp": "TCP", "tls": "TLS"}[tr] {
					t.Fatalf("re-INVITE came over %s", got)
				}
				// A second participant dials in, without SDP.
				q := e.peer(t, tr)
				call := q.dialIn(t, e.c.URI(e.name)+uriParams(tr), nil, func(offer *sdp.Session) []byte {
					b, _ := sdp.Answer(offer, sdp.Origin{Username: "bob", SessionID: 7, Version: 1, Host: "bob.example"}).Marshal()
					return b
				})
				if call.res.StatusCode != 200 {
					t.Fatalf("dial-in: %d %s", call.res.StatusCode, call.res.Reason)
				}
				eventually(t, "the dial-in to join", func() bool {
					ps, _ := e.c.Participants(e.name)
					return len(ps) == 2 && ps[1].State == Joined && len(ps[1].Streams) == 3
				})
			})
		}
	}
}

func uriParams(tr string) string {
	if tr == "udp" {
		return ""
	}
	return ";transport=" + tr
}

// TestLargeOfferToUDPOnlyParticipant: an offer over 1300 bytes goes over
// TCP where mcc listens on it (RFC 3261 §18.1.1); a participant that has
// no TCP gets it over UDP instead, fragmented, for the INVITE and for the
// re-INVITE of a change alike, rather than not at all.
func TestLargeOfferToUDPOnlyParticipant(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp", "tcp")
	var media []sdp.MediaSpec
	for range 12 {
		media = append(media, sdp.MediaSpec{Kind: "audio"})
	}
	if _, err := e.c.CreateSession("big", sdp.SessionSpec{Name: "big", Pool: "ipv4-local", Media: media}, Access{}); err != nil {
		t.Fatal(err)
	}
	p := e.peer(t, "udp") // nothing listens on TCP at its port: a TCP connect is refused
	ps, err := e.c.Invite("big", p.uri())
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.c, "big", ps[0].ID, Joined)
	if n := len(p.lastInvite().String()); n <= udpLimit {
		t.Fatalf("the INVITE is %d bytes: the test shows nothing", n)
	}
	ch, err := e.c.AddStream(ctxT(t), "big", sdp.MediaSpec{Kind: "video"})
	if err != nil || !ch.Done || len(ch.Results) != 1 || ch.Results[0].Acked != ch.Version {
		t.Fatalf("the change: %+v %v", ch, err)
	}
	if inv := p.lastInvite(); len(inv.String()) <= udpLimit || !strings.Contains(string(inv.Body()), "m=video") || inv.Transport() != "UDP" {
		t.Fatalf("the re-INVITE: %d bytes over %s", len(inv.String()), inv.Transport())
	}
}
