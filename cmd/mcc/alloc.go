package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"mcc/internal/api"
	"mcc/internal/store"
	"mcc/multicast"
)

// scopeFlags are the flags that choose a pool.
type scopeFlags struct {
	family, scope, prefix string
	asn                   uint
	v6scope               string
}

func (s *scopeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.family, "family", "4", "address family: 4 or 6")
	fs.StringVar(&s.scope, "scope", "", "scope: local, org, global, ssm, glop, prefix (IPv4); link, admin, local, site, org, global, ssm, prefix (IPv6)")
	fs.UintVar(&s.asn, "asn", 0, "16-bit AS number, for --scope glop (RFC 3180)")
	fs.StringVar(&s.prefix, "prefix", "", "unicast prefix, for --scope prefix: IPv4 /24 or shorter (RFC 6034), IPv6 /64 or shorter (RFC 3306)")
	fs.StringVar(&s.v6scope, "ipv6-scope", "", "IPv6 scope nibble for ssm and prefix scopes, hex (default e, global)")
}

func (s *scopeFlags) pool() (multicast.Pool, error) {
	f, err := multicast.ParseFamily(s.family)
	if err != nil {
		return multicast.Pool{}, usagef("--family %q: want 4 or 6", s.family)
	}
	if s.scope == "" {
		return multicast.Pool{}, usagef("--scope is required (want one of %v)", multicast.Scopes(f))
	}
	var o multicast.ScopeOptions
	o.ASN = uint32(s.asn)
	if s.prefix != "" {
		p, err := netip.ParsePrefix(s.prefix)
		if err != nil {
			return multicast.Pool{}, usagef("--prefix %q: want a prefix such as 192.0.2.0/24 or 2001:db8::/48", s.prefix)
		}
		o.Unicast = p
	}
	if s.v6scope != "" {
		n, err := strconv.ParseUint(s.v6scope, 16, 4)
		if err != nil {
			return multicast.Pool{}, usagef("--ipv6-scope %q: want one hex digit such as 5, 8 or e", s.v6scope)
		}
		o.IPv6Scope = uint8(n)
	}
	p, err := multicast.ScopePool(f, multicast.Scope(s.scope), o)
	if err != nil {
		return multicast.Pool{}, &usageError{err.Error()}
	}
	return p, nil
}

// openAllocator opens the store in dir and an allocator over the built-in
// pools, the custom pools of dir/allocator.json, and extra. The caller
// closes the store.
func openAllocator(dir string, extra ...multicast.Pool) (*multicast.Allocator, *store.DB, error) {
	return openAllocatorWith(dir, nil, extra...)
}

// openAllocatorWith is openAllocator with an in-use source, such as the
// SAP directory.
func openAllocatorWith(dir string, inUse multicast.InUseSource, extra ...multicast.Pool) (*multicast.Allocator, *store.DB, error) {
	conf, err := loadAllocatorConfig(dir)
	if err != nil {
		return nil, nil, err
	}
	pools := append(multicast.DefaultPools(), conf.Pools...)
	for _, p := range extra {
		if p.Name == "" {
			continue
		}
		found := false
		for _, d := range pools {
			found = found || d.Name == p.Name
		}
		if !found {
			pools = append(pools, p)
		}
	}
	db, err := store.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	a, err := multicast.NewAllocator(multicast.Config{Pools: pools, Store: db, PortMin: conf.Ports.Min, PortMax: conf.Ports.Max, InUse: inUse})
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, allocatorFile), err)
	}
	return a, db, nil
}

// openPool opens the allocator in dir and returns the pool named by
// --pool, or the one --family and --scope build. The caller closes the
// store.
func openPool(dir, name string, sf *scopeFlags) (*multicast.Allocator, *store.DB, multicast.Pool, error) {
	var p multicast.Pool
	if name == "" {
		var err error
		if p, err = sf.pool(); err != nil {
			return nil, nil, p, err
		}
	} else if sf.scope != "" {
		return nil, nil, p, usagef("give --pool or --scope, not both")
	}
	a, db, err := openAllocator(dir, p)
	if err != nil || name == "" {
		return a, db, p, err
	}
	p, ok := a.Pool(name)
	if !ok {
		db.Close()
		var names []string
		for _, p := range a.Pools() {
			names = append(names, p.Name)
		}
		return nil, nil, p, usagef("--pool %q: no such pool (have %s)", name, strings.Join(names, ", "))
	}
	return a, db, p, nil
}

