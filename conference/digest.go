package conference

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Digest access authentication as a UAS: RFC 7616 as SIP uses it (RFC
// 3261 §22.4, updated by RFC 8760).
//
// Nonces are stateless: a nonce is the time it was issued, random bytes
// and an HMAC of both under a key each conference draws at random when it
// first needs one (so a restart, or another conference, makes them
// invalid). Issuing a challenge therefore stores nothing. Only a nonce that has
// authenticated a request enters the conference's nonceTable, which keeps
// the highest nc seen with it: a request whose nc is not above it is a
// replay (RFC 7616 §3.4, nc). The table is bounded; a nonce that left it
// before it expired is answered like an expired one (stale=true), so no
// nonce is ever accepted without its nc being checked.

// nonceLife is how long after it was issued a nonce is accepted. Past
// it, correct credentials get a new challenge with stale=true (RFC 7616
// §3.3), which clients answer without asking their user again.
const nonceLife = 5 * time.Minute

// nonceSkew is how far ahead of the clock a nonce's time may be (the
// clock stepped back since it was issued) before the nonce is taken for
// a stale one.
const nonceSkew = 5 * time.Second

// maxNoncesInUse bounds each conference's table of nonces that have
// authenticated a request (about 150 bytes each, measured). Only a caller
// who knows a password can add to it; an entry leaves when its nonce
// expires or, past the bound, when it is the oldest: from then on its
// nonce, and every one issued before it, is stale.
const maxNoncesInUse = 1024

// maxCredentials bounds the Authorization header values admit looks at,
// and maxCredentialsLen the length of each.
const (
	maxCredentials    = 4
	maxCredentialsLen = 4096
)

// The digest algorithms mcc offers and accepts (RFC 7616 §3.3, RFC 8760
// §2.1), most preferred first. The -sess forms are neither offered nor
// accepted: a client may only use what a challenge names.
var digestAlgorithms = []string{"SHA-256", "MD5"}

// HA1 is what mcc keeps of a digest user's password: H(unq(username) ":"
// unq(realm) ":" passwd) (RFC 7616 §3.4.2), in lower-case hex, for each
// algorithm mcc offers. An HA1 is worth the password in its realm.
type HA1 struct {
	MD5    string `json:"md5"`
	SHA256 string `json:"sha256"`
}

// NewHA1 hashes the password of username in realm for each algorithm.
func NewHA1(username, realm, password string) HA1 {
	return HA1{
		MD5:    hashHex("MD5", username, realm, password),
		SHA256: hashHex("SHA-256", username, realm, password),
	}
}

// of returns the HA1 for algorithm alg ("MD5" or "SHA-256").
func (h HA1) of(alg string) string {
	if alg == "SHA-256" {
		return h.SHA256
	}
	return h.MD5
}

// HashPasswords returns the Users of a Digest Access in realm: each user
// name of passwords with the HA1s of its password. It refuses an empty
// name or password, and a control character in a name or in realm (they
// travel in a quoted-string of a header).
func HashPasswords(realm string, passwords map[string]string) (map[string]HA1, error) {
	if err := checkHeaderValue(realm); err != nil {
		return nil, fmt.Errorf("conference: realm %q: %w", realm, err)
	}
	users := make(map[string]HA1, len(passwords))
	for name, pass := range passwords {
		switch {
		case name == "":
			return nil, errors.New("conference: an empty digest user name")
		case pass == "":
			return nil, fmt.Errorf("conference: digest user %q has an empty password", name)
		}
		if err := checkHeaderValue(name); err != nil {
			return nil, fmt.Errorf("conference: digest user %q: %w", name, err)
		}
		users[name] = NewHA1(name, realm, pass)
	}
	return users, nil
}

func newHash(alg string) hash.Hash {
	if alg == "SHA-256" {
		return sha256.New()
	}
	return md5.New()
}

// hashHex is H(parts joined by ":") in lower-case hex (RFC 7616 §3.4.1).
func hashHex(alg string, parts ...string) string {
	h := newHash(alg)
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{':'})
		}
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// digestResponse is the request-digest for qop=auth (RFC 7616 §3.4.1):
// KD(H(A1), nonce ":" nc ":" cnonce ":" qop ":" H(A2)) with KD(s, d) =
// H(s ":" d) and A2 = method ":" uri (§3.4.3). ha1 is H(A1), as Users
// keeps it.
func digestResponse(alg, ha1, method, uri, nonce, nc, cnonce string) string {
	return hashHex(alg, ha1, nonce, nc, cnonce, "auth", hashHex(alg, method, uri))
}

