package conference

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// RFC 7616 §3.9.1: the worked example, for SHA-256 and for MD5.
func TestDigestRFC7616Example(t *testing.T) {
	const (
		realm  = "http-auth@example.org"
		nonce  = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
		cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
		opaque = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
	)
	ha1 := NewHA1("Mufasa", realm, "Circle of Life")
	for _, tc := range []struct{ alg, response string }{
		{"SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
		{"MD5", "8ca523f5e9506fed4657c9700eebdbec"},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			if got := digestResponse(tc.alg, ha1.of(tc.alg), "GET", "/dir/index.html", nonce, "00000001", cnonce); got != tc.response {
				t.Errorf("response = %s, want %s", got, tc.response)
			}
			// The example's Authorization header, as the RFC folds it.
			hdr := `Digest username="Mufasa",` + "\r\n\t" + `realm="http-auth@example.org", uri="/dir/index.html", algorithm=` +
				tc.alg + `, nonce="` + nonce + `", nc=00000001, cnonce="` + cnonce + `", qop=auth, response="` + tc.response +
				`", opaque="` + opaque + `"`
			c, err := parseCredentials(hdr)
			if err != nil {
				t.Fatal(err)
			}
			want := credentials{username: "Mufasa", realm: realm, nonce: nonce, uri: "/dir/index.html", response: tc.response,
				algorithm: tc.alg, cnonce: cnonce, opaque: opaque, qop: "auth", nc: "00000001"}
			if *c != want {
				t.Errorf("parseCredentials = %+v, want %+v", *c, want)
			}
			a := &Access{Users: map[string]HA1{"Mufasa": ha1, "Simba": NewHA1("Simba", realm, "Hakuna Matata")}}
			if !a.checkResponse(tc.alg, c, "GET") {
				t.Error("checkResponse refuses the RFC's credentials")
			}
			if a.checkResponse(tc.alg, c, "POST") {
				t.Error("checkResponse takes the credentials for another method")
			}
		})
	}
}

func TestDigestParseCredentials(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     credentials // checked when wantErr is empty
		wantErr  string
	}{
		{name: "names in any case, a quoted-pair, tabs", in: "digest\tUserName=\"bo\\\"b\" ,REALM=r,nonce=\"n\",uri=\"sip:a@b\",Response=\"00\",qop=auth,NC=0000000A,cnonce=c",
			want: credentials{username: `bo"b`, realm: "r", nonce: "n", uri: "sip:a@b", response: "00", qop: "auth", nc: "0000000A", cnonce: "c"}},
		{name: "unknown parameters ignored", in: `Digest username="u", realm="r", nonce="n", uri="u", response="0", x-extra="y", userhash=TRUE`,
			want: credentials{username: "u", realm: "r", nonce: "n", uri: "u", response: "0", userhash: true}},
		{name: "another scheme", in: `Basic dXNlcjpwYXNz`, wantErr: "not the Digest scheme"},
		{name: "no parameters", in: `Digest`, wantErr: "not the Digest scheme"},
		{name: "a parameter twice", in: `Digest username="u", username="v", realm="r", nonce="n", uri="u", response="0"`, wantErr: "username twice"},
		{name: "unterminated quoted-string", in: `Digest username="u, realm=r`, wantErr: "unterminated"},
		{name: "no comma", in: `Digest username="u" realm="r"`, wantErr: "want a comma"},
		{name: "no value", in: `Digest username=, realm="r"`, wantErr: "has no value"},
		{name: "no equals", in: `Digest username`, wantErr: "want name=value"},
		{name: "no response", in: `Digest username="u", realm="r", nonce="n", uri="u"`, wantErr: "no response"},
		{name: "too long", in: `Digest username="` + strings.Repeat("u", maxCredentialsLen) + `"`, wantErr: "bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseCredentials(tc.in)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, errCredentials) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseCredentials(%q) = %v, want an error with %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || *c != tc.want {
				t.Fatalf("parseCredentials(%q) = %+v, %v, want %+v", tc.in, c, err, tc.want)
			}
		})
	}
}

