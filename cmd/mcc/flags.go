package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
)

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// newFlags returns a flag set whose errors come back as usage errors.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("mcc "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse reads flags that may stand before, between or after the
// positional arguments, and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &exitError{0}
			}
			return nil, &usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// dataDir returns the data directory from the flag, $MCC_DATA or the XDG
// state directory.
// A variable that holds only white space counts as unset; a --data of
// only white space is refused.
func dataDir(flagValue string) (string, error) {
	if flagValue != "" {
		if strings.TrimSpace(flagValue) == "" {
			return "", usagef("--data %q: want a directory", flagValue)
		}
		return flagValue, nil
	}
	if d := strings.TrimSpace(os.Getenv("MCC_DATA")); d != "" {
		return d, nil
	}
	// XDG Base Directory: a relative path is invalid and to be ignored.
	if d := strings.TrimSpace(os.Getenv("XDG_STATE_HOME")); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "mcc"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no data directory: set --data or MCC_DATA (%v)", err)
	}
	return filepath.Join(home, ".local", "state", "mcc"), nil
}

// outputFormat checks an -o value.
func outputFormat(s string) error {
	switch s {
	case "", "table", "json":
		return nil
	}
	return usagef("-o %q: want table or json", s)
}

// table writes rows with columns padded to their widest cell.
func table(w io.Writer, rows [][]string) {
	width := map[int]int{}
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			if i == len(r)-1 {
				b.WriteString(c)
				break
			}
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", width[i]-len(c)+2))
		}
		fmt.Fprintln(w, b.String())
	}
}

// commonFlags are --data and, for commands that print data, -o.
type commonFlags struct {
	data, output string
	hasOutput    bool
}

func (c *commonFlags) register(fs *flag.FlagSet, output bool) {
	fs.StringVar(&c.data, "data", "", "data directory")
	if output {
		c.hasOutput = true
		fs.StringVar(&c.output, "o", "table", "output: table or json")
	}
}

// parse parses args, checks that the command got between min and max
// positional arguments (max < 0: no limit; what says what they are), and
// returns them with the data directory.
func (c *commonFlags) parse(fs *flag.FlagSet, args []string, min, max int, what string) ([]string, string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return nil, "", err
	}
	name := strings.TrimPrefix(fs.Name(), "mcc ")
	switch {
	case max == 0 && len(pos) > 0:
		return nil, "", usagef("%s takes no arguments, got %q", name, pos)
	case len(pos) < min || (max > 0 && len(pos) > max):
		return nil, "", usagef("%s needs %s", name, what)
	}
	if c.hasOutput {
		if err := outputFormat(c.output); err != nil {
			return nil, "", err
		}
	}
	dir, err := dataDir(c.data)
	return pos, dir, err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
