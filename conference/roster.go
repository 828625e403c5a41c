package conference

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/emiago/sipgo/sip"

	"mcc/sdp"
)

// The roster as the conference event package carries it (RFC 4575): the
// conference's document now (Controller.document), and what a
// subscription is sent: full state, or the partial document that takes
// what the subscriber has to what is (diffDocument).

// document is conf's state as a full RFC 4575 document, version 0 (each
// subscription numbers its own).
func (c *Controller) document(conf *Conference) *ConferenceInfo {
	in := c.infoLocked(conf)
	desc := conf.current()
	uri := anyURI(in.URI)
	ci := &ConferenceInfo{Entity: uri, State: StateFull}
	d := &ConferenceDescription{Subject: xmlText(desc.Name), DisplayText: xmlText(desc.Info),
		ConfURIs: &URIs{Entries: []URIEntry{{URI: uri, Purpose: "participation"}}}}
	am := &AvailableMedia{}
	for i, m := range desc.Media {
		e := Medium{Label: strconv.Itoa(i), Type: m.Kind, Status: string(desc.EffectiveDirection(m)), Multicast: multicastOf(desc, m)}
		if m.Port == 0 {
			e.Status = string(sdp.Inactive)
		}
		am.Entries = append(am.Entries, e)
	}
	if len(am.Entries) > 0 {
		d.AvailableMedia = am
	}
	ci.Description = d
	var users []User
	byEntity := map[string]int{}
	var present []bool // by user: an endpoint of theirs is in the conference
	for _, p := range conf.members() {
		ep, entity := c.endpointOf(p, desc)
		if strings.HasSuffix(entity, "@anonymous.invalid") {
			// Anonymous callers (RFC 3323 §4.1.1.3) are each a user.
			entity += ";mcc-id=" + p.id
		}
		i, ok := byEntity[entity]
		if !ok {
			i = len(users)
			byEntity[entity] = i
			users = append(users, User{Entity: entity})
			present = append(present, false)
		}
		if ep.Status == "connected" || ep.Status == "on-hold" {
			present[i] = true
		}
		u := &users[i]
		if u.DisplayText == "" && p.name != "" {
			u.DisplayText = p.name // RFC 4575 §5.6.1
		}
		// Endpoints of one user are told apart by their own entity;
		// two dialogs from one Contact get the participant's ID too.
		for _, x := range u.Endpoints {
			if x.Entity == ep.Entity {
				ep.Entity += ";mcc-id=" + p.id
				break
			}
		}
		u.Endpoints = append(u.Endpoints, ep)
		p.mu.Lock()
		role := p.role
		p.mu.Unlock()
		if role != NoRole && (u.Roles == nil || !slices.Contains(u.Roles.Entries, string(role))) {
			if u.Roles == nil {
				u.Roles = &Roles{}
			}
			u.Roles.Entries = append(u.Roles.Entries, string(role))
		}
	}
	// RFC 4575 §5.2.3: user-count counts users, not their endpoints.
	connected := uint32(0)
	for _, x := range present {
		if x {
			connected++
		}
	}
	active := connected > 0
	ci.ConferenceState = &ConferenceState{UserCount: &connected, Active: &active}
	ci.Users = &Users{Users: users}
	return ci
}

// multicastOf is mcc's extension for medium m of desc.
func multicastOf(desc *sdp.Session, m *sdp.Media) *Multicast {
	if m.Port == 0 {
		return nil
	}
	conn := m.Connection
	if conn == nil {
		conn = desc.Connection
	}
	if conn == nil || !conn.Addr.IsValid() || !conn.Addr.IsMulticast() {
		return nil // an imported session's unicast stream: no group to tell
	}
	mc := &Multicast{Group: conn.Addr.String(), Port: m.Port, Version: desc.Origin.Version}
	if conn.Addr.Is4() {
		mc.TTL = conn.TTL
	}
	filters := m.SourceFilters
	if len(filters) == 0 {
		filters = desc.SourceFilters
	}
	var srcs []string
	for _, f := range filters {
		if f.Mode == sdp.Include {
			for _, s := range f.Sources {
				srcs = append(srcs, s.String())
			}
		}
	}
	mc.Source = strings.Join(srcs, " ")
	return mc
}

