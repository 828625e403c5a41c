package sap

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"mcc/multicast"
	"mcc/sdp"
)

// stageBox is a two-stream AES67 session as mcc holds it: media-level c=
// (what mcc writes for SIP), attributes in mcc's order.
const stageBox = "v=0\r\no=- 1415370 1415371 IN IP4 192.0.2.81\r\ns=Stage box\r\nt=0 0\r\na=keywds:Dante\r\n" +
	"m=audio 5004 RTP/AVP 97\r\ni=2 channels: Left Right\r\nc=IN IP4 239.69.1.1/32\r\n" +
	"a=rtpmap:97 L24/48000/2\r\na=source-filter: incl IN IP4 239.69.1.1 192.0.2.81\r\na=mediaclk:direct=0\r\n" +
	"a=ts-refclk:ptp=IEEE1588-2008:00-1D-C1-FF-FE-50-36-33:0\r\na=framecount:48\r\na=ptime:1\r\na=recvonly\r\n" +
	"m=audio 5006 RTP/AVP 97\r\nc=IN IP4 239.69.1.1/32\r\na=rtpmap:97 L24/48000/2\r\na=x-vendor:kept\r\na=ptime:1\r\na=recvonly\r\n"

func TestProfileFormat(t *testing.T) {
	desc := sdp.MustParse(stageBox)
	for _, tc := range []struct {
		profile string
		want    []string // lines in this order, each after the one before
		lf      bool
	}{
		{"rfc2974", []string{"v=0", "c=IN IP4 239.69.1.1/32", "a=rtpmap:97 L24/48000/2", "a=source-filter: incl IN IP4 239.69.1.1 192.0.2.81",
			"a=mediaclk:direct=0", "a=ts-refclk:", "a=framecount:48", "a=ptime:1", "a=recvonly"}, false},
		// Dante Controller's order: one session-level c=, then per stream
		// direction, rtpmap, source-filter, ptime, framecount, ts-refclk,
		// mediaclk, and what else there is in its own order.
		{"aes67", []string{"v=0", "s=Stage box", "c=IN IP4 239.69.1.1/32", "t=0 0", "m=audio 5004", "i=2 channels", "a=recvonly", "a=rtpmap:97",
			"a=source-filter:", "a=ptime:1", "a=framecount:48", "a=ts-refclk:", "a=mediaclk:direct=0",
			"m=audio 5006", "a=recvonly", "a=rtpmap:97", "a=ptime:1", "a=x-vendor:kept"}, false},
		{"pipewire", []string{"c=IN IP4 239.69.1.1/32", "t=0 0", "m=audio 5004", "a=recvonly", "a=rtpmap:97"}, true},
		{"pulseaudio", []string{"v=0", "m=audio 5004", "c=IN IP4 239.69.1.1/32", "a=rtpmap:97"}, true},
		{"vlc", []string{"v=0", "m=audio 5004", "c=IN IP4"}, false},
		{"ffmpeg", []string{"v=0", "m=audio 5004", "c=IN IP4"}, false},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			p, err := ProfileByName(tc.profile)
			if err != nil {
				t.Fatal(err)
			}
			b, err := p.Format(desc)
			if err != nil {
				t.Fatal(err)
			}
			text := string(b)
			if tc.lf && strings.Contains(text, "\r") || !tc.lf && strings.Count(text, "\r\n") != strings.Count(text, "\n") {
				t.Fatalf("line endings (LF only: %v):\n%q", tc.lf, text)
			}
			// PulseAudio 16.1 takes nothing but a text that starts "v=0\n".
			if tc.profile == "pulseaudio" && !strings.HasPrefix(text, "v=0\n") {
				t.Fatalf("PulseAudio's header: %q", text)
			}
			lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
			at := 0
			for _, w := range tc.want {
				i := slices.IndexFunc(lines[at:], func(l string) bool { return strings.HasPrefix(l, w) })
				if i < 0 {
					t.Fatalf("%q missing, or out of order, after line %d:\n%s", w, at, text)
				}
				at += i + 1
			}
			// Whatever the profile writes reads back as the same session.
			back, err := sdp.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if back.Origin != desc.Origin || len(back.Media) != 2 {
				t.Fatalf("read back: %+v", back)
			}
			for i, m := range back.Media {
				if c := back.EffectiveConnection(m); c == nil || *c != *desc.Media[i].Connection {
					t.Fatalf("stream %d's connection: %v", i, c)
				}
				if len(m.Attributes) != len(desc.Media[i].Attributes) {
					t.Fatalf("stream %d's attributes: %v, want %v", i, m.Attributes, desc.Media[i].Attributes)
				}
			}
		})
	}
	// Streams on different groups keep their c= lines in the Dante order.
	two := sdp.MustParse(strings.Replace(stageBox, "m=audio 5006 RTP/AVP 97\r\nc=IN IP4 239.69.1.1/32", "m=audio 5006 RTP/AVP 97\r\nc=IN IP4 239.69.1.2/32", 1))
	p, _ := ProfileByName("dante")
	b, _ := p.Format(two)
	if strings.Count(string(b), "c=") != 2 || strings.Contains(string(b), "s=Stage box\r\nc=") {
		t.Fatalf("two groups, Dante order:\n%s", b)
	}
}