func cmdAlloc(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("alloc", stderr)
	var sf scopeFlags
	sf.register(fs)
	count := fs.Int("count", 1, "number of groups to lease")
	lease := fs.Duration("lease", 24*time.Hour, "how long the leases last")
	owner := fs.String("owner", "mcc alloc", "owner recorded in the leases")
	poolName := fs.String("pool", "", "pool name, built-in or from allocator.json (instead of --family and --scope)")
	var cf commonFlags
	cf.register(fs, true)
	_, dir, err := cf.parse(fs, args, 0, 0, "")
	if err != nil {
		return err
	}
	if *count < 1 || *count > 65536 {
		return usagef("--count %d: want 1 to 65536", *count)
	}
	if *lease <= 0 {
		return usagef("--lease %v: want a positive duration such as 2h or 30m", *lease)
	}
	if cl := daemon(dir); cl != nil {
		pool := *poolName
		if pool == "" {
			p, err := sf.pool()
			if err != nil {
				return err
			}
			pool = p.Name
		}
		ctx, cancel := apiCtx()
		defer cancel()
		var ls []multicast.Lease
		req := api.LeaseRequest{Pool: pool, Count: *count, Lease: lease.String(), Owner: *owner}
		if err := cl.Do(ctx, "POST", "/v1/leases", req, &ls); err != nil {
			return err
		}
		return printLeases(stdout, cf.output, ls)
	}
	a, db, p, err := openPool(dir, *poolName, &sf)
	if err != nil {
		return err
	}
	defer db.Close()
	ls, err := a.AllocateN(multicast.Request{Pool: p.Name, Owner: *owner, Duration: *lease}, *count)
	if err != nil {
		return err
	}
	return printLeases(stdout, cf.output, ls)
}

func printLeases(w io.Writer, format string, ls []multicast.Lease) error {
	if format == "json" {
		if ls == nil {
			ls = []multicast.Lease{}
		}
		return printJSON(w, ls)
	}
	rows := [][]string{{"GROUP", "PORT", "TTL", "POOL", "OWNER", "ENDS"}}
	for _, l := range ls {
		rows = append(rows, []string{l.Group.String(), fmt.Sprintf("%d/%d", l.Port, l.Port+1), strconv.Itoa(int(l.TTL)),
			l.Pool, l.Owner, l.End.Local().Format(time.DateTime)})
	}
	table(w, rows)
	return nil
}

func cmdLeases(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("leases", stderr)
	var cf commonFlags
	cf.register(fs, true)
	_, dir, err := cf.parse(fs, args, 0, 0, "")
	if err != nil {
		return err
	}
	if cl := daemon(dir); cl != nil {
		ctx, cancel := apiCtx()
		defer cancel()
		var ls []multicast.Lease
		if err := cl.Do(ctx, "GET", "/v1/leases", nil, &ls); err != nil {
			return err
		}
		return printLeases(stdout, cf.output, ls)
	}
	db, err := store.Open(dir)
	if err != nil {
		return err
	}
	defer db.Close()
	ls, err := db.LoadLeases()
	if err != nil {
		return err
	}
	now := time.Now()
	live := ls[:0]
	for _, l := range ls {
		if !l.Expired(now) {
			live = append(live, l)
		}
	}
	return printLeases(stdout, cf.output, live)
}

