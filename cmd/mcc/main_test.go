package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"mcc/internal/store"
	"mcc/multicast"
	"mcc/sdp"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// mccBinary builds cmd/mcc once per test run, so the tests run the program
// a user runs.
func mccBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mcc-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "mcc")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = &buildFailure{string(out)}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type buildFailure struct{ out string }

func (b *buildFailure) Error() string { return "go build: " + b.out }

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func mcc(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(mccBinary(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "MCC_DATA=") // never the user's own data
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func TestAllocLeasesRelease(t *testing.T) {
	data := t.TempDir()
	r := mcc(t, "", "alloc", "--family", "4", "--scope", "local", "--count", "3", "--data", data, "-o", "json")
	if r.code != 0 {
		t.Fatalf("alloc: %d %s", r.code, r.stderr)
	}
	var ls []multicast.Lease
	if err := json.Unmarshal([]byte(r.stdout), &ls); err != nil || len(ls) != 3 {
		t.Fatalf("alloc -o json = %q, %v", r.stdout, err)
	}
	local, _ := multicast.ScopePool(multicast.IPv4, multicast.ScopeLocal, multicast.ScopeOptions{})
	for _, l := range ls {
		if !local.Contains(l.Group) || l.TTL != 15 || l.Port%2 != 0 {
			t.Fatalf("lease %+v", l)
		}
	}
	r = mcc(t, "", "alloc", "--family", "6", "--scope", "prefix", "--prefix", "2001:db8:beef::/48", "--data", data)
	if r.code != 0 || !strings.Contains(r.stdout, "ff3e:30:2001:db8:beef:") {
		t.Fatalf("alloc IPv6 prefix: %+v", r)
	}
	r = mcc(t, "", "leases", "--data", data)
	if r.code != 0 || strings.Count(r.stdout, "\n") != 5 || !strings.HasPrefix(r.stdout, "GROUP") {
		t.Fatalf("leases:\n%s%s", r.stdout, r.stderr)
	}
	// Flags may follow the groups.
	r = mcc(t, "", "release", ls[0].Group.String(), ls[1].Group.String(), "--data", data)
	if r.code != 0 || strings.Count(r.stdout, "released") != 2 {
		t.Fatalf("release: %+v", r)
	}
	r = mcc(t, "", "leases", "--data", data, "-o", "json")
	var left []multicast.Lease
	if err := json.Unmarshal([]byte(r.stdout), &left); err != nil || len(left) != 2 {
		t.Fatalf("after release: %s %v", r.stdout, err)
	}
	r = mcc(t, "", "release", ls[0].Group.String(), "--data", data)
	if r.code != 1 || !strings.Contains(r.stderr, "not leased") {
		t.Fatalf("release twice: %+v", r)
	}
}

func TestBadArguments(t *testing.T) {
	data := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"alloc", "--family", "5", "--scope", "local", "--data", data}, "want 4 or 6"},
		{[]string{"alloc", "--scope", "galaxy", "--data", data}, "want one of local, org, global"},
		{[]string{"alloc", "--data", data}, "--scope is required"},
		{[]string{"alloc", "--scope", "glop", "--data", data}, "AS number"},
		{[]string{"alloc", "--scope", "local", "--count", "0", "--data", data}, "want 1 to 65536"},
		{[]string{"alloc", "--scope", "local", "--lease", "soon", "--data", data}, "invalid value"},
		{[]string{"alloc", "--scope", "local", "-o", "yaml", "--data", data}, "want table or json"},
		{[]string{"release", "10.0.0.1", "--data", data}, "not a multicast group"},
		{[]string{"release", "--data", data}, "needs the group"},
		{[]string{"sdp", "new", "--family", "4", "--scope", "local", "--data", data}, "--name is required"},
		{[]string{"sdp", "new", "--name", "x", "--scope", "local", "--media", "smell", "--data", data}, "want a list of audio, video, text"},
		{[]string{"sdp", "new", "--name", "x", "--scope", "local", "--stop", "tomorrow", "--data", data}, "want a time such as"},
		{[]string{"sdp", "lint"}, "needs one file"},
		{[]string{"sdp", "frobnicate"}, "want lint or new"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"serve", "--probe-interval", "10ms", "--data", data}, "want 1s or more"},
		{[]string{"serve", "--session-expires", "60s", "--data", data}, "want 90s or more"},
		{[]string{"serve", "--ring-timeout", "-1s", "--data", data}, "want a duration above 0"},
		{[]string{"serve", "--sip-t1", "50ms", "--data", data}, "want 100ms to 4s"},
		{[]string{"serve", "--sip-t1", "5s", "--data", data}, "want 100ms to 4s"},
		{[]string{"serve", "--sap-groups", "239.255.255.255,10.0.0.1", "--data", data}, "want multicast addresses"},
		{[]string{"serve", "--default-ttl", "0", "--data", data}, "want 1 to 255"},
		{[]string{"serve", "--sap-profile", "sdr", "--data", data}, "want one or more of rfc2974, aes67, pipewire"},
		{[]string{"serve", "--sap-profile", "vlc,", "--data", data}, "want one or more of"},
		{[]string{"media", "add", "lecture", "audio", "--wait", "-1s", "--data", data}, "want a duration"},
		{[]string{"session", "import", "x.sdp", "--on-end", "keep", "--data", data}, "give --heard ID"},
		{[]string{"session", "import", "--heard", "x", "--name", "y", "--on-end", "later", "--data", data}, "want end or keep"},
	}
	for _, tc := range tests {
		r := mcc(t, "", tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("mcc %v = exit %d, %q; want exit 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	if r := mcc(t, ""); r.code != 2 || !strings.Contains(r.stderr, "Usage:") {
		t.Errorf("mcc with no arguments: %+v", r)
	}
	if r := mcc(t, "", "help"); r.code != 0 || !strings.Contains(r.stdout, "mcc sdp lint") {
		t.Errorf("mcc help: %+v", r)
	}
}

func TestSDPNewAndLint(t *testing.T) {
	data := t.TempDir()
	file := filepath.Join(t.TempDir(), "lecture.sdp")
	for _, tc := range []struct {
		family, scope string
		extra         []string
	}{
		{"4", "local", nil},
		{"4", "org", nil},
		{"4", "global", nil},
		{"6", "site", nil},
		{"6", "org", nil},
		{"4", "ssm", []string{"--source", "192.0.2.10"}},
		{"6", "ssm", []string{"--source", "2001:db8::10"}},
	} {
		args := append([]string{"sdp", "new", "--name", "Lecture " + tc.scope, "--family", tc.family, "--scope", tc.scope,
			"--media", "audio,video", "--data", data, "-o", file}, tc.extra...)
		if r := mcc(t, "", args...); r.code != 0 {
			t.Fatalf("%v: %+v", args, r)
		}
		b, _ := os.ReadFile(file)
		s, err := sdp.Parse(b)
		if err != nil {
			t.Fatalf("sdp new wrote what Parse refuses: %v\n%s", err, b)
		}
		if len(s.Media) != 2 || s.Media[0].Connection == nil || !s.Media[0].Connection.IsMulticast() {
			t.Fatalf("%s", b)
		}
		// Every group is leased in the data directory.
		r := mcc(t, "", "leases", "--data", data, "-o", "json")
		var ls []multicast.Lease
		json.Unmarshal([]byte(r.stdout), &ls)
		for _, m := range s.Media {
			found := false
			for _, l := range ls {
				found = found || (l.Group == m.Connection.Addr && l.Port == m.Port)
			}
			if !found {
				t.Fatalf("stream group %v:%d is not leased", m.Connection.Addr, m.Port)
			}
		}
		if r := mcc(t, "", "sdp", "lint", file); r.code != 0 || r.stdout != "" {
			t.Fatalf("lint of sdp new's output: %+v\n%s", r, b)
		}
	}
	bad := "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=x\nt=0 0\nm=audio 16384 RTP/AVP 0\nc=IN IP6 ff15::1/15/2\n"
	r := mcc(t, bad, "sdp", "lint", "-")
	if r.code != 1 || !strings.HasPrefix(r.stdout, "<stdin>:6: error:") || !strings.Contains(r.stdout, "takes no TTL") {
		t.Fatalf("lint of a bad description: %+v", r)
	}
	warn := "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=x\nc=IN IP4 239.255.1.1/15\nt=0 0\nm=audio 16384 RTP/AVP 0\n"
	r = mcc(t, warn, "sdp", "lint", "-")
	if r.code != 0 || !strings.Contains(r.stdout, "<stdin>:6: warning:") {
		t.Fatalf("lint with a warning: %+v", r)
	}
	if r = mcc(t, warn, "sdp", "lint", "-q", "-"); r.code != 0 || r.stdout != "" {
		t.Fatalf("lint -q: %+v", r)
	}
	if r = mcc(t, "", "sdp", "lint", filepath.Join(t.TempDir(), "missing.sdp")); r.code != 1 || !strings.Contains(r.stderr, "no such file") {
		t.Fatalf("lint of a missing file: %+v", r)
	}
}

func TestDataDirInUse(t *testing.T) {
	data := t.TempDir()
	db, err := store.Open(data) // held the way a running daemon holds it
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := mcc(t, "", "alloc", "--scope", "local", "--data", data)
	if r.code != 1 || !strings.Contains(r.stderr, "in use by another mcc process") {
		t.Fatalf("alloc while the store is held: %+v", r)
	}
}

func TestCustomPoolsFromConfig(t *testing.T) {
	data := t.TempDir()
	conf := `{
  "ports": {"min": 30000, "max": 30009},
  "pools": [
    {"name": "lab", "prefix": "239.77.7.0/24", "ttl": 8, "exclude": ["239.77.7.0/29"]},
    {"name": "studio-v6", "prefix": "ff15::7700:0/120", "ttl": 4}
  ]
}`
	if err := os.WriteFile(filepath.Join(data, "allocator.json"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r := mcc(t, "", "alloc", "--pool", "lab", "--count", "5", "--data", data, "-o", "json")
	var ls []multicast.Lease
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ls) != nil || len(ls) != 5 {
		t.Fatalf("alloc --pool lab: %+v", r)
	}
	lab := multicast.Pool{Name: "lab", Prefix: netip.MustParsePrefix("239.77.7.0/24"), Exclude: []netip.Prefix{netip.MustParsePrefix("239.77.7.0/29")}}
	for _, l := range ls {
		if !lab.Contains(l.Group) || l.TTL != 8 || l.Port < 30000 || l.Port > 30008 || l.Pool != "lab" {
			t.Fatalf("lease from the custom pool: %+v", l)
		}
	}
	// sdp new draws from a custom pool too; the TTL is the pool's.
	file := filepath.Join(t.TempDir(), "s.sdp")
	if r := mcc(t, "", "sdp", "new", "--name", "studio", "--pool", "studio-v6", "--data", data, "-o", file); r.code != 0 {
		t.Fatalf("sdp new --pool: %+v", r)
	}
	if b, _ := os.ReadFile(file); !strings.Contains(string(b), "c=IN IP6 ff15::77") {
		t.Fatalf("sdp new --pool studio-v6:\n%s", b)
	}
	r = mcc(t, "", "pools", "--data", data)
	if r.code != 0 || !strings.Contains(r.stdout, "lab") || !strings.Contains(r.stdout, "ipv4-local") {
		t.Fatalf("pools: %+v", r)
	}
	r = mcc(t, "", "pools", "--data", data, "-o", "json")
	var ps []struct {
		Name   string `json:"name"`
		Size   uint64 `json:"size"`
		Leased uint64 `json:"leased"`
	}
	json.Unmarshal([]byte(r.stdout), &ps)
	found := false
	for _, p := range ps {
		if p.Name == "lab" {
			found = p.Size == 248 && p.Leased == 5
		}
	}
	if !found {
		t.Fatalf("pools -o json has no lab with 5 of 248 leased: %s", r.stdout)
	}
	r = mcc(t, "", "renew", ls[0].Group.String(), "--lease", "72h", "--data", data)
	if r.code != 0 || !strings.Contains(r.stdout, "renewed "+ls[0].Group.String()) {
		t.Fatalf("renew: %+v", r)
	}
	if r := mcc(t, "", "alloc", "--pool", "nope", "--data", data); r.code != 2 || !strings.Contains(r.stderr, "have ipv4-local") {
		t.Fatalf("unknown pool: %+v", r)
	}

	for _, bad := range []struct{ conf, want string }{
		{`{"pools": [{"name": "x", "prfix": "239.1.0.0/16"}]}`, `unknown field "prfix"`},
		{"{\n\"pools\": [\n{\"name\": \"x\",, }]}", "allocator.json:3:"},
		{`{"pools": [{"name": "ipv4-local", "prefix": "239.1.0.0/16"}]}`, "belongs to a built-in pool"},
		{`{"pools": [{"name": "u", "prefix": "10.0.0.0/8"}]}`, "not a multicast prefix"},
		{`{"ports": {"min": 5000}}`, "set both min and max"},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "allocator.json"), []byte(bad.conf), 0o600)
		if r := mcc(t, "", "alloc", "--scope", "local", "--data", dir); r.code != 1 || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("config %s: %+v, want exit 1 and %q", bad.conf, r, bad.want)
		}
	}
}

