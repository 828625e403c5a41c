package conference

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

func endpointStatus(doc *ConferenceInfo, entity string) string {
	u := userOf(doc, entity)
	if u == nil || len(u.Endpoints) == 0 {
		return ""
	}
	return u.Endpoints[0].Status
}

// TestConferencePackage: a subscriber on sipgo, over UDP and TCP, IPv4
// and IPv6, follows a participant's invitation, a new stream, a role and
// its removal through full and partial documents, each validated against
// RFC 4575's schema; a refresh gets full state, an unsubscription a
// terminated NOTIFY, and so does the conference's end.
func TestConferencePackage(t *testing.T) {
	for _, tc := range []struct{ host, tr string }{{"127.0.0.1", "udp"}, {"127.0.0.1", "tcp"}, {"::1", "udp"}} {
		t.Run(tc.host+"/"+tc.tr, func(t *testing.T) {
			e := newEnv(t, tc.host, tc.tr)
			w := newWatcher(t, e, tc.tr)
			res := w.subscribe(600)
			if res.StatusCode != 200 {
				t.Fatalf("SUBSCRIBE: %d %s", res.StatusCode, res.Reason)
			}
			if h := res.GetHeader("Expires"); h == nil || h.Value() != "600" {
				t.Fatalf("Expires: %v", h)
			}
			if h := res.GetHeader("Contact"); h == nil || !strings.Contains(h.Value(), ";isfocus") {
				t.Fatalf("Contact without isfocus: %v", h)
			}
			w.until("full state", func(d *ConferenceInfo) bool {
				return d.Description != nil && d.Description.AvailableMedia != nil && len(d.Description.AvailableMedia.Entries) == 2
			})
			w.mu.Lock()
			first := w.kinds[0]
			mc := w.doc.Description.AvailableMedia.Entries[0].Multicast
			w.mu.Unlock()
			if first != StateFull || mc == nil || mc.Group == "" || mc.Port == 0 {
				t.Fatalf("first document %s, multicast %+v", first, mc)
			}
			desc, _ := e.c.Session(e.name)
			if g := desc.Media[0].Connection.Addr.String(); mc.Group != g {
				t.Fatalf("group %s in the document, %s in the session", mc.Group, g)
			}
			if tc.host == "127.0.0.1" && mc.TTL == 0 {
				t.Fatalf("IPv4 stream without TTL: %+v", mc)
			}

			p := e.peer(t, tc.tr)
			ps, err := e.c.Invite(e.name, p.uri())
			if err != nil {
				t.Fatal(err)
			}
			entity := anyURI(userEntity(p.uri()))
			w.until("the participant connected", func(d *ConferenceInfo) bool { return endpointStatus(d, entity) == "connected" })
			w.mu.Lock()
			u := userOf(w.doc, entity)
			ep := u.Endpoints[0]
			partials := 0
			for _, k := range w.kinds {
				if k == StatePartial {
					partials++
				}
			}
			w.mu.Unlock()
			if partials == 0 {
				t.Fatal("the changes came as full documents, not partial ones")
			}
			if ep.JoiningMethod != "dialed-out" || ep.CallInfo == nil || ep.CallInfo.SIP.CallID == "" || len(ep.Media) != 2 || ep.Media[0].Multicast == nil {
				t.Fatalf("endpoint: %+v", ep)
			}

			if _, err := e.c.AddStream(ctxT(t), e.name, sdp.MediaSpec{Kind: "audio"}); err != nil {
				t.Fatal(err)
			}
			w.until("the new stream", func(d *ConferenceInfo) bool {
				u := userOf(d, entity)
				return len(d.Description.AvailableMedia.Entries) == 3 && u != nil && len(u.Endpoints[0].Media) == 3
			})
			if _, err := e.c.SetRole(e.name, ps[0].ID, RoleListener); err != nil {
				t.Fatal(err)
			}
			w.until("the listener's role", func(d *ConferenceInfo) bool {
				u := userOf(d, entity)
				return u != nil && u.Roles != nil && u.Roles.Entries[0] == "listener" && u.Endpoints[0].Media[0].Status == "recvonly"
			})

			// A refresh: full state again.
			w.mu.Lock()
			n := len(w.kinds)
			w.mu.Unlock()
			if res := w.subscribe(600); res.StatusCode != 200 {
				t.Fatalf("refresh: %d", res.StatusCode)
			}
			w.until("full state after the refresh", func(*ConferenceInfo) bool {
				return len(w.kinds) > n && w.kinds[len(w.kinds)-1] == StateFull
			})

			if err := e.c.Remove(e.name, ps[0].ID); err != nil {
				t.Fatal(err)
			}
			w.until("the participant booted", func(d *ConferenceInfo) bool {
				u := userOf(d, entity)
				return u != nil && u.Endpoints[0].Status == "disconnected" && u.Endpoints[0].DisconnectionMethod == "booted"
			})
			w.mu.Lock()
			gaps := w.gaps
			for i := 1; i < len(w.versions); i++ {
				if w.versions[i] != w.versions[i-1]+1 {
					t.Errorf("versions %v do not go up by one", w.versions)
				}
			}
			w.mu.Unlock()
			if gaps != 0 {
				t.Fatalf("%d version gaps", gaps)
			}

			// The conference ends: terminated;reason=noresource.
			if err := e.c.Delete(ctxT(t), e.name); err != nil {
				t.Fatal(err)
			}
			w.until("the end of the subscription", func(*ConferenceInfo) bool {
				return strings.HasPrefix(w.lastStateLocked(), "terminated;reason=noresource")
			})
			eventually(t, "the subscription to be forgotten", func() bool {
				return e.c.Metrics().Subscriptions[eventConference] == 0
			})
		})
	}
}

