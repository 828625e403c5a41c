package conference

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

// Listener is one SIP listening socket.
type Listener struct {
	// Transport is "udp", "tcp" or "tls".
	Transport string
	// Addr is host:port; port 0 picks a free one (see Controller.Addrs).
	Addr string
	// PacketConn, for "udp", is a socket the caller opened to serve on
	// instead of Addr: one bound elsewhere, or one that drops packets in
	// a test.
	PacketConn net.PacketConn `json:"-"`
}

// Credentials answer a 401 or 407 challenge to one of mcc's INVITEs.
type Credentials struct {
	Username, Password string
}

// Config configures a Controller.
type Config struct {
	// Listeners are the sockets to serve SIP on. At least one.
	Listeners []Listener
	// TLS is the server certificate configuration for "tls" listeners,
	// and the client configuration for outgoing TLS.
	TLS *tls.Config
	// Manager owns the session descriptions. Required.
	Manager *sdp.Manager
	// Clock is the time scheduled conferences go by (schedule.go); nil
	// is the system's. Give the Manager the same one (its Now).
	Clock Clock
	// ScheduleLead is how long before each scheduled start the groups
	// are leased and the session announced; 0 is DefaultScheduleLead.
	ScheduleLead time.Duration
	// Host is the host name or address participants reach mcc at:
	// conference URIs are sip:NAME@Host:PORT (the first listener's port).
	// Empty means Host4, else Host6, else the first listener's address,
	// which must then not be a wildcard.
	Host string
	// Host4 and Host6 are what mcc advertises to participants of each
	// family, where a wildcard listener leaves it open: in Contact, and
	// in the o= line of the sessions mcc owns. Empty means Host when
	// Host is of that family or a name; a family with neither advertises
	// its listener's own address, or Host.
	Host4, Host6 string
	// RingTimeout is how long an invitation may ring before mcc sends
	// CANCEL. Zero means 30 s.
	RingTimeout time.Duration
	// Fanout bounds the INVITEs and re-INVITEs being sent and not
	// answered yet: each holds a slot while it is built and sent (a DNS
	// lookup of its target, the save of its CSeq), then until its first
	// response or for T1/4 at most, so a participant that vanished never
	// holds the others back for long. Zero means 64.
	Fanout int
	// MaxRedirects bounds the 3xx responses an invitation follows. Zero
	// means 3.
	MaxRedirects int
	// Credentials answer digest challenges to outgoing INVITEs; nil means
	// a challenge fails the invitation.
	Credentials *Credentials
	// UnicastOffer says what to do with a dial-in whose offer has no
	// multicast stream: OfferReinvite (the zero value) answers with every
	// stream rejected and re-INVITEs with the session's streams;
	// RejectUnicast answers 488 with a Warning.
	UnicastOffer UnicastPolicy
	// Logger receives the controller's logs. Nil discards them.
	Logger *slog.Logger
	// Store keeps the conferences and their joined participants' dialogs
	// across restarts (Restore brings them back); nil keeps nothing.
	Store Store
	// Limits bound what strangers can make mcc hold; the zero value
	// takes every default (see Limits).
	Limits Limits
	// Resolver looks up the hosts of SIP URIs; nil means the system's.
	Resolver *net.Resolver
	// ProbeInterval is how long a joined participant that does no session
	// timer may stay silent before mcc sends it an in-dialog OPTIONS; one
	// that does not answer is ended with BYE and failed within two
	// intervals. Zero means 30 s; negative sends no probes.
	ProbeInterval time.Duration
	// SessionExpires is the RFC 4028 session interval mcc asks for in its
	// INVITEs, and whether it does timers at all. Zero means 1800 s;
	// negative turns session timers off (Session-Expires in a dial-in is
	// then ignored, and probes watch every participant).
	SessionExpires time.Duration
	// Reception tunes the reception matrix and its alerts (reception.go).
	Reception ReceptionConfig

	ackWait time.Duration // how long a 2xx waits for its ACK; zero: 64·T1 (§13.3.1.4). Tests shorten it.
	minSE   time.Duration // mcc's Min-SE; zero: 90 s (RFC 4028 §5). Tests shorten it.
}

