package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mcc/conference"
	"mcc/multicast"
	"mcc/multicast/sap"
	"mcc/sdp"
)

// sapGroups are the SAP groups the listener joins by default, every one
// in use: the global group (ffmpeg's and sdr's) and each administrative
// scope's (RFC 2974 §3; Dante, AES67 and Exterity use the local one),
// PipeWire's and PulseAudio's 224.0.0.56, and ff0X::2:7ffe for the IPv6
// scopes mcc allocates in.
var sapGroups = []netip.Addr{sap.GlobalGroup, sap.LocalGroup, sap.OrgGroup, sap.LinkGroup,
	netip.MustParseAddr("ff02::2:7ffe"), netip.MustParseAddr("ff04::2:7ffe"), netip.MustParseAddr("ff05::2:7ffe"),
	netip.MustParseAddr("ff08::2:7ffe"), netip.MustParseAddr("ff0e::2:7ffe")}

// parseSAPGroups reads --sap-groups: multicast addresses, comma-separated;
// empty means sapGroups.
func parseSAPGroups(s string) ([]netip.Addr, error) {
	if strings.TrimSpace(s) == "" {
		return sapGroups, nil
	}
	var out []netip.Addr
	for _, f := range splitList(s) {
		a, err := netip.ParseAddr(f)
		if err != nil || !a.IsMulticast() || a.Zone() != "" {
			return nil, usagef("--sap-groups %q: want multicast addresses, comma-separated (such as 239.255.255.255,224.0.0.56)", f)
		}
		out = append(out, a)
	}
	return out, nil
}

// sapOptions are serve's SAP settings.
type sapOptions struct {
	Interfaces string       // comma-separated
	Groups     []netip.Addr // listened on; nil: sapGroups
	FastStart  int
	Profiles   []sap.Profile // a session's that names none; nil: RFC 2974's
	// Controller, when set, has its conferences made from heard sessions
	// follow their announcers (followHeard); DefaultTTL reads them.
	Controller *conference.Controller
	DefaultTTL uint8
}

// startSAP listens for SAP on the named interfaces into dir, announces the
// sessions m owns out of every interface, and runs until ctx ends; the
// returned wait blocks until everything it started has stopped.
func startSAP(ctx context.Context, o sapOptions, dir *sap.Directory, m *sdp.Manager, log *slog.Logger) (wait func(), err error) {
	names, groups := o.Interfaces, o.Groups
	var ifis []*net.Interface
	for _, n := range splitList(names) {
		ifi, err := net.InterfaceByName(n)
		if err != nil {
			return nil, usagef("--sap %q: %v", n, err)
		}
		ifis = append(ifis, ifi)
	}
	if groups == nil {
		groups = sapGroups
	}
	l4, err := multicast.ListenGroup(multicast.IPv4, sap.Port)
	if err != nil {
		return nil, err
	}
	l6, err := multicast.ListenGroup(multicast.IPv6, sap.Port)
	if err != nil {
		l4.Close()
		return nil, err
	}
	for _, ifi := range ifis {
		for _, g := range groups {
			c := l4
			if g.Is6() {
				c = l6
			}
			if err := c.Join(ifi, g); err != nil {
				log.Warn("SAP join", "interface", ifi.Name, "group", g, "err", err)
			}
		}
	}
	// Announcements go out of every interface, from its first address of
	// each family, which is also the originating source.
	// Uncompressed: ffmpeg's and PulseAudio's SAP receivers, among others,
	// skip compressed packets, and a description fits in one anyway.
	cfg := sap.AnnouncerConfig{Directory: dir, Logger: log, FastStart: o.FastStart}
	for _, ifi := range ifis {
		addrs, _ := ifi.Addrs()
		have4, have6 := false, false
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err != nil || !p.Addr().IsGlobalUnicast() && !p.Addr().IsLoopback() {
				continue
			}
			ip := p.Addr()
			if ip.Is4() && have4 || ip.Is6() && have6 {
				continue
			}
			c, err := multicast.ListenGroupAt(netip.AddrPortFrom(ip, 0))
			if err != nil {
				log.Warn("SAP sender", "interface", ifi.Name, "addr", ip, "err", err)
				continue
			}
			c.SetInterface(ifi)
			c.SetLoopback(true)
			cfg.Senders = append(cfg.Senders, sap.Sender{Conn: c, Origin: ip})
			have4, have6 = have4 || ip.Is4(), have6 || ip.Is6()
			log.Info("SAP announcing", "interface", ifi.Name, "origin", ip)
		}
	}
	ann := sap.NewAnnouncer(cfg)
	var wg sync.WaitGroup
	wg.Go(func() { sap.Listen(ctx, dir, log, l4, l6) })
	wg.Go(func() { ann.Run(ctx) })
	wg.Go(func() { announceSessions(ctx, m, ann, o.Profiles, log) })
	if o.Controller != nil {
		wg.Go(func() { followHeard(ctx, o.Controller, dir, o.DefaultTTL, log) })
	}
	log.Info("SAP listening", "interfaces", names)
	return func() {
		wg.Wait()
		for _, s := range cfg.Senders {
			s.Conn.Close()
		}
	}, nil
}

// announceSessions keeps the announcer in step with the sessions mcc
// owns: it follows the manager's changes (Watch), announcing a session
// that is new or changed at once and withdrawing one that was deleted;
// a full pass every minute, and after the changes came faster than it
// took them, catches anything missed.
//
// A session is announced with the profiles it was created with, or
// defaults.
func announceSessions(ctx context.Context, m *sdp.Manager, ann *sap.Announcer, defaults []sap.Profile, log *slog.Logger) {
	changes := make(chan uint64, 1024)
	var missed atomic.Bool
	stop := m.Watch(func(id uint64) {
		select {
		case changes <- id:
		default:
			missed.Store(true) // the next pass takes it
		}
	})
	defer stop()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	announced := map[uint64]bool{}
	warned := map[uint64]bool{} // a session that cannot be announced is said once
	one := func(id uint64) {
		desc, err := m.Get(id)
		// An idle session (between the intervals of its schedule) is not
		// announced: the deletion goes out when it comes to rest, and
		// announcing starts again when it wakes ahead of its next start.
		if err != nil || m.External(id) || m.Idle(id) {
			if announced[id] {
				ann.Withdraw(fmt.Sprint(id))
				delete(announced, id)
			}
			delete(warned, id)
			return
		}
		profiles := defaults
		if names := m.Announce(id); names != nil {
			ps, err := sap.ProfilesNamed(names)
			if err != nil {
				if !warned[id] {
					warned[id] = true
					log.Warn("SAP announce profile", "session", desc.Name, "err", err)
				}
			} else {
				profiles = ps
			}
		}
		// What one profile cannot announce does not stop the others: the
		// session is withdrawn at its end either way.
		announced[id] = true
		if err := ann.Announce(fmt.Sprint(id), desc, profiles...); err != nil {
			if !warned[id] {
				warned[id] = true
				log.Warn("SAP announce", "session", desc.Name, "err", err)
			}
		}
	}
	all := func() {
		missed.Store(false)
		exists := map[uint64]bool{}
		for _, s := range m.List() {
			exists[s.ID] = true
			one(s.ID)
		}
		for id := range announced {
			if !exists[id] {
				one(id) // withdraws it
			}
		}
	}
	all()
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-changes:
			one(id)
		case <-t.C:
			all()
		}
		if missed.Load() {
			all()
		}
	}
}
