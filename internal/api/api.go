// Package api is mcc's HTTP control API (/v1, JSON, bearer token) and the
// client the mcc command uses to drive a running "mcc serve". It is the
// only control channel into the daemon.
package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mcc/conference"
	"mcc/multicast"
	"mcc/multicast/sap"
	"mcc/sdp"
)

// TokenFile and AddrFile are written in the data directory by the daemon:
// the bearer token (mode 0600) and the API's address.
const (
	TokenFile = "token"
	AddrFile  = "api.addr"
)

// Error is the body of every error response.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Stable error codes.
const (
	CodeUnauthorized  = "unauthorized"
	CodeBadRequest    = "bad_request"
	CodeNotFound      = "not_found"
	CodeConflict      = "conflict"
	CodeUnavailable   = "unavailable"
	CodeNotModifiable = "not_modifiable"
	CodeInternal      = "internal"
)

// SessionRequest creates a session and its conference, or with Heard
// imports a session heard over SAP.
type SessionRequest struct {
	Name  string `json:"name"`
	Heard string `json:"heard,omitempty"` // the ID of a session in the SAP directory: import it
	// OnSAPEnd is, with Heard, what the conference does when the
	// announcer deletes the session or stops announcing it: "end" (the
	// default: BYE to everyone) or "keep". Changes it announces are
	// offered to everyone either way.
	OnSAPEnd string         `json:"on_sap_end,omitempty"`
	Info     string         `json:"info,omitempty"`
	Family   string         `json:"family,omitempty"` // "4" (default) or "6"
	Scope    string         `json:"scope,omitempty"`  // default "local"
	Pool     string         `json:"pool,omitempty"`   // instead of family and scope
	Type     string         `json:"type,omitempty"`   // default "broadcast"
	Media    []string       `json:"media"`            // audio, video, text
	Sources  []string       `json:"sources,omitempty"`
	Access   *AccessRequest `json:"access,omitempty"`
	// SAP names the announce profiles the session goes out with (see
	// sap.Profiles); empty means the daemon's --sap-profile.
	SAP []string `json:"sap,omitempty"`
	// Start, Stop and Repeat schedule the session (RFC 8866 §5.9-§5.11,
	// see sdp.ParseSchedule): RFC 3339 times, or local times
	// ("2026-12-07 10:00") in Timezone (an IANA name; default UTC);
	// Repeat is "weekly 1h", "daily 90m" or an r= line's fields ("7d 1h
	// 0"). A scheduled session holds its groups, is announced and takes
	// calls only from shortly before each start to its end.
	Start    string `json:"start,omitempty"`
	Stop     string `json:"stop,omitempty"`
	Repeat   string `json:"repeat,omitempty"`
	Timezone string `json:"timezone,omitempty"`
	// Invite is who mcc dials at each start of the schedule, or at once
	// for a session with none.
	Invite []InviteeRequest `json:"invite,omitempty"`
}

// InviteeRequest is one of a session's invite list.
type InviteeRequest struct {
	URI  string `json:"uri"`
	Role string `json:"role,omitempty"` // speaker, listener or none
}

// invitees reads an invite list.
func invitees(reqs []InviteeRequest) ([]conference.Invitee, error) {
	if len(reqs) > maxURIs {
		return nil, badf("invite: %d invitees, more than %d", len(reqs), maxURIs)
	}
	var out []conference.Invitee
	for i, in := range reqs {
		name := in.Role
		if name == "none" {
			name = ""
		}
		role, err := conference.ParseRole(name)
		if err != nil {
			return nil, badf("invite[%d]: role %q: want speaker, listener or none", i, in.Role)
		}
		if err := checkLine(fmt.Sprintf("invite[%d].uri", i), in.URI, maxURI); err != nil {
			return nil, err
		}
		out = append(out, conference.Invitee{URI: in.URI, Role: role})
	}
	return out, nil
}

