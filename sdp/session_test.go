package sdp

import (
	"bytes"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func testdataFiles(t testing.TB) []string {
	t.Helper()
	fs, err := filepath.Glob("testdata/*.sdp")
	if err != nil || len(fs) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	return fs
}

// equalModel compares two sessions without the line numbers Parse keeps.
func equalModel(a, b *Session) bool {
	a, b = a.Clone(), b.Clone()
	a.pos, b.pos = positions{}, positions{}
	return reflect.DeepEqual(a, b)
}

// TestRoundTrip parses every example, marshals it, parses that again and
// expects the same model, and the same text on a second marshal. The
// marshalled text is kept as a golden file.
func TestRoundTrip(t *testing.T) {
	for _, f := range testdataFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, _ := os.ReadFile(f)
			s, err := Parse(in)
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			out, err := s.Marshal()
			if err != nil {
				t.Fatalf("Marshal = %v", err)
			}
			s2, err := Parse(out)
			if err != nil {
				t.Fatalf("Parse(Marshal()) = %v\n%s", err, out)
			}
			if !equalModel(s, s2) {
				t.Fatalf("model changed in a round trip:\n%+v\n%+v", s, s2)
			}
			out2, _ := s2.Marshal()
			if !bytes.Equal(out, out2) {
				t.Fatalf("Marshal is not stable:\n%s\n%s", out, out2)
			}
			golden := filepath.Join("testdata", "golden", strings.TrimSuffix(filepath.Base(f), ".sdp")+".out")
			if *update {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				os.WriteFile(golden, out, 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./sdp -run TestRoundTrip -update)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("Marshal differs from %s:\n%s\nwant\n%s", golden, out, want)
			}
		})
	}
}