// SetT1 sets RFC 3261's T1, the round-trip estimate that every SIP timer
// of the process derives from: retransmissions start at T1 and double
// (§17.1.1.1), transactions and the wait for an ACK last 64·T1. The
// default, 500 ms, is the RFC's; a smaller one is for closed networks
// whose round trip is known to be short (§17.1.1.1 allows it there, and
// recommends against it elsewhere). sipgo's timers are the process's:
// call it once, before New.
func SetT1(d time.Duration) error {
	if d < 100*time.Millisecond || d > sip.T2 {
		return fmt.Errorf("conference: T1 %v: want 100ms to %v (T2)", d, sip.T2)
	}
	sip.SetTimers(d, sip.T2, sip.T4)
	return nil
}

// UnicastPolicy is what a dial-in with a unicast-only offer gets.
type UnicastPolicy int

// The unicast policies.
const (
	OfferReinvite UnicastPolicy = iota
	RejectUnicast
)

// Controller is mcc's SIP endpoint: one user agent, client and server, that
// invites participants into multicast sessions, accepts dial-in to
// conference URIs and changes everyone's media by re-INVITE.
type Controller struct {
	cfg Config
	log *slog.Logger
	ua  *sipgo.UserAgent
	srv *sipgo.Server
	// clients by transport and family: UDP requests leave from the
	// listener's own socket, so signalling is symmetric.
	clients map[string]*sipgo.Client

	listeners []closer
	addrs     []Listener // bound addresses
	wg        sync.WaitGroup
	ctx       context.Context
	cancel    context.CancelFunc
	sem       chan struct{}

	uriPort string // the port in conference URIs, when Config.Host is derived
	metrics counters
	hub     hub
	guard   *guard
	muxes   []*udpMux     // one per UDP listener, set up by New
	ackWait time.Duration // Config.ackWait, or 64·T1
	// probeInterval, sessionExpires and minSE are Config's with their
	// defaults; probes bounds the probes in flight (liveness.go).
	probeInterval, sessionExpires, minSE time.Duration
	probes                               chan struct{}
	restoring                            atomic.Bool   // Restoring to Resume: no group is released, no schedule runs
	schedPoke                            chan struct{} // wakes runSchedules
	handlerMap                           map[sip.RequestMethod]sipgo.RequestHandler

	mu          sync.Mutex // guards the fields below
	conferences map[string]*Conference
	dialogs     map[dialogKey]*dialog
	byCallID    map[string]*participantRef // the newest dialog of each Call-ID, for §8.2.2.2
	byDialog    map[*dialog]*participantRef
	closed      bool
	// subs are the subscription dialogs (subscribe.go) by key; subsFrom
	// counts the subscriptions per source, subCount in all.
	subs     map[dialogKey]*subscription
	subsFrom map[netip.Prefix]int
	subCount int
	// watch finds a conference's subscriptions for its events.
	watch watchers

	rec receptionState // reception reports and alerts, under its own lock
}

type closer interface{ Close() error }

