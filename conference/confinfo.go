package conference

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
)

// The conference event package's document (RFC 4575 §5):
// application/conference-info+xml, as mcc writes it in NOTIFYs and as a
// subscriber reads it (Apply). Elements keep the schema's order
// (testdata/conference-info.xsd, RFC 4575 §5.3), and mcc's own extension,
// where each stream is (Multicast), is in mcc's namespace where the schema
// takes elements of others.

// Namespaces and the media type of the package.
const (
	ConferenceInfoNS   = "urn:ietf:params:xml:ns:conference-info"
	MCCInfoNS          = "urn:x-mcc:params:xml:ns:conference-info"
	ConferenceInfoType = "application/conference-info+xml"
)

// The values of the state attribute (RFC 4575 §5.1).
const (
	StateFull    = "full"
	StatePartial = "partial"
	StateDeleted = "deleted"
)

// maxConferenceInfo bounds a document ParseConferenceInfo reads.
const maxConferenceInfo = 1 << 20

// ConferenceInfo is the conference-info element (RFC 4575 §5.1).
type ConferenceInfo struct {
	XMLName         xml.Name               `xml:"urn:ietf:params:xml:ns:conference-info conference-info"`
	Entity          string                 `xml:"entity,attr"`
	State           string                 `xml:"state,attr,omitempty"`
	Version         uint32                 `xml:"version,attr,omitempty"`
	Description     *ConferenceDescription `xml:"conference-description,omitempty"`
	ConferenceState *ConferenceState       `xml:"conference-state,omitempty"`
	Users           *Users                 `xml:"users,omitempty"`
}

// ConferenceDescription is conference-description (RFC 4575 §5.3).
type ConferenceDescription struct {
	DisplayText    string          `xml:"display-text,omitempty"`
	Subject        string          `xml:"subject,omitempty"`
	FreeText       string          `xml:"free-text,omitempty"`
	Keywords       string          `xml:"keywords,omitempty"`
	ConfURIs       *URIs           `xml:"conf-uris,omitempty"`
	ServiceURIs    *URIs           `xml:"service-uris,omitempty"`
	MaxUserCount   *uint32         `xml:"maximum-user-count,omitempty"`
	AvailableMedia *AvailableMedia `xml:"available-media,omitempty"`
}

// URIs is a uris-type list, such as conf-uris (RFC 4575 §5.3.1).
type URIs struct {
	State   string     `xml:"state,attr,omitempty"`
	Entries []URIEntry `xml:"entry"`
}

// URIEntry is one entry of URIs.
type URIEntry struct {
	URI         string `xml:"uri"`
	DisplayText string `xml:"display-text,omitempty"`
	Purpose     string `xml:"purpose,omitempty"`
}

// AvailableMedia lists the conference's streams (RFC 4575 §5.3.4).
type AvailableMedia struct {
	Entries []Medium `xml:"entry"`
}

// Medium is one stream of the conference, by its label.
type Medium struct {
	Label       string     `xml:"label,attr"`
	DisplayText string     `xml:"display-text,omitempty"`
	Type        string     `xml:"type"`
	Status      string     `xml:"status,omitempty"`
	Multicast   *Multicast `xml:"urn:x-mcc:params:xml:ns:conference-info multicast,omitempty"`
}

// Multicast is mcc's extension: where a stream is sent (its group and
// port, TTL for IPv4, SSM sources) and the version of the session's
// description it is in.
type Multicast struct {
	Group   string `xml:"group,attr"`
	Port    uint16 `xml:"port,attr"`
	TTL     uint8  `xml:"ttl,attr,omitempty"`
	Source  string `xml:"source,attr,omitempty"`
	Version uint64 `xml:"version,attr,omitempty"`
}

// ConferenceState is conference-state (RFC 4575 §5.5).
type ConferenceState struct {
	UserCount *uint32 `xml:"user-count,omitempty"`
	Active    *bool   `xml:"active,omitempty"`
	Locked    *bool   `xml:"locked,omitempty"`
}

// Users is the users element (RFC 4575 §5.6).
type Users struct {
	State string `xml:"state,attr,omitempty"`
	Users []User `xml:"user"`
}

// User is one user, by its entity (an AOR).
type User struct {
	Entity      string     `xml:"entity,attr"`
	State       string     `xml:"state,attr,omitempty"`
	DisplayText string     `xml:"display-text,omitempty"`
	Roles       *Roles     `xml:"roles,omitempty"`
	Endpoints   []Endpoint `xml:"endpoint"`
}

// Roles are a user's roles (RFC 4575 §5.6.2).
type Roles struct {
	Entries []string `xml:"entry"`
}

// Endpoint is one of a user's endpoints: its dialog with the focus
// (RFC 4575 §5.7).
type Endpoint struct {
	Entity              string     `xml:"entity,attr"`
	State               string     `xml:"state,attr,omitempty"`
	DisplayText         string     `xml:"display-text,omitempty"`
	Referred            *Execution `xml:"referred,omitempty"`
	Status              string     `xml:"status,omitempty"`
	JoiningMethod       string     `xml:"joining-method,omitempty"`
	JoiningInfo         *Execution `xml:"joining-info,omitempty"`
	DisconnectionMethod string     `xml:"disconnection-method,omitempty"`
	DisconnectionInfo   *Execution `xml:"disconnection-info,omitempty"`
	Media               []Media    `xml:"media"`
	CallInfo            *CallInfo  `xml:"call-info,omitempty"`
}

