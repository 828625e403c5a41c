package sdp

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestConnectionRange(t *testing.T) {
	tests := []struct {
		in        string
		len       int
		last      string
		in1, out1 string // one address inside the range, one just past it
	}{
		{"IN IP4 224.2.1.1/127/3", 3, "224.2.1.3", "224.2.1.2", "224.2.1.4"},
		{"IN IP4 239.255.1.2/15", 1, "239.255.1.2", "239.255.1.2", "239.255.1.3"},
		{"IN IP4 239.255.1.2/15/1", 1, "239.255.1.2", "239.255.1.2", "239.255.1.1"},
		{"IN IP4 239.255.0.250/15/64", 64, "239.255.1.57", "239.255.1.0", "239.255.1.58"},
		{"IN IP6 ff15::101/3", 3, "ff15::103", "ff15::102", "ff15::104"},
		// The sum carries from the low 64 bits into the high ones.
		{"IN IP6 ff15::ffff:ffff:ffff:fff0/64", 64, "ff15:0:0:1::2f", "ff15:0:0:1::", "ff15:0:0:1::30"},
		{"IN IP4 198.51.100.1", 1, "198.51.100.1", "198.51.100.1", "198.51.100.2"},
	}
	for _, tc := range tests {
		c, err := ParseConnection(tc.in, MediaLevel)
		if err != nil {
			t.Fatalf("ParseConnection(%q) = %v", tc.in, err)
		}
		if c.Len() != tc.len {
			t.Errorf("ParseConnection(%q).Len() = %d, want %d", tc.in, c.Len(), tc.len)
		}
		if got := c.Last(); got != netip.MustParseAddr(tc.last) {
			t.Errorf("ParseConnection(%q).Last() = %v, want %s", tc.in, got, tc.last)
		}
		for a, want := range map[string]bool{c.Addr.String(): true, tc.last: true, tc.in1: true, tc.out1: false, c.Addr.Prev().String(): false} {
			if got := c.Contains(netip.MustParseAddr(a)); got != want {
				t.Errorf("ParseConnection(%q).Contains(%s) = %v, want %v", tc.in, a, got, want)
			}
		}
		all := slices.Collect(c.All())
		if len(all) != tc.len || all[0] != c.Addr || all[len(all)-1] != c.Last() {
			t.Errorf("ParseConnection(%q).All() = %v, want %d addresses from %v to %v", tc.in, all, tc.len, c.Addr, c.Last())
		}
		for i := 1; i < len(all); i++ {
			if all[i] != all[i-1].Next() {
				t.Errorf("ParseConnection(%q).All() = %v: not consecutive at %d", tc.in, all, i)
			}
		}
	}
	// The other family never matches, not even an IPv4-mapped address.
	c4 := Connection{Addr: netip.MustParseAddr("239.255.1.1"), TTL: 15, Count: 3}
	c6 := Connection{Addr: netip.MustParseAddr("::ffff:239.255.1.1"), Count: 3}
	for _, tc := range []struct {
		c Connection
		a string
	}{{c4, "::ffff:239.255.1.2"}, {c6, "239.255.1.2"}} {
		if tc.c.Contains(netip.MustParseAddr(tc.a)) {
			t.Errorf("%v.Contains(%s) = true, want false", tc.c, tc.a)
		}
	}
}

// TestConnectionBuiltInCode: a Connection no parser made, with a count
// far beyond MaxAddresses, is still read without a loop over its count.
func TestConnectionBuiltInCode(t *testing.T) {
	tests := []struct {
		c    Connection
		last string // "" for none: past the end of the address space
		all  int
	}{
		{Connection{Addr: netip.MustParseAddr("224.0.0.1"), TTL: 15, Count: 9000000000000000000}, "", MaxAddresses},
		{Connection{Addr: netip.MustParseAddr("224.0.0.1"), TTL: 15, Count: 1 << 20}, "224.16.0.0", MaxAddresses},
		{Connection{Addr: netip.MustParseAddr("255.255.255.254"), Count: 5}, "", 2},
		{Connection{Addr: netip.MustParseAddr("ff15::1"), Count: 9000000000000000000}, "ff15::7ce6:6c50:e284:0", MaxAddresses},
		{Connection{}, "", 0},
	}
	for _, tc := range tests {
		var want netip.Addr
		if tc.last != "" {
			want = netip.MustParseAddr(tc.last)
		}
		if got := tc.c.Last(); got != want {
			t.Errorf("%+v.Last() = %v, want %v", tc.c, got, want)
		}
		if n := len(slices.Collect(tc.c.All())); n != tc.all {
			t.Errorf("%+v.All() yields %d addresses, want %d", tc.c, n, tc.all)
		}
	}
}

