package sap

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mcc/multicast"
	"mcc/sdp"
)

// Heard is a session the directory heard announced.
type Heard struct {
	// ID identifies the session across changes: the o= line without its
	// version, and the source ("username sess-id address source").
	ID string `json:"id"`
	// Name is the s= line.
	Name string `json:"name"`
	// Source is the address the announcements come from; Origin is the
	// packet's originating source field.
	Source netip.Addr `json:"source"`
	Origin netip.Addr `json:"origin"`
	// Hash is the message identifier hash of the latest announcement.
	Hash uint16 `json:"hash"`
	// Groups are the multicast groups the session uses, with its ports.
	Groups []netip.Addr `json:"groups"`
	Ports  []uint16     `json:"ports"`
	// SDP is the latest description, as announced: the directory's own
	// copy, shared by every List; do not modify it.
	SDP []byte `json:"-"`
	// First and Last are when it was first and last heard; Interval is
	// the average time between its announcements.
	First    time.Time     `json:"first_heard"`
	Last     time.Time     `json:"last_heard"`
	Interval time.Duration `json:"interval"`
	// End is when the session ends (its t= stop), or zero.
	End time.Time `json:"end,omitzero"`
	// SAPGroup is the group the announcements were heard on.
	SAPGroup netip.Addr `json:"sap_group"`
	// Warnings are what the description has that RFC 8866 does not
	// allow, and what mcc takes it as (sdp.Liberal).
	Warnings []string `json:"warnings,omitempty"`
}

// DirectoryConfig configures a Directory.
//
// Every announcement costs the directory memory, and every group it holds
// is one the allocator will not hand out, so what a stranger's packets can
// make it hold is bounded, per source and in all. SAP sources are not
// authenticated and can be forged, which is why the totals matter as much
// as the per-source bounds. The per-source bounds count an IPv4 source by
// its address and an IPv6 one by its /64, since one host picks any
// interface identifier of its link (RFC 4291 §2.5.1). An announcement of a
// new session, or a change to one, that would pass a bound is dropped and
// counted in Stats; a session already held keeps being refreshed by its
// announcements when the directory is full.
type DirectoryConfig struct {
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// DefaultTTL is the TTL an announced IPv4 group without one is taken
	// at (sdp.Liberal); 0 means sdp.DefaultTTL.
	DefaultTTL uint8

	// MaxSessions bounds the sessions held. Zero (or less) means 10,000:
	// on one SAP group at the RFC 2974 §3.1 default of 4,000 bit/s, 10,000
	// announcements of 500 bytes each come round once every 10,000 s, so a
	// directory fuller than that is not fed by announcers keeping to SAP's
	// rate.
	MaxSessions int
	// MaxSessionsPerSource bounds the sessions announced from one source.
	// Zero (or less) means 1,000, room for an IPTV head end's channels.
	MaxSessionsPerSource int

	// MaxGroups bounds the multicast groups held over every session: the
	// most a flood of announcements can keep the allocator from. Zero (or
	// less) means 4,096, a sixteenth of the local scope 239.255.0.0/16
	// (RFC 2365 §6.1) and an eighth of the global range 224.2.128.0/17.
	MaxGroups int
	// MaxGroupsPerSource bounds the groups held for one source's sessions.
	// Zero (or less) means 1,024.
	MaxGroupsPerSource int

	// MaxBytes bounds the descriptions kept, in bytes. Zero (or less)
	// means 16 MiB. RFC 2327 §2.1 asks for announcements of no more than
	// 1 kB, and Decode accepts up to MaxPayload.
	MaxBytes int
	// MaxBytesPerSource bounds the bytes of one source's descriptions.
	// Zero (or less) means 1 MiB.
	MaxBytesPerSource int

	// Own reports whether a packet with this originating source and
	// message ID hash is one this host sent: a host hears its own
	// announcements over multicast loopback, and they are not sessions it
	// heard. NewAnnouncer sets it to the announcer's. It is never called
	// with the directory's lock held.
	Own func(origin netip.Addr, hash uint16) bool
}

// The default bounds of DirectoryConfig.
const (
	DefaultMaxSessions          = 10000
	DefaultMaxSessionsPerSource = 1000
	DefaultMaxGroups            = 4096
	DefaultMaxGroupsPerSource   = 1024
	DefaultMaxBytes             = 16 << 20
	DefaultMaxBytesPerSource    = 1 << 20
)

