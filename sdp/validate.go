package sdp

import (
	"bytes"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxText is the longest text, in bytes, the Manager takes for one field
// of a session or stream it creates: the session name (s=), the
// information (i=), the type (a=type), a media kind, a format's encoding
// name or parameters, a pool name.
const MaxText = 1024

// ErrInvalid is matched (errors.Is) by every error the Manager returns
// because the spec or description it was handed is wrong: text that
// cannot become an SDP line, an unknown pool, a stop time that has passed,
// a description that would not read back after a restart. It is the
// caller's mistake, and nothing was leased or kept.
var ErrInvalid = errors.New("sdp: invalid spec or description")

// ErrSessionExists is returned by Import for a description whose o=
// session ID the Manager holds already.
var ErrSessionExists = errors.New("sdp: a session with that ID exists already")

// TextError reports text that cannot become (part of) an SDP line. It
// matches ErrInvalid.
type TextError struct {
	Field  string // what the text is, such as "information (i=)"
	Text   string // the text as given, cut short when long
	Reason string
}

func (e *TextError) Error() string { return fmt.Sprintf("sdp: %s %q: %s", e.Field, e.Text, e.Reason) }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *TextError) Is(target error) bool { return target == ErrInvalid }

// invalidError marks err as the caller's mistake without changing its text.
type invalidError struct{ err error }

func (e *invalidError) Error() string        { return e.err.Error() }
func (e *invalidError) Unwrap() error        { return e.err }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{fmt.Errorf(format, args...)}
}

// checkText refuses text that cannot be part of an SDP line. RFC 8866 §9
// gives text = byte-string = 1*(%x01-09/%x0B-0C/%x0E-FF): NUL, CR and LF
// are never allowed, since a CR or LF would end the line and start another
// (one field per line, §5). mcc refuses the other control characters too
// (C0 but HTAB, DEL, C1: they are invisible in logs and terminals), text
// that is not UTF-8 (§5.3 and §5.4: s= and i= are ISO 10646 in UTF-8
// unless a=charset says otherwise), and text longer than limit bytes.
func checkText(field, s string, limit int) error {
	bad := func(format string, args ...any) error {
		return &TextError{Field: field, Text: shorten(s), Reason: fmt.Sprintf(format, args...)}
	}
	if len(s) > limit {
		return bad("%d bytes, more than %d", len(s), limit)
	}
	if !utf8.ValidString(s) {
		return bad("not UTF-8 (RFC 8866 §5.3)")
	}
	for _, r := range s {
		switch {
		case r == 0:
			return bad("NUL is not allowed in SDP text (RFC 8866 §9)")
		case r == '\r' || r == '\n':
			return bad("a line break would end the line and start another (RFC 8866 §5, §9)")
		case r != '\t' && unicode.IsControl(r):
			return bad("control character %U is not allowed", r)
		}
		if why := Hidden(r); why != "" {
			return bad("%U is %s", r, why)
		}
	}
	return nil
}

// Hidden says why r is refused in text that people read (s=, i=, names,
// users) though it is no control character, or "" when it is not: line
// and paragraph separators (Unicode Zl, Zp), which terminals and some
// parsers take for a line break, the explicit bidirectional embeddings,
// overrides and isolates (U+202A-U+202E, U+2066-U+2069), which make a
// name read differently from what it is, and the byte order mark U+FEFF.
// Other format characters (ZWJ, ZWNJ, LRM, RLM) are kept: scripts and
// emoji need them.
func Hidden(r rune) string {
	switch {
	case r == '\u2028', r == '\u2029':
		return "a line or paragraph separator"
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return "a bidirectional override, which makes text read other than it is"
	case r == '\ufeff':
		return "a byte order mark"
	}
	return ""
}

// checkToken refuses what is not an RFC 8866 §9 token, such as a media
// kind (media = token, §5.14) or an encoding name (§6.6).
func checkToken(field, s string, limit int) error {
	if err := checkText(field, s, limit); err != nil {
		return err
	}
	if !isToken(s) {
		return &TextError{Field: field, Text: shorten(s), Reason: "want a token: letters, digits and !#$%&'*+-.^_`{|}~, no space (RFC 8866 §9)"}
	}
	return nil
}