// schedule reads a session request's start, stop, repeat and timezone.
func schedule(req SessionRequest) (sdp.Schedule, error) {
	if req.Start == "" && req.Stop == "" && req.Repeat == "" {
		if req.Timezone != "" {
			return sdp.Schedule{}, badf("timezone: only with start, stop or repeat")
		}
		return sdp.Schedule{}, nil
	}
	for _, f := range []struct{ name, v string }{{"start", req.Start}, {"stop", req.Stop}, {"repeat", req.Repeat}, {"timezone", req.Timezone}} {
		if err := checkLine(f.name, f.v, maxID); err != nil {
			return sdp.Schedule{}, err
		}
	}
	loc := time.UTC
	if req.Timezone != "" {
		var err error
		if loc, err = time.LoadLocation(req.Timezone); err != nil || req.Timezone == "Local" {
			return sdp.Schedule{}, badf("timezone %q: want an IANA time zone name (Europe/Berlin) or UTC", req.Timezone)
		}
	}
	sch, err := sdp.ParseSchedule(req.Start, req.Stop, req.Repeat, loc)
	if err != nil {
		return sdp.Schedule{}, badf("%v", err)
	}
	if sch.IsZero() {
		return sdp.Schedule{}, badf("start: a schedule needs a start")
	}
	return sch, nil
}

// AccessRequest says who may dial in. Allow is matched against the From
// header, which the caller writes: Sources (addresses or prefixes) ties
// dial-ins, in every mode, to the networks their packets come from. Users
// maps names to passwords; mcc keeps only their HA1s, in the realm the
// conference name, and no response carries them.
type AccessRequest struct {
	Mode    string            `json:"mode"` // anyone, allow, digest
	Allow   []string          `json:"allow,omitempty"`
	Users   map[string]string `json:"users,omitempty"`
	Sources []string          `json:"sources,omitempty"`
	// Moderators may REFER to the focus (RFC 4579 §5.5): digest user
	// names, URIs (user@host) or domains.
	Moderators []string `json:"moderators,omitempty"`
}

// InviteRequest invites participants, each with Role when it is set
// (speaker or listener).
type InviteRequest struct {
	URIs []string `json:"uris"`
	Role string   `json:"role,omitempty"`
}

// ParticipantRequest changes a participant: its role (speaker, listener,
// or "none").
type ParticipantRequest struct {
	Role *string `json:"role"`
}

// StreamRequest adds a stream or changes its direction.
type StreamRequest struct {
	Kind      string `json:"kind,omitempty"`
	Direction string `json:"direction,omitempty"`
}

