package sdp

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"mcc/multicast"
)

// Allocator is what the Manager needs of a *multicast.Allocator.
type Allocator interface {
	Allocate(multicast.Request) (multicast.Lease, error)
	Claim(req multicast.Request, g netip.Addr, port uint16) (multicast.Lease, error)
	Release(netip.Addr) error
	Renew(netip.Addr, time.Time) (multicast.Lease, error)
	// ReleaseOwned and RenewOwned touch a lease only while owner holds
	// it: one that ended and went to another session is not theirs.
	ReleaseOwned(g netip.Addr, owner string) error
	RenewOwned(g netip.Addr, owner string, end time.Time) (multicast.Lease, error)
	Pool(name string) (multicast.Pool, bool)
	Leases() []multicast.Lease
}

var _ Allocator = (*multicast.Allocator)(nil)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// Allocator hands out groups and ports. Required.
	Allocator Allocator
	// Origin is the unicast address written in o= lines. The zero value
	// writes the host name Host, or "localhost" when that is empty too.
	Origin netip.Addr
	Host   string
	// Username is the o= user name. Empty means "-".
	Username string
	// Tool is the a=tool value. Empty means "mcc".
	Tool string
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// MediaSpec describes a stream to create.
type MediaSpec struct {
	// Kind is audio, video, text or application.
	Kind string
	// Formats are the RTP payload formats. Nil means the kind's default:
	// PCMU/8000 for audio, H264/90000 (packetization-mode=1) for video,
	// T140/1000 for text.
	Formats []RTPMap
	// Direction is the stream's direction. Empty means recvonly for a
	// broadcast session and sendrecv otherwise.
	Direction Direction
	// Bandwidth is written as b=AS, in kbit/s; 0 writes none.
	Bandwidth uint64
}

// SessionSpec describes a session to create.
type SessionSpec struct {
	Name, Info string
	// Pool names the allocator pool the groups come from.
	Pool string
	// Type is the a=type value. Empty means broadcast.
	Type string
	// Media are the streams, one group each.
	Media []MediaSpec
	// Start and Stop bound the session (t=); zero means unbounded. The
	// leases end at Stop, or last the allocator's default when it is zero.
	Start, Stop time.Time
	// Schedule, when not zero, is when the session is active instead,
	// written as its t=, r= and z= lines (RFC 8866 §5.9-§5.11); Start
	// and Stop must then be zero, and the leases end at Schedule.End.
	Schedule Schedule
	// Sources are the senders of an SSM session, written as
	// a=source-filter: incl (RFC 4570). Required for SSM pools.
	Sources []netip.Addr
	// Announce names the SAP announce profiles the session goes out
	// with; nil means the daemon's. The Manager keeps the names; their
	// meaning is the announcer's.
	Announce []string
	// Idle creates the session idle (see Manager.Idle): its groups are
	// chosen, then given back until Wake, as for a scheduled session
	// whose first interval is still far off.
	Idle bool
}

// SessionInfo summarises a session the Manager holds.
type SessionInfo struct {
	ID       uint64 `json:"id"`
	Name     string `json:"name"`
	Version  uint64 `json:"version"`
	Streams  int    `json:"streams"` // with a non-zero port
	External bool   `json:"external"`
}

// Manager owns session descriptions and the leases of their groups. It is
// safe for concurrent use. Descriptions it returns are copies.
type Manager struct {
	cfg ManagerConfig

	wmu      sync.Mutex // guards watchers
	watchers map[*int]func(id uint64)

	mu       sync.Mutex // guards the fields below
	sessions map[uint64]*managed
	creating map[uint64]bool // IDs of sessions whose groups are being leased
	lastID   uint64          // the highest ID Create gave out or Restore brought back

	// extByID holds the groups of imported sessions, which mcc does not
	// lease but must not hand out (GroupsInUse), under emu: taken after
	// mu, or alone (the allocator asks under mu).
	emu     sync.Mutex
	extByID map[uint64][]netip.Addr
}

// GroupsInUse implements multicast.InUseSource with the groups of the
// imported sessions the Manager holds: a session heard over SAP, or read
// from a file, whose conference goes on (kept after its announcer
// went, or before it is heard again after a restart) keeps its groups
// from the allocator.
func (m *Manager) GroupsInUse(p netip.Prefix) []netip.Addr {
	m.emu.Lock()
	defer m.emu.Unlock()
	var out []netip.Addr
	for _, gs := range m.extByID {
		for _, g := range gs {
			if p.Contains(g) {
				out = append(out, g)
			}
		}
	}
	return out
}

// noteExternal updates the groups of imported session id after a change
// of it: those of its live streams (a stream at port 0 holds none).
// Called without mu.
func (m *Manager) noteExternal(id uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var groups []netip.Addr
	if e := m.sessions[id]; e != nil && e.external {
		for _, md := range e.desc.Media {
			c := e.desc.EffectiveConnection(md)
			if md.Port == 0 || c == nil || !c.IsMulticast() {
				continue
			}
			g := c.Addr
			for i := 0; i < min(c.Len(), MaxAddresses) && g.IsValid(); i++ {
				groups = append(groups, g)
				g = g.Next()
			}
		}
	}
	m.emu.Lock() // under mu: a later change's update cannot pass this one
	defer m.emu.Unlock()
	if len(groups) == 0 {
		delete(m.extByID, id)
		return
	}
	if m.extByID == nil {
		m.extByID = map[uint64][]netip.Addr{}
	}
	m.extByID[id] = groups
}