// RFC 3261 §19.1.4: its examples of equivalent and different URIs.
func TestDigestSameURI(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp", true},
		{"sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5", true},
		{"sip:carol@chicago.com", "sip:carol@chicago.com;security=on", true},
		{"sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on", true},
		{"sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com", "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com", true},
		{"sip:alice@atlanta.com?subject=project%20x&priority=urgent", "sip:alice@atlanta.com?priority=urgent&subject=project%20x", true},
		{"sip:board@[::1]:5060", "sip:board@[0:0::1]:5060", true},
		{"SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP", false},
		{"sip:bob@biloxi.com", "sip:bob@biloxi.com:5060", false},
		{"sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp", false},
		{"sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp", false},
		{"sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting", false},
		{"sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4", false},
		{"sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off", false},
		{"sip:board@example.org", "sips:board@example.org", false},
		{"sip:board@example.org", "sip:lecture@example.org", false},
	} {
		var a, b sip.Uri
		if err := sip.ParseUri(tc.a, &a); err != nil {
			t.Fatalf("ParseUri(%q): %v", tc.a, err)
		}
		if err := sip.ParseUri(tc.b, &b); err != nil {
			t.Fatalf("ParseUri(%q): %v", tc.b, err)
		}
		if got := sameURI(a, b); got != tc.want {
			t.Errorf("sameURI(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := sameURI(b, a); got != tc.want {
			t.Errorf("sameURI(%q, %q) = %v, want %v", tc.b, tc.a, got, tc.want)
		}
	}
}

const boardURI = "sip:board@192.0.2.1:5060"

// dialInRequest is an INVITE to uri from user@host, sent from src, with
// Authorization headers auth.
func dialInRequest(t testing.TB, uri, from, src string, auth ...string) *sip.Request {
	t.Helper()
	var target, fromURI sip.Uri
	if err := sip.ParseUri(uri, &target); err != nil {
		t.Fatal(err)
	}
	if err := sip.ParseUri(from, &fromURI); err != nil {
		t.Fatal(err)
	}
	req := sip.NewRequest(sip.INVITE, target)
	fh := &sip.FromHeader{Address: fromURI, Params: sip.NewParams()}
	fh.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: target})
	callID := sip.CallIDHeader(sip.GenerateTagN(16))
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	// Via names an address inside every allowed network: admit must not
	// believe it.
	req.AppendHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "192.0.2.7", Port: 5060,
		Params: sip.NewParams()})
	for _, a := range auth {
		req.AppendHeader(sip.NewHeader("Authorization", a))
	}
	if src != "" {
		req.SetSource(src)
	}
	return req
}

func newDigestConference(t testing.TB, name string, users map[string]string) *Conference {
	t.Helper()
	ha1s, err := HashPasswords(name, users)
	if err != nil {
		t.Fatal(err)
	}
	return &Conference{name: name, access: Access{Mode: Digest, Users: ha1s}}
}

// challengesOf returns the challenges of a 401, in order.
func challengesOf(t testing.TB, r *refusal) []*digest.Challenge {
	t.Helper()
	if r == nil || r.Code != 401 {
		t.Fatalf("refusal %+v, want 401", r)
	}
	var out []*digest.Challenge
	for _, h := range r.Headers {
		if h.Name() != "WWW-Authenticate" {
			continue
		}
		ch, err := digest.ParseChallenge(h.Value())
		if err != nil {
			t.Fatalf("challenge %q: %v", h.Value(), err)
		}
		out = append(out, ch)
	}
	return out
}

// answer computes credentials with icholy/digest (an independent client)
// for the challenge, then lets edit change them.
func answer(t testing.TB, ch *digest.Challenge, user, pass, uri string, nc int, edit func(*digest.Credentials)) string {
	t.Helper()
	cr, err := digest.Digest(ch, digest.Options{Method: "INVITE", URI: uri, Username: user, Password: pass, Count: nc, Cnonce: "0a4f113b"})
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(cr)
	}
	return cr.String()
}

