package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"mcc/conference"
	"mcc/multicast"
	"mcc/multicast/sap"
	"mcc/sdp"
)

func cmdServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	sipAddrs := fs.String("sip", defaultSIP, "SIP listeners, comma-separated TRANSPORT:HOST:PORT (udp, tcp, tls); [::] listens on IPv6 only, 0.0.0.0 on IPv4 only")
	host := fs.String("host", "", "host names or addresses participants reach mcc at, comma-separated, one per family; the first names conference URIs (default: this machine's first global IPv4 and IPv6 addresses, else loopback)")
	maxTx := fs.Int("sip-max-transactions", 0, "SIP server transactions alive at once before new requests get 503 (each lives up to 32 s; 0: the default, 200000; -1: no bound)")
	sourceRate := fs.Float64("sip-source-rate", 200, "SIP requests per second one source (an IPv4 address, an IPv6 /64) may send before 503; -1: sources are not told apart (behind a proxy): no per-source bound at all")
	apiAddr := fs.String("api", "127.0.0.1:8760", "control API address (keep it on loopback)")
	cert := fs.String("tls-cert", "", "certificate file for tls listeners (PEM)")
	key := fs.String("tls-key", "", "key file for tls listeners (PEM)")
	t1 := fs.Duration("sip-t1", 500*time.Millisecond, "RFC 3261 T1, the round-trip estimate SIP retransmissions start from and double (a transaction lasts 64·T1; 100ms to 4s); lower it only on a closed network whose round trip is known to be short (RFC 3261 §17.1.1.1)")
	ring := fs.Duration("ring-timeout", 30*time.Second, "how long an invitation rings before CANCEL")
	probe := fs.Duration("probe-interval", 30*time.Second, "how long a joined participant without session timers may be silent before an in-dialog OPTIONS checks it is there (one that does not answer is ended within two intervals); 0: no probes")
	sessionExpires := fs.Duration("session-expires", 30*time.Minute, "RFC 4028 session interval mcc asks for; participants that do timers refresh (or are refreshed) within it, or are ended; 0: no session timers")
	unicast := fs.String("unicast-offer", "reinvite", "dial-in with a unicast-only offer: reinvite (reject its streams, then offer the session's) or reject (488)")
	authUser := fs.String("auth-user", "", "user name for digest challenges to mcc's INVITEs")
	authPass := fs.String("auth-pass", "", "password for digest challenges (or MCC_AUTH_PASS)")
	logFormat := fs.String("log", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	sapIfaces := fs.String("sap", "", "announce mcc's sessions and hear others' over SAP (RFC 2974) on these interfaces, comma-separated; empty: no SAP")
	defTTL := fs.Int("default-ttl", sdp.DefaultTTL, "TTL an imported or SAP-heard IPv4 group written without one (as PulseAudio writes it) is taken at, with a warning (RFC 8866 §5.7 wants a TTL)")
	sapGroupsFlag := fs.String("sap-groups", "", "with --sap, the SAP groups to listen on, comma-separated (default: every one in use: 224.2.127.254, 239.255.255.255, 239.195.255.255, 224.0.0.56, ff02/ff04/ff05/ff08/ff0e::2:7ffe)")
	sapProfile := fs.String("sap-profile", sap.DefaultProfile, "with --sap, how a session that names no profile of its own is announced, comma-separated to announce it in several ways: "+strings.Join(sap.ProfileNames(), ", ")+" (docs/sap-profiles.md)")
	sapFast := fs.Int("sap-fast-start", 3, "announce a new or changed session this many more times, 5 s apart, before the RFC 2974 rate (at least 300 s), so that a listener hears it at once; 0: none")
	silentAfter := fs.Duration("silent-after", 10*time.Second, "reception: how long a receiver (mcc probe, or an RTCP reporter) may hear nothing of a stream before it alerts as silent")
	lossAlert := fs.Float64("loss-alert", 2, "reception: percentage of a sender's packets lost over a report interval at which a receiver alerts; above 100: no loss alerts")
	reportGrace := fs.Duration("report-grace", 30*time.Second, "reception: how long a joined participant's host may go without a reception report before it alerts; 0: no such alerts")
	rtcpOn := fs.Bool("rtcp", true, "reception: join every session's RTCP groups and take the receiver and sender reports participants send there (RFC 3550 §6); the host then gets those groups' RTP too")
	rtcpIface := fs.String("rtcp-iface", "", "reception: interface to join the RTCP groups on (default: the system's choice)")
	configFlag := fs.String("config", "", "configuration file (TOML; default: mcc.toml in the data directory, if there)")
	var cf commonFlags
	cf.register(fs, false)
	_, dir, err := cf.parse(fs, args, 0, 0, "")
	if err != nil {
		return err
	}
	path, named := configPath(*configFlag, dir)
	if err := applyConfig(fs, path, named); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	var handler slog.Handler
	switch *logFormat {
	case "text":
		handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	case "json":
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	default:
		return usagef("--log %q: want text or json", *logFormat)
	}
	log := slog.New(handler)
	var policy conference.UnicastPolicy
	switch *unicast {
	case "reinvite":
	case "reject":
		policy = conference.RejectUnicast
	default:
		return usagef("--unicast-offer %q: want reinvite or reject", *unicast)
	}
	listeners, err := parseListeners(*sipAddrs)
	if err != nil {
		return err
	}
	noIPv6 := *sipAddrs == defaultSIP && !ipv6Works()
	if noIPv6 {
		listeners = slices.DeleteFunc(listeners, func(l conference.Listener) bool { return strings.HasPrefix(l.Addr, "[") })
		log.Warn("IPv6 is not available on this host: SIP listens on IPv4 only")
	}
	host4, host6, err := parseHosts(*host)
	if err != nil {
		return err
	}
	if noIPv6 && *host == "" {
		host6 = ""
	}
	if *sourceRate == 0 || *sourceRate < -1 {
		return usagef("--sip-source-rate %v: want a rate above 0, or -1 for no limit", *sourceRate)
	}
	if *maxTx < -1 {
		return usagef("--sip-max-transactions %d: want a count, 0 for the default or -1 for no bound", *maxTx)
	}
	if *probe != 0 && *probe < time.Second {
		return usagef("--probe-interval %v: want 1s or more, or 0 for no probes", *probe)
	}
	if *sessionExpires != 0 && *sessionExpires < 90*time.Second {
		return usagef("--session-expires %v: want 90s or more (RFC 4028 §5), or 0 for no session timers", *sessionExpires)
	}
	if *t1 < 100*time.Millisecond || *t1 > 4*time.Second {
		return usagef("--sip-t1 %v: want 100ms to 4s (T2)", *t1)
	}
	if *ring <= 0 {
		return usagef("--ring-timeout %v: want a duration above 0", *ring)
	}
	if *silentAfter < time.Second {
		return usagef("--silent-after %v: want 1s or more", *silentAfter)
	}
	if *rtcpIface != "" {
		if _, err := net.InterfaceByName(*rtcpIface); err != nil {
			return usagef("--rtcp-iface %q: %v", *rtcpIface, err)
		}
	}
	if !(*lossAlert > 0) { // NaN too
		return usagef("--loss-alert %v: want a percentage above 0 (above 100 turns loss alerts off)", *lossAlert)
	}
	if *reportGrace < 0 {
		return usagef("--report-grace %v: want a duration, or 0 for no such alerts", *reportGrace)
	}
	var tlsConf *tls.Config
	if *cert != "" || *key != "" {
		c, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
	}
	var creds *conference.Credentials
	if *authUser != "" {
		pass := *authPass
		if pass == "" {
			pass = os.Getenv("MCC_AUTH_PASS")
		}
		creds = &conference.Credentials{Username: *authUser, Password: pass}
	}

	sapGroupList, err := parseSAPGroups(*sapGroupsFlag)
	if err != nil {
		return err
	}
	if *defTTL < 1 || *defTTL > 255 {
		return usagef("--default-ttl %d: want 1 to 255", *defTTL)
	}
	sapProfiles, err := sap.ParseProfiles(*sapProfile)
	if err != nil {
		return usagef("--sap-profile %q: want one or more of %s, comma-separated", *sapProfile, strings.Join(sap.ProfileNames(), ", "))
	}
	if *sapFast < 0 || *sapFast > 10 {
		return usagef("--sap-fast-start %d: want 0 to 10", *sapFast)
	}
	uriHost := host4
	if first, _, _ := strings.Cut(*host, ","); first != "" {
		uriHost = strings.TrimSpace(first)
	}
	cfg := daemonConfig{Data: dir, Log: log, API: *apiAddr, SAP: *sapIfaces, SAPFastStart: *sapFast, SAPGroups: sapGroupList, SAPProfiles: sapProfiles, T1: *t1, DefaultTTL: uint8(*defTTL),
		SIP: conference.Config{Listeners: listeners, TLS: tlsConf, Host: uriHost, Host4: host4, Host6: host6,
			RingTimeout: *ring, ProbeInterval: orOff(*probe), SessionExpires: orOff(*sessionExpires), UnicastOffer: policy,
			Credentials: creds, Limits: conference.Limits{SourceRate: *sourceRate, MaxTransactions: *maxTx},
			Reception: conference.ReceptionConfig{SilentAfter: *silentAfter, LossAlert: *lossAlert / 100, ReportGrace: orOff(*reportGrace),
				RTCP: *rtcpOn, RTCPInterface: *rtcpIface}}}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runDaemon(ctx, cfg)
}