// credentials are the parameters of an Authorization header of the
// Digest scheme (RFC 7616 §3.4; RFC 3261 §25.1, digest-response).
type credentials struct {
	username, realm, nonce, uri, response string
	algorithm, cnonce, opaque, qop, nc    string
	userhash                              bool
}

var errCredentials = errors.New("conference: malformed digest credentials")

// parseCredentials reads an Authorization header value:
//
//	credentials = "Digest" LWS dig-resp *(COMMA dig-resp)
//	dig-resp    = token EQUAL ( token / quoted-string )
//
// Parameter names are case-insensitive and may appear once each (RFC
// 7235 §2.1); unknown ones are ignored (RFC 7616 §3.4).
func parseCredentials(s string) (*credentials, error) {
	if len(s) > maxCredentialsLen {
		return nil, fmt.Errorf("%w: %d bytes", errCredentials, len(s))
	}
	s = strings.TrimLeft(s, " \t")
	i := strings.IndexAny(s, " \t")
	if i < 0 || !strings.EqualFold(s[:i], "Digest") {
		return nil, fmt.Errorf("%w: not the Digest scheme", errCredentials)
	}
	c := &credentials{}
	seen := map[string]bool{}
	for rest := trimLWS(s[i:]); rest != ""; {
		i := 0
		for i < len(rest) && isToken(rest[i]) {
			i++
		}
		name := strings.ToLower(rest[:i])
		rest = trimLWS(rest[i:])
		if name == "" || rest == "" || rest[0] != '=' {
			return nil, fmt.Errorf("%w: want name=value", errCredentials)
		}
		rest = trimLWS(rest[1:])
		var value string
		if rest != "" && rest[0] == '"' {
			var b strings.Builder
			i = 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) { // quoted-pair
					i++
				}
				b.WriteByte(rest[i])
			}
			if i == len(rest) {
				return nil, fmt.Errorf("%w: unterminated quoted-string", errCredentials)
			}
			value, rest = b.String(), rest[i+1:]
		} else {
			i = 0
			for i < len(rest) && isToken(rest[i]) {
				i++
			}
			if i == 0 {
				return nil, fmt.Errorf("%w: %s has no value", errCredentials, name)
			}
			value, rest = rest[:i], rest[i:]
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: %s twice", errCredentials, name)
		}
		seen[name] = true
		switch name {
		case "username":
			c.username = value
		case "realm":
			c.realm = value
		case "nonce":
			c.nonce = value
		case "uri":
			c.uri = value
		case "response":
			c.response = value
		case "algorithm":
			c.algorithm = value
		case "cnonce":
			c.cnonce = value
		case "opaque":
			c.opaque = value
		case "qop":
			c.qop = value
		case "nc":
			c.nc = value
		case "userhash":
			c.userhash = strings.EqualFold(value, "true")
		}
		rest = trimLWS(rest)
		if rest == "" {
			break
		}
		if rest[0] != ',' {
			return nil, fmt.Errorf("%w: want a comma after %s", errCredentials, name)
		}
		rest = trimLWS(rest[1:])
	}
	for _, name := range []string{"username", "realm", "nonce", "uri", "response"} { // RFC 7616 §3.4
		if !seen[name] {
			return nil, fmt.Errorf("%w: no %s", errCredentials, name)
		}
	}
	return c, nil
}

func trimLWS(s string) string { return strings.TrimLeft(s, " \t\r\n") }

// isToken reports whether b may appear in a token (RFC 3261 §25.1).
func isToken(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("-.!%*_+`'~", b) >= 0
}

