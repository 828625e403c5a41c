package conference

import (
	"errors"
	"strings"
	"testing"

	"mcc/sdp"
)

// TestFollowHeardSession: a conference made from a heard session takes
// the announcer's changes to everyone by re-INVITE (a changed group, a
// stream the announcer dropped kept at port 0, the version up by one
// even when the announcer writes 0 every time), and its end as it was
// told: kept, or ended with BYE. Each appears as a "sap" event.
func TestFollowHeardSession(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	events, _, cancel := e.c.Subscribe()
	defer cancel()
	first := "v=0\r\no=- 0 0 IN IP4 192.0.2.9\r\ns=Relay\r\nt=0 0\r\n" +
		"m=audio 5004 RTP/AVP 0\r\nc=IN IP4 239.255.9.1/8\r\nm=video 5006 RTP/AVP 96\r\nc=IN IP4 239.255.9.2/8\r\na=rtpmap:96 H264/90000\r\n"
	for _, onEnd := range []string{FollowKeep, FollowEnd} {
		name := "relay-" + onEnd
		in, err := e.c.ImportFollowing(name, sdp.MustParse(first), Access{}, Follow{Heard: "- 0 192.0.2.9 192.0.2.9", Hash: 1, OnEnd: onEnd})
		if err != nil {
			t.Fatal(err)
		}
		if in.Follow == nil || in.Follow.OnEnd != onEnd {
			t.Fatalf("Info.Follow = %+v", in.Follow)
		}
		if got := e.c.Following(); got[name].Heard != "- 0 192.0.2.9 192.0.2.9" {
			t.Fatalf("Following = %v", got)
		}
		p := e.peer(t, "udp")
		ps, _ := e.c.Invite(name, p.uri())
		waitState(t, e.c, name, ps[0].ID, Joined)
		offer, _ := sdp.Parse(p.lastInvite().Body())

		// ffmpeg-like: the same o=, version 0 again, the audio moved and
		// the video gone.
		changed := sdp.MustParse(strings.NewReplacer("239.255.9.1", "239.255.9.3").Replace(first[:strings.Index(first, "m=video")]))
		ch, err := e.c.Replace(ctxT(t), name, changed, 2)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Version != 1 || !ch.Done || ch.Results[0].Acked != 1 {
			t.Fatalf("Replace = %+v", ch)
		}
		re, err := sdp.Parse(p.lastInvite().Body())
		if err != nil {
			t.Fatal(err)
		}
		if err := sdp.CheckUpdate(offer, re); err != nil {
			t.Fatalf("the re-INVITE is not a valid update (RFC 3264 §8): %v\n%s", err, p.lastInvite().Body())
		}
		if len(re.Media) != 2 || re.Media[0].Connection.Addr.String() != "239.255.9.3" || re.Media[1].Port != 0 {
			t.Fatalf("the re-offer:\n%s", p.lastInvite().Body())
		}
		if f := e.c.Following()[name]; f.Hash != 2 {
			t.Fatalf("the applied hash: %+v", f)
		}
		// The same session under another hash (another profile's text of
		// it): nobody is re-INVITEd.
		invites, _, _ := p.counts()
		if ch, err := e.c.Replace(ctxT(t), name, changed, 9); err != nil || ch.Version != 0 {
			t.Fatalf("Replace with the same description: %+v, %v", ch, err)
		}
		if n, _, _ := p.counts(); n != invites || e.c.Following()[name].Hash != 9 {
			t.Fatalf("the same description: %d INVITEs (had %d), hash %d", n, invites, e.c.Following()[name].Hash)
		}
		// A description of another session is refused, and changes nothing.
		other := sdp.MustParse(strings.Replace(first, "o=- 0 0", "o=- 5 0", 1))
		if _, err := e.c.Replace(ctxT(t), name, other, 3); !errors.Is(err, sdp.ErrInvalid) {
			t.Fatalf("another session's description: %v", err)
		}

		if err := e.c.SourceGone(ctxT(t), name, "deleted"); err != nil {
			t.Fatal(err)
		}
		_, _, byes := p.counts()
		info, err := e.c.Get(name)
		switch onEnd {
		case FollowKeep:
			if err != nil || info.Follow == nil || info.Follow.Gone != "deleted" || byes != 0 {
				t.Fatalf("kept: %+v, %v, %d BYEs", info.Follow, err, byes)
			}
			if _, ok := e.c.Following()[name]; ok {
				t.Fatal("a conference whose announcement went is still followed")
			}
			if _, err := e.c.Replace(ctxT(t), name, changed, 4); !errors.Is(err, ErrNotFollowing) {
				t.Fatalf("Replace after the end: %v", err)
			}
		case FollowEnd:
			if !errors.Is(err, ErrUnknown) || byes != 1 {
				t.Fatalf("ended: %v, %d BYEs", err, byes)
			}
		}
	}
	var saw []string
	for len(events) > 0 {
		if ev := <-events; ev.Kind == "sap" {
			saw = append(saw, ev.Conference+": "+ev.Detail)
		}
	}
	want := []string{"relay-keep: changed: version 1 re-offered to everyone", "relay-keep: deleted: the conference is kept",
		"relay-end: changed: version 1 re-offered to everyone", "relay-end: deleted: the conference ends"}
	if strings.Join(saw, "\n") != strings.Join(want, "\n") {
		t.Fatalf("sap events:\n%s\nwant:\n%s", strings.Join(saw, "\n"), strings.Join(want, "\n"))
	}
}