// Execution is execution-type: when, why and by whom (RFC 4575 §5.7.2).
type Execution struct {
	When   string `xml:"when,omitempty"` // xs:dateTime
	Reason string `xml:"reason,omitempty"`
	By     string `xml:"by,omitempty"`
}

// Media is one stream of an endpoint, by its id (RFC 4575 §5.7.4).
type Media struct {
	ID          string     `xml:"id,attr"`
	DisplayText string     `xml:"display-text,omitempty"`
	Type        string     `xml:"type,omitempty"`
	Label       string     `xml:"label,omitempty"`
	SrcID       string     `xml:"src-id,omitempty"`
	Status      string     `xml:"status,omitempty"`
	Multicast   *Multicast `xml:"urn:x-mcc:params:xml:ns:conference-info multicast,omitempty"`
}

// CallInfo identifies the endpoint's SIP dialog (RFC 4575 §5.7.5).
type CallInfo struct {
	SIP *SIPDialogID `xml:"sip,omitempty"`
}

// SIPDialogID is a dialog's Call-ID and the tags of its From and To.
type SIPDialogID struct {
	DisplayText string `xml:"display-text,omitempty"`
	CallID      string `xml:"call-id"`
	FromTag     string `xml:"from-tag"`
	ToTag       string `xml:"to-tag"`
}

// Marshal writes the document, with its XML declaration.
func (ci *ConferenceInfo) Marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", " ")
	if err := enc.Encode(ci); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// ParseConferenceInfo reads a document: a conference-info element of RFC
// 4575's namespace, with an entity, of at most 1 MiB.
func ParseConferenceInfo(b []byte) (*ConferenceInfo, error) {
	if len(b) > maxConferenceInfo {
		return nil, fmt.Errorf("conference-info: %d bytes, more than %d", len(b), maxConferenceInfo)
	}
	var ci ConferenceInfo
	if err := xml.Unmarshal(b, &ci); err != nil {
		return nil, fmt.Errorf("conference-info: %w", err)
	}
	if ci.Entity == "" {
		return nil, errors.New("conference-info: no entity (RFC 4575 §5.1)")
	}
	switch ci.State {
	case "", StateFull, StatePartial, StateDeleted:
	default:
		return nil, fmt.Errorf("conference-info: state %q is not full, partial or deleted", ci.State)
	}
	return &ci, nil
}

// Errors of Apply.
var (
	// ErrVersionGap: a partial document does not follow the one held
	// (RFC 4575 §4.6): the subscriber refreshes its subscription, and
	// the NOTIFY that answers has full state.
	ErrVersionGap = errors.New("conference-info: a partial document whose version does not follow: refresh for full state")
	// ErrStaleVersion: a document no newer than the one held, which is
	// discarded (RFC 4575 §4.6).
	ErrStaleVersion = errors.New("conference-info: a document no newer than the one held")
)

// Apply does with document n what a subscriber does with a NOTIFY's body
// (RFC 4575 §4.6): full state replaces what ci holds; a partial document
// must be the next version, and changes what it names: an element with
// state "full" is replaced whole, "deleted" is removed, "partial" has its
// children merged the same way; elements are matched by their keys (user
// and endpoint by entity, media by id, available-media entries by label,
// URI entries by uri); an element without a state attribute replaces the
// one it names, and a present child of conference-description or
// conference-state replaces its counterpart. A document whose conference
// state is "deleted" leaves ci with no state.
func (ci *ConferenceInfo) Apply(n *ConferenceInfo) error {
	if ci.Entity != "" && n.Entity != ci.Entity {
		return fmt.Errorf("conference-info: a document of %q, not %q", n.Entity, ci.Entity)
	}
	held := ci.Entity != ""
	if held && n.Version <= ci.Version {
		return fmt.Errorf("%w: version %d, held %d", ErrStaleVersion, n.Version, ci.Version)
	}
	switch n.State {
	case "", StateFull:
		*ci = *n.clone()
		ci.State = StateFull
		return nil
	case StateDeleted:
		*ci = ConferenceInfo{Entity: n.Entity, State: StateDeleted, Version: n.Version}
		return nil
	}
	if !held || n.Version != ci.Version+1 {
		return fmt.Errorf("%w: version %d after %d", ErrVersionGap, n.Version, ci.Version)
	}
	n = n.clone()
	ci.Version = n.Version
	if d := n.Description; d != nil {
		if ci.Description == nil {
			ci.Description = &ConferenceDescription{}
		}
		mergeDescription(ci.Description, d)
	}
	if s := n.ConferenceState; s != nil {
		if ci.ConferenceState == nil {
			ci.ConferenceState = &ConferenceState{}
		}
		o := ci.ConferenceState
		if s.UserCount != nil {
			o.UserCount = s.UserCount
		}
		if s.Active != nil {
			o.Active = s.Active
		}
		if s.Locked != nil {
			o.Locked = s.Locked
		}
	}
	if u := n.Users; u != nil {
		ci.Users = mergeUsers(ci.Users, u)
	}
	return nil
}

