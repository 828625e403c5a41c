package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// ConfigFile is the name of mcc serve's configuration file in the data
// directory, read when --config names none.
const ConfigFile = "mcc.toml"

// applyConfig fills the flags of fset that the command line left unset:
// from MCC_<KEY> in the environment, then from the configuration file. An
// empty (or blank) variable counts as unset: MCC_API="" must not make the
// control API listen on every interface.
// Each key is a flag's name with _ for -; values go through the flag's own
// parsing, so the file is checked as strictly as the command line. A file
// that is named but missing, has an unknown key, a value of the wrong
// form or a TOML error is refused with the key (or line) and the reason.
func applyConfig(fset *flag.FlagSet, path string, named bool) error {
	set := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fset.VisitAll(func(f *flag.Flag) {
		env := "MCC_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := os.Getenv(env); strings.TrimSpace(v) != "" && !set[f.Name] && f.Name != "data" && f.Name != "config" {
			if err := fset.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %v", env, err))
			}
			set[f.Name] = true
		}
	})
	if err := errors.Join(errs...); err != nil {
		return &usageError{err.Error()}
	}
	var raw map[string]any
	_, err := toml.DecodeFile(path, &raw)
	if errors.Is(err, fs.ErrNotExist) && !named {
		return nil
	}
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return &usageError{fmt.Sprintf("config %s: line %d: %s", path, pe.Position.Line, pe.Message)}
		}
		return &usageError{fmt.Sprintf("config %s: %v", path, err)}
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		name := strings.ReplaceAll(k, "_", "-")
		f := fset.Lookup(name)
		if f == nil || name == "config" || name == "data" {
			return &usageError{fmt.Sprintf("config %s: unknown key %q (the keys are serve's flags, with _ for -: see mcc serve -h)", path, k)}
		}
		if set[name] {
			continue // the command line or the environment wins
		}
		var v string
		switch x := raw[k].(type) {
		case []any:
			parts := make([]string, len(x))
			for i, p := range x {
				parts[i] = fmt.Sprint(p)
			}
			v = strings.Join(parts, ",")
		default:
			v = fmt.Sprint(x)
		}
		if err := fset.Set(name, v); err != nil {
			return &usageError{fmt.Sprintf("config %s: %s = %q: %v", path, k, v, err)}
		}
	}
	return nil
}

// configPath returns the file named by --config, or the data directory's.
func configPath(flagValue, dataDir string) (string, bool) {
	if flagValue != "" {
		return flagValue, true
	}
	return filepath.Join(dataDir, ConfigFile), false
}

// apiNetwork is the network the control API listens on at addr: an
// address literal listens on its own family only (Go's "tcp" on 0.0.0.0
// listens on IPv6 too), a host name on what it resolves to.
func apiNetwork(addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Is4() || a.Is4In6() {
			return "tcp4"
		}
		return "tcp6"
	}
	return "tcp"
}

// checkAPIAddr checks the control API's address, from --api, MCC_API or
// the configuration file. It must name a host: "" or ":8760" would listen
// on every interface, so they are refused. exposed reports an explicit
// host beyond loopback (0.0.0.0, ::, a LAN address, a host name other
// than localhost, which may resolve anywhere): it is taken, and mcc serve
// warns.
func checkAPIAddr(s string) (exposed bool, err error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return false, usagef("--api %q: want HOST:PORT, such as 127.0.0.1:8760", s)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return false, usagef("--api %q: port %q: want 0 to 65535", s, port)
	}
	if host == "" {
		return false, usagef("--api %q names no host, so the control API would listen on every interface: "+
			"give 127.0.0.1:%s for this machine only, or 0.0.0.0:%s to listen beyond it on purpose", s, port, port)
	}
	if strings.EqualFold(host, "localhost") {
		return false, nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return true, nil
	}
	return !a.Unmap().IsLoopback(), nil
}
