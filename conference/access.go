package conference

import (
	"crypto/subtle"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// nonceLife is how long a digest nonce mcc issued stays good.
const nonceLife = 5 * time.Minute

// admit applies conference access to a dial-in. When it refuses, a
// non-nil header is the digest challenge to send with 401.
func (c *Controller) admit(conf *Conference, req *sip.Request) (bool, sip.Header) {
	a := conf.access
	switch a.Mode {
	case Anyone:
		return true, nil
	case AllowList:
		from := req.From().Address
		user := strings.ToLower(from.User + "@" + from.Host)
		host := strings.ToLower(strings.Trim(from.Host, "[]"))
		for _, s := range a.Allow {
			s = strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(s, "sip:"), "sips:"))
			if s == user || s == host || s == from.Host {
				return true, nil
			}
		}
		return false, nil
	case Digest:
		realm := a.Realm
		if realm == "" {
			realm = conf.name
		}
		if h := req.GetHeader("Authorization"); h != nil {
			if cred, err := digest.ParseCredentials(h.Value()); err == nil && c.validDigest(conf, realm, req, cred) {
				return true, nil
			}
		}
		nonce := sip.GenerateTagN(24)
		conf.mu.Lock()
		now := time.Now()
		for n, t := range conf.nonces { // drop stale nonces as new ones are made
			if now.Sub(t) > nonceLife {
				delete(conf.nonces, n)
			}
		}
		conf.nonces[nonce] = now
		conf.mu.Unlock()
		chal := &digest.Challenge{Realm: realm, Nonce: nonce, Algorithm: "MD5", QOP: []string{"auth"}}
		return false, sip.NewHeader("WWW-Authenticate", chal.String())
	}
	return false, nil
}

// validDigest checks an Authorization header against a nonce mcc issued.
func (c *Controller) validDigest(conf *Conference, realm string, req *sip.Request, cred *digest.Credentials) bool {
	conf.mu.Lock()
	issued, ok := conf.nonces[cred.Nonce]
	conf.mu.Unlock()
	pass, known := conf.access.Users[cred.Username]
	if !ok || !known || time.Since(issued) > nonceLife || cred.Realm != realm {
		return false
	}
	chal := &digest.Challenge{Realm: realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm, Opaque: cred.Opaque}
	if cred.QOP != "" {
		chal.QOP = []string{cred.QOP}
	}
	want, err := digest.Digest(chal, digest.Options{Method: string(req.Method), URI: cred.URI, Username: cred.Username,
		Password: pass, Cnonce: cred.Cnonce, Count: cred.Nc})
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want.Response), []byte(cred.Response)) == 1
}
