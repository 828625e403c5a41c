package conference

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mcc/sdp"
)

// State is where a participant stands.
type State int

// The participant states.
const (
	Invited  State = iota + 1 // INVITE sent, no answer yet
	Ringing                   // a 180 or 183 came back
	Joined                    // in the session, with each stream accepted or declined
	Declined                  // refused the invitation (Status says how)
	Failed                    // timeout, transport error or unacceptable answer
	Left                      // sent BYE
	Removed                   // mcc ended the dialog
)

var stateNames = map[State]string{Invited: "invited", Ringing: "ringing", Joined: "joined", Declined: "declined",
	Failed: "failed", Left: "left", Removed: "removed"}

func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// MarshalText writes the state's name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error {
	for st, n := range stateNames {
		if n == string(b) {
			*s = st
			return nil
		}
	}
	return fmt.Errorf("conference: unknown participant state %q", b)
}

// Participant is a snapshot of one participant.
type Participant struct {
	ID  string `json:"id"`
	URI string `json:"uri"`
	// Name is the display name a dial-in gave in its From, as text:
	// whoever shows it must escape it (it comes from the network).
	Name   string `json:"name,omitempty"`
	DialIn bool   `json:"dial_in"`
	State  State  `json:"state"`
	// Status is the final SIP status of the invitation, or of the last
	// re-INVITE when it failed.
	Status int `json:"status,omitempty"`
	// Reason says why the participant declined, failed or left.
	Reason string `json:"reason,omitempty"`
	// Streams says, per stream of the session, whether the participant
	// accepted it.
	Streams []string `json:"streams,omitempty"`
	// Version is the o= version of the description the participant has,
	// in its dialog (each dialog counts its own, RFC 3264 §8).
	Version uint64 `json:"version,omitempty"`
	// Acked is the version of the session's description (its o= version,
	// the ID of the change that made it) the participant last
	// acknowledged; 0 before it has any.
	Acked uint64 `json:"acked,omitempty"`
	// Behind says a joined participant does not have the session's
	// latest description yet: its re-INVITE is on its way, or was
	// refused (Reason says why, and the next change tries again).
	Behind bool      `json:"behind,omitempty"`
	Since  time.Time `json:"since"`
	// Hold says the participant put every stream it receives on hold
	// (a=inactive in its own re-INVITE, RFC 3264 §8.4).
	Hold bool `json:"hold,omitempty"`
	// Role is the participant's part in a lecture: speaker or listener;
	// none takes the session's directions as they are.
	Role Role `json:"role,omitempty"`
	// By is who referred the participant (REFER's Referred-By).
	By string `json:"by,omitempty"`
}

// AccessMode says who may dial in to a conference.
type AccessMode int

// The access modes.
const (
	Anyone    AccessMode = iota // every caller
	AllowList                   // callers whose From URI or domain is listed (a claim: see Access)
	Digest                      // callers that answer a digest challenge (RFC 7616, RFC 8760)
)

// Access is who may dial in to a conference.
//
// An AllowList matches the From header of the INVITE, which the caller
// writes as it likes: it keeps out those who do not know a listed address,
// not those who would lie. To tie a dial-in to the network it comes from,
// set Sources as well: in every mode, a dial-in whose packets come from an
// address outside Sources gets 403, whatever its From says. Digest proves
// that the caller knows a password.
//
// Access holds no password: Users keeps, per user, H(user:realm:password)
// for each algorithm (HashPasswords makes them), so Realm is fixed when
// the users are. Access is saved as it is, but no API response carries it.
type Access struct {
	Mode AccessMode `json:"mode"`
	// Allow lists "user@host" URIs and bare "host" domains, matched
	// against the From header (AllowList).
	Allow []string `json:"allow,omitempty"`
	// Sources, when not empty, are the networks a dial-in's packets must
	// come from (the transport's source address, not any header), in
	// every mode. A bare address is a prefix of its full length.
	Sources []netip.Prefix `json:"sources,omitempty"`
	// Users maps user names to the HA1s of their passwords in Realm
	// (Digest). The HA1s are password equivalents for this realm: keep
	// them as secret as passwords.
	Users map[string]HA1 `json:"users,omitempty"`
	// Realm names the digest realm; empty means the conference name. The
	// HA1s in Users must have been made with the same realm.
	Realm string `json:"realm,omitempty"`
	// Moderators may send REFER to the focus, to bring someone in or
	// have them removed (RFC 4579 §5.5): digest user names (Digest) and
	// "user@host" URIs or bare "host" domains, matched as Allow is. With
	// Digest and no moderators, every digest user may; otherwise nobody.
	Moderators []string `json:"moderators,omitempty"`
}

