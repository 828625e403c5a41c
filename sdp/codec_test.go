package sdp

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestParseConnection(t *testing.T) {
	tests := []struct {
		in    string
		level Level
		want  Connection
		out   string // String(); "" means in
	}{
		{"IN IP4 224.2.1.1/127", SessionLevel, Connection{Addr: netip.MustParseAddr("224.2.1.1"), AddrType: "IP4", TTL: 127}, ""},
		{"IN IP4 224.2.1.1/127/3", MediaLevel, Connection{Addr: netip.MustParseAddr("224.2.1.1"), AddrType: "IP4", TTL: 127, Count: 3}, ""},
		{"IN IP4 239.255.1.2/0", MediaLevel, Connection{Addr: netip.MustParseAddr("239.255.1.2"), AddrType: "IP4", TTL: 0}, ""},
		{"IN IP4 239.255.1.2/255/1", MediaLevel, Connection{Addr: netip.MustParseAddr("239.255.1.2"), AddrType: "IP4", TTL: 255, Count: 1}, ""},
		{"IN IP6 ff15::101", SessionLevel, Connection{Addr: netip.MustParseAddr("ff15::101"), AddrType: "IP6"}, ""},
		{"IN IP6 ff15::101/3", MediaLevel, Connection{Addr: netip.MustParseAddr("ff15::101"), AddrType: "IP6", Count: 3}, ""},
		{"IN IP4 198.51.100.1", SessionLevel, Connection{Addr: netip.MustParseAddr("198.51.100.1"), AddrType: "IP4"}, ""},
		{"IN IP6 2001:db8::2", MediaLevel, Connection{Addr: netip.MustParseAddr("2001:db8::2"), AddrType: "IP6"}, ""},
		{"IN IP4 host.atlanta.example.com", SessionLevel, Connection{Host: "host.atlanta.example.com", AddrType: "IP4"}, ""},
	}
	for _, tc := range tests {
		got, err := ParseConnection(tc.in, tc.level)
		if err != nil {
			t.Errorf("ParseConnection(%q) = %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseConnection(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		out := tc.out
		if out == "" {
			out = tc.in
		}
		if got.String() != out {
			t.Errorf("ParseConnection(%q).String() = %q, want %q", tc.in, got.String(), out)
		}
	}
}

func TestParseConnectionErrors(t *testing.T) {
	tests := []struct {
		in      string
		level   Level
		wantErr string
	}{
		{"IN IP4 239.255.1.1", MediaLevel, "needs a TTL"},
		{"IN IP4 239.255.1.1/256", MediaLevel, "0 to 255"},
		{"IN IP4 239.255.1.1/abc/zz", MediaLevel, "TTL \"abc\""},
		{"IN IP4 239.255.1.1/-1", MediaLevel, "TTL \"-1\""},
		{"IN IP4 224.2.1.1/127/3", SessionLevel, "media level only"},
		{"IN IP4 239.255.1.1/1/0", MediaLevel, "from 1 to 64"},
		{"IN IP4 239.255.1.1/1/-5", MediaLevel, "number of addresses \"-5\": want a whole number from 1 to 64"},
		{"IN IP4 239.255.1.1/1/+5", MediaLevel, "from 1 to 64"},
		// The bound (RFC 8866 §5.7 layered addresses are few): at it, above it,
		// far above it, beyond uint64.
		{"IN IP4 239.255.1.1/1/64", MediaLevel, ""},
		{"IN IP6 ff15::101/64", MediaLevel, ""},
		{"IN IP4 239.255.1.1/1/65", MediaLevel, "number of addresses 65 is more than 64"},
		{"IN IP4 224.0.0.1/15/9000000000000000000", MediaLevel, "number of addresses 9000000000000000000 is more than 64"},
		{"IN IP4 224.0.0.1/15/99999999999999999999999", MediaLevel, "number of addresses 99999999999999999999999 is more than 64"},
		{"IN IP6 ff15::1/9000000000000000000", MediaLevel, "is more than 64"},
		{"IN IP6 ff15::1/255", MediaLevel, "not a TTL"},
		{"IN IP4 224.0.0.1/15/9000000000000000000", SessionLevel, "is more than 64"},
		{"IN IP4 239.255.1.1/1/2/3", MediaLevel, "too many"},
		{"IN IP6 ff15::101/127/3", MediaLevel, "takes no TTL"},
		{"IN IP6 ff15::101/0", MediaLevel, "not a TTL"},
		{"IN IP6 ff15::101/2", SessionLevel, "media level only"},
		{"IN IP4 10.0.0.1/127", SessionLevel, "unicast address 10.0.0.1 takes no slash"},
		{"IN IP6 ff15::1", SessionLevel + 0, ""},
		{"IN IP6 239.255.1.1/1", MediaLevel, "not an IP6 address"},
		{"IN IP4 ff15::1", MediaLevel, "not an IP4 address"},
		{"IN IP4 ::ffff:239.1.1.1/1", MediaLevel, "write an IPv4 address as IP4"},
		{"IN IP6 ::ffff:239.1.1.1", MediaLevel, "write an IPv4 address as IP4"},
		{"IN IP6 ::ffff:192.0.2.2", SessionLevel, ""}, // RFC 5118 §4.9
		{"ATM NSAP 47.0091", SessionLevel, "only IN"},
		{"IN IPX 1.2.3.4", SessionLevel, "want IP4 or IP6"},
		{"IN IP4", SessionLevel, "want \"IN IP4|IP6"},
		{"IN  IP4 1.2.3.4", SessionLevel, "single spaces"},
		{"IN IP4 bad_host!/1", SessionLevel, "neither"},
		{"IN IP4 example.com/1", SessionLevel, "domain name takes no"},
		{"IN IP4 239.255.255.254/1/2", MediaLevel, ""},
		{"IN IP4 239.255.255.254/1/3", MediaLevel, "run out of the multicast range"},
		{"IN IP4 239.255.255.192/1/64", MediaLevel, ""},
		{"IN IP4 239.255.255.193/1/64", MediaLevel, "64 addresses from 239.255.255.193 run out of the multicast range"},
		{"IN IP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffc0/64", MediaLevel, ""},
		{"IN IP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffc1/64", MediaLevel, "run out of the multicast range"},
	}
	for _, tc := range tests {
		_, err := ParseConnection(tc.in, tc.level)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("ParseConnection(%q) = %v, want no error", tc.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParseConnection(%q) = %v, want error containing %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestParseSourceFilter(t *testing.T) {
	tests := []struct {
		in      string
		want    SourceFilter
		wantErr string
	}{
		{" incl IN IP4 232.3.4.5 192.0.2.10", SourceFilter{Include, "IP4", netip.MustParseAddr("232.3.4.5"), []netip.Addr{netip.MustParseAddr("192.0.2.10")}}, ""},
		{" excl IN IP6 ff3e::8000:1 2001:db8::1 2001:db8::2", SourceFilter{Exclude, "IP6", netip.MustParseAddr("ff3e::8000:1"), []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")}}, ""},
		{" incl IN * * 192.0.2.10 2001:db8::1", SourceFilter{Include, "*", netip.Addr{}, []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::1")}}, ""},
		{" incl IN IP4 232.3.4.5", SourceFilter{}, "want \"<incl|excl>"},
		{" only IN IP4 232.3.4.5 192.0.2.10", SourceFilter{}, "filter mode \"only\""},
		{" incl ATM IP4 232.3.4.5 192.0.2.10", SourceFilter{}, "only IN"},
		{" incl IN IPX 232.3.4.5 192.0.2.10", SourceFilter{}, "IP4, IP6 or *"},
		{" incl IN IP4 ff3e::1 192.0.2.10", SourceFilter{}, "not of address type IP4"},
		{" incl IN IP4 232.3.4.5 2001:db8::1", SourceFilter{}, "not of address type IP4"},
		{" incl IN IP4 232.3.4.5 232.3.4.6", SourceFilter{}, "unicast sender"},
		{" incl IN IP4 232.3.4.5 192.0.2.10 192.0.2.10", SourceFilter{}, "listed twice"},
		{" incl IN IP4 232.3.4.5 sender.example.com", SourceFilter{}, "domain names are not supported"},
	}
	for _, tc := range tests {
		got, err := ParseSourceFilter(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseSourceFilter(%q) = %v, want error containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSourceFilter(%q) = %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseSourceFilter(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if got.String() != tc.in {
			t.Errorf("String() = %q, want %q", got.String(), tc.in)
		}
	}
}

func FuzzParseConnection(f *testing.F) {
	for _, s := range []string{"IN IP4 224.2.1.1/127/3", "IN IP6 ff15::101/3", "IN IP4 198.51.100.1", "IN IP6 2001:db8::2", "IN IP4 host.example.com", "IN IP4 239.255.255.254/1/5",
		// Counts at, above and far above MaxAddresses (issue 8).
		"IN IP4 239.255.1.1/1/64", "IN IP4 239.255.1.1/1/65", "IN IP4 224.0.0.1/15/9000000000000000000",
		"IN IP6 ff15::1/9000000000000000000", "IN IP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffc0/64"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, media bool) {
		level := SessionLevel
		if media {
			level = MediaLevel
		}
		c, err := ParseConnection(s, level)
		if err != nil {
			return
		}
		again, err := ParseConnection(c.String(), level)
		if err != nil {
			t.Fatalf("ParseConnection(%q) = %+v, whose String %q does not parse: %v", s, c, c.String(), err)
		}
		if again != c {
			t.Fatalf("round trip of %q: %+v, then %+v", s, c, again)
		}
	})
}

func FuzzParseSourceFilter(f *testing.F) {
	f.Add(" incl IN IP4 232.3.4.5 192.0.2.10")
	f.Add(" excl IN IP6 ff3e::8000:1 2001:db8::1 2001:db8::2")
	f.Add(" incl IN * * 192.0.2.10")
	f.Fuzz(func(t *testing.T, s string) {
		sf, err := ParseSourceFilter(s)
		if err != nil {
			return
		}
		again, err := ParseSourceFilter(sf.String())
		if err != nil || !reflect.DeepEqual(again, sf) {
			t.Fatalf("round trip of %q: %+v, then %+v, %v", s, sf, again, err)
		}
	})
}