// Limit names a bound of DirectoryConfig.
type Limit int

// The bounds.
const (
	LimitSessions Limit = iota + 1
	LimitSessionsPerSource
	LimitGroups
	LimitGroupsPerSource
	LimitBytes
	LimitBytesPerSource
)

var limitNames = [...]string{"", "sessions", "sessions_per_source", "groups", "groups_per_source", "bytes", "bytes_per_source"}

// String returns the bound's name as Stats.OverLimitBy keys it:
// "sessions_per_source".
func (l Limit) String() string {
	if l < LimitSessions || int(l) >= len(limitNames) {
		return fmt.Sprintf("Limit(%d)", int(l))
	}
	return limitNames[l]
}

// LimitError reports an announcement the directory dropped because
// holding it would pass one of its bounds. It wraps ErrIgnored.
type LimitError struct {
	Limit   Limit
	Session string     // the session's ID (Heard.ID)
	Source  netip.Addr // the packet's source
	// Held is what the source, or the whole directory, holds without this
	// session; Asked is what the session would add; Max is the bound.
	Held, Asked, Max int
}

func (e *LimitError) Error() string {
	what, whose := "sessions", "the directory"
	switch e.Limit {
	case LimitGroups, LimitGroupsPerSource:
		what = "groups"
	case LimitBytes, LimitBytesPerSource:
		what = "bytes"
	}
	switch e.Limit {
	case LimitSessionsPerSource, LimitGroupsPerSource, LimitBytesPerSource:
		whose = "source " + e.Source.String()
		if e.Source.Is6() {
			whose = "source " + sourceKey(e.Source).String() // counted by its /64
		}
	}
	return fmt.Sprintf("%v: session %q from %v would add %d %s to the %d %s holds, over its bound of %d (%v)",
		ErrIgnored, e.Session, e.Source, e.Asked, what, e.Held, whose, e.Max, e.Limit)
}

// Unwrap returns ErrIgnored.
func (e *LimitError) Unwrap() error { return ErrIgnored }

// Directory keeps the sessions heard over SAP. It is safe for concurrent
// use, and is a multicast.InUseSource: the allocator never hands out a
// group it holds.
type Directory struct {
	cfg DirectoryConfig

	own atomic.Pointer[func(netip.Addr, uint16) bool] // DirectoryConfig.Own, or SetOwn's

	mu       sync.Mutex // guards the fields below
	sessions map[string]*Heard
	sources  map[netip.Prefix]*source // by sourceKey
	total    tally
	stats    Stats
	// gone says why sessions left lately ("deleted" or "timeout"), for
	// those that follow one (Gone); at most maxGone, for goneFor.
	gone map[string]goneEntry
}

type goneEntry struct {
	reason string
	at     time.Time
}

// How many sessions, and for how long, Gone remembers.
const (
	maxGone = 4096
	goneFor = 10 * time.Minute
)

// markGone records why session id left. Called with d.mu held. Old
// entries go in Expire; a full record drops one at random.
func (d *Directory) markGone(id, reason string, now time.Time) {
	if d.gone == nil {
		d.gone = map[string]goneEntry{}
	}
	if len(d.gone) >= maxGone {
		for k := range d.gone {
			delete(d.gone, k)
			break
		}
	}
	d.gone[id] = goneEntry{reason, now}
}

// Lookup returns heard session id.
func (d *Directory) Lookup(id string) (Heard, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.sessions[id]
	if h == nil {
		return Heard{}, false
	}
	c := *h
	c.Groups, c.Ports = slices.Clone(h.Groups), slices.Clone(h.Ports)
	return c, true
}

// Gone says why session id, no longer held, left in the last ten minutes:
// "deleted" (its announcer sent the deletion, RFC 2974 §4) or "timeout"
// (not heard for its timeout, or past its end, §3.2); "" when it did not.
func (d *Directory) Gone(id string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.sessions[id]; ok {
		return ""
	}
	g, ok := d.gone[id]
	if !ok || d.cfg.Now().Sub(g.at) > goneFor {
		return ""
	}
	return g.reason
}

var _ multicast.InUseSource = (*Directory)(nil)

// tally is what a session, a source or the directory holds.
type tally struct{ sessions, groups, bytes int }

