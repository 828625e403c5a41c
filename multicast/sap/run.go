package sap

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"mcc/multicast"
	"mcc/sdp"
)

// Listen reads SAP packets from conns (already joined to their SAP groups)
// into dir until ctx ends, and expires dir's sessions every minute. It
// closes the conns and returns once every reader has stopped.
func Listen(ctx context.Context, dir *Directory, log *slog.Logger, conns ...*multicast.GroupConn) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		wg.Go(func() {
			buf := make([]byte, MaxPayload+1024)
			for {
				n, src, dst, err := c.ReadFrom(buf)
				if errors.Is(err, multicast.ErrNotJoined) {
					continue
				}
				if err != nil {
					if ctx.Err() == nil {
						log.Warn("SAP read", "err", err)
					}
					return
				}
				if err := dir.Handle(src.Addr(), dst, buf[:n]); err != nil {
					log.Debug("SAP packet dropped", "source", src, "err", err)
				}
			}
		})
	}
	wg.Go(func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				dir.Expire()
			case <-ctx.Done():
				return
			}
		}
	})
	wg.Wait()
	return nil
}

// AnnouncerConfig configures an Announcer.
type AnnouncerConfig struct {
	// Senders send the announcements, one per interface and family, each
	// with its interface set beforehand; an IPv4 session goes out of every
	// IPv4 sender, an IPv6 one out of every IPv6 sender.
	Senders []Sender
	// Directory, when set, gives the announcements heard on each SAP
	// group, which set the interval (RFC 2974 §3.1).
	Directory *Directory
	// Limit is the bandwidth of all announcements on a group, bit/s.
	// Zero means 4000.
	Limit int
	// FastStart announces a new or changed session this many more times,
	// FastInterval apart, before falling back to the RFC rate. Zero means
	// none.
	FastStart    int
	FastInterval time.Duration
	// Compress sends zlib-compressed packets.
	Compress bool
	Logger   *slog.Logger
}

// Sender is a socket announcements go out of, with the originating
// source its packets carry (an address of its interface).
type Sender struct {
	Conn   *multicast.GroupConn
	Origin netip.Addr
}

// Announcer announces sessions to the SAP group of their scope. Run sends;
// Announce and Withdraw change what it sends. Safe for concurrent use.
type Announcer struct {
	cfg AnnouncerConfig
	log *slog.Logger

	sendMu sync.Mutex // one send at a time: the TTL is set per socket

	mu       sync.Mutex // guards the fields below
	r        *rand.Rand
	sessions map[string]*announced
	wake     chan struct{} // a send is due earlier than Run's timer says; holds at most one
}

type announced struct {
	out   []outgoing // one packet per sender, with its origin
	hash  uint16
	group netip.Addr // SAP group
	ttl   int
	next  time.Time
	fast  int
	size  int
}

type outgoing struct {
	conn *multicast.GroupConn
	pkt  []byte
	p    *Packet
}

// NewAnnouncer returns an announcer.
func NewAnnouncer(cfg AnnouncerConfig) *Announcer {
	if cfg.Limit == 0 {
		cfg.Limit = DefaultLimit
	}
	if cfg.FastInterval == 0 {
		cfg.FastInterval = 5 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Announcer{cfg: cfg, log: log.With("component", "sap"), r: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		sessions: map[string]*announced{}, wake: make(chan struct{}, 1)}
}

// Announce starts or updates the announcement of session id: a new or
// changed description goes out at once, with a new hash.
func (a *Announcer) Announce(id string, desc *sdp.Session) error {
	var group netip.Addr
	ttl := 1
	for _, m := range desc.Media {
		if c := desc.EffectiveConnection(m); c != nil && c.IsMulticast() {
			group = c.Addr
			if c.Addr.Is4() {
				ttl = int(c.TTL)
			} else {
				ttl = hopLimit(c.Addr)
			}
			break
		}
	}
	if !group.IsValid() {
		return errors.New("sap: the session has no multicast group to announce")
	}
	sapGroup, err := GroupFor(group)
	if err != nil {
		return err
	}
	body, err := desc.Marshal()
	if err != nil {
		return err
	}
	hash := Hash(body)
	var out []outgoing
	for _, snd := range a.cfg.Senders {
		if snd.Origin.Is4() != group.Is4() {
			continue
		}
		p := &Packet{Hash: hash, Origin: snd.Origin, Payload: body}
		pkt, err := p.Encode(a.cfg.Compress)
		if err != nil {
			return err
		}
		out = append(out, outgoing{snd.Conn, pkt, p})
	}
	if len(out) == 0 {
		return errors.New("sap: no socket to announce " + multicast.FamilyOf(group).String() + " sessions on")
	}
	a.mu.Lock()
	old := a.sessions[id]
	if old != nil && old.hash == hash {
		a.mu.Unlock()
		return nil // unchanged: keep its schedule
	}
	a.sessions[id] = &announced{out: out, hash: hash, group: sapGroup, ttl: ttl, next: time.Now(), fast: a.cfg.FastStart, size: len(out[0].pkt)}
	a.mu.Unlock()
	a.poke()
	return nil
}

func hopLimit(g netip.Addr) int {
	switch s := g.As16()[1] & 0x0f; {
	case s <= 2:
		return 1
	case s <= 5:
		return 15
	case s <= 8:
		return 63
	}
	return 127
}

func (a *Announcer) poke() {
	select {
	case a.wake <- struct{}{}:
	default: // a wake-up is pending already; one is enough
	}
}

// Withdraw stops announcing session id and sends its deletion.
func (a *Announcer) Withdraw(id string) error {
	a.mu.Lock()
	s := a.sessions[id]
	delete(a.sessions, id)
	a.mu.Unlock()
	if s == nil {
		return nil
	}
	var errs []error
	for _, o := range s.out {
		del := *o.p
		del.Delete = true
		pkt, err := del.Encode(a.cfg.Compress)
		if err == nil {
			err = a.send(o.conn, pkt, s.group, s.ttl)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (a *Announcer) send(c *multicast.GroupConn, pkt []byte, g netip.Addr, ttl int) error {
	a.sendMu.Lock()
	defer a.sendMu.Unlock()
	if err := c.SetTTL(ttl); err != nil {
		return err
	}
	return c.WriteTo(pkt, g, Port)
}

// Run sends the announcements as they fall due until ctx ends.
func (a *Announcer) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		next := now.Add(time.Hour)
		type due struct {
			s *announced
			o outgoing
		}
		var sends []due
		a.mu.Lock()
		for _, s := range a.sessions {
			if !s.next.After(now) {
				for _, o := range s.out {
					sends = append(sends, due{s, o})
				}
				if s.fast > 0 {
					s.fast--
					s.next = now.Add(a.cfg.FastInterval)
				} else {
					ads, size := 0, 0
					if a.cfg.Directory != nil {
						ads, size = a.cfg.Directory.Load(s.group)
					}
					if ads == 0 {
						ads, size = 1, s.size
					}
					s.next = now.Add(Interval(a.r, ads, size, a.cfg.Limit))
				}
			}
			if s.next.Before(next) {
				next = s.next
			}
		}
		a.mu.Unlock()
		for _, d := range sends {
			if err := a.send(d.o.conn, d.o.pkt, d.s.group, d.s.ttl); err != nil && !errors.Is(err, net.ErrClosed) {
				a.log.Warn("SAP send", "group", d.s.group, "err", err)
			}
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-a.wake:
		}
	}
}
