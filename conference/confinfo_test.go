package conference

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"mcc/internal/peertest"
)

// checkConferenceInfoSchema validates doc with xmllint against RFC 4575's
// schema and mcc's extension (testdata/conference-info-all.xsd). Without
// xmllint it skips, but in CI, where it fails.
func checkConferenceInfoSchema(t testing.TB, doc []byte) {
	t.Helper()
	peertest.Need(t, "xmllint")
	schema, err := filepath.Abs(filepath.Join("testdata", "conference-info-all.xsd"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("xmllint", "--noout", "--nonet", "--schema", schema, "-")
	cmd.Stdin = bytes.NewReader(doc)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("the document does not validate against RFC 4575's schema: %v\n%s\n%s", err, out, doc)
	}
}

func readDoc(t *testing.T, name string) (*ConferenceInfo, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "confinfo", name))
	if err != nil {
		t.Fatal(err)
	}
	ci, err := ParseConferenceInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	return ci, b
}

func userOf(ci *ConferenceInfo, entity string) *User {
	if ci.Users == nil {
		return nil
	}
	for i := range ci.Users.Users {
		if ci.Users.Users[i].Entity == entity {
			return &ci.Users.Users[i]
		}
	}
	return nil
}

// TestConferenceInfoApply: a subscriber's copy through full state, a
// partial document and a deletion (RFC 4575 §4.6), with what each
// changes, and every document written again validates.
func TestConferenceInfoApply(t *testing.T) {
	full, raw := readDoc(t, "full.xml")
	checkConferenceInfoSchema(t, raw)
	var held ConferenceInfo
	if err := held.Apply(full); err != nil {
		t.Fatal(err)
	}
	if held.Version != 1 || len(held.Users.Users) != 2 || *held.ConferenceState.UserCount != 2 {
		t.Fatalf("full state: %+v", held)
	}
	partial, _ := readDoc(t, "partial.xml")
	if err := held.Apply(partial); err != nil {
		t.Fatal(err)
	}
	bob := userOf(&held, "sip:bob@example.com")
	if bob == nil || bob.DisplayText != "Bob Hoskins" || len(bob.Endpoints) != 1 {
		t.Fatalf("bob after the partial document: %+v", bob)
	}
	ep := bob.Endpoints[0]
	if ep.Status != "connected" || ep.DisplayText != "Bob's Laptop" || len(ep.Media) != 2 || ep.Media[0].SrcID != "432424" || ep.Media[1].Type != "video" {
		t.Fatalf("bob's endpoint merged wrong: %+v", ep)
	}
	if ep.DisconnectionInfo == nil || ep.DisconnectionInfo.Reason != "bad voice quality" {
		t.Fatalf("what the partial document left out was lost: %+v", ep)
	}
	if u := userOf(&held, "sip:carol@example.com"); u == nil || u.Endpoints[0].Status != "alerting" {
		t.Fatalf("carol: %+v", u)
	}
	if *held.ConferenceState.UserCount != 3 || !*held.ConferenceState.Active {
		t.Fatalf("conference-state merged wrong: %+v", held.ConferenceState)
	}
	if held.Description.Subject != "Agenda: This month's goals" {
		t.Fatalf("description lost: %+v", held.Description)
	}
	del, _ := readDoc(t, "deleted.xml")
	if err := held.Apply(del); err != nil {
		t.Fatal(err)
	}
	if userOf(&held, "sip:alice@example.com") != nil || len(held.Users.Users) != 2 {
		t.Fatalf("alice not deleted: %+v", held.Users)
	}
	b, err := held.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	checkConferenceInfoSchema(t, b)
	again, err := ParseConferenceInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	if again.Version != 3 || len(again.Users.Users) != 2 {
		t.Fatalf("round trip: %+v", again)
	}
}

// TestConferenceInfoVersions: the version rules of RFC 4575 §4.6.
func TestConferenceInfoVersions(t *testing.T) {
	full, _ := readDoc(t, "full.xml")
	partial, _ := readDoc(t, "partial.xml")
	del, _ := readDoc(t, "deleted.xml")
	var empty ConferenceInfo
	if err := empty.Apply(partial); !errors.Is(err, ErrVersionGap) {
		t.Fatalf("partial with nothing held: %v", err)
	}
	var held ConferenceInfo
	held.Apply(full)
	if err := held.Apply(del); !errors.Is(err, ErrVersionGap) {
		t.Fatalf("version 3 after 1: %v", err)
	}
	if err := held.Apply(full); !errors.Is(err, ErrStaleVersion) {
		t.Fatalf("version 1 again: %v", err)
	}
	held.Apply(partial)
	if err := held.Apply(partial); !errors.Is(err, ErrStaleVersion) {
		t.Fatalf("version 2 again: %v", err)
	}
	// Full state with a later version is taken whatever came between.
	later := *full
	later.Version = 9
	if err := held.Apply(&later); err != nil || held.Version != 9 || userOf(&held, "sip:carol@example.com") != nil {
		t.Fatalf("full state after a gap: %v %+v", err, held)
	}
	other := *full
	other.Entity, other.Version = "sip:other@example.com", 10
	if err := held.Apply(&other); err == nil {
		t.Fatal("a document of another conference was applied")
	}
}