func TestCompletion(t *testing.T) {
	r := mcc(t, "", "completion", "bash")
	if r.code != 0 {
		t.Fatal(r)
	}
	for _, tc := range []struct {
		words []string // what is typed, the last word being completed
		want  string
	}{
		{[]string{"mcc", "me"}, "media"},
		{[]string{"mcc", "media", "r"}, "remove"},
		{[]string{"mcc", "session", ""}, "create import list show sdp delete"},
	} {
		words := make([]string, len(tc.words))
		for i, w := range tc.words {
			words[i] = "'" + w + "'"
		}
		script := fmt.Sprintf("%s\nCOMP_WORDS=(%s); COMP_CWORD=%d; _mcc; echo \"${COMPREPLY[*]}\"\n",
			r.stdout, strings.Join(words, " "), len(words)-1)
		out, err := exec.Command("bash", "-c", script).Output()
		if err != nil || strings.TrimSpace(string(out)) != tc.want {
			t.Errorf("completing %q: %q, %v; want %q", tc.words, out, err, tc.want)
		}
	}
	for _, sh := range []string{"zsh", "fish"} {
		if r := mcc(t, "", "completion", sh); r.code != 0 || !strings.Contains(r.stdout, "media") {
			t.Errorf("completion %s: %+v", sh, r)
		}
	}
	if r := mcc(t, "", "completion", "tcsh"); r.code != 2 {
		t.Errorf("completion tcsh: %+v", r)
	}
}
