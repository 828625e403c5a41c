package sdp

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mcc/multicast"
)

// TestCreateRefusesText: every text of a spec that becomes an SDP line is
// refused with a *TextError naming the field when it holds a line break,
// NUL, another control character, is not UTF-8 or is too long, and nothing
// stays leased.
func TestCreateRefusesText(t *testing.T) {
	local := scope(t, multicast.IPv4, multicast.ScopeLocal)
	m, a := newManager(t, local)
	long := strings.Repeat("x", MaxText+1)
	tests := []struct {
		name  string
		spec  SessionSpec
		field string
	}{
		{"name CRLF", SessionSpec{Name: "x\r\na=recvonly"}, "session name (s=)"},
		{"name NUL", SessionSpec{Name: "x\x00y"}, "session name (s=)"},
		{"info LF", SessionSpec{Info: "hello\nm=audio 9 RTP/AVP 0"}, "information (i=)"},
		{"info CR", SessionSpec{Info: "hello\r"}, "information (i=)"},
		{"info ESC", SessionSpec{Info: "\x1b[31mred"}, "information (i=)"},
		{"info DEL", SessionSpec{Info: "a\x7f"}, "information (i=)"},
		{"info C1", SessionSpec{Info: "a\u0085b"}, "information (i=)"},
		{"info not UTF-8", SessionSpec{Info: "caf\xe9"}, "information (i=)"},
		{"name line separator", SessionSpec{Name: "a\u2028b"}, "session name (s=)"},
		{"name paragraph separator", SessionSpec{Name: "a\u2029b"}, "session name (s=)"},
		{"name bidi override", SessionSpec{Name: "lecture\u202egpj.exe"}, "session name (s=)"},
		{"info bidi isolate", SessionSpec{Info: "a\u2067b"}, "information (i=)"},
		{"info BOM", SessionSpec{Info: "\ufeffhello"}, "information (i=)"},
		{"info too long", SessionSpec{Info: long}, "information (i=)"},
		{"type LF", SessionSpec{Type: "meeting\r\na=sendrecv"}, "type (a=type)"},
		{"type NUL", SessionSpec{Type: "test\x00"}, "type (a=type)"},
		{"kind space", SessionSpec{Media: []MediaSpec{{Kind: "audio 9 RTP/AVP 0"}}}, "media kind (m=)"},
		{"kind LF", SessionSpec{Media: []MediaSpec{{Kind: "audio\r\n"}}}, "media kind (m=)"},
		{"kind empty", SessionSpec{Media: []MediaSpec{{Kind: ""}}}, "media kind (m=)"},
		{"second kind", SessionSpec{Media: []MediaSpec{{Kind: "audio"}, {Kind: "vid\x00eo"}}}, "media kind (m=)"},
		{"encoding", SessionSpec{Media: []MediaSpec{{Kind: "audio", Formats: []RTPMap{{Payload: 96, Encoding: "opus\r\na=x", ClockRate: 48000}}}}}, "encoding name (a=rtpmap)"},
		{"fmtp", SessionSpec{Media: []MediaSpec{{Kind: "audio", Formats: []RTPMap{{Payload: 96, Encoding: "opus", ClockRate: 48000, Params: "a=1\nb=2"}}}}}, "format parameters (a=fmtp)"},
		{"pool LF", SessionSpec{Pool: "ipv4-local\n"}, "pool name"},
		{"pool too long", SessionSpec{Pool: long}, "pool name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			if spec.Pool == "" {
				spec.Pool = local.Name
			}
			if spec.Media == nil {
				spec.Media = []MediaSpec{{Kind: "audio"}}
			}
			s, err := m.Create(spec)
			var te *TextError
			if !errors.As(err, &te) || te.Field != tc.field || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Create = %v, %v; want a *TextError for %s matching ErrInvalid", s, err, tc.field)
			}
			if len(te.Text) > 64+len("…") || strings.ContainsAny(err.Error(), "\r\n\x00") {
				t.Errorf("message %q: want the text cut short and quoted", err)
			}
			if n := len(a.Leases()); n != 0 || len(m.List()) != 0 {
				t.Fatalf("a refused Create left %d leases, %d sessions", n, len(m.List()))
			}
		})
	}
}

// TestCreateAcceptsText: tabs, non-ASCII UTF-8 and text of MaxText bytes
// are fine, and come back from the text Save keeps.
func TestCreateAcceptsText(t *testing.T) {
	local := scope(t, multicast.IPv4, multicast.ScopeLocal)
	m, _ := newManager(t, local)
	tests := []SessionSpec{
		{Name: "Séminaire", Info: "ünïcödé — 会议"},
		{Name: "tabs", Info: "a\tb"},
		{Name: "long", Info: strings.Repeat("é", MaxText/2)},
		{Name: "", Info: " leading and trailing "},
		{Name: "typed", Type: "meeting"},
	}
	for _, spec := range tests {
		spec.Pool = local.Name
		spec.Media = []MediaSpec{{Kind: "audio"}, {Kind: "text"}}
		s, err := m.Create(spec)
		if err != nil {
			t.Fatalf("Create(%q, %q) = %v", spec.Name, spec.Info, err)
		}
		saved, err := m.Save(s.Origin.SessionID)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(saved.SDP)
		if err != nil || back.Name != spec.Name || back.Info != spec.Info {
			t.Fatalf("saved %q %q reads back as %+v, %v", spec.Name, spec.Info, back, err)
		}
	}
}