type managed struct {
	desc     *Session
	external bool
	pool     string
	sources  []netip.Addr
	announce []string // SAP announce profiles; nil: the daemon's
	stop     time.Time
	leases   map[netip.Addr]multicast.Lease
	retiring []netip.Addr // groups of removed streams, released by Settle once no participant uses them
	// idle marks a session that holds no lease between the intervals of
	// its schedule (idle.go); until, when not zero, is the end of the
	// leases of the interval it is awake for: RenewLeases keeps to it.
	idle  bool
	until time.Time
}

// Watch has f called with a session's ID after each change to it: its
// creation, import or restore, a stream added, removed or redirected,
// its deletion. f runs in the goroutine that made the change, with no
// lock of the manager's held, so it must be quick (a channel send). The
// returned stop ends the watch.
func (m *Manager) Watch(f func(id uint64)) (stop func()) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if m.watchers == nil {
		m.watchers = map[*int]func(uint64){}
	}
	k := new(int)
	m.watchers[k] = f
	return func() {
		m.wmu.Lock()
		defer m.wmu.Unlock()
		delete(m.watchers, k)
	}
}

func (m *Manager) notify(id uint64) {
	m.noteExternal(id)
	m.wmu.Lock()
	fs := make([]func(uint64), 0, len(m.watchers))
	for _, f := range m.watchers {
		fs = append(fs, f)
	}
	m.wmu.Unlock()
	for _, f := range fs {
		f(id)
	}
}

// NewManager returns a Manager.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Allocator == nil {
		return nil, errors.New("sdp: the manager needs an allocator")
	}
	if cfg.Username == "" {
		cfg.Username = "-"
	}
	if cfg.Tool == "" {
		cfg.Tool = "mcc"
	}
	if cfg.Host == "" {
		cfg.Host = "localhost"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{cfg: cfg, sessions: make(map[uint64]*managed), creating: make(map[uint64]bool)}, nil
}

// DefaultFormats returns the formats a stream of kind gets when its spec
// names none.
func DefaultFormats(kind string) ([]RTPMap, error) {
	switch kind {
	case "audio":
		return []RTPMap{{Payload: 0, Encoding: "PCMU", ClockRate: 8000}}, nil
	case "video":
		return []RTPMap{{Payload: 96, Encoding: "H264", ClockRate: 90000, Params: "packetization-mode=1"}}, nil
	case "text":
		return []RTPMap{{Payload: 98, Encoding: "t140", ClockRate: 1000}}, nil
	}
	return nil, fmt.Errorf("sdp: media %q has no default format: name its formats (audio, video and text have defaults)", kind)
}

// Create leases a group for each stream of spec and returns the new
// session's description (version 1). On error nothing stays leased. An
// error that matches ErrInvalid (a *TextError among them) means spec is
// wrong: text that cannot become an SDP line, an unknown pool, a
// description that would not read back after a restart.
func (m *Manager) Create(spec SessionSpec) (*Session, error) {
	s, err := m.create(spec)
	if err == nil {
		m.notify(s.Origin.SessionID)
	}
	return s, err
}