// Server serves the API.
type Server struct {
	Controller *conference.Controller
	Allocator  *multicast.Allocator
	Token      string
	Logger     *slog.Logger
	// Directory is the SAP directory; nil when mcc serve does not listen
	// for SAP.
	Directory *sap.Directory
	// DefaultTTL is the TTL an imported IPv4 group without one is taken
	// at (sdp.Liberal); 0 means sdp.DefaultTTL.
	DefaultTTL uint8
	// ChangeTimeout bounds how long a delete waits for its BYEs to be
	// answered (those left go on in the background). Zero means 60 s.
	ChangeTimeout time.Duration

	ui uiSessions // the dashboard's sign-ins (dashboard.go)
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	// /metrics, like /healthz, names no secret and needs no token: the API
	// listens on loopback for the local Prometheus.
	mux.HandleFunc("GET /metrics", s.metrics)
	v1 := http.NewServeMux()
	v1.HandleFunc("GET /v1/sessions", s.listSessions)
	v1.HandleFunc("POST /v1/sessions", s.createSession)
	v1.HandleFunc("GET /v1/sessions/{name}", s.getSession)
	v1.HandleFunc("GET /v1/sessions/{name}/sdp", s.getSDP)
	v1.HandleFunc("DELETE /v1/sessions/{name}", s.deleteSession)
	v1.HandleFunc("GET /v1/sessions/{name}/participants", s.listParticipants)
	v1.HandleFunc("POST /v1/sessions/{name}/participants", s.invite)
	v1.HandleFunc("DELETE /v1/sessions/{name}/participants/{id}", s.removeParticipant)
	v1.HandleFunc("PATCH /v1/sessions/{name}/participants/{id}", s.patchParticipant)
	v1.HandleFunc("PUT /v1/sessions/{name}/invitees", s.putInvitees)
	v1.HandleFunc("POST /v1/sessions/{name}/streams", s.addStream)
	v1.HandleFunc("DELETE /v1/sessions/{name}/streams/{index}", s.removeStream)
	v1.HandleFunc("PATCH /v1/sessions/{name}/streams/{index}", s.patchStream)
	v1.HandleFunc("GET /v1/sessions/{name}/changes/{version}", s.getChange)
	v1.HandleFunc("POST /v1/sessions/{name}/reception", s.postReception)
	v1.HandleFunc("GET /v1/sessions/{name}/reception", s.getReception)
	v1.HandleFunc("GET /v1/alerts", s.listAlerts)
	v1.HandleFunc("GET /v1/leases", s.listLeases)
	v1.HandleFunc("POST /v1/leases", s.allocate)
	v1.HandleFunc("PATCH /v1/leases/{group}", s.renew)
	v1.HandleFunc("DELETE /v1/leases/{group}", s.release)
	v1.HandleFunc("GET /v1/pools", s.listPools)
	v1.HandleFunc("GET /v1/directory", s.listDirectory)
	v1.HandleFunc("GET /v1/events", s.events)
	mux.Handle("/v1/", s.auth(v1))
	s.dashboard(mux)
	return mux
}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.Token)) != 1 {
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, "a valid bearer token is required (see the token file in the data directory)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]*Error{"error": {Code: code, Message: msg}})
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badf("request body: %v", err)
	}
	return nil
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) {
	list := s.Controller.List()
	if list == nil {
		list = []conference.Info{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	in, err := s.Controller.Get(r.PathValue("name"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, in)
}

func (s *Server) getSDP(w http.ResponseWriter, r *http.Request) {
	desc, err := s.Controller.Session(r.PathValue("name"))
	if err != nil {
		s.fail(w, err)
		return
	}
	b, err := desc.Marshal()
	if err != nil {
		writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.Write(b)
}

// createSession makes a session from options (JSON) or imports one
// (application/sdp, with ?name=), then its conference.
func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/sdp") {
		s.importSession(w, r)
		return
	}
	var req SessionRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if err := s.checkNewName(req.Name); err != nil {
		s.fail(w, err)
		return
	}
	if req.Heard != "" {
		if err := checkLine("heard", req.Heard, maxID); err != nil {
			s.fail(w, err)
			return
		}
		if len(req.Media) > 0 || len(req.Sources) > 0 || len(req.SAP) > 0 || req.Scope != "" || req.Pool != "" || req.Family != "" ||
			req.Info != "" || req.Type != "" || req.Start != "" || req.Stop != "" || req.Repeat != "" || req.Timezone != "" || len(req.Invite) > 0 {
			s.fail(w, badf("heard: the session is the announcer's: give no media, sources, sap, scope, pool, family, info, type, schedule or invite list with it"))
			return
		}
		access, err := accessOf(req.Name, req.Access)
		if err != nil {
			s.fail(w, err)
			return
		}
		s.importHeard(w, req, access)
		return
	}
	if req.OnSAPEnd != "" {
		s.fail(w, badf("on_sap_end: only with heard, for a session heard over SAP"))
		return
	}
	access, err := accessOf(req.Name, req.Access)
	if err != nil {
		s.fail(w, err)
		return
	}
	pool := req.Pool
	if pool == "" {
		fam, err := multicast.ParseFamily(cmpOr(req.Family, "4"))
		if err != nil {
			s.fail(w, badf("%v", err))
			return
		}
		p, err := multicast.ScopePool(fam, multicast.Scope(cmpOr(req.Scope, "local")), multicast.ScopeOptions{})
		if err != nil {
			s.fail(w, badf("%v", err))
			return
		}
		if _, ok := s.Allocator.Pool(p.Name); !ok {
			s.fail(w, badf("pool %s is not configured on this daemon", p.Name))
			return
		}
		pool = p.Name
	}
	spec := sdp.SessionSpec{Name: req.Name, Info: req.Info, Pool: pool, Type: req.Type}
	if len(req.Media) == 0 {
		s.fail(w, badf("media: name at least one stream (audio, video or text)"))
		return
	}
	for _, k := range req.Media {
		ms, err := sdp.ParseMediaSpec(k)
		if err != nil {
			s.fail(w, badf("%v", err))
			return
		}
		spec.Media = append(spec.Media, ms)
	}
	for _, src := range req.Sources {
		a, err := netip.ParseAddr(src)
		if err != nil {
			s.fail(w, badf("source %q: want an IP address", src))
			return
		}
		spec.Sources = append(spec.Sources, a)
	}
	if len(req.SAP) > 0 {
		if len(req.SAP) > len(sap.Profiles) {
			s.fail(w, badf("sap: %d profiles, more than the %d there are", len(req.SAP), len(sap.Profiles)))
			return
		}
		ps, err := sap.ProfilesNamed(req.SAP)
		if err != nil {
			s.fail(w, badf("sap: %v", err))
			return
		}
		for _, p := range ps {
			spec.Announce = append(spec.Announce, p.Name)
		}
	}
	if spec.Schedule, err = schedule(req); err != nil {
		s.fail(w, err)
		return
	}
	list, err := invitees(req.Invite)
	if err != nil {
		s.fail(w, err)
		return
	}
	in, err := s.Controller.CreateScheduled(req.Name, spec, access, list)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, in)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// checkNewName refuses a name that cannot name a conference, or names
// one already, before a body is read for it (the Controller checks again).
func (s *Server) checkNewName(name string) error {
	if err := conference.ValidName(name); err != nil {
		return err
	}
	if _, err := s.Controller.Get(name); err == nil {
		return fmt.Errorf("%w: %q", conference.ErrExists, name)
	}
	return nil
}

// accessOf turns the access of a request to create conference name into
// the conference's Access: digest passwords become HA1s at once, in the
// realm the conference name (fixed from now on), and are never kept.
func accessOf(name string, a *AccessRequest) (conference.Access, error) {
	if a == nil {
		return conference.Access{}, nil
	}
	var out conference.Access
	switch {
	case len(a.Sources) > maxEntries:
		return conference.Access{}, badf("access: %d sources, more than %d", len(a.Sources), maxEntries)
	case len(a.Allow) > maxEntries:
		return conference.Access{}, badf("access: %d allow entries, more than %d", len(a.Allow), maxEntries)
	case len(a.Users) > maxEntries:
		return conference.Access{}, badf("access: %d users, more than %d", len(a.Users), maxEntries)
	case len(a.Moderators) > maxEntries:
		return conference.Access{}, badf("access: %d moderators, more than %d", len(a.Moderators), maxEntries)
	}
	for _, m := range a.Moderators {
		if err := checkLine("access: moderator", m, maxURI); err != nil {
			return conference.Access{}, err
		}
		if strings.TrimSpace(m) == "" {
			return conference.Access{}, badf("access: an empty moderator: want a digest user, a SIP URI (sip:chair@example.org) or a domain")
		}
		out.Moderators = append(out.Moderators, strings.TrimSpace(m))
	}
	for _, e := range a.Allow {
		if err := checkLine("access: allow entry", e, maxURI); err != nil {
			return conference.Access{}, err
		}
		if strings.TrimSpace(e) == "" {
			return conference.Access{}, badf("access: an empty allow entry: want a SIP URI (sip:alice@example.org) or a domain")
		}
	}
	for user, pass := range a.Users {
		if err := checkLine("access: user name", user, maxID); err != nil {
			return conference.Access{}, err
		}
		if len(pass) > maxSecret {
			return conference.Access{}, badf("access: the password of %q: %d bytes, more than %d", user, len(pass), maxSecret)
		}
	}
	for _, src := range a.Sources {
		p, err := netip.ParsePrefix(src)
		if err != nil {
			addr, aerr := netip.ParseAddr(src)
			if aerr != nil || addr.Zone() != "" {
				return conference.Access{}, badf("access: source %q: want an address or a prefix (192.0.2.0/24)", src)
			}
			p = netip.PrefixFrom(addr, addr.BitLen())
		}
		out.Sources = append(out.Sources, p.Masked())
	}
	switch a.Mode {
	case "", "anyone":
		if len(a.Allow) > 0 || len(a.Users) > 0 {
			return conference.Access{}, badf("access: allow and users need mode allow or digest")
		}
		out.Mode = conference.Anyone
	case "allow":
		if len(a.Allow) == 0 {
			return conference.Access{}, badf("access: mode allow needs allow (URIs or domains)")
		}
		out.Mode, out.Allow = conference.AllowList, a.Allow
	case "digest":
		if len(a.Users) == 0 {
			return conference.Access{}, badf("access: digest needs users")
		}
		users, err := conference.HashPasswords(name, a.Users)
		if err != nil {
			return conference.Access{}, badf("access: %v", err)
		}
		out.Mode, out.Users, out.Realm = conference.Digest, users, name
	default:
		return conference.Access{}, badf("access mode %q: want anyone, allow or digest", a.Mode)
	}
	return out, nil
}

func (s *Server) importSession(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	body, err := io.ReadAll(io.LimitReader(r.Body, sdp.MaxSize+1))
	if err != nil {
		s.fail(w, badf("body: %v", err))
		return
	}
	if err := s.checkNewName(name); err != nil {
		s.fail(w, err)
		return
	}
	desc, err := sdp.Liberal(s.DefaultTTL).Parse(body)
	if err != nil {
		s.fail(w, err)
		return
	}
	in, err := s.Controller.Import(name, desc, conference.Access{})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, imported(in, desc))
}

// Imported is the answer to an import: the conference, and what its
// description has that RFC 8866 does not allow, and what mcc took it as.
type Imported struct {
	conference.Info
	Warnings []string `json:"warnings,omitempty"`
}

func imported(in conference.Info, desc *sdp.Session) Imported {
	out := Imported{Info: in}
	for _, w := range desc.Warnings {
		out.Warnings = append(out.Warnings, w.String())
	}
	return out
}

func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.changeTimeout())
	defer cancel()
	if err := s.Controller.Delete(ctx, r.PathValue("name")); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) changeTimeout() time.Duration {
	if s.ChangeTimeout == 0 {
		return 60 * time.Second
	}
	return s.ChangeTimeout
}

