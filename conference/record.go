package conference

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"mcc/sdp"
)

// Store keeps what mcc knows across restarts, as JSON records by key;
// internal/store implements it. Its keys are:
//
//	c/NAME       a conference (Record)
//	p/NAME/ID    a joined participant's dialog (SavedParticipant)
//
// A Store that also has a Compact() error method is compacted after a
// restore that rewrote records of an older form.
type Store interface {
	PutRecord(key string, v any) error
	DeleteRecord(key string) error
	Records(f func(key string, v []byte) error) error
}

// compacter is a Store that can rewrite its file without what it freed
// (internal/store's DB).
type compacter interface {
	Compact() error
}

func conferenceKey(name string) string      { return "c/" + name }
func participantKey(conf, id string) string { return "p/" + conf + "/" + id }

// Record is what is kept of a conference across restarts.
type Record struct {
	Name      string    `json:"name"`
	SessionID uint64    `json:"session_id"`
	Access    Access    `json:"access"`
	Session   sdp.Saved `json:"session"`
	// Follow is the heard session the conference follows, if any.
	Follow *Follow `json:"follow,omitempty"`
	// Invitees, OnAir and Dialed are a scheduled conference's invite
	// list, the interval its session is awake for, and the start of the
	// last interval whose invitees were dialed (schedule.go).
	Invitees []Invitee     `json:"invitees,omitempty"`
	OnAir    *sdp.Interval `json:"on_air,omitempty"`
	Dialed   time.Time     `json:"dialed,omitzero"`
	// migrated marks a record read in an older form (see UnmarshalJSON):
	// Restore saves it again in the new one.
	migrated bool
	// dropped and badRealm say what the migration left out (users it
	// could not hash, a realm it replaced with the name), for Restore to
	// log; they name no password.
	dropped  []droppedUser
	badRealm string
}

// SavedParticipant is what a restarted controller needs to go on with a
// participant's dialog: re-INVITE it with the next CSeq, or BYE it.
type SavedParticipant struct {
	Conference string `json:"conference"`
	// SessionID is the conference's session when the dialog was saved: a
	// later conference of the same name is another session.
	SessionID uint64    `json:"session_id,omitempty"`
	ID        string    `json:"id"`
	URI       string    `json:"uri"`
	Name      string    `json:"name,omitempty"`
	DialIn    bool      `json:"dial_in,omitempty"`
	Since     time.Time `json:"since"`
	Streams   []string  `json:"streams,omitempty"`
	Rejected  []int     `json:"rejected,omitempty"`

	CallID       string   `json:"call_id"`
	Owner        bool     `json:"owner,omitempty"`
	Transport    string   `json:"transport"`
	Local        string   `json:"local"`
	LocalTag     string   `json:"local_tag"`
	Remote       string   `json:"remote"`
	RemoteTag    string   `json:"remote_tag"`
	LocalCSeq    uint32   `json:"local_cseq"`
	RemoteCSeq   uint32   `json:"remote_cseq"`
	RemoteTarget string   `json:"remote_target"`
	RouteSet     []string `json:"route_set,omitempty"`
	// FixTo is the source a dial-in's requests came from, which mcc's go
	// to (see dialog.fixTo); empty for others.
	FixTo   string `json:"fix_to,omitempty"`
	Offered []byte `json:"offered,omitempty"`
	Version uint64 `json:"version"`
	// Acked is the version of the session's description the participant
	// last acknowledged: after a restart it resumes from there (0, in a
	// record of an older form, is worked out from Offered).
	Acked uint64 `json:"acked,omitempty"`
	// LastACK is the CSeq of the INVITE whose 2xx mcc last ACKed, and
	// Pending that of a re-INVITE of mcc's not answered yet: a 2xx of
	// either that comes again after a restart is ACKed (§13.2.2.4).
	LastACK uint32 `json:"last_ack,omitempty"`
	Pending uint32 `json:"pending,omitempty"`
	// InFlight is the offer of that re-INVITE, and Maybe those of
	// earlier ones whose outcome a restart lost: the participant may have
	// taken any, so their groups are in use until it answers a later one.
	InFlight []byte   `json:"in_flight,omitempty"`
	Maybe    [][]byte `json:"maybe,omitempty"`
	// SessionExpires is the dialog's RFC 4028 session interval in
	// seconds (0: none), and Refresher says mcc refreshes it.
	SessionExpires int  `json:"session_expires,omitempty"`
	Refresher      bool `json:"refresher,omitempty"`
	// Rejoin says its user agent takes changes by BYE and a new INVITE
	// (profile.go).
	Rejoin bool `json:"rejoin,omitempty"`
	// Unoffered: a dial-in not offered the session's streams yet.
	Unoffered bool `json:"unoffered,omitempty"`
	// By is who referred the participant (RFC 3892's Referred-By), and
	// AuthUser the digest user a dial-in authenticated as.
	By       string `json:"by,omitempty"`
	AuthUser string `json:"auth_user,omitempty"`
	// Role is the participant's role (roles.go).
	Role Role `json:"role,omitempty"`
}

