package sap

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"mcc/multicast"
	"mcc/sdp"
)

// Heard is a session the directory heard announced.
type Heard struct {
	// ID identifies the session across changes: the o= line without its
	// version ("username sess-id addrtype address").
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
	// SDP is the latest description, as announced.
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
}

// DirectoryConfig configures a Directory.
type DirectoryConfig struct {
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// MaxSessions bounds the directory; announcements of new sessions
	// beyond it are dropped and counted. Zero means 100,000.
	MaxSessions int
}

// Directory keeps the sessions heard over SAP. It is safe for concurrent
// use, and is a multicast.InUseSource: the allocator never hands out a
// group it holds.
type Directory struct {
	cfg DirectoryConfig

	mu       sync.Mutex // guards the fields below
	sessions map[string]*Heard
	stats    Stats
}

var _ multicast.InUseSource = (*Directory)(nil)

// Stats counts what the directory did with the packets it was given.
type Stats struct {
	Announcements uint64 `json:"announcements"`
	Deletions     uint64 `json:"deletions"`
	// Dropped counts packets not used: malformed, encrypted, not SDP,
	// a deletion that matches nothing or comes from elsewhere, or over
	// MaxSessions.
	Dropped uint64 `json:"dropped"`
	// Malformed counts the dropped packets that did not decode or whose
	// SDP did not parse.
	Malformed uint64 `json:"malformed"`
}

// NewDirectory returns an empty directory.
func NewDirectory(cfg DirectoryConfig) *Directory {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = 100000
	}
	return &Directory{cfg: cfg, sessions: map[string]*Heard{}}
}

// ErrIgnored wraps the reason a well-formed packet was not used.
var ErrIgnored = errors.New("sap: packet ignored")

// Handle takes a packet heard from src on SAP group dst. It returns why
// the packet was dropped, if it was; a dropped packet changes nothing but
// the counters.
func (d *Directory) Handle(src, dst netip.Addr, b []byte) error {
	p, err := Decode(b)
	if err != nil {
		d.count(true)
		return err
	}
	if p.PayloadType != "" && p.PayloadType != SDPType {
		d.count(false)
		return fmt.Errorf("%w: payload type %q", ErrIgnored, p.PayloadType)
	}
	if p.Delete {
		return d.delete(src.Unmap(), p)
	}
	desc, err := sdp.Parse(p.Payload)
	if err != nil {
		d.count(true)
		return err
	}
	now := d.cfg.Now()
	h := &Heard{ID: sessionID(desc), Name: desc.Name, Source: src.Unmap(), Origin: p.Origin, Hash: p.Hash,
		SDP: p.Payload, First: now, Last: now, SAPGroup: dst.Unmap()}
	for _, m := range desc.Media {
		if c := desc.EffectiveConnection(m); c != nil && c.IsMulticast() && m.Port != 0 {
			for g := range c.All() {
				h.Groups = append(h.Groups, g)
				h.Ports = append(h.Ports, m.Port)
			}
		}
	}
	for _, t := range desc.Times {
		if t.Stop != 0 {
			end := sdp.FromNTP(t.Stop)
			if len(t.Repeats) > 0 {
				end = time.Time{} // a repeating session ends when its last t= does; keep it
			}
			if end.After(h.End) {
				h.End = end
			}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.sessions[h.ID]
	if old == nil && len(d.sessions) >= d.cfg.MaxSessions {
		d.stats.Dropped++
		return fmt.Errorf("%w: directory full (%d sessions)", ErrIgnored, d.cfg.MaxSessions)
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
	}
	d.sessions[h.ID] = h
	d.stats.Announcements++
	return nil
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
// that reason).
func (d *Directory) delete(src netip.Addr, p *Packet) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, h := range d.sessions {
		if h.Hash == p.Hash && h.Origin == p.Origin {
			if h.Source != src {
				d.stats.Dropped++
				return fmt.Errorf("%w: deletion of %q from %v, announced by %v", ErrIgnored, h.Name, src, h.Source)
			}
			delete(d.sessions, id)
			d.stats.Deletions++
			return nil
		}
	}
	d.stats.Dropped++
	return fmt.Errorf("%w: deletion matches no session", ErrIgnored)
}

// sessionID is the o= line without its version (RFC 8866 §5.2: the
// username, session ID, network and address type and address identify a
// session).
func sessionID(s *sdp.Session) string {
	o := s.Origin
	addr := o.Host
	if o.Addr.IsValid() {
		addr = o.Addr.String()
	}
	return strings.Join([]string{o.Username, fmt.Sprint(o.SessionID), addr}, " ")
}

// Expire drops the sessions not heard for max(10 intervals, 1 h) and those
// whose end time has passed (RFC 2974 §3.2). It returns how many went.
func (d *Directory) Expire() int {
	now := d.cfg.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for id, h := range d.sessions {
		if now.Sub(h.Last) > Timeout(h.Interval) || (!h.End.IsZero() && now.After(h.End)) {
			delete(d.sessions, id)
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
	return d.stats
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

// GroupsInUse implements multicast.InUseSource.
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
