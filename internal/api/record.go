package api

import (
	"bytes"
	"encoding/json"
	"fmt"

	"mcc/conference"
)

// legacyAccess is conference.Access as versions before HA1s saved it: no
// JSON tags, and each digest user's password in clear.
type legacyAccess struct {
	Mode  conference.AccessMode
	Allow []string
	Users map[string]string
	Realm string
}

// UnmarshalJSON reads a record. A record saved by a version that kept
// digest passwords in clear has them hashed at once into HA1s, in its
// realm (the conference name when it had none), and is marked so that
// Restore saves it again: the passwords leave the store at the first
// restart.
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
	if realm == "" {
		realm = r.Name
	}
	users, err := conference.HashPasswords(realm, old.Users)
	if err != nil {
		return fmt.Errorf("access: %w", err)
	}
	r.Access = conference.Access{Mode: old.Mode, Allow: old.Allow, Users: users, Realm: realm}
	r.migrated = true
	return nil
}
