package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mcc/internal/peertest"
)

// TestAPIAddr: the control API's address must name a host; loopback is
// taken quietly, any other explicit host with a warning (exposed).
func TestAPIAddr(t *testing.T) {
	tests := []struct {
		addr    string
		exposed bool
		wantErr string // in the message; "" for none
	}{
		{"127.0.0.1:8760", false, ""},
		{"127.0.0.2:0", false, ""},
		{"[::1]:8760", false, ""},
		{"localhost:8760", false, ""},
		{"LOCALHOST:8760", false, ""},
		{"[::ffff:127.0.0.1]:8760", false, ""},
		{"0.0.0.0:8760", true, ""},
		{"[::]:8760", true, ""},
		{"192.0.2.10:8760", true, ""},
		{"[2001:db8::1]:8760", true, ""},
		{"[fe80::1%eth0]:8760", true, ""},
		{"mcc.example.org:8760", true, ""},
		{":8760", false, "names no host"},
		{":0", false, "names no host"},
		{"", false, "want HOST:PORT"},
		{"127.0.0.1", false, "want HOST:PORT"},
		{"127.0.0.1:", false, "want 0 to 65535"},
		{"127.0.0.1:http", false, "want 0 to 65535"},
		{"127.0.0.1:65536", false, "want 0 to 65535"},
		{"::1:8760", false, "want HOST:PORT"},
	}
	for _, tc := range tests {
		exposed, err := checkAPIAddr(tc.addr)
		var ue *usageError
		switch {
		case tc.wantErr == "" && (err != nil || exposed != tc.exposed):
			t.Errorf("checkAPIAddr(%q) = %v, %v; want %v, nil", tc.addr, exposed, err, tc.exposed)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &ue)):
			t.Errorf("checkAPIAddr(%q) = %v, %v; want a usage error with %q", tc.addr, exposed, err, tc.wantErr)
		}
	}
}

// TestConfigEmptyEnv: an empty or blank MCC_<KEY> counts as unset, so the
// configuration file or the flag's default applies; a set one wins over
// the file, and the command line over both.
func TestConfigEmptyEnv(t *testing.T) {
	dir := t.TempDir()
	withFile := filepath.Join(dir, "mcc.toml")
	os.WriteFile(withFile, []byte("api = \"127.0.0.1:9000\"\n"), 0o600)
	noFile := filepath.Join(dir, "none.toml")
	tests := []struct {
		name, env, file string
		args            []string
		want            string
	}{
		{"empty, default", "", noFile, nil, "127.0.0.1:8760"},
		{"blank, default", "  ", noFile, nil, "127.0.0.1:8760"},
		{"empty, file", "", withFile, nil, "127.0.0.1:9000"},
		{"set, file", "127.0.0.1:7000", withFile, nil, "127.0.0.1:7000"},
		{"flag", "127.0.0.1:7000", withFile, []string{"--api", "127.0.0.1:6000"}, "127.0.0.1:6000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MCC_API", tc.env)
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			api := fs.String("api", "127.0.0.1:8760", "")
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if err := applyConfig(fs, tc.file, false); err != nil || *api != tc.want {
				t.Fatalf("applyConfig: api = %q, %v; want %q", *api, err, tc.want)
			}
		})
	}
}

// serveQuick runs mcc serve with args and the extra environment env, for
// at most 30 s (one that is not refused would otherwise run on).
func serveQuick(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mccBinary(t), append([]string{"serve", "--sip", "udp:127.0.0.1:0", "--host", "127.0.0.1"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(append(os.Environ(), "MCC_DATA="), env...)
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("mcc serve %v was not refused:\n%s", args, errb.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

// TestServeRefusesAPIAddr runs mcc serve: an address without a host, from
// the flag, MCC_API or the configuration file, is refused with exit status
// 2 and a message; so is an existing token file that others may read.
func TestServeRefusesAPIAddr(t *testing.T) {
	withConfig := func(text string) string {
		data := t.TempDir()
		os.WriteFile(filepath.Join(data, "mcc.toml"), []byte(text), 0o600)
		return data
	}
	token0644 := t.TempDir()
	tokenPath := filepath.Join(token0644, "token")
	os.WriteFile(tokenPath, []byte("0123456789\n"), 0o600)
	os.Chmod(tokenPath, 0o644)
	tests := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"flag", nil, []string{"--data", t.TempDir(), "--api", ":0"}, 2, "names no host"},
		{"flag empty", nil, []string{"--data", t.TempDir(), "--api", ""}, 2, "want HOST:PORT"},
		{"env", []string{"MCC_API=:0"}, []string{"--data", t.TempDir()}, 2, "names no host"},
		{"config", nil, []string{"--data", withConfig("api = \":0\"\n")}, 2, "names no host"},
		{"config empty", []string{"MCC_API="}, []string{"--data", withConfig("api = \"\"\n")}, 2, "want HOST:PORT"},
		{"token 0644", nil, []string{"--data", token0644, "--api", "127.0.0.1:0"}, 1, "chmod 600 " + tokenPath},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := serveQuick(t, tc.env, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, want %d with %q:\n%s", r.code, tc.code, tc.want, r.stderr)
			}
		})
	}
}