// endpointOf is participant p as an endpoint (RFC 4575 §5.7), and the
// entity of its user: the URI it was invited at or dialled in from.
func (c *Controller) endpointOf(p *participant, desc *sdp.Session) (Endpoint, string) {
	p.mu.Lock()
	uri, dialIn, st, status, reason, since, hold := p.uri, p.dialIn, p.state, p.status, p.reason, p.since, p.hold
	streams := append([]sdp.StreamState(nil), p.streams...)
	by, role, d := p.by, p.role, p.dlg
	p.mu.Unlock()
	entity := anyURI(userEntity(uri))
	ep := Endpoint{Entity: entity}
	when := since.UTC().Format(time.RFC3339)
	if dialIn {
		ep.JoiningMethod = "dialed-in"
	} else {
		ep.JoiningMethod = "dialed-out"
	}
	ep.JoiningInfo = &Execution{When: when}
	if by != "" {
		ep.JoiningInfo.By = anyURI(by)
		ep.Referred = &Execution{When: when, By: anyURI(by)}
	}
	switch st {
	case Invited:
		ep.Status = "dialing-out"
		if dialIn {
			ep.Status = "dialing-in"
		}
	case Ringing:
		ep.Status = "alerting"
	case Joined:
		ep.Status = "connected"
		if hold {
			ep.Status = "on-hold"
		}
	default:
		ep.Status = "disconnected"
		ep.DisconnectionInfo = &Execution{When: when, Reason: xmlText(reason)}
		switch st {
		case Left:
			ep.DisconnectionMethod = "departed"
		case Removed:
			ep.DisconnectionMethod = "booted"
		case Declined:
			ep.DisconnectionMethod = "busy"
			if status != 0 {
				ep.DisconnectionInfo.Reason = xmlText(strconv.Itoa(status) + " " + reason)
			}
		default:
			ep.DisconnectionMethod = "failed"
		}
	}
	if d != nil {
		d.mu.Lock()
		target := d.remoteTarget
		from, to := d.remoteTag, d.localTag // a dial-in's From is the participant
		if d.owner {
			from, to = d.localTag, d.remoteTag
		}
		ep.CallInfo = &CallInfo{SIP: &SIPDialogID{CallID: d.callID, FromTag: from, ToTag: to}}
		d.mu.Unlock()
		if target.Host != "" {
			ep.Entity = anyURI((&sip.Uri{Scheme: target.Scheme, User: target.User, Host: target.Host, Port: target.Port}).String())
		}
	}
	if st == Joined {
		for i, s := range streams {
			if i >= len(desc.Media) {
				break
			}
			m := desc.Media[i]
			md := Media{ID: strconv.Itoa(i), Type: m.Kind, Label: strconv.Itoa(i), Status: string(sdp.Inactive)}
			if s == sdp.StreamAccepted && m.Port != 0 {
				md.Status = string(desc.EffectiveDirection(m))
				if dir := role.direction(); dir != "" {
					md.Status = string(dir)
				}
				if hold {
					md.Status = string(sdp.Inactive)
				}
				md.Multicast = multicastOf(desc, m)
			}
			ep.Media = append(ep.Media, md)
		}
	}
	return ep, entity
}

// userEntity is the user's AOR from the URI a participant has: its
// scheme, user and host, without parameters.
func userEntity(uri string) string {
	var u sip.Uri
	if err := sip.ParseUri(uri, &u); err != nil || u.Host == "" {
		return uri
	}
	// Host names are case-blind (RFC 3261 §19.1.4): one user either way.
	return (&sip.Uri{Scheme: u.Scheme, User: u.User, Host: strings.ToLower(u.Host), Port: u.Port}).String()
}

// anyURI writes a SIP URI as the schema's xs:anyURI takes it: the
// brackets of an IPv6 literal are not allowed outside an authority (RFC
// 3986 §3.2.2), and a SIP URI has none, so they are escaped (%5B, %5D);
// a subscriber compares entities as written.
func anyURI(s string) string {
	return strings.NewReplacer("[", "%5B", "]", "%5D", " ", "%20", `"`, "%22", "<", "%3C", ">", "%3E", `\`, "%5C",
		"^", "%5E", "`", "%60", "{", "%7B", "|", "%7C", "}", "%7D").Replace(xmlText(s))
}

// xmlText keeps of s what XML 1.0 can carry (§2.2): a reason from the
// network may hold control characters, which encoding/xml would write
// as U+FFFD anyway.
func xmlText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
			return -1
		}
		return r
	}, s)
}

// nextDocument is the document subscription s is due: full state when it
// asked for it (its first NOTIFY, after a refresh, or its last), else
// the partial document of what changed since its last one; ok is false
// when nothing did.
func (c *Controller) nextDocument(s *subscription, last bool) (doc *ConferenceInfo, ok bool) {
	s.mu.Lock()
	full := s.full || s.sent == nil || last
	s.mu.Unlock()
	// Full state (a new subscriber, a refresh, the last NOTIFY) is built
	// afresh: a change no event woke the subscribers for (a participant's
	// own hold, say) is in it, as RFC 4575 §4.4 wants the whole of now.
	now := c.sharedDocument(s.conf, full)
	s.mu.Lock()
	defer s.mu.Unlock()
	if full {
		d := *now // its own version; the rest is shared, and never written
		doc = &d
	} else if doc = diffDocument(s.sent, now); doc == nil {
		return nil, false
	}
	if _, err := doc.Marshal(); err != nil {
		return nil, false // nothing taken: the next change tries again
	}
	s.full = false
	s.version++
	doc.Version = uint32(s.version)
	s.sent = now
	return doc, true
}