// shorten cuts s to at most 64 bytes, on a rune boundary, for messages.
func shorten(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// checkSession checks every text field of s that becomes an SDP line, each
// at most limit bytes.
func checkSession(s *Session, limit int) error {
	fields := []struct{ name, text string }{
		{"session name (s=)", s.Name}, {"information (i=)", s.Info}, {"URI (u=)", s.URI},
		{"email (e=)", s.Email}, {"phone (p=)", s.Phone}, {"type (a=type)", s.Type}, {"tool (a=tool)", s.Tool},
		{"origin user name (o=)", s.Origin.Username}, {"origin host (o=)", s.Origin.Host},
	}
	for _, f := range fields {
		if err := checkText(f.name, f.text, limit); err != nil {
			return err
		}
	}
	if err := checkAttributes(s.Attributes, limit); err != nil {
		return err
	}
	for _, m := range s.Media {
		if err := checkMedia(m, limit); err != nil {
			return err
		}
	}
	return nil
}

// checkMedia checks the text fields of one media description.
func checkMedia(m *Media, limit int) error {
	if err := checkToken("media kind (m=)", m.Kind, limit); err != nil {
		return err
	}
	if err := checkText("protocol (m=)", m.Proto, limit); err != nil {
		return err
	}
	for _, f := range m.Formats {
		if err := checkToken("format (m=)", f, limit); err != nil {
			return err
		}
	}
	if err := checkText("media title (i=)", m.Title, limit); err != nil {
		return err
	}
	for _, r := range m.RTPMaps {
		if err := checkToken("encoding name (a=rtpmap)", r.Encoding, limit); err != nil {
			return err
		}
		if err := checkText("format parameters (a=fmtp)", r.Params, limit); err != nil {
			return err
		}
	}
	return checkAttributes(m.Attributes, limit)
}

func checkAttributes(as []Attribute, limit int) error {
	for _, a := range as {
		// att-field = token; att-value = byte-string (RFC 8866 §9).
		if err := checkToken("attribute name (a=)", a.Key, limit); err != nil {
			return err
		}
		if err := checkText("attribute "+a.Key+" (a=)", a.Value, limit); err != nil {
			return err
		}
	}
	return nil
}

// restorable reports whether desc survives a restart as it is. Save keeps
// desc.Marshal(), and Restore parses that text back: it must parse, keep
// the o= session ID (the conference finds its session by it) and give the
// same text when marshalled again, or a restart would lose the session
// with its leases, or bring back one that differs from what participants
// were offered.
func restorable(desc *Session) error {
	b, err := desc.Marshal()
	if err != nil {
		return invalidf("sdp: the description cannot be written: %w", err)
	}
	back, err := Parse(b)
	if err != nil {
		return invalidf("sdp: the description would not read back after a restart: %w", err)
	}
	if back.Origin.SessionID != desc.Origin.SessionID {
		return invalidf("sdp: session ID %d reads back as %d", desc.Origin.SessionID, back.Origin.SessionID)
	}
	b2, err := back.Marshal()
	if err != nil {
		return invalidf("sdp: the description read back cannot be written: %w", err)
	}
	if !bytes.Equal(b, b2) {
		was, now := splitLinesOf(b), splitLinesOf(b2)
		for i := 0; i < max(len(was), len(now)); i++ {
			w, n := lineOr(was, i), lineOr(now, i)
			if w != n {
				return invalidf("sdp: line %d %q reads back as %q: the description would not survive a restart as it is", i+1, w, n)
			}
		}
	}
	return nil
}

func splitLinesOf(b []byte) []string {
	ls, _ := splitLines(b)
	return ls
}

func lineOr(ls []string, i int) string {
	if i < len(ls) {
		return ls[i]
	}
	return ""
}
