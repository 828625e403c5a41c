package sap

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"mcc/internal/peertest"
	"mcc/multicast"
	"mcc/sdp"
)

// TestAnnounceAndHear runs TestAnnounceAndHearChild in a network namespace
// of its own, where multicast cannot leave the machine.
func TestAnnounceAndHear(t *testing.T) { inOwnNetns(t, "TestAnnounceAndHearChild") }

// inOwnNetns runs test child of this binary in a namespace of its own,
// with MCC_SAP_NETNS set there.
func inOwnNetns(t *testing.T, child string) { peertest.InOwnNetns(t, child, "MCC_SAP_NETNS") }

// TestAnnounceAndHearChild announces an IPv4 session on loopback and an
// IPv6 one on a veth pair, hears both, hears a change at once, and a
// deletion. It runs only inside TestAnnounceAndHear's namespace.
func TestAnnounceAndHearChild(t *testing.T) {
	if os.Getenv("MCC_SAP_NETNS") == "" {
		t.Skip("the body of TestAnnounceAndHear; runs only in the namespace that test creates")
	}
	for _, c := range [][]string{
		{"link", "set", "lo", "up"}, {"route", "add", "224.0.0.0/4", "dev", "lo"},
		{"link", "add", "mcc0", "type", "veth", "peer", "name", "mcc1"},
		{"link", "set", "mcc0", "up"}, {"link", "set", "mcc1", "up"},
		{"-6", "addr", "add", "fd00:97::1/64", "dev", "mcc0", "nodad"},
	} {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", c, err, out)
		}
	}
	lo, _ := net.InterfaceByName("lo")
	veth, _ := net.InterfaceByName("mcc0")
	open := func(laddr string, ifi *net.Interface) *multicast.GroupConn {
		c, err := multicast.ListenGroupAt(netip.MustParseAddrPort(laddr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.SetInterface(ifi); err != nil {
			t.Fatal(err)
		}
		c.SetLoopback(true)
		return c
	}
	l4, l6 := open("0.0.0.0:9875", lo), open("[::]:9875", veth)
	if err := l4.Join(lo, LocalGroup); err != nil {
		t.Fatal(err)
	}
	if err := l6.Join(veth, netip.MustParseAddr("ff05::2:7ffe")); err != nil {
		t.Fatal(err)
	}
	s4, s6 := open("127.0.0.1:0", lo), open("[fd00:97::1]:0", veth)

	ctx, cancel := context.WithCancel(context.Background())
	dir := NewDirectory(DirectoryConfig{})
	done := make(chan struct{}, 2)
	go func() { Listen(ctx, dir, nil, l4, l6); done <- struct{}{} }()
	// The announcer is another host's: given dir, it would have dir
	// leave its announcements out (TestOwnAnnouncementsLeftOut).
	ann := NewAnnouncer(AnnouncerConfig{Senders: []Sender{{s4, netip.MustParseAddr("127.0.0.1")}, {s6, netip.MustParseAddr("fd00:97::1")}},
		Compress: true, FastStart: 2, FastInterval: 100 * time.Millisecond})
	go func() { ann.Run(ctx); done <- struct{}{} }()
	defer func() { cancel(); <-done; <-done }()

	v4 := sdp.MustParse("v=0\r\no=mcc 1 1 IN IP4 127.0.0.1\r\ns=Four\r\nt=0 0\r\nm=audio 16384 RTP/AVP 0\r\nc=IN IP4 239.255.1.1/1\r\n")
	v6 := sdp.MustParse("v=0\r\no=mcc 2 1 IN IP6 fd00:97::1\r\ns=Six\r\nt=0 0\r\nm=audio 16384 RTP/AVP 0\r\nc=IN IP6 ff15::8000:1\r\n")
	if err := ann.Announce("four", v4); err != nil {
		t.Fatal(err)
	}
	if err := ann.Announce("six", v6); err != nil {
		t.Fatal(err)
	}
	wait := func(what string, f func([]Heard) bool) []Heard {
		deadline := time.Now().Add(5 * time.Second)
		for {
			l := dir.List()
			if f(l) {
				return l
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; directory %+v, stats %+v", what, l, dir.Stats())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	l := wait("both sessions", func(l []Heard) bool { return len(l) == 2 })
	if l[0].Name != "Four" || l[0].Groups[0].String() != "239.255.1.1" || l[0].SAPGroup != LocalGroup || l[0].Source.String() != "127.0.0.1" {
		t.Fatalf("IPv4 session: %+v", l[0])
	}
	if l[1].Name != "Six" || l[1].Groups[0].String() != "ff15::8000:1" || l[1].SAPGroup.String() != "ff05::2:7ffe" || l[1].Source.String() != "fd00:97::1" {
		t.Fatalf("IPv6 session: %+v", l[1])
	}
	// The fast start repeats each announcement twice, 100 ms apart, before
	// the RFC rate: the directory learns an interval well under a second.
	wait("the fast start", func(l []Heard) bool {
		return len(l) == 2 && l[1].Interval > 50*time.Millisecond && l[1].Interval < time.Second
	})
	hash := l[0].Hash
	// A change is announced at once, with a new hash.
	v4.AddMedia(&sdp.Media{Kind: "video", Port: 16386, Proto: "RTP/AVP", Formats: []string{"96"},
		RTPMaps: []sdp.RTPMap{{Payload: 96, Encoding: "H264", ClockRate: 90000}}, Connection: &sdp.Connection{Addr: netip.MustParseAddr("239.255.1.2"), TTL: 1}})
	ann.Announce("four", v4)
	wait("the change", func(l []Heard) bool { return len(l) == 2 && l[0].Hash != hash && len(l[0].Groups) == 2 })
	// A withdrawn session is deleted everywhere.
	ann.Withdraw("four")
	wait("the deletion", func(l []Heard) bool { return len(l) == 1 && l[0].Name == "Six" })
	if st := dir.Stats(); st.Deletions != 1 || st.Malformed != 0 {
		t.Fatalf("stats: %+v", st)
	}
}