type participantRef struct {
	conf *Conference
	p    *participant
	d    *dialog
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("conference: controller closed")

// New binds the listeners and starts serving. Close stops it.
func New(cfg Config) (*Controller, error) {
	if cfg.Manager == nil {
		return nil, errors.New("conference: Config.Manager is required")
	}
	if len(cfg.Listeners) == 0 {
		return nil, errors.New("conference: at least one listener is required")
	}
	if cfg.RingTimeout == 0 {
		cfg.RingTimeout = 30 * time.Second
	}
	if cfg.Fanout == 0 {
		cfg.Fanout = 64
	}
	if cfg.MaxRedirects == 0 {
		cfg.MaxRedirects = 3
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "conference")
	c := &Controller{
		cfg: cfg, log: log, schedPoke: make(chan struct{}, 1),
		conferences: map[string]*Conference{},
		dialogs:     map[dialogKey]*dialog{},
		byCallID:    map[string]*participantRef{},
		byDialog:    map[*dialog]*participantRef{},
		subs:        map[dialogKey]*subscription{},
		subsFrom:    map[netip.Prefix]int{},
		clients:     map[string]*sipgo.Client{},
		sem:         make(chan struct{}, cfg.Fanout),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.guard = newGuard(cfg.Limits, handledMethods)
	c.guard.hasConference = func(name string) bool { _, err := c.conference(name); return err == nil }
	c.guard.hasDialog = func(req *sip.Request) bool { return c.lookup(req) != nil || c.subscriptionOf(req) != nil }
	c.ackWait = cmp.Or(cfg.ackWait, 64*sip.T1)
	c.probeInterval = cmp.Or(cfg.ProbeInterval, defaultProbeInterval)
	c.sessionExpires = cmp.Or(cfg.SessionExpires, defaultSessionExpires)
	c.minSE = cmp.Or(cfg.minSE, minSE)
	c.guard.timers = c.sessionExpires > 0
	c.probes = make(chan struct{}, probeSlots)
	stack := stackLogger(log)
	// Every TCP and TLS connection, mcc's own outgoing ones too (which the
	// guard does not see), is closed when idle and never blocks a write
	// for ever.
	tcp := func() *sip.TransportTCP {
		return &sip.TransportTCP{ReadTimeout: c.guard.lim.TCPIdle, WriteTimeout: writeTimeout}
	}
	opts := []sipgo.UserAgentOption{
		sipgo.WithUserAgent("mcc"),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerUnhandledResponseHandler(c.onStrayResponse),
			sip.WithTransactionLayerLogger(stack.With("layer", "transaction")),
		),
		sipgo.WithUserAgentTransportLayerOptions(
			sip.WithTransportLayerLogger(stack.With("layer", "transport")),
			sip.WithTransportLayerReadFilter(c.guard.udpFilter), // before the transports, which copy it
			sip.WithTransportLayerTransports(sip.TransportsConfig{TCP: tcp(), TLS: &sip.TransportTLS{TransportTCP: tcp()}}),
		),
	}
	if cfg.TLS != nil {
		opts = append(opts, sipgo.WithUserAgenTLSConfig(cfg.TLS))
	}
	if cfg.Resolver != nil {
		opts = append(opts, sipgo.WithUserAgentDNSResolver(cfg.Resolver))
	}
	ua, err := sipgo.NewUA(opts...)
	if err != nil {
		return nil, fmt.Errorf("conference: %w", err)
	}
	c.ua = ua
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(stack.With("layer", "server")))
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("conference: %w", err)
	}
	c.srv = srv
	c.handlerMap = c.handlers()
	for m, h := range c.handlerMap {
		srv.OnRequest(m, h)
	}
	srv.OnNoRoute(c.noRoute)
	for _, l := range cfg.Listeners {
		if err := c.listen(l); err != nil {
			c.Close()
			return nil, err
		}
	}
	c.wg.Go(func() {
		defer c.recoverIn("the scheduler")
		c.runSchedules()
	})
	// sipgo keeps a pool entry and a map entry per UDP peer address for as
	// long as its read loop runs: when the guard has passed on packets
	// from udpRotateAfter addresses, each socket gets a new loop.
	c.wg.Go(func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-c.ctx.Done():
				return
			case <-t.C:
				if c.guard.udpPeersSeen() < udpRotateAfter {
					continue
				}
				all := true
				for _, m := range c.muxes {
					all = m.rotate(c.serving) && all
				}
				if all { // else the next tick tries again, the count kept
					c.guard.resetUDPPeers()
				}
			}
		}
	})
	c.wg.Go(func() {
		defer c.recoverIn("the reception checks")
		c.runReception()
	})
	if cfg.Reception.RTCP {
		c.wg.Go(func() {
			defer c.recoverIn("the RTCP monitor")
			c.runRTCP()
		})
	}
	if c.probeInterval > 0 || c.sessionExpires > 0 {
		c.wg.Go(c.livenessLoop)
	}
	h, p, _ := net.SplitHostPort(c.addrs[0].Addr)
	if p != "5060" {
		c.uriPort = p
	}
	for _, x := range []*string{&c.cfg.Host4, &c.cfg.Host6} {
		*x = strings.Trim(*x, "[]")
	}
	c.cfg.Host = strings.Trim(cmp.Or(c.cfg.Host, c.cfg.Host4, c.cfg.Host6), "[]")
	if c.cfg.Host == "" {
		if a, err := netip.ParseAddr(h); err == nil && a.IsUnspecified() {
			c.Close()
			return nil, errors.New("conference: Config.Host is required when the first listener is a wildcard address")
		}
		c.cfg.Host = h
	}
	if c.cfg.Host4 == "" && !isIPv6Host(c.cfg.Host) {
		c.cfg.Host4 = c.cfg.Host
	}
	if c.cfg.Host6 == "" && !isIPv4Host(c.cfg.Host) {
		c.cfg.Host6 = c.cfg.Host
	}
	c.cfg.Host = hostForURI(c.cfg.Host)
	return c, nil
}