func (t tally) plus(u tally) tally {
	return tally{t.sessions + u.sessions, t.groups + u.groups, t.bytes + u.bytes}
}
func (t tally) minus(u tally) tally {
	return tally{t.sessions - u.sessions, t.groups - u.groups, t.bytes - u.bytes}
}

func tallyOf(h *Heard) tally { return tally{1, len(h.Groups), heldBytes(h.ID, h.Name, h.SDP)} }

// heldBytes is what a heard session keeps in bytes: its description, and
// the copies of its o= identity and its name that key and list it.
func heldBytes(id, name string, sdp []byte) int { return len(sdp) + len(id) + len(name) }

// source is what one source announced.
type source struct {
	tally
	ids []string // the sessions it announced, at most MaxSessionsPerSource
}

// sourceKey is what the per-source bounds count by: an IPv4 address, or
// the /64 of an IPv6 one.
func sourceKey(a netip.Addr) netip.Prefix {
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.WithZone("").Prefix(64)
	return p
}

// Stats counts what the directory did with the packets it was given.
type Stats struct {
	Announcements uint64 `json:"announcements"`
	Deletions     uint64 `json:"deletions"`
	// Dropped counts packets not used: malformed, encrypted, not SDP,
	// a deletion that matches nothing or comes from elsewhere, or over a
	// bound.
	Dropped uint64 `json:"dropped"`
	// Malformed counts the dropped packets that did not decode or whose
	// SDP did not parse.
	Malformed uint64 `json:"malformed"`
	// Own counts this host's own announcements and deletions, heard back
	// and left out.
	Own uint64 `json:"own"`
	// OverLimit counts the dropped announcements that would have passed a
	// bound of DirectoryConfig, and OverLimitBy counts them by the bound
	// (Limit.String()), the first one each passed.
	OverLimit   uint64            `json:"over_limit"`
	OverLimitBy map[string]uint64 `json:"over_limit_by,omitempty"`
}

// NewDirectory returns an empty directory.
func NewDirectory(cfg DirectoryConfig) *Directory {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.MaxSessions, DefaultMaxSessions)
	def(&cfg.MaxSessionsPerSource, DefaultMaxSessionsPerSource)
	def(&cfg.MaxGroups, DefaultMaxGroups)
	def(&cfg.MaxGroupsPerSource, DefaultMaxGroupsPerSource)
	def(&cfg.MaxBytes, DefaultMaxBytes)
	def(&cfg.MaxBytesPerSource, DefaultMaxBytesPerSource)
	d := &Directory{cfg: cfg, sessions: map[string]*Heard{}, sources: map[netip.Prefix]*source{}}
	d.SetOwn(cfg.Own)
	return d
}

// ErrIgnored wraps the reason a well-formed packet was not used.
var ErrIgnored = errors.New("sap: packet ignored")