func TestDigestChallenge(t *testing.T) {
	conf := newDigestConference(t, "board", map[string]string{"bob": "s3cret"})
	r := (&Controller{}).admit(conf, dialInRequest(t, boardURI, "sip:bob@example.org", "192.0.2.7:5060"))
	chs := challengesOf(t, r)
	// RFC 8760 §2.3: one per algorithm, SHA-256 first; one nonce.
	if len(chs) != 2 || chs[0].Algorithm != "SHA-256" || chs[1].Algorithm != "MD5" {
		t.Fatalf("challenges %+v, want SHA-256 then MD5", chs)
	}
	for _, ch := range chs {
		if ch.Realm != "board" || ch.Nonce != chs[0].Nonce || ch.Opaque == "" || len(ch.QOP) != 1 || ch.QOP[0] != "auth" || ch.Stale {
			t.Errorf("challenge %+v, want realm board, the one nonce, an opaque, qop auth, not stale", ch)
		}
	}
	// Another conference's nonces are not this one's.
	other := newDigestConference(t, "board", map[string]string{"bob": "s3cret"})
	r2 := (&Controller{}).admit(other, dialInRequest(t, boardURI, "sip:bob@example.org", "192.0.2.7:5060"))
	och := challengesOf(t, r2)[0]
	req := dialInRequest(t, boardURI, "sip:bob@example.org", "192.0.2.7:5060",
		answer(t, och, "bob", "s3cret", boardURI, 1, func(c *digest.Credentials) { c.Opaque = chs[0].Opaque }))
	// With the right password it is stale=true (RFC 7616 §3.3: an invalid
	// nonce, a valid response), as after a restart; with a wrong one not.
	if r := (&Controller{}).admit(conf, req); r == nil || r.Code != 401 || !strings.Contains(fmt.Sprint(r.Headers), "stale=true") {
		t.Fatalf("a nonce of another conference: %+v, want 401 with stale=true", r)
	}
	req = dialInRequest(t, boardURI, "sip:bob@example.org", "192.0.2.7:5060",
		answer(t, och, "bob", "wrong", boardURI, 1, func(c *digest.Credentials) { c.Opaque = chs[0].Opaque }))
	if r := (&Controller{}).admit(conf, req); r == nil || r.Code != 401 || strings.Contains(fmt.Sprint(r.Headers), "stale") {
		t.Fatalf("a nonce of another conference, wrong password: %+v, want 401 without stale", r)
	}
}