// Conference is a multicast session with a conference URI and its
// participants.
type Conference struct {
	name      string
	sessionID uint64
	access    Access
	// nonces tracks the digest nonces in use (Digest), under its own
	// lock.
	nonces nonceTable
	// recordMu orders the writes of the conference's record
	// (saveConference); recordGone, under it, says Delete has removed it.
	// savedVersion is the latest version of the description a save has
	// written (at least): no removed stream's group goes while the
	// description is newer (settle).
	recordMu     sync.Mutex
	recordGone   bool
	savedVersion atomic.Uint64
	// roster is the last document built for the roster's subscribers, at
	// generation rosterGen of the conference's changes (sharedDocument);
	// under rosterMu, taken before conf.mu.
	rosterMu  sync.Mutex
	roster    *ConferenceInfo
	rosterGen uint64
	// removing, guarded by Controller.mu, marks a conference a Delete has
	// taken: another Delete finds it gone. pending, guarded by it too,
	// marks one whose Create has not saved it yet: nobody finds it, and
	// its name is taken.
	removing, pending bool
	// follow is the heard session the conference follows (follow.go),
	// nil for none; replaced, never edited.
	follow atomic.Pointer[Follow]

	mu sync.Mutex // guards the fields below
	// desc is the session's description. It is replaced by a change,
	// never edited in place: offers share its media (nextOfferLocked).
	// cur holds the same, for readers without conf.mu (setDesc).
	desc         *sdp.Session
	cur          atomic.Pointer[sdp.Session]
	external     bool
	participants []*participant
	deleted      bool // Delete has begun: no one joins any more
	// progress is closed, and replaced, each time a participant moves
	// on: those waiting for a change wake (await).
	progress chan struct{}
	// settling and settleAgain run settle one at a time; building
	// counts the offers being made in dialogs settle cannot see yet
	// (offerDesc).
	settling, settleAgain bool
	building              int
	// sched is the session's schedule (schedule.go), zero for none; set
	// at creation. invitees are dialed at each of its starts; onAir is
	// the interval the session is awake for, zero when it rests; dialed
	// is the start of the last interval whose invitees were dialed.
	sched    sdp.Schedule
	invitees []Invitee
	// schedMu runs runSchedule for the conference one at a time; taken
	// before conf.mu.
	schedMu sync.Mutex
	onAir   sdp.Interval
	dialed  time.Time
	// closing counts the ends of intervals waiting for their BYEs'
	// answers before the session rests (closeInterval).
	closing int
}

type participant struct {
	id     string
	uri    string
	dialIn bool
	// by is who referred it (REFER's Referred-By, refer.go), authUser the
	// digest user a dial-in authenticated as; both fixed at its start.
	by, authUser string
	// name is the display name a dial-in's From gave (printable, at
	// most maxDisplayName runes); fixed at its start.
	name string
	in   *Conference // the conference it belongs to
	conf string      // the conference's name, for events
	c    *Controller // where its events go; nil in no conference

	// saveMu orders the saves of this participant (persist); it is
	// held across the store write, and no other lock is taken under it
	// but the participant's and its dialog's, briefly.
	saveMu sync.Mutex
	// pubMu orders this participant's events (publishParticipant); under
	// it only the participant's lock and the hub's are taken.
	pubMu sync.Mutex

	mu      sync.Mutex // guards the fields below
	state   State
	status  int
	reason  string
	streams []sdp.StreamState
	version uint64
	since   time.Time
	dlg     *dialog
	// rejected marks the streams whose answer broke a rule: they are
	// offered to this participant at port 0 from then on.
	rejected map[int]bool
	// acked is the version of the session's description the participant
	// last acknowledged (Participant.Acked); 0 for none yet.
	acked uint64
	// behind: its worker gave up on the latest version for now (refused,
	// or its attempts ran out); working and again run the worker one at a
	// time (kick).
	behind, working, again bool
	// refresh asks the worker for a session refresh (RFC 4028 §10) even
	// when the participant has the latest description.
	refresh bool
	// cancelRing, while a dial-out rings, cancels it (CANCEL, §9.1).
	cancelRing context.CancelFunc
	// source is where a dial-in came from while it counts against
	// Limits.JoinedPerSource; invalid once it ended, or for a dial-out.
	source netip.Addr
	// hold: the participant's last own offer made every active stream
	// inactive.
	hold bool
	// unoffered: a dial-in answered with every stream rejected (its offer
	// was unicast) has not been offered the session's streams yet,
	// whatever acked says (hasLocked).
	unoffered bool
	// rejoining: a rejoin's new INVITE is out (it stays joined while it
	// rings); rejoinedAt is the version of the last rejoin a change made,
	// and rejoinedRole the roleGen it was made for: a new role is a
	// change of its own at the same version.
	rejoining    bool
	rejoinedAt   uint64
	rejoinedRole uint64
	// rejoin: its user agent leaves its group on a re-INVITE, so a
	// change reaches it as BYE and a new INVITE (profile.go).
	rejoin bool
	// role is Speaker, Listener or none (the session's directions as they
	// are); reoffer asks its worker for a re-INVITE with its own offer
	// (roles.go) though it has the latest version; roleGen counts the
	// roles given, so that the answer to an offer made before the last
	// one clears reoffer only when no role came since.
	role    Role
	reoffer bool
	roleGen uint64
}