// create is the change itself.
func (m *Manager) create(spec SessionSpec) (*Session, error) {
	if err := checkText("pool name", spec.Pool, MaxText); err != nil {
		return nil, err
	}
	pool, ok := m.cfg.Allocator.Pool(spec.Pool)
	if !ok {
		return nil, invalidf("sdp: %w %q", multicast.ErrUnknownPool, spec.Pool)
	}
	if pool.SourceSpecific && len(spec.Sources) == 0 {
		return nil, invalidf("sdp: pool %s is source-specific: name the sender(s) of the session (RFC 4607)", pool.Name)
	}
	for _, src := range spec.Sources {
		if !src.IsValid() || src.IsMulticast() || multicast.FamilyOf(src) != pool.Family() {
			return nil, invalidf("sdp: source %v is not a unicast %v address", src, pool.Family())
		}
	}
	if !spec.Schedule.IsZero() {
		if !spec.Start.IsZero() || !spec.Stop.IsZero() {
			return nil, invalidf("sdp: give a session Start and Stop or a Schedule, not both")
		}
		if err := spec.Schedule.Validate(); err != nil {
			return nil, err
		}
		spec.Stop = spec.Schedule.End()
	}
	if !spec.Stop.IsZero() && !spec.Stop.After(m.cfg.Now()) {
		return nil, invalidf("sdp: session would stop at %v, which has passed", spec.Stop.Format(time.RFC3339))
	}
	if spec.Type == "" {
		spec.Type = "broadcast"
	}
	if spec.Name == " " {
		spec.Name = "" // "s= " is the stand-in for no name (RFC 8866 §5.3): both are written so
	}
	now := m.cfg.Now()
	o := Origin{Username: m.cfg.Username, Version: 1, Addr: m.cfg.Origin, Host: m.cfg.Host}
	if !o.Addr.IsValid() && pool.Family() == multicast.IPv6 {
		o.AddrType = "IP6"
	}
	desc := &Session{
		Origin: o, Name: spec.Name, Info: spec.Info, Type: spec.Type, Tool: m.cfg.Tool,
		Times: []Timing{{Start: NTPTime(spec.Start), Stop: NTPTime(spec.Stop)}},
	}
	if !spec.Schedule.IsZero() {
		if err := desc.SetSchedule(spec.Schedule); err != nil {
			return nil, err
		}
	}
	// Every text that becomes an SDP line is checked before a group is
	// leased (RFC 8866 §9); the streams' in newMedia.
	if err := checkSession(desc, MaxText); err != nil {
		return nil, err
	}
	for _, a := range spec.Announce {
		if err := checkText("announce profile", a, MaxText); err != nil {
			return nil, err
		}
	}
	e := &managed{desc: desc, pool: pool.Name, sources: slices.Clone(spec.Sources), announce: slices.Clone(spec.Announce),
		stop: spec.Stop, leases: map[netip.Addr]multicast.Lease{}}

	m.mu.Lock()
	// RFC 8866 §5.2: the NTP time in seconds, but never an ID this Manager
	// gave out before, even to a session since deleted: the o= identity
	// names one session (SAP listeners take a same ID with version 1 for
	// an older version of it), and so does a lease's owner.
	id := max(NTPTime(now), m.lastID+1)
	for m.sessions[id] != nil || m.creating[id] {
		id++
	}
	m.lastID = id
	desc.Origin.SessionID = id
	m.creating[id] = true
	m.mu.Unlock()

	var err error
	for _, ms := range spec.Media {
		var md *Media
		if md, err = m.newMedia(e, ms); err != nil {
			err = errors.Join(err, m.releaseAll(e))
			break
		}
		desc.Media = append(desc.Media, md)
	}
	if err == nil {
		// What Save will keep must be what Restore brings back.
		if err = restorable(desc); err != nil {
			err = errors.Join(err, m.releaseAll(e))
		}
	}
	if err == nil && spec.Idle {
		err = m.releaseAll(e)
		e.idle = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.creating, id)
	if err != nil {
		return nil, err
	}
	m.sessions[id] = e
	return desc.Clone(), nil
}

// newMedia leases a group for one stream and builds its description.
func (m *Manager) newMedia(e *managed, ms MediaSpec) (*Media, error) {
	// media = token (RFC 8866 §5.14, §9)
	if err := checkToken("media kind (m=)", ms.Kind, MaxText); err != nil {
		return nil, err
	}
	formats := ms.Formats
	if formats == nil {
		var err error
		if formats, err = DefaultFormats(ms.Kind); err != nil {
			return nil, &invalidError{err}
		}
	}
	for _, f := range formats {
		if err := checkToken("encoding name (a=rtpmap)", f.Encoding, MaxText); err != nil {
			return nil, err
		}
		if err := checkText("format parameters (a=fmtp)", f.Params, MaxText); err != nil {
			return nil, err
		}
	}
	if ms.Direction != "" && !isDirection(string(ms.Direction)) {
		return nil, invalidf("sdp: direction %q: want sendrecv, sendonly, recvonly or inactive", ms.Direction)
	}
	l, err := m.cfg.Allocator.Allocate(multicast.Request{
		Pool: e.pool, Owner: SessionOwner(e.desc.Origin.SessionID), End: e.stop,
	})
	if err != nil {
		return nil, fmt.Errorf("sdp: lease a group for %s: %w", ms.Kind, err)
	}
	e.leases[l.Group] = l
	md := &Media{Kind: ms.Kind, Port: l.Port, Proto: "RTP/AVP", RTPMaps: formats, Direction: ms.Direction,
		Connection: &Connection{Addr: l.Group}}
	if l.Group.Is4() {
		md.Connection.TTL = l.TTL // IPv6 has no TTL in c= (RFC 8866 §5.7)
	}
	for _, f := range formats {
		md.Formats = append(md.Formats, fmt.Sprint(f.Payload))
	}
	if md.Direction == "" {
		md.Direction = SendRecv
		if e.desc.Type == "broadcast" {
			md.Direction = RecvOnly
		}
	}
	if ms.Bandwidth > 0 {
		md.Bandwidths = []Bandwidth{{Type: "AS", Value: ms.Bandwidth}}
	}
	if len(e.sources) > 0 {
		at := "IP4"
		if l.Group.Is6() {
			at = "IP6"
		}
		md.SourceFilters = []SourceFilter{{Mode: Include, AddrType: at, Dest: l.Group, Sources: slices.Clone(e.sources)}}
	}
	return md, nil
}

func (m *Manager) releaseAll(e *managed) error {
	var errs []error
	for g := range e.leases {
		if err := m.cfg.Allocator.ReleaseOwned(g, e.owner()); err != nil && !errors.Is(err, multicast.ErrNotLeased) {
			errs = append(errs, err)
		}
	}
	e.leases, e.retiring = map[netip.Addr]multicast.Lease{}, nil
	return errors.Join(errs...)
}