// TestCreateRefusesWhatWouldNotRestore: a description whose saved text
// would not parse back (here an o= host with a space, from the
// configuration) is refused before anything is kept.
func TestCreateRefusesWhatWouldNotRestore(t *testing.T) {
	local := scope(t, multicast.IPv4, multicast.ScopeLocal)
	a, _ := multicast.NewAllocator(multicast.Config{Pools: []multicast.Pool{local}})
	for _, host := range []string{"two words", "bad!host"} {
		m, err := NewManager(ManagerConfig{Allocator: a, Host: host})
		if err != nil {
			t.Fatal(err)
		}
		_, err = m.Create(SessionSpec{Name: "x", Pool: local.Name, Media: []MediaSpec{{Kind: "audio"}}})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "would not read back") {
			t.Fatalf("host %q: Create = %v, want a refusal that says it would not read back", host, err)
		}
		if n := len(a.Leases()); n != 0 || len(m.List()) != 0 {
			t.Fatalf("host %q: %d leases, %d sessions left", host, n, len(m.List()))
		}
	}
}

// TestImportRefuses: Import refuses descriptions built in code that hold
// line breaks or control characters, that would read back differently,
// and a session ID it holds already (ErrSessionExists).
func TestImportRefuses(t *testing.T) {
	m, _ := newManager(t, scope(t, multicast.IPv4, multicast.ScopeLocal))
	base := func() *Session {
		return &Session{
			Origin: Origin{Username: "-", SessionID: 42, Version: 1, Addr: netip.MustParseAddr("192.0.2.1")},
			Name:   "ext", Times: []Timing{{}},
			Media: []*Media{{Kind: "audio", Port: 5004, Proto: "RTP/AVP", Formats: []string{"0"},
				Connection: &Connection{Addr: netip.MustParseAddr("233.252.0.1"), TTL: 15}}},
		}
	}
	tests := []struct {
		name string
		edit func(*Session)
		want string // in the message
	}{
		{"info LF", func(s *Session) { s.Info = "a\r\nb=AS:1" }, "information (i=)"},
		{"URI NUL", func(s *Session) { s.URI = "http://x/\x00" }, "URI (u=)"},
		{"media title", func(s *Session) { s.Media[0].Title = "t\n" }, "media title (i=)"},
		{"attribute value", func(s *Session) { s.Attributes = []Attribute{{Key: "x", Value: "1\r\na=y"}} }, "attribute x (a=)"},
		{"attribute name", func(s *Session) { s.Attributes = []Attribute{{Key: "a b", Value: "1"}} }, "attribute name (a=)"},
		{"format", func(s *Session) { s.Media[0].Proto, s.Media[0].Formats = "udp", []string{"0 8"} }, "format (m=)"},
		{"kind", func(s *Session) { s.Media[0].Kind = "audio\x1b" }, "media kind (m=)"},
		{"origin host", func(s *Session) { s.Origin.Addr, s.Origin.Host = netip.Addr{}, "no/host" }, "would not read back"},
		// An attribute that the parser reads as the direction moves on a
		// second marshal: the text would change across a restart.
		{"moved direction", func(s *Session) {
			s.Attributes = []Attribute{{Key: "recvonly", Flag: true}, {Key: "x", Value: "1"}}
		}, "reads back as"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.edit(s)
			_, err := m.Import(s)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Import = %v, want ErrInvalid about %s", err, tc.want)
			}
			if len(m.List()) != 0 {
				t.Fatalf("a refused import is kept: %+v", m.List())
			}
		})
	}
	if _, err := m.Import(base()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Import(base()); !errors.Is(err, ErrSessionExists) {
		t.Fatalf("the same ID twice: %v, want ErrSessionExists", err)
	}
}

// TestImportTestdata: every example description that passes Check also
// passes Import's read-back check, so the check refuses nothing real.
func TestImportTestdata(t *testing.T) {
	for _, f := range testdataFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			m, _ := newManager(t)
			s, err := Parse(must(os.ReadFile(f)))
			if err != nil {
				t.Fatal(err)
			}
			hard := false
			for _, p := range s.Check() {
				hard = hard || !p.Warning
			}
			if _, err := m.Import(s); (err == nil) == hard || (err != nil && !errors.Is(err, ErrInvalid)) {
				t.Fatalf("Import = %v (Check finds errors: %v)", err, hard)
			}
		})
	}
}

// FuzzCreateInfo: whatever the text, Create either refuses it as invalid
// or makes a session whose saved text reads back with the same name and
// information.
func FuzzCreateInfo(f *testing.F) {
	for _, s := range []string{"", "seminar", "a\r\nb", "\x00", "ü", "\t", "x\rm=audio 9 RTP/AVP 0", strings.Repeat("y", MaxText)} {
		f.Add(s, s)
	}
	local, _ := multicast.ScopePool(multicast.IPv4, multicast.ScopeLocal, multicast.ScopeOptions{})
	a, _ := multicast.NewAllocator(multicast.Config{Pools: []multicast.Pool{local}})
	m, _ := NewManager(ManagerConfig{Allocator: a, Origin: netip.MustParseAddr("192.0.2.1")})
	f.Fuzz(func(t *testing.T, name, info string) {
		s, err := m.Create(SessionSpec{Name: name, Info: info, Pool: local.Name, Media: []MediaSpec{{Kind: "audio"}}})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Create(%q, %q) = %v, want ErrInvalid", name, info, err)
			}
			return
		}
		defer m.Delete(s.Origin.SessionID)
		saved, err := m.Save(s.Origin.SessionID)
		if err != nil {
			t.Fatal(err)
		}
		if name == " " {
			name = "" // the stand-in for no name (RFC 8866 §5.3)
		}
		back, err := Parse(saved.SDP)
		if err != nil || s.Name != name || back.Name != name || back.Info != info || len(back.Media) != 1 {
			t.Fatalf("Create(%q, %q) saved text that reads back as %+v, %v", name, info, back, err)
		}
	})
}
