package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"mcc/conference"
)

// legacyAccess is conference.Access as versions before HA1s saved it: no
// JSON tags, and each digest user's password in clear. Users stay raw, so
// that one odd value costs its user, not the record.
type legacyAccess struct {
	Mode  conference.AccessMode
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
	if _, err := conference.HashPasswords(realm, nil); err != nil || realm == "" {
		r.badRealm = realm
		realm = r.Name
	}
	users := make(map[string]conference.HA1, len(old.Users))
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
		one, err := conference.HashPasswords(realm, map[string]string{name: pass})
		if err != nil {
			// The error names the user, never the password.
			r.dropped = append(r.dropped, droppedUser{name, err.Error()})
			continue
		}
		users[name] = one[name]
	}
	r.Access = conference.Access{Mode: old.Mode, Allow: old.Allow, Users: users, Realm: realm}
	r.migrated = true
	return nil
}

// droppedUser is a digest user a migration could not hash, and why.
type droppedUser struct{ name, why string }