// TestSubscribeRefusals: what a SUBSCRIBE mcc cannot serve gets.
func TestSubscribeRefusals(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	w := newWatcher(t, e, "udp")
	send := func(edit func(*sip.Request)) *sip.Response {
		t.Helper()
		req := w.request(sip.SUBSCRIBE, 600)
		edit(req)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := w.cl.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := send(func(r *sip.Request) { r.RemoveHeader("Event"); r.AppendHeader(sip.NewHeader("Event", "presence")) })
	if res.StatusCode != 489 || res.GetHeader("Allow-Events") == nil || !strings.Contains(res.GetHeader("Allow-Events").Value(), "conference") {
		t.Fatalf("unknown package: %d %v", res.StatusCode, res.GetHeader("Allow-Events"))
	}
	if res := send(func(r *sip.Request) { r.RemoveHeader("Event") }); res.StatusCode != 400 {
		t.Fatalf("no Event: %d", res.StatusCode)
	}
	if res := send(func(r *sip.Request) { r.RemoveHeader("Expires"); r.AppendHeader(sip.NewHeader("Expires", "10")) }); res.StatusCode != 423 || res.GetHeader("Min-Expires") == nil {
		t.Fatalf("Expires 10: %d", res.StatusCode)
	}
	if res := send(func(r *sip.Request) {
		r.RemoveHeader("Accept")
		r.AppendHeader(sip.NewHeader("Accept", "application/pidf+xml"))
	}); res.StatusCode != 406 {
		t.Fatalf("Accept: %d", res.StatusCode)
	}
	if res := send(func(r *sip.Request) { r.Recipient.User = "nobody" }); res.StatusCode != 404 {
		t.Fatalf("unknown conference: %d", res.StatusCode)
	}
	if res := send(func(r *sip.Request) { r.To().Params.Add("tag", "nosuch") }); res.StatusCode != 481 {
		t.Fatalf("unknown dialog: %d", res.StatusCode)
	}
	// OPTIONS says which packages mcc has.
	opt := w.request(sip.OPTIONS, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := w.cl.Do(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	if h := res.GetHeader("Allow-Events"); h == nil || !strings.Contains(h.Value(), "conference") || !strings.Contains(res.GetHeader("Allow").Value(), "SUBSCRIBE") {
		t.Fatalf("OPTIONS: %v %v", h, res.GetHeader("Allow"))
	}
}

// TestSubscribeFetchAndExpiry: Expires 0 is a fetch (RFC 6665 §4.4.3):
// one NOTIFY, terminated; a subscription left to run out ends with
// reason timeout.
func TestSubscribeFetchAndExpiry(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	w := newWatcher(t, e, "udp")
	if res := w.subscribe(0); res.StatusCode != 200 {
		t.Fatalf("fetch: %d", res.StatusCode)
	}
	w.until("the fetch's NOTIFY", func(*ConferenceInfo) bool { return strings.HasPrefix(w.lastStateLocked(), "terminated;reason=timeout") })
	w.mu.Lock()
	if len(w.kinds) != 1 || w.kinds[0] != StateFull {
		t.Fatalf("fetch: %v", w.kinds)
	}
	w.mu.Unlock()
	// A fetch in a fresh controller, before any change: it is forgotten
	// whole, its slot back in both bounds.
	eventually(t, "the fetch forgotten", func() bool {
		e.c.mu.Lock()
		defer e.c.mu.Unlock()
		from := 0
		for _, n := range e.c.subsFrom {
			from += n
		}
		return e.c.subCount == 0 && from == 0 && len(e.c.subs) == 0
	})

	// A short subscription, shortened here below the floor to run out.
	w2 := newWatcher(t, e, "udp")
	if res := w2.subscribe(60); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	w2.until("full state", func(d *ConferenceInfo) bool { return d.Users != nil })
	for _, s := range e.c.watch.of(e.name) {
		s.mu.Lock()
		s.expires = time.Now()
		s.mu.Unlock()
		s.poke()
	}
	w2.until("the expiry", func(*ConferenceInfo) bool {
		return strings.HasPrefix(w2.lastStateLocked(), "terminated;reason=timeout")
	})
}

// TestSubscriptionBounds: past SubscriptionsPerSource a source gets 503.
func TestSubscriptionBounds(t *testing.T) {
	e := newEnvWith(t, "127.0.0.1", func(c *Config) { c.Limits.SubscriptionsPerSource = 2 }, "udp")
	for i := 0; i < 3; i++ {
		w := newWatcher(t, e, "udp")
		res := w.subscribe(600)
		want := 200
		if i == 2 {
			want = 503
		}
		if res.StatusCode != want {
			t.Fatalf("subscription %d: %d, want %d", i, res.StatusCode, want)
		}
	}
	if n := e.c.Metrics().Subscriptions[eventConference]; n != 2 {
		t.Fatalf("%d subscriptions held", n)
	}
}

func TestAcceptsConferenceInfo(t *testing.T) {
	for _, tc := range []struct {
		accept []string
		want   bool
	}{
		{nil, true},
		{[]string{"application/conference-info+xml"}, true},
		{[]string{"application/pidf+xml", "application/*"}, true},
		{[]string{"application/pidf+xml, */*;q=0.1"}, true},
		{[]string{"application/conference-info+xml;q=0"}, false},
		{[]string{"application/conference-info+xml; q=0.000"}, false},
		{[]string{"*/*;q=0, application/pidf+xml"}, false},
		{[]string{"*/*, application/conference-info+xml;q=0"}, false}, // the specific range wins (RFC 9110 §12.5.1)
		{[]string{"application/*;q=0", "application/conference-info+xml"}, true},
		{[]string{"application/conference-info+xml;q=0.5"}, true},
		{[]string{"text/plain"}, false},
		{[]string{""}, false}, // an empty Accept: no format is acceptable (RFC 3261 §20.1)
	} {
		req := sip.NewRequest(sip.SUBSCRIBE, sip.Uri{Scheme: "sip", User: "lecture", Host: "127.0.0.1"})
		for _, a := range tc.accept {
			req.AppendHeader(sip.NewHeader("Accept", a))
		}
		if got := acceptsConferenceInfo(req); got != tc.want {
			t.Errorf("Accept %q: %v, want %v", tc.accept, got, tc.want)
		}
	}
}

// TestLargeRosterOverTCP: a roster too large for UDP goes over UDP,
// fragmented, until the subscriber has answered a NOTIFY (a forged
// source makes mcc connect to nobody); then over TCP when it listens
// there too (RFC 3261 §18.1.1), else over UDP again.
func TestLargeRosterOverTCP(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp", "tcp")
	for range 4 {
		p := e.peer(t, "udp")
		ps, err := e.c.Invite(e.name, p.uri())
		if err != nil {
			t.Fatal(err)
		}
		waitState(t, e.c, e.name, ps[0].ID, Joined)
	}
	for _, tcpToo := range []bool{true, false} {
		w := newWatcher(t, e, "udp")
		if tcpToo {
			ln, err := net.Listen("tcp", w.addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			go w.srv.ServeTCP(ln)
		}
		if res := w.subscribe(600); res.StatusCode != 200 {
			t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
		}
		w.until("the whole roster", func(d *ConferenceInfo) bool { return d.Users != nil && len(d.Users.Users) == 4 })
		// A refresh: full state again, now that it answered one.
		if res := w.subscribe(600); res.StatusCode != 200 {
			t.Fatalf("refresh: %d", res.StatusCode)
		}
		w.until("full state after the refresh", func(*ConferenceInfo) bool { return len(w.kinds) == 2 })
		w.mu.Lock()
		size, first, second := len(w.bodies[1]), w.via[0], w.via[1]
		w.mu.Unlock()
		want := "UDP"
		if tcpToo {
			want = "TCP"
		}
		if size <= udpLimit || first != "UDP" || second != want {
			t.Fatalf("TCP too %v: %d-byte rosters came over %s, then %s; want UDP, then %s", tcpToo, size, first, second, want)
		}
	}
}