func TestParseModel(t *testing.T) {
	s := MustParse(string(must(os.ReadFile("testdata/lecture-ipv6.sdp"))))
	if s.Name != "Lecture: multicast in practice" || s.Type != "broadcast" || s.Tool != "mcc" || s.Direction != RecvOnly {
		t.Errorf("session fields: %+v", s)
	}
	if len(s.Times) != 1 || len(s.Times[0].Repeats) != 1 || s.Times[0].Repeats[0].Interval != 7*24*3600 {
		t.Errorf("times: %+v", s.Times)
	}
	if got := FromNTP(s.Times[0].Start); NTPTime(got) != s.Times[0].Start {
		t.Errorf("NTP round trip of %d: %v", s.Times[0].Start, got)
	}
	v := s.Media[1]
	if v.Kind != "video" || v.Port != 16386 || v.Connection.Addr.String() != "ff15::8000:1235" || v.RTCP.Port != 16387 {
		t.Errorf("video: %+v", v)
	}
	if r, ok := v.RTPMap("96"); !ok || r.Encoding != "H264" || r.ClockRate != 90000 || r.Params != "packetization-mode=1" {
		t.Errorf("rtpmap 96: %+v, %v", r, ok)
	}
	if s.EffectiveDirection(v) != RecvOnly {
		t.Errorf("direction of video = %v, want the session's recvonly", s.EffectiveDirection(v))
	}
	if s.Media[2].Port != 0 {
		t.Errorf("removed stream has port %d", s.Media[2].Port)
	}
	ssm := MustParse(string(must(os.ReadFile("testdata/rfc4570-ssm-layered.sdp"))))
	m := ssm.Media[0]
	if m.Connection.TTL != 127 || m.Connection.Count != 3 || len(m.SourceFilters) != 1 || m.SourceFilters[0].Sources[0].String() != "192.0.2.10" {
		t.Errorf("layered SSM stream: %+v %+v", m.Connection, m.SourceFilters)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

const good = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=x\r\nt=0 0\r\nm=audio 16384 RTP/AVP 0\r\nc=IN IP4 239.255.1.1/15\r\n"

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		wantErr  string
	}{
		{"empty", "", 0, "empty description"},
		{"no version", "o=- 1 1 IN IP4 192.0.2.1\ns=x\nt=0 0\n", 1, "starts with v=0"},
		{"version 1", "v=1\no=- 1 1 IN IP4 192.0.2.1\ns=x\nt=0 0\n", 1, "only version 0"},
		{"garbage line", "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=x\nhello\nt=0 0\n", 4, "want <type>=<value>"},
		{"unknown type", "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=x\nx=1\nt=0 0\n", 4, "want <type>=<value>"},
		{"blank line", "v=0\no=- 1 1 IN IP4 192.0.2.1\n\ns=x\nt=0 0\n", 3, "empty line"},
		{"no t=", "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=x\n", 0, "no t= (timing)"},
		{"m before t", "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=x\nm=audio 1 RTP/AVP 0\nt=0 0\n", 4, "t= must come before"},
		{"out of order", "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=x\nt=0 0\nc=IN IP4 192.0.2.1\n", 5, "out of order"},
		{"two c= in a medium", good + "c=IN IP4 239.255.1.2/15\r\n", 7, "several c="},
		{"two s=", "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=x\ns=y\nt=0 0\n", 4, "only once"},
		{"multicast without TTL", strings.Replace(good, "239.255.1.1/15", "239.255.1.1", 1), 6, "needs a TTL"},
		{"IPv6 with TTL", strings.Replace(good, "IP4 239.255.1.1/15", "IP6 ff15::1/15/2", 1), 6, "takes no TTL"},
		{"count at session level", "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=x\nc=IN IP4 239.255.1.1/15/2\nt=0 0\n", 4, "media level only"},
		{"bad origin", "v=0\no=- 1 1 IN IP4 2001:db8::1\ns=x\nt=0 0\n", 2, "not an IP4 address"},
		{"bad port", strings.Replace(good, "16384", "70000", 1), 5, ""},
		{"bad rtpmap", good + "a=rtpmap:96 H264\r\n", 7, "want <encoding>/<clock rate>"},
		{"bad source filter", good + "a=source-filter: incl IN IP4 239.255.1.1\r\n", 7, "RFC 4570"},
		{"two directions", good + "a=recvonly\r\na=sendonly\r\n", 8, "second direction"},
		{"bad rtcp", good + "a=rtcp:99999\r\n", 7, "RFC 3605"},
		{"bad bandwidth", strings.Replace(good, "t=0 0", "b=AS\r\nt=0 0", 1), 4, ""},
		{"bad time", "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=x\nt=now later\n", 4, ""},
		{"too big", "v=0\n" + strings.Repeat("a=x\n", MaxSize/4), 0, "more than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse = %v, want a *SyntaxError", err)
			}
			if se.Line != tc.line {
				t.Errorf("Parse error %q is on line %d, want %d", err, se.Line, tc.line)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse = %q, want it to contain %q", err, tc.wantErr)
			}
			if tc.line > 0 && se.Text == "" && tc.name != "blank line" {
				t.Errorf("Parse error %q does not quote the line", err)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	base := "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=x\n"
	tests := []struct {
		name, in string
		line     int
		warning  bool
		want     string // "" for no problem
	}{
		{"clean", good, 0, false, ""},
		{"no c= anywhere", base + "t=0 0\nm=audio 16384 RTP/AVP 0\n", 5, false, "no c= line"},
		{"session-level group only", base + "c=IN IP4 239.255.1.1/15\nt=0 0\nm=audio 16384 RTP/AVP 0\n", 6, true, "join only a group given at media level"},
		{"unknown type", base + "t=0 0\na=type:party\n", 5, true, "session type \"party\""},
		{"stop before start", base + "t=3000000000 2000000000\n", 4, false, "stop time is before"},
		{"SSM without source", base + "t=0 0\nm=audio 16384 RTP/AVP 0\nc=IN IP4 232.1.2.3/127\n", 6, true, "names no source"},
		{"odd RTP port", base + "t=0 0\nm=audio 16385 RTP/AVP 0\nc=IN IP4 239.255.1.1/15\n", 5, true, "even port"},
		{"dynamic PT without rtpmap", base + "t=0 0\nm=video 16384 RTP/AVP 96\nc=IN IP4 239.255.1.1/15\n", 5, false, "no a=rtpmap"},
		{"rtpmap not listed", base + "t=0 0\nm=video 16384 RTP/AVP 96\nc=IN IP4 239.255.1.1/15\na=rtpmap:96 H264/90000\na=rtpmap:97 VP8/90000\n", 8, false, "does not list"},
		{"filter for another group", base + "t=0 0\nm=audio 16384 RTP/AVP 0\nc=IN IP4 232.1.2.3/127\na=source-filter: incl IN IP4 232.9.9.9 192.0.2.10\n", 7, false, "not a c= address"},
		{"filter for its group", base + "t=0 0\nm=audio 16384 RTP/AVP 0\nc=IN IP4 232.1.2.3/127\na=source-filter: incl IN IP4 232.1.2.3 192.0.2.10\n", 0, false, ""},
		{"duplicate format", base + "t=0 0\nm=audio 16384 RTP/AVP 0 0\nc=IN IP4 239.255.1.1/15\n", 5, false, "twice"},
		{"removed stream is not checked", base + "t=0 0\nm=video 0 RTP/AVP 96\nc=IN IP4 239.255.1.1/15\n", 0, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := Lint([]byte(tc.in))
			if tc.want == "" {
				if len(ps) != 0 {
					t.Fatalf("Lint = %v, want none", ps)
				}
				return
			}
			if len(ps) != 1 {
				t.Fatalf("Lint = %v, want one problem", ps)
			}
			p := ps[0]
			if p.Line != tc.line || p.Warning != tc.warning || !strings.Contains(p.Error(), tc.want) {
				t.Errorf("Lint = %q (line %d, warning %v), want line %d, warning %v, containing %q", p, p.Line, p.Warning, tc.line, tc.warning, tc.want)
			}
			if p.Line > 0 && p.Text == "" {
				t.Errorf("problem does not quote its line")
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, file := range testdataFiles(f) {
		f.Add(must(os.ReadFile(file)))
	}
	f.Add([]byte(good))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse error %v is not a *SyntaxError", err)
			}
			return
		}
		s.Check()
		out, err := s.Marshal()
		if err != nil {
			return // a u= that pion read but url.Parse refuses
		}
		s2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal()) = %v\ninput %q\noutput %q", err, b, out)
		}
		if !equalModel(s, s2) {
			t.Fatalf("model changed in a round trip\ninput %q\noutput %q", b, out)
		}
	})
}

