package conference

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

// TestRejoins: linphone is told by its User-Agent (linphonec, belle-sip),
// or, for linphone-daemon, which says "Unknown", by its s=Talk; nobody
// else is.
func TestRejoins(t *testing.T) {
	talk, other := []byte("v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=Talk\r\nt=0 0\r\n"), []byte("v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nt=0 0\r\n")
	for _, tc := range []struct {
		ua     string
		answer []byte
		want   bool
	}{
		{"Linphonec/5.1.65", other, true},
		{"LinphoneAndroid/5.2.5 (belle-sip/5.2.94)", other, true},
		{"Unknown", talk, true},
		{"Unknown", other, false},
		{"", talk, false},
		{"baresip v3.10.1 (x86_64/linux)", talk, false},
		{"PJSUA v2.14 Linux", other, false},
	} {
		res := sip.NewResponse(200, "OK")
		if tc.ua != "" {
			res.AppendHeader(sip.NewHeader("User-Agent", tc.ua))
		}
		if got := rejoins(res, tc.answer); got != tc.want {
			t.Errorf("User-Agent %q, s= %q: %v, want %v", tc.ua, tc.answer[26:32], got, tc.want)
		}
	}
}