func mergeDescription(o, d *ConferenceDescription) {
	if d.DisplayText != "" {
		o.DisplayText = d.DisplayText
	}
	if d.Subject != "" {
		o.Subject = d.Subject
	}
	if d.FreeText != "" {
		o.FreeText = d.FreeText
	}
	if d.Keywords != "" {
		o.Keywords = d.Keywords
	}
	if d.ConfURIs != nil {
		o.ConfURIs = mergeURIs(o.ConfURIs, d.ConfURIs)
	}
	if d.ServiceURIs != nil {
		o.ServiceURIs = mergeURIs(o.ServiceURIs, d.ServiceURIs)
	}
	if d.MaxUserCount != nil {
		o.MaxUserCount = d.MaxUserCount
	}
	if d.AvailableMedia != nil {
		// No state attribute: merged by label, each entry replaced whole.
		if o.AvailableMedia == nil {
			o.AvailableMedia = &AvailableMedia{}
		}
		for _, e := range d.AvailableMedia.Entries {
			i := slices.IndexFunc(o.AvailableMedia.Entries, func(x Medium) bool { return x.Label == e.Label })
			if i < 0 {
				o.AvailableMedia.Entries = append(o.AvailableMedia.Entries, e)
			} else {
				o.AvailableMedia.Entries[i] = e
			}
		}
	}
}

func mergeURIs(o, n *URIs) *URIs {
	switch {
	case n.State == StateDeleted:
		return nil
	case o == nil || n.State == "" || n.State == StateFull:
		return n
	}
	for _, e := range n.Entries {
		i := slices.IndexFunc(o.Entries, func(x URIEntry) bool { return x.URI == e.URI })
		if i < 0 {
			o.Entries = append(o.Entries, e)
		} else {
			o.Entries[i] = e
		}
	}
	return o
}

func mergeUsers(o, n *Users) *Users {
	switch {
	case n.State == StateDeleted:
		return nil
	case o == nil || n.State == "" || n.State == StateFull:
		n.State = ""
		return n
	}
	o.Users = mergeEntries(o.Users, n.Users, func(u *User) (string, *string) { return u.Entity, &u.State }, mergeUser)
	return o
}

// mergeEntries applies the entries of a partial document to list, by
// entity (RFC 4575 §4.6): a deleted one goes, a new one is added, a
// partial one is merged into its own, a full one replaces it.
func mergeEntries[T any](list, in []T, key func(*T) (entity string, state *string), merge func(o, n *T)) []T {
	for _, n := range in {
		entity, state := key(&n)
		i := slices.IndexFunc(list, func(x T) bool { e, _ := key(&x); return e == entity })
		switch {
		case *state == StateDeleted:
			if i >= 0 {
				list = slices.Delete(list, i, i+1)
			}
		case i < 0:
			*state = ""
			list = append(list, n)
		case *state == StatePartial:
			merge(&list[i], &n)
		default:
			*state = ""
			list[i] = n
		}
	}
	return list
}

func mergeUser(o, u *User) {
	if u.DisplayText != "" {
		o.DisplayText = u.DisplayText
	}
	if u.Roles != nil {
		o.Roles = u.Roles
	}
	o.Endpoints = mergeEntries(o.Endpoints, u.Endpoints, func(e *Endpoint) (string, *string) { return e.Entity, &e.State }, mergeEndpoint)
}

func mergeEndpoint(o, e *Endpoint) {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&o.DisplayText, e.DisplayText)
	set(&o.Status, e.Status)
	set(&o.JoiningMethod, e.JoiningMethod)
	set(&o.DisconnectionMethod, e.DisconnectionMethod)
	for _, x := range []struct{ dst, v **Execution }{{&o.Referred, &e.Referred}, {&o.JoiningInfo, &e.JoiningInfo}, {&o.DisconnectionInfo, &e.DisconnectionInfo}} {
		if *x.v != nil {
			*x.dst = *x.v
		}
	}
	if e.CallInfo != nil {
		o.CallInfo = e.CallInfo
	}
	for _, m := range e.Media {
		i := slices.IndexFunc(o.Media, func(x Media) bool { return x.ID == m.ID })
		if i < 0 {
			o.Media = append(o.Media, m)
		} else {
			o.Media[i] = m
		}
	}
}

// clone copies the document deeply, by its own encoding: documents are
// small, and a copy shares nothing with what the caller goes on editing.
func (ci *ConferenceInfo) clone() *ConferenceInfo {
	b, err := xml.Marshal(ci)
	if err != nil {
		panic(fmt.Sprintf("conference-info: clone: %v", err)) // every field marshals
	}
	var out ConferenceInfo
	if err := xml.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("conference-info: clone: %v", err))
	}
	return &out
}
