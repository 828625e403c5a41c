package sap

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
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
	sessions map[string]map[netip.Addr]*announced // by session ID, then SAP group
	deleted  map[ownKey]time.Time                 // deletions sent, and announcements replaced, in the last ownMemory: they loop back too
	wake     chan struct{}                        // a send is due earlier than Run's timer says; holds at most one
}

type announced struct {
	out   []outgoing // one packet per sender, with its origin
	hash  uint16
	group netip.Addr // SAP group
	ttl   int
	next  time.Time
	fast  int
	size  int
	// interval is the profile's fixed interval; zero means RFC 2974's.
	interval time.Duration
	// canon is the description the hash was taken from.
	canon []byte
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
	a := &Announcer{cfg: cfg, log: log.With("component", "sap"), r: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		sessions: map[string]map[netip.Addr]*announced{}, deleted: map[ownKey]time.Time{}, wake: make(chan struct{}, 1)}
	if cfg.Directory != nil {
		cfg.Directory.SetOwn(a.Owns)
	}
	return a
}

// Announce starts or updates the announcement of session id, once per
// profile (none means DefaultProfile's): a new or changed description
// goes out at once, with a new hash; a SAP group no longer announced to
// has the deletion sent. Profiles that send to the same group are merged
// into one announcement (Profile.merge). A profile that cannot announce the session (an IPv6
// session under an IPv4-only profile) is left out and said in the error;
// the others go out.
func (a *Announcer) Announce(id string, desc *sdp.Session, profiles ...Profile) error {
	if len(profiles) == 0 {
		p, _ := ProfileByName(DefaultProfile)
		profiles = []Profile{p}
	}
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
	// Profiles that send to the same SAP group become one announcement:
	// two bodies of one session on one group would have its listeners
	// see a change at every packet.
	var errs []error
	var merged []Profile
	var groups []netip.Addr
	for _, p := range profiles {
		g, err := p.group(group)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if i := slices.Index(groups, g); i >= 0 {
			merged[i] = merged[i].merge(p)
			continue
		}
		merged, groups = append(merged, p), append(groups, g)
	}
	// One hash names this version of the session under every profile
	// (RFC 2974 §5: the hash identifies the announcement, not the bytes
	// of one text of it): a listener of several groups (mcc is one) hears
	// the same version, not a change at every packet.
	canonical, err := desc.Marshal()
	if err != nil {
		return err
	}
	hash := Hash(canonical)
	// A changed text must have a new hash (RFC 2974 §5); 16 bits collide
	// now and then, and then the next one is taken (0 is not a hash).
	a.mu.Lock()
	hash = a.hashForLocked(id, canonical, hash)
	a.mu.Unlock()
	next := map[netip.Addr]*announced{}
	for i, p := range merged {
		s, err := a.prepare(p, desc, groups[i], ttl, hash)
		if s != nil {
			s.canon = canonical
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		next[groups[i]] = s
	}
	a.mu.Lock()
	old := a.sessions[id]
	var gone []*announced
	for g, s := range old {
		if n := next[g]; n == nil {
			gone = append(gone, s) // no longer announced there: its listeners are told
		} else if n.hash == s.hash && n.interval == s.interval && samePackets(n.out, s.out) {
			next[g] = s // unchanged: keep its schedule
		} else if n.hash != s.hash {
			// Replaced: its last packets may still be on their way back
			// over loopback, and are still this host's own.
			now := time.Now()
			a.pruneDeletedLocked(now)
			for _, o := range s.out {
				a.deleted[ownKey{o.p.Origin, o.p.Hash}] = now
			}
		}
	}
	if len(next) == 0 {
		delete(a.sessions, id)
	} else {
		a.sessions[id] = next
	}
	a.mu.Unlock()
	for _, s := range gone {
		errs = append(errs, a.sendDeletion(s))
	}
	a.poke()
	return errors.Join(errs...)
}

// prepare writes the packets that announce desc under profile p.
func (a *Announcer) prepare(p Profile, desc *sdp.Session, sapGroup netip.Addr, ttl int, hash uint16) (*announced, error) {
	body, err := p.Format(desc)
	if err != nil {
		return nil, err
	}
	var out []outgoing
	for _, snd := range a.cfg.Senders {
		if snd.Origin.Is4() != sapGroup.Is4() {
			continue
		}
		pk := &Packet{Hash: hash, Origin: snd.Origin, PayloadType: p.PayloadType, Payload: body}
		pkt, err := pk.Encode(a.cfg.Compress)
		if err != nil {
			return nil, err
		}
		out = append(out, outgoing{snd.Conn, pkt, pk})
	}
	if len(out) == 0 {
		return nil, errors.New("sap: no socket to announce " + multicast.FamilyOf(sapGroup).String() + " sessions on")
	}
	return &announced{out: out, hash: hash, group: sapGroup, ttl: ttl, next: time.Now(), fast: a.cfg.FastStart,
		size: len(out[0].pkt), interval: p.Interval}, nil
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

// Withdraw stops announcing session id and sends its deletions.
func (a *Announcer) Withdraw(id string) error {
	a.mu.Lock()
	ss := a.sessions[id]
	delete(a.sessions, id)
	a.mu.Unlock()
	var errs []error
	for _, s := range ss {
		errs = append(errs, a.sendDeletion(s))
	}
	return errors.Join(errs...)
}

// hashForLocked is the hash text canonical of session id goes out with:
// the one it has when it is out already (a bumped one stays bumped), else
// h, moved on past any hash a live announcement of this announcer uses
// for another text (RFC 2974 §5: origin and hash name one version).
// Called with a.mu held.
func (a *Announcer) hashForLocked(id string, canonical []byte, h uint16) uint16 {
	for _, s := range a.sessions[id] {
		if bytes.Equal(s.canon, canonical) {
			return s.hash
		}
	}
	taken := func(h uint16) bool {
		for _, ss := range a.sessions {
			for _, s := range ss {
				if s.hash == h {
					return true
				}
			}
		}
		return false
	}
	for i := 0; i < 1<<16 && (h == 0 || taken(h)); i++ {
		h++
	}
	return h
}

// samePackets reports whether two announcements send the same bytes.
func samePackets(a, b []outgoing) bool {
	return slices.EqualFunc(a, b, func(x, y outgoing) bool { return x.conn == y.conn && bytes.Equal(x.pkt, y.pkt) })
}

// ownKey is what tells one of the announcer's packets from others': its
// originating source is this host's, and its hash names the text.
type ownKey struct {
	origin netip.Addr
	hash   uint16
}

// ownMemory is how long a deletion sent is still known as the
// announcer's own when it is heard back.
const ownMemory = time.Minute

// Owns reports whether a packet with this originating source and hash is
// one the announcer sends, or one it sent in the last minute (a deletion,
// or an announcement since replaced).
func (a *Announcer) Owns(origin netip.Addr, hash uint16) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ss := range a.sessions {
		for _, s := range ss {
			for _, o := range s.out {
				if o.p.Hash == hash && o.p.Origin == origin {
					return true
				}
			}
		}
	}
	t, ok := a.deleted[ownKey{origin, hash}]
	return ok && time.Since(t) < ownMemory
}

// pruneDeletedLocked forgets what was sent more than ownMemory ago.
// Called with a.mu held.
func (a *Announcer) pruneDeletedLocked(now time.Time) {
	for k, t := range a.deleted {
		if now.Sub(t) >= ownMemory {
			delete(a.deleted, k)
		}
	}
}

// sendDeletion sends the deletion of one announcement (RFC 2974 §4): its
// header, hash and payload with T set.
func (a *Announcer) sendDeletion(s *announced) error {
	now := time.Now()
	a.mu.Lock()
	a.pruneDeletedLocked(now)
	for _, o := range s.out {
		a.deleted[ownKey{o.p.Origin, o.p.Hash}] = now
	}
	a.mu.Unlock()
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
		for _, ss := range a.sessions {
			for _, s := range ss {
				if !s.next.After(now) {
					for _, o := range s.out {
						sends = append(sends, due{s, o})
					}
					if s.fast > 0 {
						s.fast--
						s.next = now.Add(a.cfg.FastInterval)
					} else {
						// Every announcement on the group counts, the others'
						// heard and this announcer's own (RFC 2974 §3.1).
						ads, size := 0, 0
						if a.cfg.Directory != nil {
							ads, size = a.cfg.Directory.Load(s.group)
						}
						bytes := ads * size
						for _, other := range a.sessions {
							if o := other[s.group]; o != nil {
								ads++
								bytes += o.size
							}
						}
						size = bytes / ads // ads ≥ 1: s is one of them
						if s.interval > 0 {
							s.next = now.Add(FixedInterval(a.r, s.interval, ads, size, a.cfg.Limit))
						} else {
							s.next = now.Add(Interval(a.r, ads, size, a.cfg.Limit))
						}
					}
				}
				if s.next.Before(next) {
					next = s.next
				}
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
