package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"mcc/conference"
	"mcc/internal/api"
	"mcc/multicast"
	"mcc/multicast/sap"
	"mcc/sdp"
)

// daemonConfig is what mcc serve runs on: its flags, checked.
type daemonConfig struct {
	Data string       // the data directory: the store, the token, api.addr, allocator.json
	Log  *slog.Logger // where everything logs
	// SIP configures the SIP endpoint; runDaemon fills in its Manager,
	// Logger and Store.
	SIP conference.Config
	API string // the control API's address
	// SAP names the interfaces to announce and hear on (empty: no SAP),
	// and SAPFastStart the extra announcements of a new session.
	SAP          string
	SAPGroups    []netip.Addr // the SAP groups listened on; nil: sapGroups
	SAPFastStart int
	SAPProfiles  []sap.Profile // how a session that names none is announced; nil: RFC 2974's
	// DefaultTTL is the TTL an imported or heard IPv4 group without one is
	// taken at (sdp.Liberal); 0 means sdp.DefaultTTL.
	DefaultTTL uint8
	// T1 is RFC 3261's T1 for the whole process (conference.SetT1);
	// zero keeps 500 ms.
	T1 time.Duration
}

// runDaemon is mcc serve: the store and allocator on the data directory,
// the session manager, the SIP endpoint, SAP, the lease renewals and the
// control API, wired in one place, with the conferences and participants
// of the last run restored. It serves until ctx ends (SIGTERM), then
// stops everything it started, and keeps the conferences.
func runDaemon(ctx context.Context, cfg daemonConfig) error {
	log := cfg.Log
	var directory *sap.Directory
	inUse := &inUseElsewhere{} // the manager joins it once it exists
	if cfg.SAP != "" {
		directory = sap.NewDirectory(sap.DirectoryConfig{DefaultTTL: cfg.DefaultTTL})
		inUse.dir = directory
	}
	a, db, err := openAllocatorWith(cfg.Data, inUse)
	if err != nil {
		return err
	}
	defer db.Close()
	mc := sdp.ManagerConfig{Allocator: a}
	if addr, err := netip.ParseAddr(cmp.Or(cfg.SIP.Host4, cfg.SIP.Host6)); err == nil {
		mc.Origin = addr // o= names the host participants reach mcc at
	} else {
		mc.Host = cmp.Or(cfg.SIP.Host4, cfg.SIP.Host6)
	}
	m, err := sdp.NewManager(mc)
	if err != nil {
		return err
	}
	inUse.m.Store(m)
	if cfg.T1 != 0 {
		if err := conference.SetT1(cfg.T1); err != nil {
			return err
		}
	}
	conference.SetStackLogger(log)
	sc := cfg.SIP
	sc.Manager, sc.Logger, sc.Store = m, log, db
	ctl, err := conference.New(sc)
	if err != nil {
		return err
	}
	defer ctl.Close()
	// What the last run kept comes back before anything is served.
	nc, np, err := ctl.Restore()
	if err != nil {
		return err // serving without what was kept would hand its groups to others
	}
	if nc > 0 {
		log.Info("restored", "conferences", nc, "participants", np)
	}
	apiExposed, err := checkAPIAddr(cfg.API)
	if err != nil {
		return err
	}
	token, err := api.LoadOrCreateToken(cfg.Data)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	ln, err := net.Listen(apiNetwork(cfg.API), cfg.API)
	if err != nil {
		return fmt.Errorf("control API: %w", err)
	}
	if apiExposed {
		log.Warn("the control API listens beyond loopback: whoever reaches it with the token controls mcc", "addr", ln.Addr().String())
	}
	if err := os.WriteFile(filepath.Join(cfg.Data, api.AddrFile), []byte(ln.Addr().String()+"\n"), 0o600); err != nil {
		ln.Close()
		return err
	}
	sapCtx, stopSAP := context.WithCancel(context.Background())
	defer stopSAP()
	if directory != nil {
		wait, err := startSAP(sapCtx, sapOptions{Interfaces: cfg.SAP, Groups: cfg.SAPGroups, FastStart: cfg.SAPFastStart, Profiles: cfg.SAPProfiles,
			Controller: ctl, DefaultTTL: cfg.DefaultTTL}, directory, m, log)
		if err != nil {
			ln.Close()
			return err
		}
		defer wait()
		defer stopSAP() // runs before wait
	}
	apiSrv := &api.Server{Controller: ctl, Allocator: a, Token: token, Logger: log, Directory: directory, DefaultTTL: cfg.DefaultTTL}
	// Leases of live sessions are renewed ahead of their expiry, so a
	// session that runs for months keeps its groups.
	renewCtx, stopRenew := context.WithCancel(context.Background())
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		t := time.NewTicker(10 * time.Minute)
		defer t.Stop()
		for {
			if n, err := m.RenewLeases(24 * time.Hour); err != nil {
				log.Warn("renew leases", "err", err)
			} else if n > 0 {
				log.Debug("leases renewed", "count", n)
			}
			select {
			case <-renewCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	defer func() { stopRenew(); <-renewDone }()
	// Event streams last until the daemon stops: their requests derive
	// from base, which is cancelled before the server shuts down.
	base, stopStreams := context.WithCancel(context.Background())
	defer stopStreams()
	srv := &http.Server{Handler: apiSrv.Handler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return base }}
	for _, l := range ctl.Addrs() {
		log.Info("SIP listening", "transport", l.Transport, "addr", l.Addr)
	}
	log.Info("control API listening", "addr", ln.Addr().String(), "data", cfg.Data, "host4", cfg.SIP.Host4, "host6", cfg.SIP.Host6)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		log.Info("stopping")
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	stopStreams()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	<-errc
	return nil
}

// inUseElsewhere is what the allocator must not hand out though mcc holds
// no lease of it: the groups of sessions heard over SAP, and those of the
// sessions imported into conferences (which may outlive their
// announcement, or wait for it after a restart).
type inUseElsewhere struct {
	dir *sap.Directory
	m   atomic.Pointer[sdp.Manager]
}

func (u *inUseElsewhere) GroupsInUse(p netip.Prefix) []netip.Addr {
	var out []netip.Addr
	if u.dir != nil {
		out = u.dir.GroupsInUse(p)
	}
	if m := u.m.Load(); m != nil {
		out = append(out, m.GroupsInUse(p)...)
	}
	return out
}

var _ multicast.InUseSource = (*inUseElsewhere)(nil)
