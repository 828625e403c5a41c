package conference

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// tortureRow is one line of testdata/torture/expected.tsv: a message of
// RFC 4475 or RFC 5118 and the outcomes the RFC gives a UAS for it.
type tortureRow struct {
	file, section, class, focus, alsoOK, reason string
}

func tortureRows(t testing.TB) []tortureRow {
	f, err := os.Open(filepath.Join("testdata", "torture", "expected.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []tortureRow
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for first := true; sc.Scan(); first = false {
		c := strings.Split(sc.Text(), "\t")
		if first || len(c) < 10 {
			continue
		}
		rows = append(rows, tortureRow{file: c[0], section: c[1] + " §" + c[2], class: c[5], focus: c[7], alsoOK: c[8], reason: c[9]})
	}
	if len(rows) < 62 {
		t.Fatalf("expected.tsv has %d rows, want the 62 messages of RFC 4475 and RFC 5118", len(rows))
	}
	return rows
}

// outcome is what mcc did with a message: its final status, or "drop".
func (h *sipHarness) outcome(data []byte) string {
	_, reply, answers := h.receive(data)
	if reply != nil {
		return strconv.Itoa(reply.StatusCode)
	}
	for _, a := range answers {
		if a.StatusCode >= 200 {
			return strconv.Itoa(a.StatusCode)
		}
	}
	return "drop"
}

// TestTortureMessages runs every message of RFC 4475 and RFC 5118 through
// mcc's receive path, as a UAS with a conference named "user" open to
// anyone, and checks the outcome against the one the RFC gives (or one it
// also allows).
func TestTortureMessages(t *testing.T) {
	for _, row := range tortureRows(t) {
		t.Run(row.file, func(t *testing.T) {
			h := newSIPHarness(t)
			data, err := os.ReadFile(filepath.Join("testdata", "torture", row.file))
			if err != nil {
				t.Fatal(err)
			}
			got := h.outcome(data)
			ok := map[string]bool{}
			for _, s := range strings.Split(row.focus+"|"+row.alsoOK, "|") {
				ok[s] = true
			}
			if !ok[got] {
				t.Errorf("RFC %s (%s): mcc's outcome is %s, want %s (or %s)\n%s", row.section, row.class, got, row.focus, row.alsoOK, row.reason)
			}
		})
	}
}