// Handle takes a packet heard from src on SAP group dst. It returns why
// the packet was dropped, if it was: a *LimitError when holding the
// session would pass a bound, another error wrapping ErrIgnored, or
// Decode's or sdp.Parse's error. A dropped packet changes nothing but the
// counters. Handle keeps no reference to b.
func (d *Directory) Handle(src, dst netip.Addr, b []byte) error {
	p, err := Decode(b)
	if err != nil {
		d.count(true)
		return err
	}
	if own := d.own.Load(); own != nil && (*own)(p.Origin, p.Hash) {
		d.mu.Lock()
		d.stats.Own++
		d.mu.Unlock()
		return fmt.Errorf("%w: this host's own announcement", ErrIgnored)
	}
	if p.PayloadType != "" && p.PayloadType != SDPType {
		d.count(false)
		return fmt.Errorf("%w: payload type %q", ErrIgnored, p.PayloadType)
	}
	src = src.Unmap()
	if p.Delete {
		return d.delete(src, p)
	}
	desc, err := sdp.Liberal(d.cfg.DefaultTTL).Parse(p.Payload)
	if err != nil {
		d.count(true)
		return err
	}
	// What the session would hold, counted from the ends of each c= range
	// (at most sdp.MaxAddresses each) before anything is expanded.
	id := sessionID(desc, src)
	need := tally{sessions: 1, bytes: heldBytes(id, desc.Name, p.Payload)}
	for _, m := range desc.Media {
		if c := desc.EffectiveConnection(m); c != nil && c.IsMulticast() && m.Port != 0 {
			need.groups += c.Len()
		}
	}
	var end time.Time
	for _, t := range desc.Times {
		if t.Stop != 0 {
			e := sdp.FromNTP(t.Stop)
			if len(t.Repeats) > 0 {
				e = time.Time{} // a repeating session ends when its last t= does; keep it
			}
			if e.After(end) {
				end = e
			}
		}
	}
	now := d.cfg.Now()

	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.sessions[id]
	if le := d.admit(id, src, old, need); le != nil {
		d.stats.Dropped++
		d.stats.OverLimit++
		if d.stats.OverLimitBy == nil {
			d.stats.OverLimitBy = map[string]uint64{}
		}
		d.stats.OverLimitBy[le.Limit.String()]++
		return le
	}
	// desc.Name may share memory with the whole parsed text; keep only the name.
	h := &Heard{ID: id, Name: strings.Clone(desc.Name), Source: src, Origin: p.Origin, Hash: p.Hash,
		First: now, Last: now, End: end, SAPGroup: dst.Unmap()}
	for _, w := range desc.Warnings {
		h.Warnings = append(h.Warnings, w.String())
	}
	// The payload may be a slice of the caller's read buffer, which the
	// next packet overwrites: keep a copy, or the copy already held.
	if old != nil && bytes.Equal(old.SDP, p.Payload) {
		h.SDP = old.SDP
	} else {
		h.SDP = bytes.Clone(p.Payload)
	}
	if need.groups > 0 {
		h.Groups = make([]netip.Addr, 0, need.groups)
		h.Ports = make([]uint16, 0, need.groups)
	}
	for _, m := range desc.Media {
		if c := desc.EffectiveConnection(m); c != nil && c.IsMulticast() && m.Port != 0 {
			for g := range c.All() {
				h.Groups = append(h.Groups, g)
				h.Ports = append(h.Ports, m.Port)
			}
		}
	}
	if old != nil {
		h.First = old.First
		// The interval is a moving average of the gaps between
		// announcements.
		gap := now.Sub(old.Last)
		if old.Interval == 0 {
			h.Interval = gap
		} else {
			h.Interval = (3*old.Interval + gap) / 4
		}
		d.remove(id, old)
	}
	d.add(id, h)
	d.stats.Announcements++
	return nil
}

// admit returns the first bound that holding need for session id from
// src, in place of old if it is held, would pass, or nil. A session
// already held that asks no more than it has always passes. Called with
// d.mu held.
func (d *Directory) admit(id string, src netip.Addr, old *Heard, need tally) *LimitError {
	key := sourceKey(src)
	var mine tally
	if s := d.sources[key]; s != nil {
		mine = s.tally
	}
	all := d.total
	if old != nil {
		all = all.minus(tallyOf(old))
		if sourceKey(old.Source) == key {
			mine = mine.minus(tallyOf(old))
		}
	}
	for _, c := range []struct {
		limit            Limit
		held, asked, max int
	}{
		{LimitSessionsPerSource, mine.sessions, need.sessions, d.cfg.MaxSessionsPerSource},
		{LimitGroupsPerSource, mine.groups, need.groups, d.cfg.MaxGroupsPerSource},
		{LimitBytesPerSource, mine.bytes, need.bytes, d.cfg.MaxBytesPerSource},
		{LimitSessions, all.sessions, need.sessions, d.cfg.MaxSessions},
		{LimitGroups, all.groups, need.groups, d.cfg.MaxGroups},
		{LimitBytes, all.bytes, need.bytes, d.cfg.MaxBytes},
	} {
		if c.held+c.asked > c.max {
			return &LimitError{Limit: c.limit, Session: id, Source: src, Held: c.held, Asked: c.asked, Max: c.max}
		}
	}
	return nil
}

// add holds h and counts it. Called with d.mu held.
func (d *Directory) add(id string, h *Heard) {
	key := sourceKey(h.Source)
	s := d.sources[key]
	if s == nil {
		s = &source{}
		d.sources[key] = s
	}
	t := tallyOf(h)
	s.tally = s.tally.plus(t)
	s.ids = append(s.ids, id)
	d.total = d.total.plus(t)
	d.sessions[id] = h
	delete(d.gone, id) // heard again: not gone
}