func isIPv6Host(h string) bool {
	a, err := netip.ParseAddr(strings.Trim(h, "[]"))
	return err == nil && a.Is6() && !a.Is4In6()
}

func isIPv4Host(h string) bool {
	a, err := netip.ParseAddr(h)
	return err == nil && a.Unmap().Is4()
}

// advertised is the host mcc names to a participant of one family where a
// wildcard listener leaves it open.
func (c *Controller) advertised(v6 bool) string {
	h := c.cfg.Host4
	if v6 {
		h = c.cfg.Host6
	}
	if h == "" {
		return c.cfg.Host
	}
	return hostForURI(h)
}

// originFor is the o= of a dialog's offers of desc to a participant of one
// family: the session's own, with mcc's address of that family when mcc
// owns the session and has an address of that family (a name keeps the
// session's). RFC 8866 §5.2 keeps the rest of the o= identity; a session
// mcc does not own keeps its o= whole.
func (c *Controller) originFor(desc *sdp.Session, external, v6 bool) *sdp.Origin {
	o := desc.Origin
	if external {
		return &o
	}
	h := c.cfg.Host4
	if v6 {
		h = c.cfg.Host6
	}
	if a, err := netip.ParseAddr(h); err == nil && !a.IsUnspecified() {
		o.Addr, o.Host, o.AddrType = a.Unmap(), "", ""
	}
	return &o
}

const allowHeader = "INVITE, ACK, CANCEL, BYE, OPTIONS, SUBSCRIBE, REFER"

func init() {
	// sipgo refuses to write a UDP message over UDPMTUSize-200 bytes,
	// responses too; but a response goes where its request came from, on
	// the same transport (RFC 3261 §18.2.2), so a large one is sent
	// fragmented rather than not at all. mcc's own large requests still go
	// over TCP where it can (udpLimit, §18.1.1).
	sip.UDPMTUSize = 65535
}

// udpReadBuffer is the receive buffer asked for UDP listeners.
const udpReadBuffer = 4 << 20

func hostForURI(h string) string {
	if a, err := netip.ParseAddr(h); err == nil && a.Is6() {
		return "[" + a.String() + "]"
	}
	return h
}