// defaultSIP listens for SIP on both families, UDP and TCP, port 5060.
const defaultSIP = "udp:0.0.0.0:5060,udp:[::]:5060,tcp:0.0.0.0:5060,tcp:[::]:5060"

// ipv6Works reports whether this host can open an IPv6 socket at all (a
// kernel booted with ipv6.disable=1 cannot).
func ipv6Works() bool {
	pc, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

// parseHosts reads --host: up to one name or address per family. A name
// serves the family without an address; the default for a family with
// neither is this machine's first global address of that family, else its
// loopback address.
func parseHosts(s string) (host4, host6 string, err error) {
	var names []string
	for _, part := range strings.Split(s, ",") {
		part = strings.Trim(strings.TrimSpace(part), "[]")
		if part == "" {
			continue
		}
		if strings.Contains(part, "%") {
			return "", "", usagef("--host %q: an address with a zone is reached by no one else; give a global address or a name", part)
		}
		if _, err := netip.ParseAddr(part); err != nil && !isHostName(part) {
			return "", "", usagef("--host %q: want a host name (letters, digits, '-' and '.') or an IP address", part)
		}
		a, err := netip.ParseAddr(part)
		switch {
		case err != nil:
			if strings.Contains(part, ":") {
				return "", "", usagef("--host %q: not an IP address", part)
			}
			names = append(names, part)
		case a.IsUnspecified() || a.IsMulticast():
			return "", "", usagef("--host %q: want an address participants can reach, not %v", part, a)
		case a.Unmap().Is4():
			if host4 != "" {
				return "", "", usagef("--host %q: one IPv4 address only (%s is given)", part, host4)
			}
			host4 = a.Unmap().String()
		default:
			if host6 != "" {
				return "", "", usagef("--host %q: one IPv6 address only (%s is given)", part, host6)
			}
			host6 = a.String()
		}
	}
	if len(names) > 1 {
		return "", "", usagef("--host %q: one host name at most; add addresses for the families", s)
	}
	if len(names) == 1 {
		host4, host6 = cmp.Or(host4, names[0]), cmp.Or(host6, names[0])
	}
	if host4 == "" {
		host4 = localAddr(multicast.IPv4).String()
	}
	if host6 == "" {
		host6 = localAddr(multicast.IPv6).String()
	}
	return host4, host6, nil
}

// isHostName reports whether s is a DNS host name (RFC 1123 §2.1), as
// SIP URIs and o= lines take one.
func isHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	letter := false
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
				letter = true
			case r >= '0' && r <= '9', r == '-':
			default:
				return false
			}
		}
	}
	return letter
}

func parseListeners(s string) ([]conference.Listener, error) {
	var ls []conference.Listener
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		tr, addr, ok := strings.Cut(part, ":")
		if !ok || (tr != "udp" && tr != "tcp" && tr != "tls") {
			return nil, usagef("--sip %q: want TRANSPORT:HOST:PORT with udp, tcp or tls, such as udp:0.0.0.0:5060", part)
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, usagef("--sip %q: %v", part, err)
		}
		if host == "" {
			// One socket would take both families, and mcc sends each
			// family from a socket of its own.
			return nil, usagef("--sip %q names no host: give %s:0.0.0.0:%s for IPv4, %s:[::]:%s for IPv6, or both", part, tr, port, tr, port)
		}
		ls = append(ls, conference.Listener{Transport: tr, Addr: addr})
	}
	return ls, nil
}

// orOff maps a flag's 0 ("off") to the controller's negative off; a
// controller's zero is its default.
func orOff(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