// remove forgets h, held as id. Called with d.mu held.
func (d *Directory) remove(id string, h *Heard) {
	key := sourceKey(h.Source)
	t := tallyOf(h)
	if s := d.sources[key]; s != nil {
		s.tally = s.tally.minus(t)
		if i := slices.Index(s.ids, id); i >= 0 {
			s.ids[i] = s.ids[len(s.ids)-1]
			s.ids = s.ids[:len(s.ids)-1]
		}
		if len(s.ids) == 0 {
			delete(d.sources, key)
		}
	}
	d.total = d.total.minus(t)
	delete(d.sessions, id)
}

func (d *Directory) count(malformed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats.Dropped++
	if malformed {
		d.stats.Malformed++
	}
}

// delete honours a deletion only from the source that announced the
// session, with the hash of its latest announcement: anyone else could
// otherwise take sessions off every directory (VLC ignores deletions for
// that reason). It looks only among the sessions of the packet's source,
// so a flood of deletions costs no walk of the whole directory.
func (d *Directory) delete(src netip.Addr, p *Packet) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.sources[sourceKey(src)]; s != nil {
		for _, id := range s.ids {
			if h := d.sessions[id]; h.Hash == p.Hash && h.Origin == p.Origin && h.Source == src {
				d.remove(id, h)
				d.markGone(id, "deleted", d.cfg.Now())
				d.stats.Deletions++
				return nil
			}
		}
	}
	d.stats.Dropped++
	return fmt.Errorf("%w: deletion (hash %d, origin %v) matches no session announced from %v", ErrIgnored, p.Hash, p.Origin, src)
}

// sessionID is the o= line without its version, and the source it is
// heard from: RFC 8866 §5.2 makes the username, session ID, network and
// address type and address name one session, but tools break it (ffmpeg
// writes o=- 0 0 for every session it sends), and a session another host
// announces under the same o= is not this one's to replace.
func sessionID(s *sdp.Session, src netip.Addr) string {
	o := s.Origin
	addr := o.Host
	if o.Addr.IsValid() {
		addr = o.Addr.String()
	}
	return strings.Join([]string{o.Username, fmt.Sprint(o.SessionID), addr, src.String()}, " ")
}

// Expire drops the sessions not heard for max(10 intervals, 1 h) and those
// whose end time has passed (RFC 2974 §3.2). It returns how many went.
func (d *Directory) Expire() int {
	now := d.cfg.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for k, g := range d.gone {
		if now.Sub(g.at) > goneFor {
			delete(d.gone, k)
		}
	}
	for id, h := range d.sessions {
		if now.Sub(h.Last) > Timeout(h.Interval) || (!h.End.IsZero() && now.After(h.End)) {
			d.remove(id, h)
			d.markGone(id, "timeout", now)
			n++
		}
	}
	return n
}

// List returns the heard sessions by name.
func (d *Directory) List() []Heard {
	d.mu.Lock()
	out := make([]Heard, 0, len(d.sessions))
	for _, h := range d.sessions {
		c := *h
		c.Groups, c.Ports = slices.Clone(h.Groups), slices.Clone(h.Ports)
		out = append(out, c)
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b Heard) int {
		if a.Name != b.Name {
			return strings.Compare(a.Name, b.Name)
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Stats returns the counters.
func (d *Directory) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.stats
	st.OverLimitBy = maps.Clone(d.stats.OverLimitBy)
	return st
}

// SetOwn sets DirectoryConfig.Own.
func (d *Directory) SetOwn(f func(origin netip.Addr, hash uint16) bool) {
	if f == nil {
		d.own.Store(nil)
		return
	}
	d.own.Store(&f)
}

// Load reports the announcements heard on a SAP group: how many sessions
// and their average size in bytes, for the announcement interval
// (RFC 2974 §3.1).
func (d *Directory) Load(sapGroup netip.Addr) (ads, avgSize int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	total := 0
	for _, h := range d.sessions {
		if h.SAPGroup == sapGroup {
			ads++
			total += len(h.SDP) + 24 // the SAP header and payload type, about
		}
	}
	if ads > 0 {
		avgSize = total / ads
	}
	return ads, avgSize
}

// GroupsInUse implements multicast.InUseSource. It returns at most
// MaxGroups groups.
func (d *Directory) GroupsInUse(p netip.Prefix) []netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []netip.Addr
	for _, h := range d.sessions {
		for _, g := range h.Groups {
			if p.Contains(g) {
				out = append(out, g)
			}
		}
	}
	return out
}