func (c *Controller) listen(l Listener) error {
	tr := strings.ToLower(l.Transport)
	if l.PacketConn == nil {
		if h, _, err := net.SplitHostPort(l.Addr); err == nil && h == "" {
			// One socket would take both families; each family needs one
			// of its own to send from (see network).
			return fmt.Errorf("conference: listener %s %q names no host: give 0.0.0.0 for IPv4 or [::] for IPv6", tr, l.Addr)
		}
	}
	switch tr {
	case "udp":
		pc := l.PacketConn
		if pc == nil {
			var err error
			if pc, err = net.ListenPacket(network("udp", l.Addr), l.Addr); err != nil {
				return fmt.Errorf("conference: listen udp %s: %w", l.Addr, err)
			}
		}
		return c.serveUDP(pc)
	case "tcp", "tls":
		var ln net.Listener
		var err error
		if tr == "tls" {
			if c.cfg.TLS == nil || len(c.cfg.TLS.Certificates) == 0 && c.cfg.TLS.GetCertificate == nil {
				return fmt.Errorf("conference: listen tls %s: no certificate configured", l.Addr)
			}
		}
		ln, err = net.Listen(network("tcp", l.Addr), l.Addr)
		if err != nil {
			return fmt.Errorf("conference: listen %s %s: %w", tr, l.Addr, err)
		}
		gl := &guardedListener{Listener: ln, g: c.guard, transport: strings.ToUpper(tr), log: c.log}
		if tr == "tls" {
			gl.tls = c.cfg.TLS
		}
		ln = gl
		c.listeners = append(c.listeners, ln)
		c.addrs = append(c.addrs, Listener{Transport: tr, Addr: ln.Addr().String()})
		serve := c.srv.ServeTCP
		if tr == "tls" {
			serve = c.srv.ServeTLS
		}
		c.wg.Go(func() { serve(ln) })
		if _, ok := c.clients[tr]; !ok {
			cl, err := sipgo.NewClient(c.ua, sipgo.WithClientLogger(stackLogger(c.log).With("layer", "client")))
			if err != nil {
				return err
			}
			c.clients[tr] = cl
		}
		return nil
	}
	return fmt.Errorf("conference: transport %q: want udp, tcp or tls", l.Transport)
}

// udpRotateAfter is how many UDP peer addresses sipgo's read loop may
// come to hold before it is replaced (see udpMux): some 100 bytes each.
const udpRotateAfter = 20000

// serving reports whether sipgo has taken session s as its listener for
// s's address, so that requests leave from it.
func (c *Controller) serving(s *udpSession) bool {
	conn, err := c.ua.TransportLayer().GetConnection("udp", s.LocalAddr().String())
	if err != nil || conn == nil {
		return false
	}
	defer conn.TryClose()
	uc, ok := conn.(*sip.UDPConnection)
	return ok && uc.PacketConn == net.PacketConn(s)
}

// writeResponse sends a response again, such as a 2xx retransmission
// (§13.3.1.4): over UDP from the listener of its family, whatever sipgo's
// pool holds for the peer (a new read loop forgets its peers).
func (c *Controller) writeResponse(res *sip.Response) error {
	if !strings.EqualFold(res.Transport(), "udp") {
		return c.srv.WriteResponse(res)
	}
	v6 := familyOf(res.Destination()) == "6"
	for _, l := range c.addrs {
		if l.Transport != "udp" || (familyOf(l.Addr) == "6") != v6 {
			continue
		}
		conn, err := c.ua.TransportLayer().GetConnection("udp", l.Addr)
		if err != nil || conn == nil {
			continue
		}
		defer conn.TryClose()
		return conn.WriteMsg(res)
	}
	return c.srv.WriteResponse(res)
}

// network is the network to listen on for an address: one family only for
// an address literal, so that a wildcard [::] socket does not take IPv4
// too (Go sets IPV6_V6ONLY for "udp6" and "tcp6"), and each family has its
// own socket to send from.
func network(base, addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Is4() || a.Is4In6() {
			return base + "4"
		}
		return base + "6"
	}
	return base
}