func (s *Server) listParticipants(w http.ResponseWriter, r *http.Request) {
	ps, err := s.Controller.Participants(r.PathValue("name"))
	if err != nil {
		s.fail(w, err)
		return
	}
	if ps == nil {
		ps = []conference.Participant{}
	}
	writeJSON(w, http.StatusOK, ps)
}

func (s *Server) invite(w http.ResponseWriter, r *http.Request) {
	var req InviteRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if len(req.URIs) == 0 {
		s.fail(w, badf("uris: name at least one participant, such as sip:alice@example.org"))
		return
	}
	if len(req.URIs) > maxURIs {
		s.fail(w, badf("uris: %d participants, more than %d in one request", len(req.URIs), maxURIs))
		return
	}
	for _, u := range req.URIs {
		// The URI goes into the Request-URI and the To header.
		if err := checkLine("uri", u, maxURI); err != nil {
			s.fail(w, err)
			return
		}
	}
	role, err := conference.ParseRole(req.Role)
	if err != nil {
		s.fail(w, badf("role: %q: want speaker or listener", req.Role))
		return
	}
	ps, err := s.Controller.InviteAs(r.PathValue("name"), role, req.URIs...)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, ps)
}

// patchParticipant gives a participant a role, or takes it back: its
// offer alone changes, by re-INVITE.
func (s *Server) patchParticipant(w http.ResponseWriter, r *http.Request) {
	var req ParticipantRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if req.Role == nil {
		s.fail(w, badf("role: give speaker, listener or none"))
		return
	}
	name := *req.Role
	if name == "none" {
		name = ""
	}
	role, err := conference.ParseRole(name)
	if err != nil {
		s.fail(w, badf("role: %q: want speaker, listener or none", *req.Role))
		return
	}
	p, err := s.Controller.SetRole(r.PathValue("name"), r.PathValue("id"), role)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// putInvitees replaces a session's invite list: [{"uri":..., "role":...}].
func (s *Server) putInvitees(w http.ResponseWriter, r *http.Request) {
	var req []InviteeRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	list, err := invitees(req)
	if err != nil {
		s.fail(w, err)
		return
	}
	name := r.PathValue("name")
	if err := s.Controller.SetInvitees(name, list); err != nil {
		s.fail(w, err)
		return
	}
	in, err := s.Controller.Get(name)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, in)
}