func (p *participant) set(s State, status int, reason string) {
	p.mu.Lock()
	if p.state >= Declined {
		// An ended participant stays ended, as it ended: a join that
		// completes after it was removed (the BYE is on its way) is not
		// one, and a 481 to a re-INVITE crossing its removal does not
		// make it failed.
		p.mu.Unlock()
		return
	}
	changed := p.state != s
	p.mu.Unlock()
	if changed && p.c != nil {
		// Saved before anyone can see it: a "joined" that the API reports
		// is one a restart brings back.
		p.c.persistAs(p, s)
	}
	p.mu.Lock()
	if cur := p.state; cur >= Declined {
		// Ended while this was saved: the record follows that end, which
		// stays.
		p.mu.Unlock()
		if changed && p.c != nil && s < Declined {
			p.c.persistAs(p, cur)
		}
		return
	}
	p.state, p.status, p.reason, p.since = s, status, reason, time.Now()
	release := s >= Declined && p.source.IsValid()
	src := p.source
	if release {
		p.source = netip.Addr{} // counted once
	}
	p.mu.Unlock()
	if release && p.c != nil {
		p.c.guard.unjoin(src)
	}
	if changed && s >= Declined && p.c != nil {
		// Again, now that the state says ended: a save that read
		// "joined" before it and wrote after the first delete is undone.
		p.c.persistAs(p, s)
	}
	if changed && p.c != nil {
		p.c.publishParticipant(p, "participant")
	}
	if changed && p.in != nil {
		if s >= Declined && p.c != nil {
			p.c.settle(p.in) // it held groups no one else may
		}
		p.in.progressed()
	}
}

func (conf *Conference) isDeleted() bool {
	conf.mu.Lock()
	defer conf.mu.Unlock()
	return conf.deleted
}

func (conf *Conference) isExternal() bool {
	conf.mu.Lock()
	defer conf.mu.Unlock()
	return conf.external
}

// ended reports whether p declined, failed, left or was removed.
func (p *participant) ended() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state >= Declined
}

// hasLocked reports whether p has version v of the session's description.
// Called with p.mu held.
func (p *participant) hasLocked(v uint64) bool { return p.acked >= v && !p.unoffered && !p.reoffer }

// publishParticipant tells subscribers how p is now. Its events go out in
// the order their snapshots were taken (pubMu), so a "joined" read just
// before a BYE's "left" never reaches anyone after it.
func (c *Controller) publishParticipant(p *participant, kind string) {
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	snap := p.snapshot()
	c.publish(Event{Conference: p.conf, Kind: kind, Participant: &snap})
}

// snapshot describes p as it is now.
func (p *participant) snapshot() Participant {
	var v uint64
	if p.in != nil {
		v = p.in.version()
	}
	return p.snapshotAt(v)
}

// snapshotAt is snapshot with v the conference's version (the caller may
// hold the conference's lock).
func (p *participant) snapshotAt(v uint64) Participant {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := Participant{ID: p.id, URI: p.uri, Name: p.name, DialIn: p.dialIn, State: p.state, Status: p.status, Reason: p.reason,
		Version: p.version, Acked: p.acked, Behind: p.state == Joined && !p.hasLocked(v), Since: p.since, Hold: p.hold, Role: p.role, By: p.by}
	for _, s := range p.streams {
		out.Streams = append(out.Streams, s.String())
	}
	return out
}

// Info describes a conference.
type Info struct {
	Name      string `json:"name"`
	URI       string `json:"uri"`
	SessionID uint64 `json:"session_id"`
	Version   uint64 `json:"version"`
	External  bool   `json:"external"`
	// SAP names the announce profiles the session was created with;
	// none means the daemon's.
	SAP []string `json:"sap,omitempty"`
	// Follow is the SAP announcement the conference follows, if any.
	Follow *Follow `json:"follow,omitempty"`
	// Schedule is where a scheduled conference is in its schedule.
	Schedule     *ScheduleInfo `json:"schedule,omitempty"`
	Participants []Participant `json:"participants"`
}