// Import takes a description mcc does not own, such as one read from a
// file or heard over SAP. Participants can be invited into it, but its
// media cannot be changed. Its ID is its o= session ID. It returns
// ErrSessionExists when the Manager holds that ID already, and an error
// matching ErrInvalid when desc breaks a rule, holds text that cannot be
// an SDP line, or would not read back after a restart.
func (m *Manager) Import(desc *Session) (*Session, error) {
	_, s, err := m.ImportSession(desc)
	return s, err
}

// ImportSession is Import, and returns the ID the Manager holds the
// session by. That is its o= session ID, unless the Manager holds that ID
// already for another session: tools that write the same o= for every
// session they send (ffmpeg writes o=- 0 0 IN IP4 <its address>) break
// RFC 8866 §5.2's rule that it names one session, so a description whose
// o= (but its version) and groups are those of one held is the same
// session (ErrSessionExists), and any other gets an ID of the Manager's
// own, from 2^52 up, far from the NTP times of mcc's own sessions. A copy
// of one of mcc's own sessions is ErrSessionExists too. Its
// description, and so its offers, keep the o= as written.
func (m *Manager) ImportSession(desc *Session) (uint64, *Session, error) {
	id, s, err := m.importSession(desc)
	if err == nil {
		m.notify(id)
	}
	return id, s, err
}

// firstImportID is where the IDs of imported sessions whose o= session ID
// is taken start: far above the NTP times of mcc's own, and below 2^53,
// so that JSON readers that hold numbers as doubles (jq) tell them apart.
const firstImportID = 1 << 52

