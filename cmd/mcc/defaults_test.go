package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"mcc/internal/peertest"
)

// TestServeDefaults runs the built "mcc serve" with no flag but --data, in
// a network namespace that has only loopback, and does the main flow over
// IPv4 and IPv6 at once: sipp participants on 127.0.0.1 and ::1 are
// invited and joined, a stream added for both, sipp callers dial in over
// both families, and the session's end sends both participants BYE. Each
// participant is told mcc's host in its own family, in Contact and o=.
func TestServeDefaults(t *testing.T) {
	peertest.Need(t, "sipp", "unshare", "ip")
	peertest.NeedRoot(t)
	bin := mccBinary(t)
	participant, _ := filepath.Abs("../../conference/testdata/sipp/participant.xml")
	caller, _ := filepath.Abs("../../conference/testdata/sipp/caller.xml")
	dir := t.TempDir()
	out := inNamespace(t, dir, fmt.Sprintf(`
mcc=%[1]q
env -u MCC_DATA -u MCC_API -u MCC_TOKEN -u MCC_SIP -u MCC_HOST "$mcc" serve --data data 2>serve.log &
serve=$!
trap 'kill $serve 2>/dev/null || true' EXIT
for i in $(seq 100); do [ -s data/api.addr ] && break; sleep 0.05; done
for fam in 4 6; do
	ip=127.0.0.1; [ $fam = 6 ] && ip=::1
	timeout 40 sipp -sf %[2]q -i $ip -p 5070 -t u1 -m 1 -timeout 30 -timeout_error -nostdin -trace_msg \
		-message_file p$fam.msg >p$fam.out 2>&1 &
	echo $! >p$fam.pid
done
sleep 0.5
run() { echo "\$ mcc $*"; "$mcc" "$@" --data data; }
run session create lecture --media audio
run invite lecture sip:p4@127.0.0.1:5070 'sip:p6@[::1]:5070' --wait 10s
run media add lecture video
for ip in 127.0.0.1 '[::1]'; do
	src=127.0.0.1; [ "$ip" = '[::1]' ] && src=::1
	timeout 20 sipp -sf %[3]q -s lecture -i $src -p 0 -t u1 -m 1 -timeout 15 -timeout_error -nostdin "$ip:5060" >c.out 2>&1 \
		&& echo "dial-in $ip: ok" || { echo "dial-in $ip: failed"; cat c.out; }
done
run participants lecture
run session delete lecture
for fam in 4 6; do wait $(cat p$fam.pid) && echo "participant $fam: ok" || { echo "participant $fam: failed"; cat p$fam.out; }; done
for fam in 4 6; do echo "== p$fam"; grep -a -E '^(INVITE|BYE|Contact|o=|c=)' p$fam.msg || true; done
kill -TERM $serve; wait $serve || true
echo "== serve.log"; cat serve.log
`, bin, participant, caller))
	for _, want := range []string{"dial-in 127.0.0.1: ok", "dial-in [::1]: ok", "participant 4: ok", "participant 6: ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("%q missing", want)
		}
	}
	if n := strings.Count(out, "accepted,accepted"); n < 2 {
		t.Errorf("the added stream reached %d of 2 participants", n)
	}
	p4, p6 := section(out, "== p4"), section(out, "== p6")
	for _, c := range []struct{ name, text, want string }{
		{"IPv4 Contact", p4, `Contact: <sip:lecture@127.0.0.1:5060`},
		{"IPv4 o=", p4, `o=- \d+ \d+ IN IP4 127.0.0.1`},
		{"IPv6 Contact", p6, `Contact: <sip:lecture@\[::1\]:5060`},
		{"IPv6 o=", p6, `o=- \d+ \d+ IN IP6 ::1`},
		{"IPv4 BYE", p4, `(?m)^BYE `},
		{"IPv6 BYE", p6, `(?m)^BYE `},
	} {
		if !regexp.MustCompile(c.want).MatchString(c.text) {
			t.Errorf("%s: no %s", c.name, c.want)
		}
	}
	if t.Failed() {
		t.Log(out)
		b, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
		t.Log(string(b))
	}
}

// section returns the lines of out after the line head, up to the next
// line starting with "==".
func section(out, head string) string {
	_, rest, ok := strings.Cut(out, head+"\n")
	if !ok {
		return ""
	}
	if i := strings.Index(rest, "\n=="); i >= 0 {
		rest = rest[:i]
	}
	return rest
}