// sharedDocument is conf's document as of its last change that woke its
// subscribers: built once for all of them, not once each (a change of a
// conference of n participants with m subscribers costs one build, not
// m); fresh builds it anew all the same. Nobody writes a document once
// it is built.
func (c *Controller) sharedDocument(conf *Conference, fresh bool) *ConferenceInfo {
	gen := c.watch.generation(conf.name)
	conf.rosterMu.Lock()
	defer conf.rosterMu.Unlock()
	if !fresh && conf.roster != nil && conf.rosterGen == gen {
		return conf.roster
	}
	conf.roster, conf.rosterGen = c.document(conf), gen
	return conf.roster
}

// diffDocument is the partial document that takes a subscriber from old
// to now (RFC 4575 §4.6), or nil when they are the same: the
// conference's description and state whole when they changed; a user
// that came whole (state full), one that went as deleted, and one that
// changed as partial, with its endpoints that came or changed whole and
// those that went as deleted.
func diffDocument(old, now *ConferenceInfo) *ConferenceInfo {
	out := &ConferenceInfo{Entity: now.Entity, State: StatePartial}
	changed := false
	if !reflect.DeepEqual(old.Description, now.Description) {
		out.Description, changed = now.Description, true
	}
	if !reflect.DeepEqual(old.ConferenceState, now.ConferenceState) {
		out.ConferenceState, changed = now.ConferenceState, true
	}
	users := &Users{State: StatePartial}
	oldUsers := map[string]*User{}
	if old.Users != nil {
		for i := range old.Users.Users {
			oldUsers[old.Users.Users[i].Entity] = &old.Users.Users[i]
		}
	}
	seen := map[string]bool{}
	for _, u := range now.Users.Users {
		seen[u.Entity] = true
		o := oldUsers[u.Entity]
		if o == nil {
			u.State = StateFull
			users.Users = append(users.Users, u)
			continue
		}
		if d := diffUser(o, &u); d != nil {
			users.Users = append(users.Users, *d)
		}
	}
	if old.Users != nil {
		for _, u := range old.Users.Users {
			if !seen[u.Entity] {
				users.Users = append(users.Users, User{Entity: u.Entity, State: StateDeleted})
			}
		}
	}
	if len(users.Users) > 0 {
		out.Users, changed = users, true
	}
	if !changed {
		return nil
	}
	return out
}

// diffUser is the partial user that takes o to u, or nil.
func diffUser(o, u *User) *User {
	out := &User{Entity: u.Entity, State: StatePartial}
	changed := false
	if o.DisplayText != u.DisplayText {
		out.DisplayText, changed = u.DisplayText, true
	}
	if !reflect.DeepEqual(o.Roles, u.Roles) {
		out.Roles, changed = u.Roles, true
		if out.Roles == nil {
			out.State = StateFull // roles taken away: the user whole says so
			full := *u
			full.State = StateFull
			return &full
		}
	}
	was := map[string]*Endpoint{}
	for i := range o.Endpoints {
		was[o.Endpoints[i].Entity] = &o.Endpoints[i]
	}
	is := map[string]bool{}
	for _, e := range u.Endpoints {
		is[e.Entity] = true
		if w := was[e.Entity]; w == nil || !reflect.DeepEqual(*w, e) {
			e.State = StateFull
			out.Endpoints, changed = append(out.Endpoints, e), true
		}
	}
	for _, e := range o.Endpoints {
		if !is[e.Entity] {
			out.Endpoints, changed = append(out.Endpoints, Endpoint{Entity: e.Entity, State: StateDeleted}), true
		}
	}
	if !changed {
		return nil
	}
	return out
}

// maxDisplayName bounds the display name kept of a dial-in.
const maxDisplayName = 128

// displayName is a From's display name as mcc keeps it: unquoted (RFC
// 3261 §25.1 quoted-string, its backslash escapes undone), with what
// does not print dropped, at most maxDisplayName runes.
func displayName(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
		}
		s = b.String()
	}
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if len(out) == maxDisplayName {
			break
		}
		if unicode.IsPrint(r) {
			out = append(out, r)
		}
	}
	return strings.TrimSpace(string(out))
}