// importSession is the change itself.
func (m *Manager) importSession(desc *Session) (uint64, *Session, error) {
	if len(desc.Media) == 0 {
		return 0, nil, invalidf("sdp: the description has no media")
	}
	for _, p := range desc.Check() {
		if !p.Warning {
			return 0, nil, invalidf("sdp: import: %w", p)
		}
	}
	// A description from Parse holds no line break, but one built in code
	// may; and every field it has is written back into offers.
	if err := checkSession(desc, MaxSize); err != nil {
		return 0, nil, err
	}
	if err := restorable(desc); err != nil {
		return 0, nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	id := desc.Origin.SessionID
	// A session mcc owns, or is creating, under that ID: a copy of its
	// description (mcc session sdp, or mcc's own SAP announcement) is
	// that session, not another.
	// Only a copy's whole o= (RFC 8866 §5.2: username, ID, address) is
	// mcc's: another tool's session may have the same NTP-time ID (PipeWire
	// and PulseAudio take theirs from the clock as mcc does).
	if e := m.sessions[id]; e != nil && !e.external && sameOrigin(e.desc.Origin, desc.Origin) ||
		m.creating[id] && sameOrigin(Origin{Username: m.cfg.Username, SessionID: id, Addr: m.cfg.Origin, Host: m.cfg.Host}, desc.Origin) {
		return 0, nil, fmt.Errorf("%w: %d is one of mcc's own sessions", ErrSessionExists, id)
	}
	for _, e := range m.sessions {
		if e.external && sameSession(e.desc, desc) {
			return 0, nil, fmt.Errorf("%w: %d", ErrSessionExists, desc.Origin.SessionID)
		}
	}
	if m.sessions[id] != nil || m.creating[id] {
		id = firstImportID
		for m.sessions[id] != nil || m.creating[id] {
			id++
		}
	}
	m.sessions[id] = &managed{desc: desc.Clone(), external: true}
	return id, desc.Clone(), nil
}

// ReplaceExternal gives imported session id a new description of the
// same session (its o= but the version, RFC 8866 §5.2), as its announcer
// changed it. Streams the new one no longer has are kept at port 0 (RFC
// 3264 §8.2: an m= line is never removed from an offer), and the version
// goes up by one at least, whatever the announcer wrote (ffmpeg writes 0
// every time): it is what a participant's acknowledgment is counted by.
func (m *Manager) ReplaceExternal(id uint64, desc *Session) (*Session, error) {
	if len(desc.Media) == 0 {
		return nil, invalidf("sdp: the description has no media")
	}
	for _, p := range desc.Check() {
		if !p.Warning {
			return nil, invalidf("sdp: replace: %w", p)
		}
	}
	if err := checkSession(desc, MaxSize); err != nil {
		return nil, err
	}
	if err := restorable(desc); err != nil {
		return nil, err
	}
	m.mu.Lock()
	e, err := m.get(id)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	if !e.external {
		m.mu.Unlock()
		return nil, invalidf("sdp: session %d is mcc's own: its media change by AddStream and RemoveStream", id)
	}
	if !sameOrigin(e.desc.Origin, desc.Origin) {
		m.mu.Unlock()
		return nil, invalidf("sdp: the new description is another session (o= %s %d), not %s %d",
			desc.Origin.Username, desc.Origin.SessionID, e.desc.Origin.Username, e.desc.Origin.SessionID)
	}
	out := desc.Clone()
	out.Media = matchStreams(e.desc, desc)
	out.Origin.Version = e.desc.Origin.Version
	if sameText(e.desc, out) {
		m.mu.Unlock()
		return nil, ErrUnchanged
	}
	if e.desc.Origin.Version == math.MaxUint64 {
		m.mu.Unlock()
		return nil, invalidf("sdp: session %d is at the last o= version there is (RFC 3264 §8 wants the next)", id)
	}
	// mcc's own count: what the announcer writes may stand still (ffmpeg
	// writes 0 every time) or jump; participants count changes by it.
	out.Origin.Version = e.desc.Origin.Version + 1
	// What Save keeps must be what Restore brings back, streams kept at
	// port 0 included.
	if err := checkSession(out, MaxSize); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	if err := restorable(out); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	e.desc = out
	m.mu.Unlock()
	m.notify(id)
	return out.Clone(), nil
}

// ErrUnchanged is a replacement that says what the session says already
// (but its version).
var ErrUnchanged = errors.New("sdp: the description is unchanged")

// sameText reports whether a and b write the same description.
func sameText(a, b *Session) bool {
	x, err1 := a.Marshal()
	y, err2 := b.Marshal()
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// matchStreams is the new description's streams in the old one's slots
// (RFC 3264 §8: an m= line keeps its place, and is never removed): a slot
// takes the new stream with its kind, group and port, or else the new
// stream at its own place when that is of its kind; a slot left has its
// old stream at port 0; new streams that took no slot come after.
func matchStreams(old, nu *Session) []*Media {
	key := func(s *Session, m *Media) string {
		c := s.EffectiveConnection(m)
		cs := ""
		if c != nil {
			cs = c.Addr.String()
		}
		return fmt.Sprintf("%s %s %d", m.Kind, cs, m.Port)
	}
	used := make([]bool, len(nu.Media))
	slot := make([]int, len(old.Media)) // the new stream each old slot takes, or -1
	// First the slots whose stream is there still (kind, group, port) ...
	for i, om := range old.Media {
		slot[i] = -1
		if om.Port == 0 {
			continue
		}
		for k, nm := range nu.Media {
			if !used[k] && nm.Port != 0 && key(nu, nm) == key(old, om) {
				slot[i], used[k] = k, true
				break
			}
		}
	}
	// ... then, for the live slots left, the new stream at their place
	// when it is of their kind (a stream that moved group or port).
	for i, om := range old.Media {
		if slot[i] < 0 && om.Port != 0 && i < len(nu.Media) && !used[i] && nu.Media[i].Kind == om.Kind {
			slot[i], used[i] = i, true
		}
	}
	// New streams take the slots disabled before (RFC 3264 §8.1 lets a
	// port-0 slot be reused, by any kind), then come after.
	var fresh []int
	for k := range nu.Media {
		if !used[k] {
			fresh = append(fresh, k)
		}
	}
	for i, om := range old.Media {
		if slot[i] < 0 && om.Port == 0 && len(fresh) > 0 {
			slot[i], fresh = fresh[0], fresh[1:]
		}
	}
	out := make([]*Media, 0, len(old.Media)+len(fresh))
	for i, om := range old.Media {
		if slot[i] >= 0 {
			out = append(out, nu.Media[slot[i]].Clone()) // under the new session-level c=, if it has one
			continue
		}
		md := om.Clone()
		if md.Connection == nil {
			if c := old.EffectiveConnection(om); c != nil {
				cc := *c
				md.Connection = &cc
			}
		}
		md.Port = 0
		out = append(out, md)
	}
	for _, k := range fresh {
		out = append(out, nu.Media[k].Clone())
	}
	return out
}

// sameOrigin reports whether two o= lines name one session: all but the
// version (RFC 8866 §5.2).
// They are compared as o= writes them: an empty username is "-", and the
// address is the one written (an Addr before a Host).
func sameOrigin(a, b Origin) bool {
	user := func(o Origin) string { return cmp.Or(o.Username, "-") }
	return user(a) == user(b) && a.SessionID == b.SessionID && a.addrType() == b.addrType() && a.address() == b.address()
}

// sameSession reports whether a and b are one session as far as their
// o= lines (but the version) and their streams' groups and ports say.
func sameSession(a, b *Session) bool {
	if !sameOrigin(a.Origin, b.Origin) || len(a.Media) != len(b.Media) {
		return false
	}
	for i, ma := range a.Media {
		mb := b.Media[i]
		ca, cb := a.EffectiveConnection(ma), b.EffectiveConnection(mb)
		if ma.Port != mb.Port || (ca == nil) != (cb == nil) || ca != nil && ca.String() != cb.String() {
			return false
		}
	}
	return true
}

func (m *Manager) get(id uint64) (*managed, error) {
	e := m.sessions[id]
	if e == nil {
		return nil, fmt.Errorf("%w %d", ErrUnknownSession, id)
	}
	return e, nil
}

// Get returns a copy of session id's description.
func (m *Manager) Get(id uint64) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.get(id)
	if err != nil {
		return nil, err
	}
	return e.desc.Clone(), nil
}

// External reports whether session id was imported (heard or read from a
// file) rather than made by mcc; false when there is no such session.
func (m *Manager) External(id uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.get(id)
	return err == nil && e.external
}

// Announce returns the SAP announce profiles session id was created
// with, nil for the daemon's.
func (m *Manager) Announce(id uint64) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.sessions[id]; e != nil {
		return slices.Clone(e.announce)
	}
	return nil
}