// serveUDP serves SIP on a UDP socket and makes requests to that family
// leave from it.
func (c *Controller) serveUDP(pc net.PacketConn) error {
	// A burst of answers to a fan-out must not overflow the kernel's
	// default buffer (about 200 KiB on Linux); the kernel caps this at
	// net.core.rmem_max.
	if u, ok := pc.(interface{ SetReadBuffer(int) error }); ok {
		u.SetReadBuffer(udpReadBuffer)
	}
	c.listeners = append(c.listeners, pc)
	addr := pc.LocalAddr().String()
	c.guard.mu.Lock()
	c.guard.udp[addr] = pc // the guard answers what it refuses from here
	c.guard.mu.Unlock()
	c.addrs = append(c.addrs, Listener{Transport: "udp", Addr: addr})
	m := &udpMux{pc: pc}
	m.serve = func(s *udpSession) {
		c.wg.Go(func() {
			c.srv.ServeUDP(s)
			if c.ctx.Err() == nil && !m.replaced(s) {
				c.log.Error("SIP over UDP stopped", "addr", addr)
			}
		})
	}
	c.muxes = append(c.muxes, m)
	m.start()
	c.wg.Go(m.run)
	// Requests leave from this socket: wait until sipgo has it in its pool,
	// or the first one would try to bind the address again.
	for i := 0; ; i++ {
		if conn, _ := c.ua.TransportLayer().GetConnection("udp", addr); conn != nil {
			break
		}
		if i == 1000 {
			return fmt.Errorf("conference: udp listener %s did not start", addr)
		}
		time.Sleep(time.Millisecond)
	}
	fam := familyOf(addr)
	key := "udp" + fam
	if _, ok := c.clients[key]; !ok {
		cl, err := sipgo.NewClient(c.ua, sipgo.WithClientConnectionAddr(addr), sipgo.WithClientLogger(stackLogger(c.log).With("layer", "client")))
		if err != nil {
			return err
		}
		c.clients[key] = cl
	}
	return nil
}

func familyOf(hostport string) string {
	h, _, _ := net.SplitHostPort(hostport)
	if a, err := netip.ParseAddr(h); err == nil && a.Is6() && !a.Is4In6() {
		return "6"
	}
	return "4"
}

// Addrs returns the bound listeners, with the ports picked for port 0.
func (c *Controller) Addrs() []Listener { return append([]Listener(nil), c.addrs...) }

// Close ends every dialog without signalling (conferences live on until
// they are deleted), stops the listeners and waits for every goroutine.
func (c *Controller) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	for _, l := range c.listeners {
		l.Close()
	}
	c.wg.Wait()
	if c.ua != nil {
		c.ua.Close()
	}
	return nil
}

// goOwned runs f as a goroutine the controller owns and waits for on
// Close, behind the same last-line barrier as the handlers; after Close
// it runs nothing and returns false.
func (c *Controller) goOwned(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Go(func() {
		defer c.recoverIn("a background task")
		f()
	})
	return true
}

// clientFor returns the client for a transport and a family.
func (c *Controller) clientFor(transport string, v6 bool) (*sipgo.Client, error) {
	tr := strings.ToLower(transport)
	key := tr
	if tr == "udp" {
		key = "udp4"
		if v6 {
			key = "udp6"
		}
	}
	cl, ok := c.clients[key]
	if !ok {
		return nil, fmt.Errorf("conference: no %s listener to send from", strings.ToUpper(key))
	}
	return cl, nil
}

// isV6 reports whether mcc reaches host over IPv6: an address literal
// says so itself; a name is looked up, and goes over IPv4 when it has an
// IPv4 address, as sipgo's resolver prefers.
func (c *Controller) isV6(host string) bool {
	host = strings.Trim(host, "[]")
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Is6() && !a.Is4In6()
	}
	r := c.cfg.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		if a.Unmap().Is4() {
			return false
		}
	}
	return true
}