// TestDigestAdmit walks one conference through a sequence of dial-ins;
// each step depends on the nonces of the earlier ones.
func TestDigestAdmit(t *testing.T) {
	conf := newDigestConference(t, "board", map[string]string{"bob": "s3cret", "alice": "wonder land"})
	c := &Controller{}
	fresh := func() (sha, md *digest.Challenge) {
		chs := challengesOf(t, c.admit(conf, dialInRequest(t, boardURI, "sip:bob@example.org", "192.0.2.7:5060")))
		return chs[0], chs[1]
	}
	// Both challenges of a 401 carry one nonce: take each from its own.
	sha, _ := fresh()
	_, md := fresh()
	sha2, _ := fresh()
	forged := *sha
	b, _ := base64.RawURLEncoding.DecodeString(sha.Nonce)
	b[len(b)-1] ^= 1
	forged.Nonce = base64.RawURLEncoding.EncodeToString(b)
	other := *sha
	other.Realm = "lecture"
	sha512 := *sha
	sha512.Algorithm = "SHA-512-256"

	for _, tc := range []struct {
		name string
		auth string
		uri  string // the Request-URI; empty means boardURI
		want int    // 0: admitted
	}{
		{"SHA-256", answer(t, sha, "bob", "s3cret", boardURI, 1, nil), "", 0},
		{"the same nc again", answer(t, sha, "bob", "s3cret", boardURI, 1, nil), "", 401},
		{"a higher nc on the same nonce", answer(t, sha, "bob", "s3cret", boardURI, 2, nil), "", 0},
		{"nc 2 again", answer(t, sha, "bob", "s3cret", boardURI, 2, nil), "", 401},
		{"a lower nc", answer(t, sha, "bob", "s3cret", boardURI, 1, nil), "", 401},
		{"nc 5, skipping some", answer(t, sha, "bob", "s3cret", boardURI, 5, nil), "", 0},
		{"another user on the same nonce, its nc already used", answer(t, sha, "alice", "wonder land", boardURI, 5, nil), "", 401},
		{"MD5", answer(t, md, "alice", "wonder land", boardURI, 1, nil), "", 0},
		{"no algorithm parameter means MD5", answer(t, md, "bob", "s3cret", boardURI, 2, func(c *digest.Credentials) { c.Algorithm = "" }), "", 0},
		{"algorithm in lower case", answer(t, sha2, "bob", "s3cret", boardURI, 1, func(c *digest.Credentials) { c.Algorithm = "sha-256" }), "", 0},
		{"uri not the Request-URI", answer(t, sha2, "bob", "s3cret", "sip:lecture@192.0.2.1:5060", 2, nil), "", 400},
		{"uri without the port", answer(t, sha2, "bob", "s3cret", "sip:board@192.0.2.1", 3, nil), "", 400},
		{"uri with a transport the Request-URI lacks", answer(t, sha2, "bob", "s3cret", boardURI+";transport=tcp", 4, nil), "", 400},
		{"uri equal as a SIP URI", answer(t, sha2, "bob", "s3cret", "sip:%62oard@192.0.2.1:5060;lr", 5, nil), boardURI + ";x=1", 0},
		{"uri not a URI", answer(t, sha2, "bob", "s3cret", "/board", 6, nil), "", 400},
		{"unknown algorithm", answer(t, &sha512, "bob", "s3cret", boardURI, 7, nil), "", 401},
		{"a -sess algorithm", answer(t, md, "bob", "s3cret", boardURI, 7, func(c *digest.Credentials) { c.Algorithm = "MD5-sess" }), "", 401},
		{"wrong password", answer(t, sha2, "bob", "secret", boardURI, 7, nil), "", 401},
		{"unknown user", answer(t, sha2, "mallory", "s3cret", boardURI, 7, nil), "", 401},
		{"wrong realm", answer(t, &other, "bob", "s3cret", boardURI, 7, nil), "", 401},
		// With the right password these are stale=true (TestDigestStale).
		{"forged nonce", answer(t, &forged, "bob", "secret", boardURI, 1, nil), "", 401},
		{"wrong opaque", answer(t, sha2, "bob", "secret", boardURI, 7, func(c *digest.Credentials) { c.Opaque = "x" }), "", 401},
		{"no qop", answer(t, &digest.Challenge{Realm: "board", Nonce: sha2.Nonce, Opaque: sha2.Opaque, Algorithm: "SHA-256"}, "bob", "s3cret", boardURI, 7, nil), "", 401},
		{"userhash", answer(t, sha2, "bob", "s3cret", boardURI, 7, func(c *digest.Credentials) { c.Userhash = true }), "", 401},
		{"malformed", `Digest username="bob", realm="board"`, "", 401},
		{"the right answer after all those", answer(t, sha2, "bob", "s3cret", boardURI, 7, nil), "", 0},
		{"credentials for another realm first", `Digest username="x", realm="proxy", nonce="n", uri="` + boardURI + `", response="00"`, "", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uri := tc.uri
			if uri == "" {
				uri = boardURI
			}
			r := c.admit(conf, dialInRequest(t, uri, "sip:bob@example.org", "192.0.2.7:5060", tc.auth))
			switch {
			case tc.want == 0 && r != nil:
				t.Fatalf("refused: %d %s (%s)", r.Code, r.Reason, r.Warning)
			case tc.want != 0 && r == nil:
				t.Fatalf("admitted, want %d", tc.want)
			case tc.want != 0 && r.Code != tc.want:
				t.Fatalf("refused with %d (%s), want %d", r.Code, r.Warning, tc.want)
			case tc.want == 401:
				for _, ch := range challengesOf(t, r) {
					if ch.Stale {
						t.Errorf("stale=true for %q (%s)", tc.name, r.Warning)
					}
				}
			}
		})
	}
	// Credentials for another realm next to ours: ours are found.
	r := c.admit(conf, dialInRequest(t, boardURI, "sip:bob@example.org", "192.0.2.7:5060",
		`Digest username="x", realm="proxy", nonce="n", uri="`+boardURI+`", response="00"`, answer(t, md, "bob", "s3cret", boardURI, 9, nil)))
	if r != nil {
		t.Fatalf("our credentials after a proxy's: %+v", r)
	}
}