// List summarises every session, by ID.
func (m *Manager) List() []SessionInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []SessionInfo
	for id, e := range m.sessions {
		n := 0
		for _, md := range e.desc.Media {
			if md.Port != 0 {
				n++
			}
		}
		out = append(out, SessionInfo{ID: id, Name: e.desc.Name, Version: e.desc.Origin.Version, Streams: n, External: e.external})
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return cmpU64(a.ID, b.ID) })
	return out
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// owned returns session id for a change, or ErrNotModifiable.
func (m *Manager) owned(id uint64) (*managed, error) {
	e, err := m.get(id)
	if err != nil {
		return nil, err
	}
	if e.external {
		return nil, fmt.Errorf("session %d: %w", id, ErrNotModifiable)
	}
	return e, nil
}

// AddStream leases a group for a new stream of session id and adds it
// (RFC 3264 §8.1). It returns the new description and the stream's index.
func (m *Manager) AddStream(id uint64, ms MediaSpec) (*Session, int, error) {
	s, i, err := m.addStream(id, ms)
	if err == nil {
		m.notify(id)
	}
	return s, i, err
}

// addStream is the change itself.
func (m *Manager) addStream(id uint64, ms MediaSpec) (*Session, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.owned(id)
	if err != nil {
		return nil, 0, err
	}
	// The allocator does its store write under this lock: changes to one
	// manager's sessions are serialised, which keeps versions in order.
	md, err := m.newMedia(e, ms)
	if err != nil {
		return nil, 0, err
	}
	// What Save keeps must be what Restore brings back, after this change
	// as after Create: one stream too many (past MaxSize, say) is refused
	// and its group released.
	next := e.desc.Clone()
	// A removed stream's slot is reused only once its group is released:
	// while it is retiring, a participant may still have that stream.
	i := next.AddMediaExcept(md, func(i int) bool {
		c := next.Media[i].Connection
		return c != nil && slices.Contains(e.retiring, c.Addr)
	})
	if err := restorable(next); err != nil {
		g := md.Connection.Addr
		delete(e.leases, g)
		if rerr := m.cfg.Allocator.ReleaseOwned(g, e.owner()); rerr != nil && !errors.Is(rerr, multicast.ErrNotLeased) {
			err = errors.Join(err, rerr)
		}
		return nil, 0, err
	}
	if e.idle {
		// An idle session leases nothing: the new group is chosen, and
		// taken again with the others at Wake.
		g := md.Connection.Addr
		delete(e.leases, g)
		if err := m.cfg.Allocator.ReleaseOwned(g, e.owner()); err != nil && !errors.Is(err, multicast.ErrNotLeased) {
			return nil, 0, err
		}
	}
	e.desc = next
	return e.desc.Clone(), i, nil
}

// RemoveStream sets stream i of session id to port 0 (RFC 3264 §8.2). Its
// group stays leased until Settle, so that it is not handed to another
// session while participants may still be joined to it.
func (m *Manager) RemoveStream(id uint64, i int) (*Session, error) {
	s, err := m.removeStream(id, i)
	if err == nil {
		m.notify(id)
	}
	return s, err
}

// removeStream is the change itself.
func (m *Manager) removeStream(id uint64, i int) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.owned(id)
	if err != nil {
		return nil, err
	}
	var g netip.Addr
	if i >= 0 && i < len(e.desc.Media) && e.desc.Media[i].Connection != nil {
		g = e.desc.Media[i].Connection.Addr
	}
	if err := e.desc.RemoveMedia(i); err != nil {
		return nil, err
	}
	if _, ok := e.leases[g]; ok {
		e.retiring = append(e.retiring, g)
	}
	return e.desc.Clone(), nil
}

// SetDirection changes the direction of stream i of session id.
func (m *Manager) SetDirection(id uint64, i int, d Direction) (*Session, error) {
	s, err := m.setDirection(id, i, d)
	if err == nil {
		m.notify(id)
	}
	return s, err
}

// setDirection is the change itself.
func (m *Manager) setDirection(id uint64, i int, d Direction) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.owned(id)
	if err != nil {
		return nil, err
	}
	if err := e.desc.SetDirection(i, d); err != nil {
		return nil, err
	}
	return e.desc.Clone(), nil
}

// Settle releases the groups of the streams removed from session id that
// inUse does not report as still in use, and returns how many removed
// streams' groups stay leased. A removed stream's group is still in use
// while a participant's acknowledged description, or an offer in flight,
// has it at a port other than 0 (RFC 3264 §8.2: the stream ends for a
// participant only when its answer is in): the conference layer says so.
// A nil inUse releases them all.
func (m *Manager) Settle(id uint64, inUse func(netip.Addr) bool) (retiring int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.get(id)
	if err != nil {
		return 0, err
	}
	var errs []error
	kept := e.retiring[:0]
	for _, g := range e.retiring {
		if inUse != nil && inUse(g) {
			kept = append(kept, g)
			continue
		}
		if err := m.cfg.Allocator.ReleaseOwned(g, e.owner()); err != nil && !errors.Is(err, multicast.ErrNotLeased) {
			errs = append(errs, err)
			kept = append(kept, g)
			continue
		}
		delete(e.leases, g)
	}
	clear(e.retiring[len(kept):])
	e.retiring = kept
	return len(kept), errors.Join(errs...)
}

