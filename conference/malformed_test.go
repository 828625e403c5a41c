package conference

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestMalformedSIP throws broken messages at mcc over raw UDP: the ones
// with enough headers to answer get a 4xx, none crashes it, and it
// answers an OPTIONS afterwards.
func TestMalformedSIP(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	conn, err := net.Dial("udp", e.c.Addrs()[0].Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	head := func(method, extra string) string {
		return method + " sip:lecture@" + e.c.Addrs()[0].Addr + " SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK" + sip.GenerateTagN(8) + "\r\n" +
			"From: <sip:x@example.org>;tag=1\r\nTo: <sip:lecture@example.org>\r\nCall-ID: " + sip.GenerateTagN(8) + "\r\n" + extra
	}
	for _, tc := range []struct {
		name, msg string
		want      string // the status line expected, or "" for none
	}{
		{"garbage", "\x00\x01\x02 not sip at all", ""},
		{"half a request line", "INVITE sip:", ""},
		{"no CSeq", head("INVITE", "Content-Length: 0\r\n\r\n"), "SIP/2.0 400"},
		{"bad SDP", head("INVITE", "CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 9\r\n\r\nv=0\r\no=x\r\n"), "SIP/2.0 488"},
		{"unknown method", head("FROB", "CSeq: 1 FROB\r\nContent-Length: 0\r\n\r\n"), "SIP/2.0 501"},
		{"BYE for no dialog", head("BYE", "CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"), "SIP/2.0 481"},
		{"Content-Length past the end", head("INVITE", "CSeq: 1 INVITE\r\nContent-Length: 99999\r\n\r\nv=0\r\n"), "SIP/2.0 400"},
	} {
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Write([]byte(tc.msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		var got string
		for {
			n, err := conn.Read(buf)
			if err != nil {
				break
			}
			got = string(buf[:n])
			if !strings.HasPrefix(got, "SIP/2.0 100") {
				break
			}
		}
		if tc.want != "" && !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: got %q, want %s", tc.name, firstLine(got), tc.want)
		}
		if tc.want == "" && strings.HasPrefix(got, "SIP/2.0 2") {
			t.Errorf("%s: accepted: %q", tc.name, firstLine(got))
		}
	}
	// Still alive.
	p := e.peer(t, "udp")
	res := p.do(t, sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", User: "lecture", Host: "127.0.0.1", Port: e.c.Addrs()[0].port()}))
	if res.StatusCode != 200 {
		t.Fatalf("OPTIONS after the garbage: %d", res.StatusCode)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

func (l Listener) port() int {
	_, p, _ := net.SplitHostPort(l.Addr)
	n, _ := strconv.Atoi(p)
	return n
}