// TestServeWarnsBeyondLoopback runs mcc serve in a network namespace with
// only loopback: an explicit 0.0.0.0 is taken with a Warn line, loopback
// (also with MCC_API="" and the address from the configuration file)
// without one.
func TestServeWarnsBeyondLoopback(t *testing.T) {
	peertest.Need(t, "unshare", "ip")
	peertest.NeedRoot(t)
	bin := mccBinary(t)
	tests := []struct {
		name, env, api string
		warn           bool
	}{
		{"any", "", "--api 0.0.0.0:0", true},
		{"loopback", "", "--api 127.0.0.1:0", false},
		{"empty env, config", "MCC_API=", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "mcc.toml"), []byte("api = \"127.0.0.1:0\"\n"), 0o600)
			out := inNamespace(t, dir, fmt.Sprintf(`%s MCC_DATA= %q serve --data . --sip udp:127.0.0.1:0 --host 127.0.0.1 %s 2>log &
pid=$!
for i in $(seq 200); do [ -s api.addr ] && break; sleep 0.05; done
kill -TERM $pid
wait $pid || true
cat log api.addr
`, tc.env, bin, tc.api))
			warned := strings.Contains(out, "level=WARN") && strings.Contains(out, "the control API listens beyond loopback")
			if warned != tc.warn || !strings.Contains(out, "control API listening") {
				t.Fatalf("warned %v, want %v:\n%s", warned, tc.warn, out)
			}
		})
	}
}

// TestAPINetwork: an address literal listens on its own family only, so
// --api 0.0.0.0:PORT is not reached over IPv6 (Go's "tcp" would take
// both); a host name is left to the resolver.
func TestAPINetwork(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8760": "tcp4", "0.0.0.0:0": "tcp4", "[::ffff:127.0.0.1]:8760": "tcp4",
		"[::1]:8760": "tcp6", "[::]:0": "tcp6", "[fe80::1%eth0]:1": "tcp6", "localhost:8760": "tcp",
	} {
		if got := apiNetwork(addr); got != want {
			t.Errorf("apiNetwork(%q) = %s, want %s", addr, got, want)
		}
	}
	if !ipv6Works() {
		t.Skip("no IPv6 loopback here")
	}
	ln, err := net.Listen(apiNetwork("0.0.0.0:0"), "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second); err != nil {
		t.Fatalf("over IPv4: %v", err)
	} else {
		c.Close()
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("[::1]:%d", port), 5*time.Second); err == nil {
		c.Close()
		t.Fatal("--api 0.0.0.0 is reached over IPv6")
	}
}

// TestDataDirBlank: a MCC_DATA or XDG_STATE_HOME of only white space
// counts as unset, as a relative XDG_STATE_HOME does (XDG Base
// Directory); a blank --data is refused.
func TestDataDirBlank(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	def := filepath.Join(home, ".local", "state", "mcc")
	for _, tc := range []struct{ data, xdg, want string }{
		{" ", "", def}, {"\t\n", " ", def}, {"", "rel/dir", def}, {" /srv/mcc ", "", "/srv/mcc"}, {"", "/var/x", "/var/x/mcc"},
	} {
		t.Setenv("MCC_DATA", tc.data)
		t.Setenv("XDG_STATE_HOME", tc.xdg)
		if got, err := dataDir(""); err != nil || got != tc.want {
			t.Errorf("MCC_DATA=%q XDG_STATE_HOME=%q: %q, %v; want %q", tc.data, tc.xdg, got, err, tc.want)
		}
	}
	var ue *usageError
	if _, err := dataDir("  "); err == nil || !errors.As(err, &ue) {
		t.Errorf("--data of spaces: %v, want a usage error", err)
	}
}

// TestParseListeners: --sip takes TRANSPORT:HOST:PORT; a listener with no
// host (one socket for both families) is refused with what to give.
func TestParseListeners(t *testing.T) {
	ls, err := parseListeners("udp:0.0.0.0:5060, tcp:[::]:5060,tls:127.0.0.1:5061")
	if err != nil || len(ls) != 3 || ls[1].Transport != "tcp" || ls[1].Addr != "[::]:5060" {
		t.Fatalf("parseListeners = %+v, %v", ls, err)
	}
	for in, want := range map[string]string{
		"udp::5060":      "udp:0.0.0.0:5060 for IPv4",
		"sctp:[::]:5060": "want TRANSPORT:HOST:PORT",
		"udp:127.0.0.1":  "missing port",
	} {
		var ue *usageError
		if _, err := parseListeners(in); err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), want) {
			t.Errorf("parseListeners(%q) = %v, want a usage error with %q", in, err, want)
		}
	}
}
