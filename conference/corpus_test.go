package conference

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mcc/sdp"
)

// TestCorpus: every description in testdata/corpus, written by ffmpeg and
// VLC here or in the shape Dante, RAVENNA, PipeWire and ST 2110 senders
// announce (see its README), lints without an error, imports, and is
// offered over SIP with its o= as written, each live stream's group at
// media level, and every a= line kept, in its place and order.
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/corpus/*.sdp")
	if err != nil || len(files) < 10 {
		t.Fatalf("corpus: %v %v", files, err)
	}
	e := newEnv(t, "127.0.0.1", "udp", "tcp")
	p := e.peer(t, "udp")
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".sdp")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, pr := range sdp.Lint(b) {
				if !pr.Warning {
					t.Fatalf("lint: %v", pr)
				}
			}
			desc, err := sdp.Liberal(0).Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.c.Import(name, desc, Access{}); err != nil {
				t.Fatalf("import: %v", err)
			}
			ps, err := e.c.Invite(name, p.uri())
			if err != nil {
				t.Fatal(err)
			}
			// A description with no live stream (gst-rtsp-server's, whose
			// ports come with RTSP's SETUP) is offered all the same, and
			// the participant, with nothing to receive, is declined.
			want := Declined
			for _, m := range desc.Media {
				if m.Port != 0 {
					want = Joined
				}
			}
			waitState(t, e.c, name, ps[0].ID, want)
			body := string(p.lastInvite().Body())
			offer, err := sdp.Parse([]byte(body))
			if err != nil {
				t.Fatalf("the offer does not parse: %v\n%s", err, body)
			}
			if offer.Origin != desc.Origin || offer.Connection != nil {
				t.Errorf("the offer's o= or session-level c=:\n%s", body)
			}
			for i, m := range desc.Media {
				c := desc.EffectiveConnection(m)
				if m.Port == 0 || c == nil {
					continue
				}
				if oc := offer.Media[i].Connection; oc == nil || oc.String() != c.String() {
					t.Errorf("m= %d: c= %v, want %v at media level:\n%s", i, oc, c, body)
				}
			}
			// Every a= line is kept at its level; those mcc does not
			// interpret keep their order too (it writes the direction,
			// rtpmap, fmtp and source-filter lines in its own places).
			got := sections(body)
			for i, sec := range sections(string(b)) {
				if i >= len(got) || !contains(got[i], sec) || !subsequence(uninterpreted(sec), uninterpreted(got[i])) {
					t.Errorf("level %d lost or reordered attributes: %q\nin the offer:\n%s", i, sec, body)
				}
			}
		})
	}
}

// sections splits a description's a= lines by level: the session's, then
// each m='s.
func sections(text string) [][]string {
	out := [][]string{nil}
	for _, l := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "m="):
			out = append(out, nil)
		case strings.HasPrefix(l, "a="):
			out[len(out)-1] = append(out[len(out)-1], l)
		}
	}
	return out
}

// uninterpreted leaves out the lines mcc reads into its model and writes
// back in its own place.
func uninterpreted(ls []string) []string {
	var out []string
	for _, l := range ls {
		key, _, _ := strings.Cut(strings.TrimPrefix(l, "a="), ":")
		switch key {
		case "recvonly", "sendonly", "sendrecv", "inactive", "rtpmap", "fmtp", "source-filter":
		default:
			out = append(out, l)
		}
	}
	return out
}

// contains reports whether every line of want is in got, as many times.
func contains(got, want []string) bool {
	n := map[string]int{}
	for _, l := range got {
		n[l]++
	}
	for _, l := range want {
		if n[l]--; n[l] < 0 {
			return false
		}
	}
	return true
}

// subsequence reports whether every line of want is in got, in order.
func subsequence(want, got []string) bool {
	j := 0
	for _, w := range want {
		for j < len(got) && got[j] != w {
			j++
		}
		if j == len(got) {
			return false
		}
		j++
	}
	return true
}