func cmdRelease(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("release", stderr)
	var cf commonFlags
	cf.register(fs, false)
	pos, dir, err := cf.parse(fs, args, 1, -1, "the group(s) to give back, such as 239.255.12.34")
	if err != nil {
		return err
	}
	groups, err := parseGroups(pos)
	if err != nil {
		return err
	}
	var release func(g netip.Addr) error
	if cl := daemon(dir); cl != nil {
		release = func(g netip.Addr) error {
			ctx, cancel := apiCtx()
			defer cancel()
			return cl.Do(ctx, "DELETE", "/v1/leases/"+g.String(), nil, nil)
		}
	} else {
		a, db, err := openAllocator(dir)
		if err != nil {
			return err
		}
		defer db.Close()
		release = a.Release
	}
	for _, g := range groups {
		if err := release(g); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "released %v\n", g)
	}
	return nil
}

func cmdRenew(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("renew", stderr)
	lease := fs.Duration("lease", 24*time.Hour, "how long from now the leases last")
	var cf commonFlags
	cf.register(fs, false)
	pos, dir, err := cf.parse(fs, args, 1, -1, "the group(s) to renew, such as 239.255.12.34")
	if err != nil {
		return err
	}
	if *lease <= 0 {
		return usagef("--lease %v: want a positive duration such as 2h", *lease)
	}
	groups, err := parseGroups(pos)
	if err != nil {
		return err
	}
	var renew func(g netip.Addr) (multicast.Lease, error)
	if cl := daemon(dir); cl != nil {
		renew = func(g netip.Addr) (l multicast.Lease, err error) {
			ctx, cancel := apiCtx()
			defer cancel()
			err = cl.Do(ctx, "PATCH", "/v1/leases/"+g.String(), api.RenewRequest{Lease: lease.String()}, &l)
			return l, err
		}
	} else {
		a, db, err := openAllocator(dir)
		if err != nil {
			return err
		}
		defer db.Close()
		renew = func(g netip.Addr) (multicast.Lease, error) { return a.Renew(g, time.Now().Add(*lease)) }
	}
	for _, g := range groups {
		l, err := renew(g)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "renewed %v until %s\n", g, l.End.Local().Format(time.DateTime))
	}
	return nil
}

func parseGroups(args []string) ([]netip.Addr, error) {
	var groups []netip.Addr
	for _, s := range args {
		g, err := netip.ParseAddr(s)
		if err != nil || !g.IsMulticast() {
			return nil, usagef("%q is not a multicast group address", s)
		}
		groups = append(groups, g)
	}
	return groups, nil
}

func cmdPools(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("pools", stderr)
	var cf commonFlags
	cf.register(fs, true)
	_, dir, err := cf.parse(fs, args, 0, 0, "")
	if err != nil {
		return err
	}
	var ps []api.PoolUse
	if cl := daemon(dir); cl != nil {
		ctx, cancel := apiCtx()
		defer cancel()
		if err := cl.Do(ctx, "GET", "/v1/pools", nil, &ps); err != nil {
			return err
		}
	} else {
		a, db, err := openAllocator(dir)
		if err != nil {
			return err
		}
		defer db.Close()
		for _, p := range a.Pools() {
			leased, size, _ := a.Usage(p.Name)
			ps = append(ps, api.PoolUse{Pool: p, Size: size, Leased: leased})
		}
	}
	if cf.output == "json" {
		return printJSON(stdout, ps)
	}
	rows := [][]string{{"POOL", "PREFIX", "TTL", "SIZE", "LEASED"}}
	for _, p := range ps {
		rows = append(rows, []string{p.Name, p.Prefix.String(), strconv.Itoa(int(p.TTL)), strconv.FormatUint(p.Size, 10), strconv.FormatUint(p.Leased, 10)})
	}
	table(stdout, rows)
	return nil
}

// daemon returns a client of the mcc serve that runs on dir (or at
// MCC_API), or nil when none answers: then the command opens the store
// itself. bbolt lets one process hold the store, so while the daemon runs
// everything goes through it.
func daemon(dir string) *api.Client {
	cl, err := api.Discover("", "", dir)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if !cl.Alive(ctx) {
		return nil
	}
	return cl
}