// legacyAccess is Access as versions before HA1s saved it: no
// JSON tags, and each digest user's password in clear. Users stay raw, so
// that one odd value costs its user, not the record.
type legacyAccess struct {
	Mode  AccessMode
	Allow []string
	Users map[string]json.RawMessage
	Realm string
}

// UnmarshalJSON reads a record. A record saved by a version that kept
// digest passwords in clear has them hashed at once into HA1s, in its
// realm (the conference name when it had none, or one that cannot travel
// in a header), and is marked so that Restore saves it again: the
// passwords leave the store at the first restart. The older version took
// users the new one refuses (an empty name or password, a control
// character in the name): those are dropped, never the record, and
// Restore logs them (by name, never with the password). A digest
// conference left without users lets nobody in.
func (r *Record) UnmarshalJSON(b []byte) error {
	type plain Record // no methods: no recursion
	var raw struct {
		plain
		Access json.RawMessage `json:"access"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*r = Record(raw.plain)
	if len(raw.Access) == 0 || bytes.Equal(raw.Access, []byte("null")) {
		return nil
	}
	// The old form is told by its users: strings (passwords), where the
	// new form has objects (HA1s). Keys match case-insensitively, so
	// "Users" and "users" both land here.
	var probe struct{ Users map[string]json.RawMessage }
	if err := json.Unmarshal(raw.Access, &probe); err != nil {
		return fmt.Errorf("access: %w", err)
	}
	legacy := false
	for _, v := range probe.Users {
		legacy = legacy || bytes.HasPrefix(bytes.TrimSpace(v), []byte(`"`))
	}
	if !legacy {
		return json.Unmarshal(raw.Access, &r.Access)
	}
	var old legacyAccess
	if err := json.Unmarshal(raw.Access, &old); err != nil {
		return fmt.Errorf("access: %w", err)
	}
	realm := old.Realm
	if _, err := HashPasswords(realm, nil); err != nil || realm == "" {
		r.badRealm = realm
		realm = r.Name
	}
	users := make(map[string]HA1, len(old.Users))
	names := make([]string, 0, len(old.Users))
	for name := range old.Users {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		var pass string
		if err := json.Unmarshal(old.Users[name], &pass); err != nil {
			r.dropped = append(r.dropped, droppedUser{name, "its password is not a string"})
			continue
		}
		one, err := HashPasswords(realm, map[string]string{name: pass})
		if err != nil {
			// The error names the user, never the password.
			r.dropped = append(r.dropped, droppedUser{name, err.Error()})
			continue
		}
		users[name] = one[name]
	}
	r.Access = Access{Mode: old.Mode, Allow: old.Allow, Users: users, Realm: realm}
	r.migrated = true
	return nil
}

// droppedUser is a digest user a migration could not hash, and why.
type droppedUser struct{ name, why string }