// Errors the conference API returns.
var (
	ErrExists          = errors.New("conference: a conference of that name exists")
	ErrUnknown         = errors.New("conference: no such conference")
	ErrBadName         = errors.New(`conference: a name is 1-64 letters, digits, '-', '_' or '.', other than "." and ".."`)
	ErrBadURI          = errors.New("conference: not a SIP URI")
	ErrNoParticipant   = errors.New("conference: no such participant")
	errHeaderInjection = errors.New("conference: CR, LF or another control character in a header value")
)

// validName reports whether s may name a conference. The name is the user
// part of the conference URI, so its characters are a subset of RFC 3261
// §25.1 user = 1*(unreserved / escaped / user-unreserved): alphanum and
// three of the marks, none needing escapes. It is also a path segment of
// the control API (/v1/sessions/{name}), where "." and ".." are dot
// segments that HTTP clients and servers remove (RFC 3986 §5.2.4): such a
// conference could never be addressed, so deleted.
func validName(s string) bool {
	if s == "" || len(s) > 64 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// ValidName returns nil when s can name a conference, else an error that
// wraps ErrBadName; callers check a name before they lease anything for it.
func ValidName(s string) error {
	if !validName(s) {
		return fmt.Errorf("%w: %q", ErrBadName, s)
	}
	return nil
}

// checkHeaderValue refuses what would inject header lines (sipgo writes
// values as they are).
func checkHeaderValue(s string) error {
	for _, r := range s {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return errHeaderInjection
		}
	}
	return nil
}

// URI returns the conference URI of name.
func (c *Controller) URI(name string) string {
	if c.uriPort != "" {
		return "sip:" + name + "@" + c.cfg.Host + ":" + c.uriPort
	}
	return "sip:" + name + "@" + c.cfg.Host
}

func (c *Controller) info(conf *Conference) Info {
	in := c.infoLocked(conf)
	in.Follow = conf.follow.Load()
	// Read outside conf.mu: the two locks are never needed together here.
	in.SAP = c.cfg.Manager.Announce(in.SessionID)
	return in
}

func (c *Controller) infoLocked(conf *Conference) Info {
	conf.mu.Lock()
	defer conf.mu.Unlock()
	in := Info{Name: conf.name, URI: c.URI(conf.name), SessionID: conf.sessionID, Version: conf.desc.Origin.Version, External: conf.external,
		Schedule: c.scheduleInfoLocked(conf)}
	for _, p := range conf.participants {
		in.Participants = append(in.Participants, p.snapshotAt(in.Version))
	}
	return in
}

func (c *Controller) conference(name string) (*Conference, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	conf, ok := c.conferences[name]
	if !ok || conf.pending {
		return nil, fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	return conf, nil
}

// Get describes conference name.
func (c *Controller) Get(name string) (Info, error) {
	conf, err := c.conference(name)
	if err != nil {
		return Info{}, err
	}
	return c.info(conf), nil
}

// allConferences returns every conference, in no order.
func (c *Controller) allConferences() []*Conference {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Conference, 0, len(c.conferences))
	for _, conf := range c.conferences {
		if !conf.pending {
			out = append(out, conf)
		}
	}
	return out
}

// members returns the conference's participants as they are listed now.
func (conf *Conference) members() []*participant {
	conf.mu.Lock()
	defer conf.mu.Unlock()
	return slices.Clone(conf.participants)
}

// List describes every conference, by name.
func (c *Controller) List() []Info {
	confs := c.allConferences()
	var out []Info
	for _, conf := range confs {
		out = append(out, c.info(conf))
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Participants returns the participants of conference name.
func (c *Controller) Participants(name string) ([]Participant, error) {
	in, err := c.Get(name)
	return in.Participants, err
}

// Session returns the current description of conference name.
func (c *Controller) Session(name string) (*sdp.Session, error) {
	conf, err := c.conference(name)
	if err != nil {
		return nil, err
	}
	conf.mu.Lock()
	defer conf.mu.Unlock()
	return conf.desc.Clone(), nil
}

// parseTarget checks a participant address given by a user.
func parseTarget(s string) (string, error) {
	if err := checkHeaderValue(s); err != nil {
		return "", err
	}
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
	if !strings.HasPrefix(s, "sip:") && !strings.HasPrefix(s, "sips:") {
		return "", fmt.Errorf("%w: %q (want sip:user@host[:port])", ErrBadURI, s)
	}
	return s, nil
}

// AccessOf returns who may dial in to conference name.
func (c *Controller) AccessOf(name string) (Access, error) {
	conf, err := c.conference(name)
	if err != nil {
		return Access{}, err
	}
	return conf.access, nil
}