func (s *Server) removeParticipant(w http.ResponseWriter, r *http.Request) {
	if err := s.Controller.Remove(r.PathValue("name"), r.PathValue("id")); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) addStream(w http.ResponseWriter, r *http.Request) {
	var req StreamRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if req.Direction != "" {
		if err := checkDirection(req.Direction); err != nil {
			s.fail(w, err)
			return
		}
	}
	ctx, cancel, err := waitCtx(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	defer cancel()
	ms, err := sdp.ParseMediaSpec(req.Kind)
	if err != nil {
		s.fail(w, badf("kind: %v", err))
		return
	}
	ms.Direction = sdp.Direction(req.Direction)
	ch, err := s.Controller.AddStream(ctx, r.PathValue("name"), ms)
	writeChange(s, w, ch, err)
}

// maxWait bounds the wait parameter of a change.
const maxWait = 10 * time.Minute

// waitCtx is the context a change waits under: the request's, ended at
// once when the request has no wait parameter (the change is saved and
// goes on: 202), else after the wait it gives, as a Go duration ("10s")
// or in seconds.
func waitCtx(r *http.Request) (context.Context, context.CancelFunc, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		ctx, cancel := context.WithCancel(r.Context())
		cancel()
		return ctx, func() {}, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseUint(v, 10, 32)
		if nerr != nil {
			return nil, nil, badf("wait %q: want a duration such as 10s, or seconds", v)
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 || d > maxWait {
		return nil, nil, badf("wait %q: want from 0 to %v", v, maxWait)
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	return ctx, cancel, nil
}

// writeChange answers a change: 200 when every participant is done with
// it, 202 while it goes on (Done false, each participant's state in
// Results). A wait that ends first is no error: the change is applied and
// saved, and GET .../changes/{version} follows it.
func writeChange(s *Server, w http.ResponseWriter, ch conference.Change, err error) {
	if err != nil {
		s.fail(w, err)
		return
	}
	if ch.Results == nil {
		ch.Results = []conference.Participant{}
	}
	code := http.StatusAccepted
	if ch.Done {
		code = http.StatusOK
	}
	writeJSON(w, code, ch)
}

// getChange reports how far a change has reached; with wait, it waits
// for it to be done, as long as the wait says.
func (s *Server) getChange(w http.ResponseWriter, r *http.Request) {
	v, err := strconv.ParseUint(r.PathValue("version"), 10, 64)
	if err != nil || v == 0 {
		s.fail(w, badf("change %q: want the version it made, from 1", r.PathValue("version")))
		return
	}
	ctx, cancel, err := waitCtx(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	defer cancel()
	ch, err := s.Controller.Progress(ctx, r.PathValue("name"), v)
	writeChange(s, w, ch, err)
}

// checkDirection refuses what is not a direction attribute (RFC 8866 §6.7).
func checkDirection(d string) error {
	switch sdp.Direction(d) {
	case sdp.SendRecv, sdp.SendOnly, sdp.RecvOnly, sdp.Inactive:
		return nil
	}
	if err := checkLine("direction", d, maxID); err != nil {
		return err
	}
	return badf("direction %q: want sendrecv, sendonly, recvonly or inactive", d)
}

func streamIndex(r *http.Request) (int, error) {
	i, err := strconv.Atoi(r.PathValue("index"))
	if err != nil || i < 0 {
		return 0, badf("stream %q: want its index, from 0", r.PathValue("index"))
	}
	return i, nil
}

func (s *Server) removeStream(w http.ResponseWriter, r *http.Request) {
	i, err := streamIndex(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	ctx, cancel, err := waitCtx(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	defer cancel()
	ch, err := s.Controller.RemoveStream(ctx, r.PathValue("name"), i)
	writeChange(s, w, ch, err)
}

func (s *Server) patchStream(w http.ResponseWriter, r *http.Request) {
	i, err := streamIndex(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	var req StreamRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if err := checkDirection(req.Direction); err != nil {
		s.fail(w, err)
		return
	}
	ctx, cancel, err := waitCtx(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	defer cancel()
	ch, err := s.Controller.SetDirection(ctx, r.PathValue("name"), i, sdp.Direction(req.Direction))
	writeChange(s, w, ch, err)
}

func (s *Server) listLeases(w http.ResponseWriter, r *http.Request) {
	ls := s.Allocator.Leases()
	if ls == nil {
		ls = []multicast.Lease{}
	}
	writeJSON(w, http.StatusOK, ls)
}

// LoadOrCreateToken reads the token in dir, or writes a new random one
// readable by its owner only. The file is created with mode 0600 and
// O_EXCL, so it is never readable by others, not even for a moment. An
// existing file that its group or others may read or write is refused
// (the token is the whole of the API's authentication), as is one that is
// not a regular file.
func LoadOrCreateToken(dir string) (string, error) {
	path := filepath.Join(dir, TokenFile)
	for range 3 {
		t, err := readToken(path)
		if err == nil && t != "" {
			return t, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if err == nil {
			// Empty: written over in place, mode kept (readToken checked it).
			return writeToken(path, os.O_WRONLY|os.O_TRUNC)
		}
		t, err = writeToken(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		if errors.Is(err, fs.ErrExist) {
			continue // another process made it meanwhile: read that one
		}
		return t, err
	}
	return "", fmt.Errorf("api: token file %s keeps changing", path)
}

// readToken reads the token file at path, checking its mode on the open
// file (no window between the check and the read).
func readToken(path string) (string, error) {
	// O_NONBLOCK: a FIFO put in its place is refused below instead of
	// holding mcc serve in open until someone writes to it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return "", fmt.Errorf("api: token file %s is a symbolic link: replace it with a regular file of mode 0600", path)
		}
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("api: token file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("api: token file %s has mode %04o, so others may read or change the API token: run chmod 600 %s (or remove the file for a new token)", path, perm, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return "", fmt.Errorf("api: token file %s belongs to user %d, not to mcc's user %d: whoever owns it may change the API token; remove it for a new token", path, st.Uid, os.Geteuid())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxToken+2))
	if err != nil {
		return "", err
	}
	t := strings.TrimSpace(string(b))
	if err := checkToken(t); err != nil {
		return "", fmt.Errorf("api: token file %s: %v (remove it for a new token)", path, err)
	}
	return t, nil
}

// maxToken and minToken bound a token read from the token file; mcc
// writes 48 hex digits.
const (
	minToken = 16
	maxToken = 256
)

// checkToken refuses a token that cannot travel in an Authorization
// header (RFC 6750 §2.1 b64token: visible ASCII), or that is too short to
// be a secret. Empty is left to the caller (a new token is written).
func checkToken(t string) error {
	if t == "" {
		return nil
	}
	if len(t) < minToken || len(t) > maxToken {
		return fmt.Errorf("a token of %d characters: want %d to %d", len(t), minToken, maxToken)
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] > '~' {
			return fmt.Errorf("byte %d of the token is %#02x: want visible ASCII", i, t[i])
		}
	}
	return nil
}

func writeToken(path string, flag int) (string, error) {
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	t := hex.EncodeToString(raw[:])
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.Write([]byte(t + "\n"))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	return t, nil
}

// LeaseRequest leases groups: from Pool, or from the pool of Family and
// Scope.
type LeaseRequest struct {
	Pool   string `json:"pool,omitempty"`
	Family string `json:"family,omitempty"`
	Scope  string `json:"scope,omitempty"`
	Count  int    `json:"count,omitempty"` // default 1
	Lease  string `json:"lease,omitempty"` // a duration such as "2h"; default 24h
	Owner  string `json:"owner,omitempty"`
}

// RenewRequest moves a lease's end to now plus Lease.
type RenewRequest struct {
	Lease string `json:"lease"`
}

// PoolUse is a pool with its size and how much of it is leased.
type PoolUse struct {
	multicast.Pool
	Size   uint64 `json:"size"`
	Leased uint64 `json:"leased"`
}

func (s *Server) allocate(w http.ResponseWriter, r *http.Request) {
	var req LeaseRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if err := checkLine("pool", req.Pool, maxID); err != nil {
		s.fail(w, err)
		return
	}
	if err := checkLine("owner", req.Owner, maxID); err != nil {
		s.fail(w, err)
		return
	}
	if sdp.IsSessionOwner(req.Owner) {
		// Restore hands the leases of owner "session ID" to that session,
		// and releases them when it has none.
		s.fail(w, badf("owner %q: names starting with %q are mcc's own sessions'", req.Owner, "session "))
		return
	}
	pool := req.Pool
	if pool == "" {
		fam, err := multicast.ParseFamily(cmpOr(req.Family, "4"))
		if err != nil {
			s.fail(w, badf("%v", err))
			return
		}
		if req.Scope == "" {
			s.fail(w, badf("name a pool, or a scope such as local, org or ssm"))
			return
		}
		p, err := multicast.ScopePool(fam, multicast.Scope(req.Scope), multicast.ScopeOptions{})
		if err != nil {
			s.fail(w, badf("%v (GLOP and unicast-prefix pools are configured in allocator.json and named with pool)", err))
			return
		}
		pool = p.Name
	}
	d := 24 * time.Hour
	if req.Lease != "" {
		var err error
		if d, err = time.ParseDuration(req.Lease); err != nil || d <= 0 {
			s.fail(w, badf("lease %q: want a positive duration such as 2h", req.Lease))
			return
		}
	}
	n := req.Count
	if n == 0 {
		n = 1
	}
	if n < 1 || n > 65536 {
		s.fail(w, badf("count %d: want 1 to 65536", n))
		return
	}
	ls, err := s.Allocator.AllocateN(multicast.Request{Pool: pool, Owner: cmpOr(req.Owner, "api"), Duration: d}, n)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, ls)
}

func groupOf(r *http.Request) (netip.Addr, error) {
	g, err := netip.ParseAddr(r.PathValue("group"))
	if err != nil || !g.IsMulticast() {
		return netip.Addr{}, badf("%q is not a multicast group address", r.PathValue("group"))
	}
	return g, nil
}

func (s *Server) renew(w http.ResponseWriter, r *http.Request) {
	g, err := groupOf(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	var req RenewRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	d, err := time.ParseDuration(req.Lease)
	if err != nil || d <= 0 {
		s.fail(w, badf("lease %q: want a positive duration such as 2h", req.Lease))
		return
	}
	if err := s.notASessions(g); err != nil {
		s.fail(w, err)
		return
	}
	l, err := s.Allocator.Renew(g, time.Now().Add(d))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

func (s *Server) release(w http.ResponseWriter, r *http.Request) {
	g, err := groupOf(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	if err := s.notASessions(g); err != nil {
		s.fail(w, err)
		return
	}
	if err := s.Allocator.Release(g); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// notASessions refuses to renew or release the lease of g when one of
// mcc's own sessions holds it (owner "session N"): its conference
// advertises the group until the stream or the session goes, which
// releases it, and the manager renews it meanwhile. Only the owner tells
// the two kinds apart (allocate refuses that prefix to the API's
// callers).
func (s *Server) notASessions(g netip.Addr) error {
	l, ok := s.Allocator.Lease(g)
	if ok && sdp.IsSessionOwner(l.Owner) {
		return conflictf("lease %v belongs to %s of mcc: it is released when its stream or session goes (remove the stream, or delete the session)", l.Group, l.Owner)
	}
	return nil
}

func (s *Server) listPools(w http.ResponseWriter, r *http.Request) {
	var out []PoolUse
	for _, p := range s.Allocator.Pools() {
		leased, size, _ := s.Allocator.Usage(p.Name)
		out = append(out, PoolUse{p, size, leased})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listDirectory(w http.ResponseWriter, r *http.Request) {
	if s.Directory == nil {
		writeError(w, http.StatusNotFound, CodeNotFound, "this mcc serve does not listen for SAP (start it with --sap INTERFACE)")
		return
	}
	list := s.Directory.List()
	writeJSON(w, http.StatusOK, list)
}

// importHeard makes a conference around a session heard over SAP: mcc can
// invite people into it, not change it.
func (s *Server) importHeard(w http.ResponseWriter, req SessionRequest, access conference.Access) {
	if s.Directory == nil {
		s.fail(w, badf("this mcc serve does not listen for SAP"))
		return
	}
	for _, h := range s.Directory.List() {
		if h.ID != req.Heard {
			continue
		}
		desc, err := sdp.Liberal(s.DefaultTTL).Parse(h.SDP)
		if err != nil {
			s.fail(w, err)
			return
		}
		in, err := s.Controller.ImportFollowing(req.Name, desc, access,
			conference.Follow{Heard: h.ID, Hash: h.Hash, OnEnd: req.OnSAPEnd})
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, imported(in, desc))
		return
	}
	writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no session %q in the SAP directory (see mcc directory)", req.Heard))
}