// An expired nonce with the right credentials gets stale=true; with wrong
// ones, or a forged nonce, it does not.
func TestDigestStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conf := newDigestConference(t, "board", map[string]string{"bob": "s3cret"})
		c := &Controller{}
		ch := challengesOf(t, c.admit(conf, dialInRequest(t, boardURI, "sip:bob@example.org", "192.0.2.7:5060")))[0]
		time.Sleep(nonceLife - time.Second)
		if r := c.admit(conf, dialInRequest(t, boardURI, "sip:bob@example.org", "", answer(t, ch, "bob", "s3cret", boardURI, 1, nil))); r != nil {
			t.Fatalf("a nonce one second before it expires: %+v", r)
		}
		time.Sleep(2 * time.Second)
		forged := *ch
		forged.Nonce = strings.Repeat("A", len(ch.Nonce))
		for _, tc := range []struct {
			name  string
			auth  string
			stale bool
		}{
			{"right credentials, expired nonce", answer(t, ch, "bob", "s3cret", boardURI, 2, nil), true},
			{"wrong password, expired nonce", answer(t, ch, "bob", "wrong", boardURI, 3, nil), false},
			{"forged nonce, right password", answer(t, &forged, "bob", "s3cret", boardURI, 1, nil), true},
			{"forged nonce, wrong password", answer(t, &forged, "bob", "wrong", boardURI, 1, nil), false},
		} {
			r := c.admit(conf, dialInRequest(t, boardURI, "sip:bob@example.org", "", tc.auth))
			chs := challengesOf(t, r)
			for _, ch := range chs {
				if ch.Stale != tc.stale {
					t.Errorf("%s: stale %v, want %v (%s)", tc.name, ch.Stale, tc.stale, r.Warning)
				}
			}
			if tc.stale {
				// The new challenge works at once.
				if r := c.admit(conf, dialInRequest(t, boardURI, "sip:bob@example.org", "", answer(t, chs[0], "bob", "s3cret", boardURI, 1, nil))); r != nil {
					t.Errorf("after stale=true: %+v", r)
				}
			}
		}
		// The expired nonce left the table when a new one came in; the
		// two the stale challenges gave are in use.
		if n := conf.nonces.inUse(); n != 2 {
			t.Errorf("%d nonces in use, want 2", n)
		}
	})
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestDigestNonceTableBounded: challenges store nothing, and the nonces
// that authenticated requests stay under maxNoncesInUse; a nonce that left
// the table is stale, never replayable.
func TestDigestNonceTableBounded(t *testing.T) {
	conf := newDigestConference(t, "board", map[string]string{"bob": "s3cret"})
	c := &Controller{}
	req := dialInRequest(t, boardURI, "sip:bob@example.org", "192.0.2.7:5060")
	c.admit(conf, req) // the key and opaque are made once
	before := heapAlloc()
	const challenges = 100_000
	for range challenges {
		if r := c.admit(conf, req); r == nil || r.Code != 401 {
			t.Fatalf("no credentials: %+v", r)
		}
	}
	grown := int64(heapAlloc()) - int64(before)
	t.Logf("heap after %d challenges: %+d bytes; nonces in use %d", challenges, grown, conf.nonces.inUse())
	if grown > 1<<20 || conf.nonces.inUse() != 0 {
		t.Fatalf("%d challenges grew the heap by %d bytes and the table to %d", challenges, grown, conf.nonces.inUse())
	}

	// Three times the bound of authenticated dial-ins, each on a new nonce.
	var first string
	before = heapAlloc()
	for i := range 3 * maxNoncesInUse {
		ch := challengesOf(t, c.admit(conf, req))[0]
		auth := answer(t, ch, "bob", "s3cret", boardURI, 1, nil)
		if i == 0 {
			first = answer(t, ch, "bob", "s3cret", boardURI, 2, nil)
		}
		if r := c.admit(conf, dialInRequest(t, boardURI, "sip:bob@example.org", "", auth)); r != nil {
			t.Fatalf("dial-in %d: %+v", i, r)
		}
		if n := conf.nonces.inUse(); n > maxNoncesInUse {
			t.Fatalf("after %d dial-ins, %d nonces in use", i+1, n)
		}
	}
	t.Logf("heap after %d dial-ins: %+d bytes; nonces in use %d", 3*maxNoncesInUse, int64(heapAlloc())-int64(before), conf.nonces.inUse())
	// The first nonce left the table: its next nc is not taken on trust.
	r := c.admit(conf, dialInRequest(t, boardURI, "sip:bob@example.org", "", first))
	if chs := challengesOf(t, r); !chs[0].Stale {
		t.Fatalf("a nonce that left the table: %+v, want 401 stale=true", r)
	}
}