// Retiring returns the groups of session id's removed streams that are
// still leased, waiting for Settle.
func (m *Manager) Retiring(id uint64) []netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.sessions[id]; e != nil {
		return slices.Clone(e.retiring)
	}
	return nil
}

// Leases returns the leases session id holds.
func (m *Manager) Leases(id uint64) ([]multicast.Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.get(id)
	if err != nil {
		return nil, err
	}
	var ls []multicast.Lease
	for _, l := range e.leases {
		ls = append(ls, l)
	}
	slices.SortFunc(ls, func(a, b multicast.Lease) int { return a.Group.Compare(b.Group) })
	return ls, nil
}

// Delete forgets session id and releases every lease it holds.
func (m *Manager) Delete(id uint64) error {
	err := m.deleteSession(id)
	if !errors.Is(err, ErrUnknownSession) {
		m.notify(id) // gone, even when a release failed
	}
	return err
}

// deleteSession is the change itself.
func (m *Manager) deleteSession(id uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.get(id)
	if err != nil {
		return err
	}
	delete(m.sessions, id)
	return m.releaseAll(e)
}

// Saved is what Restore needs to bring a session back after a restart.
type Saved struct {
	// ID is the ID the Manager held the session by, when it is not its o=
	// session ID (an imported session's whose o= ID was taken).
	ID       uint64       `json:"id,omitempty"`
	SDP      []byte       `json:"sdp"`
	External bool         `json:"external,omitempty"`
	Pool     string       `json:"pool,omitempty"`
	Sources  []netip.Addr `json:"sources,omitempty"`
	Stop     time.Time    `json:"stop,omitzero"`
	Announce []string     `json:"announce,omitempty"`
	// Idle and Until are Manager.Idle's state, and the end of the leases
	// of the interval the session was awake for.
	Idle  bool      `json:"idle,omitempty"`
	Until time.Time `json:"until,omitzero"`
}

// Save returns what Restore needs to bring session id back.
func (m *Manager) Save(id uint64) (Saved, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.get(id)
	if err != nil {
		return Saved{}, err
	}
	b, err := e.desc.Marshal()
	if err != nil {
		return Saved{}, err
	}
	sv := Saved{SDP: b, External: e.external, Pool: e.pool, Sources: slices.Clone(e.sources), Stop: e.stop, Announce: slices.Clone(e.announce),
		Idle: e.idle, Until: e.until}
	if id != e.desc.Origin.SessionID {
		sv.ID = id
	}
	return sv, nil
}

// Restore brings back a session saved before a restart. The leases it
// holds are the allocator's, found by their owner. A lease whose group is
// not an active stream of the saved description (a removed stream's, or
// one taken for a change that was never saved) is held as a removed
// stream's: the next Settle releases it unless a restored participant
// still uses it.
func (m *Manager) Restore(s Saved, leases []multicast.Lease) (*Session, error) {
	return m.RestoreIndexed(s, IndexLeases(leases))
}

// IndexLeases groups leases by owner, for RestoreIndexed.
func IndexLeases(leases []multicast.Lease) map[string][]multicast.Lease {
	out := map[string][]multicast.Lease{}
	for _, l := range leases {
		out[l.Owner] = append(out[l.Owner], l)
	}
	return out
}

// RestoreIndexed is Restore with the leases grouped by owner once for
// every session to restore (IndexLeases): restoring n sessions then costs
// n times one session's leases, not n times all of them.
func (m *Manager) RestoreIndexed(s Saved, byOwner map[string][]multicast.Lease) (*Session, error) {
	d, err := m.restoreIndexed(s, byOwner)
	if err == nil {
		m.notify(s.IDOf(d))
	}
	return d, err
}

// IDOf is the ID the Manager holds the session restored from s by: s.ID,
// or its o= session ID.
func (s Saved) IDOf(d *Session) uint64 { return cmp.Or(s.ID, d.Origin.SessionID) }