func TestProfileGroups(t *testing.T) {
	for _, tc := range []struct {
		profile, group, want string
	}{
		{"rfc2974", "239.255.1.1", "239.255.255.255"},
		{"rfc2974", "224.2.1.1", "224.2.127.254"},
		{"rfc2974", "ff15::1", "ff05::2:7ffe"},
		{"aes67", "239.69.1.1", "239.255.255.255"},
		{"aes67", "ff15::1", ""},
		{"pipewire", "239.255.1.1", "224.0.0.56"},
		{"pipewire", "ff12::1", "ff02::2:7ffe"},
		{"pulseaudio", "239.195.1.1", "224.0.0.56"},
		{"vlc", "239.195.1.1", "239.195.255.255"},
		{"ffmpeg", "239.255.1.1", "224.2.127.254"},
		{"ffmpeg", "ff1e::1", "ff0e::2:7ffe"},
	} {
		p, err := ProfileByName(tc.profile)
		if err != nil {
			t.Fatal(err)
		}
		g, err := p.group(netip.MustParseAddr(tc.group))
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s %s: %v, want an error", tc.profile, tc.group, g)
			}
			continue
		}
		if err != nil || g.String() != tc.want {
			t.Errorf("%s %s: %v %v, want %s", tc.profile, tc.group, g, err, tc.want)
		}
	}
}

func TestParseProfiles(t *testing.T) {
	ps, err := ParseProfiles("PulseAudio, dante,aes67,rfc2974")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "pulseaudio,aes67,rfc2974" {
		t.Fatalf("%v", names)
	}
	for _, bad := range []string{"", " , ", "sdr", "rfc2974,x"} {
		if _, err := ParseProfiles(bad); err == nil || !strings.Contains(err.Error(), "rfc2974, aes67") {
			t.Errorf("%q: %v, want an error naming the profiles", bad, err)
		}
	}
}

func TestFixedInterval(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		// Few ads: the profile's 5 s, give or take a tenth.
		if d := FixedInterval(r, 5*time.Second, 3, 500, 0); d < 4500*time.Millisecond || d > 5500*time.Millisecond {
			t.Fatalf("3 ads: %v", d)
		}
		// 100 ads of 500 bytes pass 4000 bit/s at 5 s: 100 s apart.
		if d := FixedInterval(r, 5*time.Second, 100, 500, 0); d < 90*time.Second || d > 110*time.Second {
			t.Fatalf("100 ads: %v", d)
		}
	}
}

// TestProfilesOnTheWire runs TestProfilesOnTheWireChild in a network
// namespace of its own.
func TestProfilesOnTheWire(t *testing.T) { inOwnNetns(t, "TestProfilesOnTheWireChild") }

