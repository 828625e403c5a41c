package conference

import (
	"errors"
	"fmt"

	"mcc/sdp"
)

// Roles for lectures: a speaker is offered every stream sendrecv, a
// listener recvonly (RFC 3264 §5.1, §6.2: a multicast stream's answer
// keeps the offer's direction, so the offer is the participant's part);
// a participant with no role is offered the session's directions as they
// are. A role is a participant's own description on top of the
// session's: giving the floor, or taking it back, re-INVITEs that
// participant alone, with the session's version (its o= version in its
// own dialog goes up, RFC 3264 §8), and the roster shows it (RFC 4575
// §5.6.2, a user's roles).

// Role is a participant's part in a conference.
type Role string

// The roles.
const (
	NoRole       Role = ""
	RoleSpeaker  Role = "speaker"
	RoleListener Role = "listener"
)

// ErrBadRole is the error for a role mcc does not have.
var ErrBadRole = errors.New(`conference: a role is "speaker", "listener" or "" for none`)

// ParseRole reads a role's name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case NoRole, RoleSpeaker, RoleListener:
		return r, nil
	}
	return "", fmt.Errorf("%w: %q", ErrBadRole, s)
}

// direction is what the role makes every active stream of the
// participant's offer; "" leaves the session's.
func (r Role) direction() sdp.Direction {
	switch r {
	case RoleSpeaker:
		return sdp.SendRecv
	case RoleListener:
		return sdp.RecvOnly
	}
	return ""
}

// SetRole gives participant id of conference name a role: its next offer
// is its own, and its worker re-INVITEs it alone (or, while it rings, once
// it has joined). Setting the role it has changes nothing.
func (c *Controller) SetRole(name, id string, r Role) (Participant, error) {
	if _, err := ParseRole(string(r)); err != nil {
		return Participant{}, err
	}
	conf, err := c.conference(name)
	if err != nil {
		return Participant{}, err
	}
	var p *participant
	for _, x := range conf.members() {
		if x.id == id {
			p = x
		}
	}
	if p == nil {
		return Participant{}, fmt.Errorf("%w: %q", ErrNoParticipant, id)
	}
	p.mu.Lock()
	if p.state >= Declined {
		p.mu.Unlock()
		return Participant{}, fmt.Errorf("%w: %q has ended", ErrNoParticipant, id)
	}
	changed := p.role != r
	if changed {
		p.role, p.reoffer = r, true
		p.roleGen++
	}
	p.mu.Unlock()
	if changed {
		c.persist(p) // a restart brings it back with its role, and its re-INVITE due
		c.publishParticipant(p, "participant")
		c.kick(conf, p)
	}
	return p.snapshotAt(conf.version()), nil
}