// FuzzParseLiberal: whatever a liberal Parse takes, mcc writes back as a
// description a strict Parse reads, with the same model.
func FuzzParseLiberal(f *testing.F) {
	for _, file := range testdataFiles(f) {
		f.Add(must(os.ReadFile(file)))
	}
	f.Add([]byte("v=0\no=- 2930 0 IN IP4 192.0.2.9\ns=PulseAudio\nc=IN IP4 224.0.0.56\nt=0 0\nm=audio 46054 RTP/AVP 10\n"))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=wb\r\nt=0 0\r\nm=application 32416 udp wb\r\nc=IN IP4 224.2.17.12/127\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Liberal(0).Parse(b)
		if err != nil {
			if _, ok := errors.AsType[*SyntaxError](err); !ok {
				t.Fatalf("Parse error %v is not a *SyntaxError", err)
			}
			return
		}
		s.Warnings = nil // what the strict one has none of
		s.Check()
		out, err := s.Marshal()
		if err != nil {
			return
		}
		s2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal()) = %v\ninput %q\noutput %q", err, b, out)
		}
		if !equalModel(s, s2) {
			t.Fatalf("model changed in a round trip\ninput %q\noutput %q", b, out)
		}
	})
}

// TestWithMediaConnections: a session-level c= moves into every m= that
// has none and leaves the session level; an m= with its own keeps it; the
// original is not touched; a description with no session-level c= comes
// back as it is.
func TestWithMediaConnections(t *testing.T) {
	own := MustParse("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\nc=IN IP4 239.1.1.1/16\r\n")
	if got := own.WithMediaConnections(); got != own {
		t.Fatal("a description without a session-level c= was copied")
	}
	text := "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 239.1.1.1/16\r\nt=0 0\r\n" +
		"m=audio 5004 RTP/AVP 0\r\nm=video 5006 RTP/AVP 96\r\nc=IN IP4 239.1.1.2/16\r\na=rtpmap:96 H264/90000\r\nm=text 5008 RTP/AVP 98\r\na=rtpmap:98 t140/1000\r\n"
	s := MustParse(text)
	got := s.WithMediaConnections()
	b, err := got.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n" +
		"m=audio 5004 RTP/AVP 0\r\nc=IN IP4 239.1.1.1/16\r\nm=video 5006 RTP/AVP 96\r\nc=IN IP4 239.1.1.2/16\r\na=rtpmap:96 H264/90000\r\n" +
		"m=text 5008 RTP/AVP 98\r\nc=IN IP4 239.1.1.1/16\r\na=rtpmap:98 t140/1000\r\n"
	if string(b) != want {
		t.Fatalf("got\n%s\nwant\n%s", b, want)
	}
	if again, _ := s.Marshal(); string(again) != text {
		t.Fatalf("the original changed:\n%s", again)
	}
	got.Media[0].Connection.TTL = 1
	if s.Connection.TTL != 16 {
		t.Fatal("the copy shares the session's c=")
	}
}