// hugeCount is the line of issue 8 that used to walk 9*10^18 addresses.
const hugeCount = "IN IP4 224.0.0.1/15/9000000000000000000"

// TestParseConnectionHugeCount: refusing the huge count costs what
// refusing a count of 65 does; nothing depends on the number.
func TestParseConnectionHugeCount(t *testing.T) {
	allocs := func(s string) float64 {
		return testing.AllocsPerRun(100, func() {
			if _, err := ParseConnection(s, MediaLevel); err == nil {
				t.Fatalf("ParseConnection(%q) succeeded", s)
			}
		})
	}
	// fmt's buffers come from a sync.Pool, which the race detector empties
	// at random: allow two allocations of slack.
	huge, above := allocs(hugeCount), allocs("IN IP4 224.0.0.1/15/65")
	if huge > above+2 || huge > 10 {
		t.Errorf("ParseConnection(%q) allocates %v times, a count of 65 %v; want no more, and at most 10", hugeCount, huge, above)
	}
	good := func(s string) float64 {
		return testing.AllocsPerRun(100, func() {
			if _, err := ParseConnection(s, MediaLevel); err != nil {
				t.Fatal(err)
			}
		})
	}
	if n64, n1 := good("IN IP4 224.0.0.1/15/64"), good("IN IP4 224.0.0.1/15/1"); n64 != n1 {
		t.Errorf("ParseConnection allocates %v times for a count of 64, %v for 1; want the same", n64, n1)
	}
}

// TestParseHugeCount: the whole-description parser refuses the line with
// its number, and so does Lint.
func TestParseHugeCount(t *testing.T) {
	in := "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=x\r\nt=0 0\r\nm=audio 16384 RTP/AVP 0\r\nc=" + hugeCount + "\r\n"
	_, err := Parse([]byte(in))
	want := `sdp: line 6 "c=IN IP4 224.0.0.1/15/9000000000000000000": number of addresses 9000000000000000000 is more than 64: layered encodings use a few groups (RFC 8866 §5.7), so mcc refuses more`
	if se, ok := errors.AsType[*SyntaxError](err); !ok || se.Line != 6 || err.Error() != want {
		t.Fatalf("Parse = %v, want %s", err, want)
	}
	if ps := Lint([]byte(in)); len(ps) != 1 || ps[0].Line != 6 || ps[0].Warning {
		t.Fatalf("Lint = %v, want the error on line 6", ps)
	}
	n := testing.AllocsPerRun(20, func() { Parse([]byte(in)) })
	m := testing.AllocsPerRun(20, func() { Parse([]byte(strings.Replace(in, "9000000000000000000", "65", 1))) })
	if n > m+2 { // slack for the race detector's sync.Pool
		t.Errorf("Parse allocates %v times for the huge count, %v for 65", n, m)
	}
}

// TestCheckFilterInRange: a source filter may name any group of a layered
// c= range (RFC 4570 §3), found by comparing with its ends.
func TestCheckFilterInRange(t *testing.T) {
	base := "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=x\nt=0 0\nm=video 16384 RTP/AVP 32\nc=IN IP4 232.1.2.3/127/64\na=source-filter: incl IN IP4 %s 192.0.2.10\n"
	for dest, want := range map[string]bool{"232.1.2.3": true, "232.1.2.40": true, "232.1.2.66": true, "232.1.2.67": false, "232.1.2.2": false} {
		ps := Lint([]byte(strings.Replace(base, "%s", dest, 1)))
		if ok := len(ps) == 0; ok != want {
			t.Errorf("filter for %s in 232.1.2.3/127/64: problems %v, want ok %v", dest, ps, want)
		}
	}
}