// contactFor is contact for a family.
func (c *Controller) contactFor(user, transport string, want6 bool) *sip.ContactHeader {
	tr := strings.ToLower(transport)
	var pick *Listener
	for i, l := range c.addrs {
		if l.Transport != tr {
			continue
		}
		if pick == nil || (familyOf(l.Addr) == "6") == want6 {
			pick = &c.addrs[i]
			if (familyOf(l.Addr) == "6") == want6 {
				break
			}
		}
	}
	if pick == nil {
		pick = &c.addrs[0]
	}
	h, p, _ := net.SplitHostPort(pick.Addr)
	chost := hostForURI(h)
	if a, err := netip.ParseAddr(h); err == nil && a.IsUnspecified() {
		chost = c.advertised(familyOf(pick.Addr) == "6") // a wildcard listener is reached at the advertised host
	}
	u := sip.Uri{Scheme: "sip", User: user, Host: chost, UriParams: sip.NewParams()}
	fmtPort(&u, p)
	if pick.Transport != "udp" {
		u.UriParams.Add("transport", pick.Transport)
	}
	if pick.Transport == "tls" {
		u.UriParams.Remove("transport")
		u.UriParams.Add("transport", "tls")
	}
	return &sip.ContactHeader{Address: u}
}

func fmtPort(u *sip.Uri, p string) {
	var n int
	fmt.Sscan(p, &n)
	u.Port = n
}

// countingTx counts the final responses a handler sends, and makes mcc a
// stateless UAS (RFC 3261 §8.2.7) for every answer that changes nothing:
// a rejection (300 and up) and the 200 to an OPTIONS. Their transaction
// ends once the answer is sent, so it is sent once per request received:
// no Timer G retransmissions of a 4xx to an address that never ACKs (over
// UDP a spoofed source would get them, up to 11 in 32 s), and no
// transaction kept for Timer J's 32 s, which a flood of OPTIONS from many
// sources would pile up to the bound on live transactions. A request sent
// again makes a new transaction and gets the answer again (§8.2.7); the
// ACK of such a rejection matches nothing and is dropped (§17.2.3).
//
// An INVITE is answered so only while it is sure to have had no
// provisional response (within 50 ms of its handler's start): sipgo sends
// 100 Trying 200 ms after the request came (§17.2.1), and a caller that has had one stops retransmitting
// (§17.1.1.2), so a lost rejection after it would never be sent again.
// And only out of a dialog (or with 481: there is none) and without
// credentials: a re-INVITE's CSeq and a digest response's nc are used
// once taken, so a retransmission would get another answer than the first
// (§8.2.7 wants the same).
type countingTx struct {
	sip.ServerTransaction
	c      *Controller
	method sip.RequestMethod
	req    *sip.Request
	start  time.Time
	final  bool // a final response went out through this
}

func (t *countingTx) Respond(res *sip.Response) error {
	if t.final && !(res.IsSuccess() && t.method == sip.INVITE) {
		// After a final response only an INVITE's 2xx may go again
		// (§13.3.1.4); anything else (a panic's 500) would take the final
		// one's place in sipgo's transaction, and its retransmissions.
		return nil
	}
	t.c.metrics.response("sent", t.method, res.StatusCode)
	first := !t.final && res.StatusCode >= 200
	t.final = t.final || res.StatusCode >= 200
	err := t.ServerTransaction.Respond(res)
	if first && err == nil && t.stateless(res) {
		t.ServerTransaction.Terminate()
	}
	return err
}

// stateless reports whether the transaction may end with res (above).
func (t *countingTx) stateless(res *sip.Response) bool {
	switch {
	case t.method == sip.OPTIONS:
		return true
	case res.StatusCode < 300:
		return false
	case t.method != sip.INVITE:
		return true
	}
	if t.req == nil || t.req.To() == nil {
		return false
	}
	if _, inDialog := tagOf(t.req.To().Params); inDialog && res.StatusCode != sip.StatusCallTransactionDoesNotExists {
		return false // a 481 says there is no dialog: it is the same every time
	}
	// sipgo arms its 100 Trying when it makes the transaction, a little
	// before the handler starts: a quarter of Timer_1xx leaves room for
	// the difference.
	return t.req.GetHeader("Authorization") == nil && time.Since(t.start) < sip.Timer_1xx/4
}