func TestAllowSources(t *testing.T) {
	nets := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}
	allow := []string{"sip:bob@example.org", "example.com"}
	for _, tc := range []struct {
		name      string
		access    Access
		from, src string
		want      int // 0: admitted
	}{
		{"allow list alone trusts From", Access{Mode: AllowList, Allow: allow}, "sip:bob@example.org", "198.51.100.1:5060", 0},
		{"allow list alone, a domain", Access{Mode: AllowList, Allow: allow}, "sip:eve@EXAMPLE.com", "198.51.100.1:5060", 0},
		{"allow list alone, not listed", Access{Mode: AllowList, Allow: allow}, "sip:mallory@example.net", "192.0.2.7:5060", 403},
		{"listed, from a source inside", Access{Mode: AllowList, Allow: allow, Sources: nets}, "sip:bob@example.org", "192.0.2.7:5060", 0},
		{"listed, from an IPv6 source inside", Access{Mode: AllowList, Allow: allow, Sources: nets}, "sip:bob@example.org", "[2001:db8::5]:5060", 0},
		{"listed, from an IPv4-mapped source inside", Access{Mode: AllowList, Allow: allow, Sources: nets}, "sip:bob@example.org", "[::ffff:192.0.2.9]:5060", 0},
		{"listed, from a source outside", Access{Mode: AllowList, Allow: allow, Sources: nets}, "sip:bob@example.org", "198.51.100.1:5060", 403},
		{"listed, source unknown (Via is inside)", Access{Mode: AllowList, Allow: allow, Sources: nets}, "sip:bob@example.org", "", 403},
		{"not listed, from a source inside", Access{Mode: AllowList, Allow: allow, Sources: nets}, "sip:mallory@example.net", "192.0.2.7:5060", 403},
		{"anyone, from a source inside", Access{Sources: nets}, "sip:mallory@example.net", "192.0.2.200:5060", 0},
		{"anyone, from a source outside", Access{Sources: nets}, "sip:mallory@example.net", "[2001:db9::1]:5060", 403},
		{"digest, from a source outside: no challenge", Access{Mode: Digest, Sources: nets}, "sip:bob@example.org", "198.51.100.1:5060", 403},
		{"digest, from a source inside: a challenge", Access{Mode: Digest, Sources: nets}, "sip:bob@example.org", "192.0.2.7:5060", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := &Conference{name: "board", access: tc.access}
			r := (&Controller{}).admit(conf, dialInRequest(t, boardURI, tc.from, tc.src))
			switch {
			case tc.want == 0 && r != nil:
				t.Fatalf("refused: %d %s", r.Code, r.Warning)
			case tc.want != 0 && (r == nil || r.Code != tc.want):
				t.Fatalf("admit = %+v, want %d", r, tc.want)
			case tc.want == 403 && hasChallenge(r):
				t.Fatalf("403 with a challenge: %+v", r)
			}
		})
	}
}

func hasChallenge(r *refusal) bool {
	for _, h := range r.Headers {
		if h.Name() == "WWW-Authenticate" {
			return true
		}
	}
	return false
}

func TestAccessHashPasswords(t *testing.T) {
	users, err := HashPasswords("board", map[string]string{"bob": "s3cret", "alice": "wonder land"})
	if err != nil {
		t.Fatal(err)
	}
	// H(bob:board:s3cret), computed with icholy/digest's A1 for each
	// algorithm (an independent implementation).
	for _, alg := range []string{"MD5", "SHA-256"} {
		cr, _ := digest.Digest(&digest.Challenge{Realm: "board", Nonce: "n", Algorithm: alg}, digest.Options{Method: "INVITE", URI: "u", Username: "bob", Password: "s3cret"})
		mine := digestResponseNoQOP(alg, users["bob"].of(alg), "INVITE", "u", "n")
		if mine != cr.Response {
			t.Errorf("%s: the HA1 of bob gives %s, icholy/digest %s", alg, mine, cr.Response)
		}
	}
	a := Access{Mode: Digest, Users: users, Realm: "board", Sources: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "s3cret") || strings.Contains(string(b), "wonder") || !strings.Contains(string(b), users["bob"].SHA256) {
		t.Fatalf("Access as JSON: %s", b)
	}
	var back Access
	if err := json.Unmarshal(b, &back); err != nil || back.Users["alice"] != users["alice"] || back.Sources[0] != a.Sources[0] {
		t.Fatalf("Access round trip: %+v, %v", back, err)
	}
	for _, tc := range []struct {
		name, realm string
		passwords   map[string]string
	}{
		{"empty name", "board", map[string]string{"": "x"}},
		{"empty password", "board", map[string]string{"bob": ""}},
		{"CRLF in a name", "board", map[string]string{"bob\r\nX: y": "x"}},
		{"NUL in the realm", "bo\x00ard", map[string]string{"bob": "x"}},
	} {
		if _, err := HashPasswords(tc.realm, tc.passwords); err == nil {
			t.Errorf("HashPasswords %s: no error", tc.name)
		}
	}
}