// TestProfilesOnTheWireChild announces one session under three profiles
// and reads what reaches each profile's group; then drops two of them and
// reads their deletions. It runs only inside TestProfilesOnTheWire's
// namespace.
func TestProfilesOnTheWireChild(t *testing.T) {
	if os.Getenv("MCC_SAP_NETNS") == "" {
		t.Skip("the body of TestProfilesOnTheWire; runs only in the namespace that test creates")
	}
	for _, c := range [][]string{{"link", "set", "lo", "up"}, {"route", "add", "224.0.0.0/4", "dev", "lo"}} {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", c, err, out)
		}
	}
	lo, _ := net.InterfaceByName("lo")
	l, err := multicast.ListenGroupAt(netip.MustParseAddrPort("0.0.0.0:9875"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, g := range []netip.Addr{LinkGroup, LocalGroup, GlobalGroup} {
		if err := l.Join(lo, g); err != nil {
			t.Fatal(err)
		}
	}
	s4, err := multicast.ListenGroupAt(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer s4.Close()
	s4.SetInterface(lo)
	s4.SetLoopback(true)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	ann := NewAnnouncer(AnnouncerConfig{Senders: []Sender{{s4, netip.MustParseAddr("127.0.0.1")}}})
	go func() { ann.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	desc := sdp.MustParse(stageBox)
	ps, _ := ParseProfiles("pulseaudio,aes67,ffmpeg")
	if err := ann.Announce("box", desc, ps...); err != nil {
		t.Fatal(err)
	}
	type heard struct {
		p   *Packet
		dst netip.Addr
	}
	read := func(n int) []heard {
		var out []heard
		buf := make([]byte, 65536)
		l.SetReadDeadline(time.Now().Add(5 * time.Second))
		for len(out) < n {
			k, _, dst, err := l.ReadFrom(buf)
			if err != nil {
				t.Fatalf("after %d packets: %v", len(out), err)
			}
			p, err := Decode(buf[:k])
			if err != nil {
				t.Fatalf("packet to %v: %v", dst, err)
			}
			p.Payload = slices.Clone(p.Payload)
			out = append(out, heard{p, dst})
		}
		return out
	}
	got := map[netip.Addr]*Packet{}
	for _, h := range read(3) {
		if h.p.Delete || h.p.PayloadType != SDPType {
			t.Fatalf("to %v: %+v", h.dst, h.p)
		}
		got[h.dst] = h.p
	}
	pa, dante, ff := got[LinkGroup], got[LocalGroup], got[GlobalGroup]
	if pa == nil || dante == nil || ff == nil {
		t.Fatalf("one packet to each profile's group: %v", got)
	}
	if !strings.HasPrefix(string(pa.Payload), "v=0\n") || strings.Contains(string(pa.Payload), "\r") {
		t.Fatalf("PulseAudio's: %q", pa.Payload)
	}
	if !strings.Contains(string(dante.Payload), "s=Stage box\r\nc=IN IP4 239.69.1.1/32\r\nt=0 0\r\n") {
		t.Fatalf("Dante's: %q", dante.Payload)
	}
	if !strings.HasPrefix(string(ff.Payload), "v=0\r\n") {
		t.Fatalf("ffmpeg's: %q", ff.Payload)
	}
	// Three texts of one version of the session: one hash (RFC 2974 §5),
	// so that a listener of several groups hears no change.
	if pa.Hash != dante.Hash || dante.Hash != ff.Hash || string(pa.Payload) == string(dante.Payload) {
		t.Fatalf("hashes %d %d %d, want one for the three texts", pa.Hash, dante.Hash, ff.Hash)
	}
	// Dropping two profiles sends their deletions, each with its own hash.
	aes, _ := ProfileByName("aes67")
	if err := ann.Announce("box", desc, aes); err != nil {
		t.Fatal(err)
	}
	dels := map[netip.Addr]uint16{}
	for _, h := range read(2) {
		if !h.p.Delete {
			t.Fatalf("to %v: an announcement, want a deletion", h.dst)
		}
		dels[h.dst] = h.p.Hash
	}
	if dels[LinkGroup] != pa.Hash || dels[GlobalGroup] != ff.Hash {
		t.Fatalf("deletions %v, want PulseAudio's %d and ffmpeg's %d", dels, pa.Hash, ff.Hash)
	}
	// The profile kept keeps its schedule: nothing more within a second.
	l.SetReadDeadline(time.Now().Add(time.Second))
	if _, _, dst, err := l.ReadFrom(make([]byte, 65536)); err == nil {
		t.Fatalf("a packet to %v; the kept profile's was unchanged", dst)
	}
	// PulseAudio's and PipeWire's listeners share 224.0.0.56: the two
	// profiles make one announcement there that both take (LF, PipeWire's
	// order), never two texts of one session that would look like a
	// change at every packet. The dropped AES67 group gets its deletion.
	ps, _ = ParseProfiles("pulseaudio,pipewire")
	if err := ann.Announce("box", desc, ps...); err != nil {
		t.Fatal(err)
	}
	var link *Packet
	for _, h := range read(2) {
		switch {
		case h.dst == LocalGroup && h.p.Delete && h.p.Hash == dante.Hash:
		case h.dst == LinkGroup && !h.p.Delete && link == nil:
			link = h.p
		default:
			t.Fatalf("to %v: %+v", h.dst, h.p)
		}
	}
	if link == nil || strings.Contains(string(link.Payload), "\r") || !strings.Contains(string(link.Payload), "s=Stage box\nc=IN IP4 239.69.1.1/32\nt=0 0\n") {
		t.Fatalf("the merged announcement: %+v", link)
	}
	if err := ann.Withdraw("box"); err != nil {
		t.Fatal(err)
	}
	if h := read(1)[0]; h.dst != LinkGroup || !h.p.Delete || h.p.Hash != link.Hash {
		t.Fatalf("withdrawn: to %v %+v", h.dst, h.p)
	}
}

// TestOwnAnnouncementsLeftOut: a host hears its own announcements over
// multicast loopback; the directory its announcer was given leaves them,
// and its deletions, out of what it heard, while the interval still
// counts them.
func TestOwnAnnouncementsLeftOut(t *testing.T) {
	c, err := multicast.ListenGroupAt(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := NewDirectory(DirectoryConfig{})
	me := netip.MustParseAddr("192.0.2.7")
	ann := NewAnnouncer(AnnouncerConfig{Senders: []Sender{{c, me}}, Directory: dir})
	desc := sdp.MustParse(strings.ReplaceAll(stageBox, "239.69.1.1", "239.255.69.1"))
	if err := ann.Announce("box", desc); err != nil {
		t.Fatal(err)
	}
	var pkt []byte
	var p *Packet
	for _, s := range ann.sessions["box"] {
		pkt, p = s.out[0].pkt, s.out[0].p
	}
	if err := dir.Handle(me, LocalGroup, pkt); !errors.Is(err, ErrIgnored) {
		t.Fatalf("own announcement: %v", err)
	}
	// Another host's announcement of the same text is heard.
	other := *p
	other.Origin = netip.MustParseAddr("192.0.2.8")
	b, _ := other.Encode(false)
	if err := dir.Handle(other.Origin, LocalGroup, b); err != nil {
		t.Fatal(err)
	}
	if l := dir.List(); len(l) != 1 || l[0].Source != other.Origin {
		t.Fatalf("directory %+v", l)
	}
	// A change: the packets of the version replaced, still on their way
	// back over loopback, are still the announcer's own.
	changed := desc.Clone()
	changed.Name = "Stage box, changed"
	if err := ann.Announce("box", changed); err != nil {
		t.Fatal(err)
	}
	if err := dir.Handle(me, LocalGroup, pkt); !errors.Is(err, ErrIgnored) {
		t.Fatalf("own announcement of the version replaced: %v", err)
	}
	ann.Withdraw("box")
	del := *p
	del.Delete = true
	b, _ = del.Encode(false)
	if err := dir.Handle(me, LocalGroup, b); !errors.Is(err, ErrIgnored) {
		t.Fatalf("own deletion: %v", err)
	}
	if st := dir.Stats(); st.Own != 3 || st.Announcements != 1 || st.Deletions != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestChangedTextNewHash: a change whose text hashes as the text it
// replaces (16 bits collide) still goes out, under another hash (RFC 2974
// §5: a changed description has a new one).
func TestChangedTextNewHash(t *testing.T) {
	c, err := multicast.ListenGroupAt(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ann := NewAnnouncer(AnnouncerConfig{Senders: []Sender{{c, netip.MustParseAddr("192.0.2.7")}}})
	one := sdp.MustParse(strings.ReplaceAll(stageBox, "239.69.1.1", "239.255.69.1"))
	two := one.Clone()
	two.Name = "Stage box, two"
	if err := ann.Announce("box", one); err != nil {
		t.Fatal(err)
	}
	b, _ := two.Marshal()
	collide := Hash(b)
	ann.mu.Lock()
	for _, s := range ann.sessions["box"] {
		s.hash = collide // as if the first text had hashed the same
	}
	ann.mu.Unlock()
	if err := ann.Announce("box", two); err != nil {
		t.Fatal(err)
	}
	var bumped uint16
	for _, s := range ann.sessions["box"] {
		if s.hash == collide || !bytes.Contains(s.out[0].pkt, []byte("s=Stage box, two")) {
			t.Fatalf("the change went out as %d (the old hash %d), text %q", s.hash, collide, s.out[0].p.Payload)
		}
		bumped = s.hash
	}
	// Announced again unchanged (mcc does, every minute): the same hash.
	if err := ann.Announce("box", two); err != nil {
		t.Fatal(err)
	}
	for _, s := range ann.sessions["box"] {
		if s.hash != bumped {
			t.Fatalf("the same text again went out as %d, was %d", s.hash, bumped)
		}
	}
}
