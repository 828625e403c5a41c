package api

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestDiscoverEnv: an empty or blank MCC_API or MCC_TOKEN counts as unset,
// so the data directory's files are used; a set one wins over them, and a
// flag over it.
func TestDiscoverEnv(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, AddrFile), []byte("127.0.0.1:4000\n"), 0o600)
	os.WriteFile(filepath.Join(dir, TokenFile), []byte("filetoken\n"), 0o600)
	tests := []struct {
		name                string
		flagAddr, flagToken string
		envAPI, envToken    string
		wantBase, wantToken string
		unset               bool // MCC_API and MCC_TOKEN not in the environment at all
	}{
		{"files", "", "", "", "", "http://127.0.0.1:4000", "filetoken", true},
		{"empty env", "", "", "", "", "http://127.0.0.1:4000", "filetoken", false},
		{"blank env", "", "", "  ", " \t", "http://127.0.0.1:4000", "filetoken", false},
		{"env", "", "", "127.0.0.1:5000", "envtoken", "http://127.0.0.1:5000", "envtoken", false},
		{"flags", "127.0.0.1:6000", "flagtoken", "127.0.0.1:5000", "envtoken", "http://127.0.0.1:6000", "flagtoken", false},
		{"blank flags", " ", " ", "", "", "http://127.0.0.1:4000", "filetoken", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MCC_API", tc.envAPI)
			t.Setenv("MCC_TOKEN", tc.envToken)
			if tc.unset {
				os.Unsetenv("MCC_API") // t.Setenv puts it back afterwards
				os.Unsetenv("MCC_TOKEN")
			}
			cl, err := Discover(tc.flagAddr, tc.flagToken, dir)
			if err != nil || cl.Base != tc.wantBase || cl.Token != tc.wantToken {
				t.Fatalf("Discover = %+v, %v; want %s with token %s", cl, err, tc.wantBase, tc.wantToken)
			}
		})
	}
	t.Setenv("MCC_API", "")
	if _, err := Discover("", "", t.TempDir()); !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("nothing to find: %v, want ErrNoDaemon", err)
	}
}