// TestConferenceInfoParseErrors: what a subscriber refuses.
func TestConferenceInfoParseErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" state="full"/>`, "no entity"},
		{`<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:a@b" state="half"/>`, "state"},
		{`<other xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:a@b"/>`, "expected element"},
		{`<conference-info entity="sip:a@b"`, "EOF"},
		{strings.Repeat(" ", maxConferenceInfo+1), "more than"},
	} {
		if _, err := ParseConferenceInfo([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.60q: %v, want %q", tc.doc, err, tc.want)
		}
	}
}

// TestSchemaRefusesBadDocuments: the schema check is one: a document
// that breaks RFC 4575's schema, or mcc's extension's, fails it.
func TestSchemaRefusesBadDocuments(t *testing.T) {
	peertest.Need(t, "xmllint")
	good := []byte(`<?xml version="1.0"?>
<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:l@h" version="1">
 <conference-description><available-media><entry label="0"><type>audio</type><multicast xmlns="urn:x-mcc:params:xml:ns:conference-info" group="239.1.2.3" port="5004" ttl="15"/></entry></available-media></conference-description>
 <users><user entity="sip:a@h"><endpoint entity="sip:a@h"><status>connected</status></endpoint></user></users>
</conference-info>`)
	schema, _ := filepath.Abs(filepath.Join("testdata", "conference-info-all.xsd"))
	run := func(doc []byte) error {
		cmd := exec.Command("xmllint", "--noout", "--nonet", "--schema", schema, "-")
		cmd.Stdin = bytes.NewReader(doc)
		return cmd.Run()
	}
	if err := run(good); err != nil {
		t.Fatalf("a valid document fails: %v", err)
	}
	for _, bad := range []struct{ from, to string }{
		{`port="5004"`, `port="x"`},
		{`ttl="15"`, `ttl="300"`},
		{`<status>connected</status>`, `<status>present</status>`},
		{`<type>audio</type>`, ``},
		{`version="1"`, `version="-1"`},
	} {
		doc := bytes.Replace(good, []byte(bad.from), []byte(bad.to), 1)
		if err := run(doc); err == nil {
			t.Errorf("%s → %s validates", bad.from, bad.to)
		}
	}
}

// FuzzConferenceInfo: whatever a NOTIFY carries, reading it, writing it
// again and applying it never panics, and what is written reads back.
func FuzzConferenceInfo(f *testing.F) {
	for _, name := range []string{"full.xml", "partial.xml", "deleted.xml"} {
		b, err := os.ReadFile(filepath.Join("testdata", "confinfo", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	base, _ := os.ReadFile(filepath.Join("testdata", "confinfo", "full.xml"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ci, err := ParseConferenceInfo(b)
		if err != nil {
			return
		}
		out, err := ci.Marshal()
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if _, err := ParseConferenceInfo(out); err != nil {
			t.Fatalf("written document does not read back: %v\n%s", err, out)
		}
		held, err := ParseConferenceInfo(base)
		if err != nil {
			t.Fatal(err)
		}
		held.Apply(ci)
		if _, err := held.Marshal(); err != nil {
			t.Fatalf("applied document does not marshal: %v", err)
		}
	})
}

// TestRosterCountsUsers: one user in twice (two dialogs from one AOR) is
// one user with two endpoints, and user-count counts users (RFC 4575
// §5.2.3); the two endpoints have their own entities; the document
// validates.
func TestRosterCountsUsers(t *testing.T) {
	e := newEnv(t, "127.0.0.1", "udp")
	p := e.peer(t, "udp")
	ps, err := e.c.Invite(e.name, p.uri(), p.uri())
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ps {
		waitState(t, e.c, e.name, x.ID, Joined)
	}
	conf, _ := e.c.conference(e.name)
	doc := e.c.document(conf)
	if n := len(doc.Users.Users); n != 1 || len(doc.Users.Users[0].Endpoints) != 2 || *doc.ConferenceState.UserCount != 1 {
		t.Fatalf("users %d, endpoints %+v, user-count %d", n, doc.Users.Users, *doc.ConferenceState.UserCount)
	}
	eps := doc.Users.Users[0].Endpoints
	if eps[0].Entity == eps[1].Entity {
		t.Fatalf("two endpoints with one entity %q", eps[0].Entity)
	}
	b, err := doc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	checkConferenceInfoSchema(t, b)
}
