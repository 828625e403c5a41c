package main

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"mcc/multicast"
	"mcc/sdp"
)

func cmdSDPLint(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("sdp lint", stderr)
	quiet := fs.Bool("q", false, "print errors only, not warnings")
	defTTL := fs.Int("default-ttl", sdp.DefaultTTL, "TTL an IPv4 group written without one is taken at, with a warning; 0: such a group is an error")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("sdp lint needs one file, or - for standard input")
	}
	name := pos[0]
	var b []byte
	if name == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, sdp.MaxSize+1))
		name = "<stdin>"
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return err
	}
	errs := 0
	if *defTTL < 0 || *defTTL > 255 {
		return usagef("--default-ttl %d: want 0 to 255", *defTTL)
	}
	for _, p := range (sdp.ParseOptions{DefaultTTL: uint8(*defTTL)}).Lint(b) {
		if !p.Warning {
			errs++
		} else if *quiet {
			continue
		}
		msg := strings.TrimPrefix(p.SyntaxError.Error(), "sdp: ")
		kind := "error"
		if p.Warning {
			kind = "warning"
		}
		if p.Line > 0 {
			fmt.Fprintf(stdout, "%s:%d: %s: %s\n", name, p.Line, kind, strings.TrimPrefix(msg, fmt.Sprintf("line %d ", p.Line)))
		} else {
			fmt.Fprintf(stdout, "%s: %s: %s\n", name, kind, msg)
		}
	}
	if errs > 0 {
		return &exitError{1}
	}
	return nil
}

func cmdSDPNew(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sdp new", stderr)
	var sf scopeFlags
	sf.register(fs)
	name := fs.String("name", "", "session name (s=)")
	info := fs.String("info", "", "session information (i=)")
	media := fs.String("media", "audio", "comma-separated streams: audio, video, text, each optionally with its format, KIND:ENCODING/RATE[/CHANNELS] (audio:L16/48000/2)")
	typ := fs.String("type", "broadcast", "session type: broadcast, meeting, moderated or test")
	sources := fs.String("source", "", "comma-separated sender addresses (required for ssm scopes)")
	lease := fs.Duration("lease", 0, "how long the groups are leased (default: until --stop, else 24h)")
	start := fs.String("start", "", "start time, RFC 3339 (default: unbounded)")
	stop := fs.String("stop", "", "stop time, RFC 3339 (default: unbounded)")
	poolName := fs.String("pool", "", "pool name, built-in or from allocator.json (instead of --family and --scope)")
	outFile := fs.String("o", "", "write the description to this file instead of standard output")
	var cf commonFlags
	cf.register(fs, false)
	_, dir, err := cf.parse(fs, args, 0, 0, "")
	if err != nil {
		return err
	}
	if *name == "" {
		return usagef("--name is required")
	}
	switch *typ {
	case "broadcast", "meeting", "moderated", "test":
	default:
		return usagef("--type %q: want broadcast, meeting, moderated or test", *typ)
	}
	spec := sdp.SessionSpec{Name: *name, Info: *info, Type: *typ}
	for _, k := range strings.Split(*media, ",") {
		ms, err := sdp.ParseMediaSpec(strings.TrimSpace(k))
		if err != nil {
			return usagef("--media %q: want a list of audio, video, text, each optionally with :ENCODING/RATE[/CHANNELS] (audio:L16/48000/2)", *media)
		}
		spec.Media = append(spec.Media, ms)
	}
	for _, s := range strings.Split(*sources, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return usagef("--source %q: want an IP address", s)
		}
		spec.Sources = append(spec.Sources, a)
	}
	for flagName, v := range map[string]struct {
		s string
		t *time.Time
	}{"--start": {*start, &spec.Start}, "--stop": {*stop, &spec.Stop}} {
		if v.s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v.s)
		if err != nil {
			return usagef("%s %q: want a time such as 2026-12-01T14:00:00Z", flagName, v.s)
		}
		*v.t = t
	}
	if *lease < 0 {
		return usagef("--lease %v: want a positive duration such as 2h", *lease)
	}
	a, db, p, err := openPool(dir, *poolName, &sf)
	if err != nil {
		return err
	}
	defer db.Close()
	spec.Pool = p.Name
	m, err := sdp.NewManager(sdp.ManagerConfig{Allocator: leaseFor{a, *lease}, Origin: localAddr(p.Family())})
	if err != nil {
		return err
	}
	s, err := m.Create(spec)
	if err != nil {
		return err
	}
	b, err := s.Marshal()
	if err != nil {
		return err
	}
	if *outFile == "" {
		_, err = stdout.Write(b)
		return err
	}
	return os.WriteFile(*outFile, b, 0o644)
}

// leaseFor makes every lease last d when the request sets no end.
type leaseFor struct {
	*multicast.Allocator
	d time.Duration
}

func (l leaseFor) Allocate(r multicast.Request) (multicast.Lease, error) {
	if r.End.IsZero() && l.d > 0 {
		r.Duration = l.d
	}
	return l.Allocator.Allocate(r)
}

// localAddr returns a unicast address of this host for the o= line: the
// first global unicast address of an interface that is up, else loopback.
// It only reads the interface table.
func localAddr(f multicast.Family) netip.Addr {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := pfx.Addr().Unmap()
		if ip.IsGlobalUnicast() && multicast.FamilyOf(ip) == f {
			return ip
		}
	}
	if f == multicast.IPv6 {
		return netip.IPv6Loopback()
	}
	return netip.MustParseAddr("127.0.0.1")
}