// isNC reports whether s is an nc-value: 8LHEX (RFC 7616 §3.4; upper-case
// digits are taken too).
func isNC(s string) bool {
	if len(s) != 8 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// quote writes s as a quoted-string (RFC 3261 §25.1).
func quote(s string) string {
	if !strings.ContainsAny(s, `"\`) {
		return `"` + s + `"`
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// nonceTable is one conference's digest state: the key its nonces are
// made with, and the nonces in use with the last nc of each. The zero
// value is ready to use.
type nonceTable struct {
	once   sync.Once
	key    []byte // set by once
	opaque string // set by once

	mu sync.Mutex // guards the fields below
	// used maps each nonce that has authenticated a request to what is
	// known of it; order holds the same nonces, oldest entry first.
	used  map[string]*nonceUse
	order []string
	// floor is the issue time (Unix ns) of the newest nonce that left
	// used: any nonce issued at or before it that is not in used may have
	// been used already, so it is stale.
	floor int64
}

type nonceUse struct {
	issued int64  // Unix ns
	nc     uint32 // the highest nc seen
}

func (t *nonceTable) init() {
	t.once.Do(func() {
		t.key = make([]byte, 32)
		rand.Read(t.key) // never fails (crypto/rand)
		m := hmac.New(sha256.New, t.key)
		m.Write([]byte("opaque"))
		t.opaque = base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
	})
}

// A nonce is BASE64(time-stamp random HMAC(time-stamp random)), the form
// RFC 7616 §3.3 suggests (time-stamp H(time-stamp ":" secret)) with an
// HMAC for the hash: 8 bytes of issue time (Unix ns), nonceRandLen random
// bytes, so that two challenges never share a nonce, and nonceMACLen
// bytes of HMAC-SHA-256.
const (
	nonceRandLen = 8
	nonceMACLen  = 18
	nonceLen     = 8 + nonceRandLen + nonceMACLen
)

func (t *nonceTable) mac(b []byte) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte("nonce"))
	m.Write(b)
	return m.Sum(nil)[:nonceMACLen]
}

// issue makes a nonce. It stores nothing.
func (t *nonceTable) issue(now time.Time) string {
	t.init()
	b := binary.BigEndian.AppendUint64(make([]byte, 0, nonceLen), uint64(now.UnixNano()))
	b = b[:8+nonceRandLen]
	rand.Read(b[8:])
	return base64.RawURLEncoding.EncodeToString(append(b, t.mac(b)...))
}

// verify returns the time nonce was issued, and false when the nonce is
// not one this table's key made (forged, or from before a restart).
func (t *nonceTable) verify(nonce string) (int64, bool) {
	t.init()
	// Strict: one spelling per nonce, or each of the others would get an
	// nc count of its own in the table.
	b, err := base64.RawURLEncoding.Strict().DecodeString(nonce)
	if err != nil || len(b) != nonceLen {
		return 0, false
	}
	if !hmac.Equal(b[8+nonceRandLen:], t.mac(b[:8+nonceRandLen])) {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b[:8])), true
}

// nonceVerdict is what use makes of a nonce and its nc.
type nonceVerdict int

const (
	nonceFresh  nonceVerdict = iota + 1 // nc is above every nc seen with it
	nonceReplay                         // nc was seen already, or a lower one
	nonceStale                          // the nonce can no longer be tracked
)

// use records that nonce, issued at issued, authenticated a request with
// nc at now (all Unix ns). It says whether nc is new.
func (t *nonceTable) use(nonce string, issued, now int64, nc uint32) nonceVerdict {
	t.mu.Lock()
	defer t.mu.Unlock()
	if u := t.used[nonce]; u != nil {
		if nc <= u.nc {
			return nonceReplay
		}
		u.nc = nc
		return nonceFresh
	}
	if issued <= t.floor {
		return nonceStale
	}
	if t.used == nil {
		t.used = map[string]*nonceUse{}
	}
	t.dropLocked(now)
	t.used[nonce] = &nonceUse{issued: issued, nc: nc}
	t.order = append(t.order, nonce)
	return nonceFresh
}

// dropLocked makes room for one entry: it removes the expired entries at
// the head of order and, while the table is full, the oldest ones,
// raising floor past each so that none of their nonces is taken again.
func (t *nonceTable) dropLocked(now int64) {
	expired := now - int64(nonceLife)
	n := 0
	for n < len(t.order) {
		u := t.used[t.order[n]]
		if u.issued >= expired && len(t.order)-n < maxNoncesInUse {
			break
		}
		t.floor = max(t.floor, u.issued)
		delete(t.used, t.order[n])
		n++
	}
	if n > 0 {
		// Shift rather than reslice, so the array does not grow for ever.
		t.order = t.order[:copy(t.order, t.order[n:])]
	}
}

// inUse returns how many nonces the table holds.
func (t *nonceTable) inUse() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.used)
}

// challenges returns the WWW-Authenticate headers of a 401 in realm: one
// per algorithm, SHA-256 first (RFC 8760 §2.3, the UAS adds them in its
// order of preference; §2.4, the UAC takes the topmost it supports), all
// with one fresh nonce, qop="auth" and the conference's opaque (RFC 7616
// §3.3). stale says the last credentials were right but their nonce was
// not (RFC 7616 §3.3, stale).
func (t *nonceTable) challenges(realm string, stale bool) []sip.Header {
	nonce := t.issue(time.Now())
	var hs []sip.Header
	for _, alg := range digestAlgorithms {
		v := "Digest realm=" + quote(realm) + ", nonce=" + quote(nonce) + ", opaque=" + quote(t.opaque) +
			", algorithm=" + alg + `, qop="auth"`
		if stale {
			v += ", stale=true"
		}
		hs = append(hs, sip.NewHeader("WWW-Authenticate", v))
	}
	return hs
}

// authenticate checks the Authorization headers of req against access a
// in realm. It returns nil when one of them proves a user's password,
// else the refusal: 401 with new challenges, or 400 when the credentials'
// uri is not the Request-URI.
func (t *nonceTable) authenticate(a *Access, realm string, req *sip.Request) *refusal {
	t.init() // t.opaque is read below
	retry := func(reason string, stale bool) *refusal {
		return &refusal{Code: sip.StatusUnauthorized, Reason: "Unauthorized", Warning: reason,
			Headers: t.challenges(realm, stale)}
	}
	hs := req.GetHeaders("Authorization")
	if len(hs) == 0 {
		return retry("credentials required", false)
	}
	// RFC 3261 §22.4: the credentials for our realm; others are for
	// someone else.
	var cred *credentials
	for i, h := range hs {
		if i == maxCredentials {
			break
		}
		c, err := parseCredentials(h.Value())
		if err != nil {
			continue
		}
		// The realm is in every challenge: public, but compared in
		// constant time all the same.
		if subtle.ConstantTimeCompare([]byte(c.realm), []byte(realm)) == 1 {
			cred = c
			break
		}
	}
	if cred == nil {
		return retry("no credentials for realm "+realm, false)
	}
	// RFC 7616 §3.4.6: the uri must designate the Request-URI's resource,
	// else 400. Compared as SIP URIs (RFC 3261 §19.1.4), see sameURI.
	var u sip.Uri
	if err := sip.ParseUri(cred.uri, &u); err != nil || !sameURI(u, req.Recipient) {
		return &refusal{Code: sip.StatusBadRequest, Reason: "Bad Request", Warning: "the credentials' uri is not the Request-URI"}
	}
	alg := ""
	switch {
	case cred.algorithm == "": // RFC 7616 §3.4: absent means MD5
		alg = "MD5"
	case strings.EqualFold(cred.algorithm, "MD5"):
		alg = "MD5"
	case strings.EqualFold(cred.algorithm, "SHA-256"):
		alg = "SHA-256"
	default:
		return retry("algorithm "+cred.algorithm+" is not offered: use SHA-256 or MD5", false)
	}
	// We offer qop="auth" only, and no userhash (RFC 7616 §3.4: the qop
	// must be one the server offered).
	if cred.qop != "auth" || cred.cnonce == "" || !isNC(cred.nc) || cred.userhash {
		return retry(`credentials need qop=auth with nc and cnonce, and no userhash`, false)
	}
	issued, ok := t.verify(cred.nonce)
	if !a.checkResponse(alg, cred, string(req.Method)) {
		return retry("wrong credentials", false)
	}
	// RFC 7616 §3.3: a nonce (and opaque) that is not this table's, such
	// as one issued before mcc restarted, with a valid response gets a
	// fresh challenge with stale=true: the client retries without asking
	// its user again.
	if !ok || cred.opaque != t.opaque {
		return retry("not a nonce of this conference (mcc restarted, or it is forged)", true)
	}
	// The credentials are right: from here on a refusal of the nonce is
	// stale=true, but for a replay.
	now := time.Now().UnixNano()
	if now-issued > int64(nonceLife) || issued-now > int64(nonceSkew) {
		return retry("nonce expired", true)
	}
	nc, _ := hex.DecodeString(cred.nc)
	switch t.use(cred.nonce, issued, now, binary.BigEndian.Uint32(nc)) {
	case nonceReplay:
		return retry("nc "+cred.nc+" was used already with this nonce", false)
	case nonceStale:
		return retry("nonce no longer tracked", true)
	}
	return nil
}

// checkResponse reports whether the response of cred is the one the
// password of its user gives. The user is looked up in constant time (every
// user is compared, and an unknown one gets a dummy HA1 and the same
// work), and the response is compared in constant time.
func (a *Access) checkResponse(alg string, cred *credentials, method string) bool {
	want := sha256.Sum256([]byte(cred.username))
	size := 2 * newHash(alg).Size()
	ha1 := make([]byte, size)
	for i := range ha1 {
		ha1[i] = '0'
	}
	found := 0
	for name, h := range a.Users {
		got := sha256.Sum256([]byte(name))
		eq := subtle.ConstantTimeCompare(want[:], got[:])
		if v := h.of(alg); len(v) == size {
			subtle.ConstantTimeCopy(eq, ha1, []byte(v))
			found |= eq
		}
	}
	expect, _ := hex.DecodeString(digestResponse(alg, string(ha1), method, cred.uri, cred.nonce, cred.nc, cred.cnonce))
	got, err := hex.DecodeString(cred.response)
	if err != nil {
		got = nil
	}
	return subtle.ConstantTimeCompare(expect, got)&found == 1
}

// sameURI compares the credentials' uri with the Request-URI as SIP URIs
// (RFC 3261 §19.1.4). We compare URIs rather than strings because sipgo
// keeps no raw Request-Line (req.Recipient is parsed, and would print
// differently from what the client sent, in case or escaping), and because
// §19.1.4 is how SIP says whether two URIs designate the same resource,
// which is what RFC 7616 §3.4.6 asks. It is strict where it matters: user,
// host, port and the user, ttl, method, maddr and transport parameters
// must match, and so must every header.
func sameURI(a, b sip.Uri) bool {
	if a.Scheme != "sip" && a.Scheme != "sips" || !strings.EqualFold(a.Scheme, b.Scheme) || a.Wildcard || b.Wildcard {
		return false
	}
	// User and password are case-sensitive; escaped characters equal their
	// unescaped forms.
	if unescape(a.User) != unescape(b.User) || unescape(a.Password) != unescape(b.Password) {
		return false
	}
	if !sameHost(a.Host, b.Host) || a.Port != b.Port {
		return false
	}
	ap, bp := params(a.UriParams), params(b.UriParams)
	for _, k := range []string{"user", "ttl", "method", "maddr", "transport"} {
		av, aok := ap[k]
		bv, bok := bp[k]
		if aok != bok || !strings.EqualFold(av, bv) {
			return false
		}
	}
	for k, av := range ap { // other parameters: compared when in both
		if bv, ok := bp[k]; ok && !strings.EqualFold(av, bv) {
			return false
		}
	}
	ah, bh := params(a.Headers), params(b.Headers)
	if len(ah) != len(bh) {
		return false
	}
	for k, av := range ah {
		if bv, ok := bh[k]; !ok || av != bv {
			return false
		}
	}
	return true
}

// sameHost compares hosts case-insensitively, and IP literals as
// addresses.
func sameHost(a, b string) bool {
	aa, aerr := netip.ParseAddr(strings.Trim(a, "[]"))
	ba, berr := netip.ParseAddr(strings.Trim(b, "[]"))
	if aerr == nil && berr == nil {
		return aa == ba
	}
	return aerr != nil && berr != nil && strings.EqualFold(unescape(a), unescape(b))
}

// params maps lower-cased, unescaped names to unescaped values.
func params(hp sip.HeaderParams) map[string]string {
	m := make(map[string]string, len(hp))
	for _, kv := range hp {
		m[strings.ToLower(unescape(kv.K))] = unescape(kv.V)
	}
	return m
}

// unescape decodes %HH escapes; a malformed one stays as it is.
func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := hex.DecodeString(s[i+1 : i+3]); err == nil {
				b.WriteByte(v[0])
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