// TestLiberalParse: what other tools write and RFC 8866 does not allow,
// or pion does not read, is taken as mcc reads it (Liberal): PulseAudio's
// group without a TTL and LF line ends, the Mbone's lower-case "udp wb",
// an MPEG-2 transport proto; what mcc writes back is exactly right. A
// strict Parse still refuses the group without a TTL, naming its line.
func TestLiberalParse(t *testing.T) {
	tests := []struct {
		name, in, out string
		warnings      []int // lines
	}{
		{"pulseaudio", "v=0\no=- 2930 0 IN IP4 192.0.2.9\ns=PulseAudio RTP Stream on host\nc=IN IP4 224.0.0.56\nt=3983245322 0\na=recvonly\nm=audio 46054 RTP/AVP 10\na=rtpmap:10 L16/44100/2\na=type:broadcast\n",
			"v=0\r\no=- 2930 0 IN IP4 192.0.2.9\r\ns=PulseAudio RTP Stream on host\r\nc=IN IP4 224.0.0.56/1\r\nt=3983245322 0\r\na=recvonly\r\nm=audio 46054 RTP/AVP 10\r\na=rtpmap:10 L16/44100/2\r\na=type:broadcast\r\n",
			[]int{4}},
		{"mbone wb", "v=0\r\no=mhandley 2890844526 2890842807 IN IP4 126.16.64.4\r\ns=SDP Seminar\r\nc=IN IP4 224.2.17.12/127\r\nt=2873397496 2873404696\r\nm=application 32416 udp wb\r\na=orient:portrait\r\n",
			"v=0\r\no=mhandley 2890844526 2890842807 IN IP4 126.16.64.4\r\ns=SDP Seminar\r\nc=IN IP4 224.2.17.12/127\r\nt=2873397496 2873404696\r\nm=application 32416 udp wb\r\na=orient:portrait\r\n",
			nil},
		{"mpeg-ts", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=ts\r\nt=0 0\r\nm=video 5000 MP2T/H2221/UDP 33\r\nc=IN IP4 239.1.1.1/5\r\n",
			"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=ts\r\nt=0 0\r\nm=video 5000 MP2T/H2221/UDP 33\r\nc=IN IP4 239.1.1.1/5\r\n", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Liberal(0).Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			b, err := s.Marshal()
			if err != nil || string(b) != tc.out {
				t.Fatalf("marshalled %v:\n%s\nwant\n%s", err, b, tc.out)
			}
			var lines []int
			for _, w := range s.Warnings {
				lines = append(lines, w.Line)
			}
			if !reflect.DeepEqual(lines, tc.warnings) {
				t.Fatalf("warnings %v, want on lines %v", s.Warnings, tc.warnings)
			}
			again, err := Parse(b)
			if err != nil || len(again.Warnings) != 0 {
				t.Fatalf("what mcc wrote does not parse strictly: %v %v", err, again.Warnings)
			}
		})
	}
	_, err := Parse([]byte(tests[0].in))
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 4 || !strings.Contains(se.Error(), "needs a TTL") || strings.HasSuffix(se.Error(), " ") {
		t.Fatalf("strict Parse of a group without a TTL: %v, want a line-4 error", err)
	}
	s, err := ParseOptions{DefaultTTL: 7}.Parse([]byte(tests[0].in))
	if err != nil || s.Connection.TTL != 7 || !strings.Contains(s.Warnings[0].String(), "taken as TTL 7") {
		t.Fatalf("DefaultTTL 7: %v %+v", err, s)
	}
	var lint []string
	for _, p := range Lint([]byte(tests[0].in)) {
		if p.Warning && p.Line == 4 {
			lint = append(lint, p.Error())
		}
	}
	if len(lint) != 1 {
		t.Fatalf("Lint warns on line 4: %v", lint)
	}
}

// TestProtoOnOddLines: an m= line whose fields are not single-space
// separated goes to pion as it is, so its proto is never taken from the
// wrong field.
func TestProtoOnOddLines(t *testing.T) {
	for _, line := range []string{"m=audio  5004 RTP/AVP 0", "m=audio 5004\tRTP/AVP 0 8", "m=audio 5004 RTP/AVP  0"} {
		s, err := Liberal(0).Parse([]byte("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 239.1.1.1/1\r\nt=0 0\r\n" + line + "\r\n"))
		if err == nil && s.Media[0].Proto != "RTP/AVP" {
			t.Errorf("%q: proto %q", line, s.Media[0].Proto)
		}
	}
}

func TestSourcesFor(t *testing.T) {
	s := MustParse("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\na=source-filter: incl IN IP4 * 192.0.2.10\r\n" +
		"m=audio 5004 RTP/AVP 0\r\nc=IN IP4 232.1.1.1/64\r\n" +
		"m=audio 5006 RTP/AVP 0\r\nc=IN IP4 239.1.1.1/64\r\na=source-filter: excl IN IP4 239.1.1.1 192.0.2.66 192.0.2.67\r\na=source-filter: incl IN IP4 239.9.9.9 192.0.2.99\r\n")
	incl, excl := s.SourcesFor(s.Media[0], netip.MustParseAddr("232.1.1.1"))
	if len(incl) != 1 || incl[0].String() != "192.0.2.10" || len(excl) != 0 {
		t.Errorf("session-level incl: %v, %v", incl, excl)
	}
	incl, excl = s.SourcesFor(s.Media[1], netip.MustParseAddr("239.1.1.1"))
	if len(incl) != 0 || len(excl) != 2 {
		t.Errorf("media-level excl, and an incl of another group: %v, %v", incl, excl)
	}
}