// restoreIndexed is the change itself.
func (m *Manager) restoreIndexed(s Saved, byOwner map[string][]multicast.Lease) (*Session, error) {
	desc, err := Parse(s.SDP)
	if err != nil {
		return nil, fmt.Errorf("sdp: restore: %w", err)
	}
	e := &managed{desc: desc, external: s.External, pool: s.Pool, sources: s.Sources, announce: s.Announce, stop: s.Stop, leases: map[netip.Addr]multicast.Lease{},
		idle: s.Idle && !s.External, until: s.Until}
	owner := SessionOwner(desc.Origin.SessionID)
	active := map[netip.Addr]bool{}
	for _, md := range desc.Media {
		if md.Connection != nil {
			active[md.Connection.Addr] = active[md.Connection.Addr] || md.Port != 0
		}
	}
	leases := byOwner[owner]
	if s.External {
		leases = nil // an imported session leases nothing: a lease of its o= ID is mcc's own session's
	}
	for _, l := range leases {
		// A group the description no longer has active (a removed
		// stream's, whose slot a later stream may have taken, or one
		// leased for a change that never reached the saved description)
		// may still be in a restored participant's description: Settle
		// decides.
		e.leases[l.Group] = l
		if !active[l.Group] {
			e.retiring = append(e.retiring, l.Group)
		}
	}
	if len(e.leases) > 0 {
		// Saved idle, but it holds leases: it stopped between a wake and
		// the save that would have said so. Awake, it is the scheduler's
		// to put to rest, and no lease stays held by an idle session.
		e.idle = false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	id := s.IDOf(desc)
	if m.sessions[id] != nil {
		return nil, fmt.Errorf("sdp: a session with ID %d exists already", id)
	}
	m.sessions[id] = e
	if !s.External {
		m.lastID = max(m.lastID, desc.Origin.SessionID)
	}
	return desc.Clone(), nil
}

// owner is the owner of the session's leases.
func (e *managed) owner() string { return SessionOwner(e.desc.Origin.SessionID) }

// SessionOwner is the owner of the leases of session id: "session ID".
func SessionOwner(id uint64) string { return "session " + strconv.FormatUint(id, 10) }

// IsSessionOwner reports whether a lease's owner is a session's
// (SessionOwner): such a lease is the Manager's, not its holder's to
// renew or release.
func IsSessionOwner(owner string) bool { return strings.HasPrefix(owner, "session ") }

// RestoreAll brings back the sessions saved before a restart, each with
// the leases the allocator holds for it (see Restore), reading those once
// for all. It returns each session's description, or why it could not
// come back, in the order of saved.
func (m *Manager) RestoreAll(saved []Saved) (descs []*Session, errs []error) {
	byOwner := IndexLeases(m.cfg.Allocator.Leases())
	descs, errs = make([]*Session, len(saved)), make([]error, len(saved))
	for i, s := range saved {
		descs[i], errs[i] = m.RestoreIndexed(s, byOwner)
	}
	return descs, errs
}

// ReleaseOrphans releases every lease of a session mcc owned (by its
// owner, SessionOwner) that the Manager does not hold: one deleted, or
// being created, when the process stopped. Call it after a restore that
// brought back every saved session, and only then: a lease of one that
// did not come back may be any. It holds the Manager's lock throughout,
// so no session created meanwhile loses a lease.
func (m *Manager) ReleaseOrphans() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	live := make(map[string]bool, len(m.sessions)+len(m.creating))
	for id := range m.sessions {
		live[SessionOwner(id)] = true
	}
	for id := range m.creating {
		live[SessionOwner(id)] = true
	}
	var err error
	for _, l := range m.cfg.Allocator.Leases() {
		if !IsSessionOwner(l.Owner) || live[l.Owner] {
			continue
		}
		if rerr := m.cfg.Allocator.ReleaseOwned(l.Group, l.Owner); rerr != nil && !errors.Is(rerr, multicast.ErrNotLeased) {
			err = errors.Join(err, fmt.Errorf("sdp: release the orphaned lease of %v: %w", l.Group, rerr))
		}
	}
	return err
}

// Forget drops session id without releasing its leases: a restored
// session whose conference could not come back keeps its groups from
// others until the leases expire (they are no longer renewed).
func (m *Manager) Forget(id uint64) {
	m.mu.Lock()
	delete(m.sessions, id)
	m.mu.Unlock()
	m.notify(id)
}

// RenewLeases keeps the leases of every session mcc owns ahead of their
// expiry: a lease with less than half of d left is renewed to last d more,
// but never past its session's stop time. A session running for months
// thus never sees its groups expire and go to someone else. It returns how
// many leases it renewed.
func (m *Manager) RenewLeases(d time.Duration) (int, error) {
	now := m.cfg.Now()
	type renewal struct {
		id  uint64
		g   netip.Addr
		end time.Time
	}
	var due []renewal
	m.mu.Lock()
	for id, e := range m.sessions {
		if e.external || e.idle {
			continue
		}
		for g, l := range e.leases {
			// A removed stream's group is renewed too: a participant may
			// still receive it (see Settle).
			if l.End.Sub(now) >= d/2 {
				continue
			}
			end := now.Add(d)
			if !e.stop.IsZero() && e.stop.Before(end) {
				end = e.stop
			}
			if !e.until.IsZero() && e.until.Before(end) {
				end = e.until // a scheduled session's interval (idle.go)
			}
			if end.After(l.End) {
				due = append(due, renewal{id, g, end})
			}
		}
	}
	m.mu.Unlock()
	var errs []error
	n := 0
	for _, r := range due {
		l, err := m.cfg.Allocator.RenewOwned(r.g, SessionOwner(r.id), r.end)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.mu.Lock()
		if e := m.sessions[r.id]; e != nil {
			if _, ok := e.leases[r.g]; ok {
				e.leases[r.g] = l
			}
		}
		m.mu.Unlock()
		n++
	}
	return n, errors.Join(errs...)
}