// digestResponseNoQOP is the RFC 2069 response, H(HA1:nonce:H(A2)): only
// for checking an HA1 against a client that computes it from the password.
func digestResponseNoQOP(alg, ha1, method, uri, nonce string) string {
	return hashHex(alg, ha1, nonce, hashHex(alg, method, uri))
}

// TestDigestDialIn over loopback: SHA-256 and MD5 credentials admitted, a
// replayed Authorization header refused.
func TestDigestDialIn(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	users, _ := HashPasswords("board", map[string]string{"bob": "s3cret"})
	if _, err := e.c.Create("board", e.sid, Access{Mode: Digest, Users: users}); err != nil {
		t.Fatal(err)
	}
	uri := strings.Replace(e.c.URI(e.name), "lecture", "board", 1)
	p := e.peer(t, "udp")
	call := p.dialIn(t, uri, nil, echo)
	for i, alg := range []string{"SHA-256", "MD5"} {
		// Both challenges carry one nonce: each algorithm answers a 401 of
		// its own.
		hs := call.res.GetHeaders("WWW-Authenticate")
		if call.res.StatusCode != 401 || len(hs) != 2 {
			t.Fatalf("%d with %d challenges, want 401 with 2", call.res.StatusCode, len(hs))
		}
		ch, err := digest.ParseChallenge(hs[i].Value())
		if err != nil || ch.Algorithm != alg {
			t.Fatalf("challenge %d: %v %v, want %s", i, ch, err, alg)
		}
		auth := answer(t, ch, "bob", "s3cret", uri, 1, nil)
		if call := p.dialIn(t, uri, nil, echo, sip.NewHeader("Authorization", auth)); call.res.StatusCode != 200 {
			t.Fatalf("%s: %d %s", alg, call.res.StatusCode, call.res.Reason)
		}
		// The same header in a new INVITE: a replay.
		call = p.dialIn(t, uri, nil, echo, sip.NewHeader("Authorization", auth))
		if call.res.StatusCode != 401 || call.res.GetHeader("WWW-Authenticate") == nil {
			t.Fatalf("%s replayed: %d", alg, call.res.StatusCode)
		}
	}
}

// TestDigestConcurrent: dial-ins authenticate at once, from the first
// challenge of a fresh conference on (the key is drawn under -race), and
// every one is admitted exactly once.
func TestDigestConcurrent(t *testing.T) {
	conf := newDigestConference(t, "board", map[string]string{"bob": "s3cret"})
	c := &Controller{}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 50 {
				ch := challengesOf(t, c.admit(conf, dialInRequest(t, boardURI, "sip:bob@example.org", "")))[0]
				auth := answer(t, ch, "bob", "s3cret", boardURI, 1, nil)
				if r := c.admit(conf, dialInRequest(t, boardURI, "sip:bob@example.org", "", auth)); r != nil {
					errs <- fmt.Errorf("refused: %d %s", r.Code, r.Warning)
					return
				}
				if r := c.admit(conf, dialInRequest(t, boardURI, "sip:bob@example.org", "", auth)); r == nil {
					errs <- errors.New("a replay was admitted")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := conf.nonces.inUse(); n != 400 {
		t.Errorf("%d nonces in use, want 400", n)
	}
}

// TestNonceOneSpelling: a nonce has one spelling; the base64 variants of
// its last character, which carry the same bytes, are refused.
func TestNonceOneSpelling(t *testing.T) {
	var tab nonceTable
	n := tab.issue(time.Now())
	if _, ok := tab.verify(n); !ok {
		t.Fatal("a nonce just issued does not verify")
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	accepted := 0
	for _, r := range alphabet {
		v := n[:len(n)-1] + string(r)
		if _, ok := tab.verify(v); ok {
			accepted++
		}
	}
	if accepted != 1 {
		t.Fatalf("%d spellings of one nonce verify, want 1", accepted)
	}
}
