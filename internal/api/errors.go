package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"unicode"
	"unicode/utf8"

	"mcc/conference"
	"mcc/multicast"
	"mcc/sdp"
)

// fail answers err with its status and stable code. The caller's mistakes
// are an explicit set (see isBadRequest); an error outside every set is
// the daemon's own failure, answered 500 and logged.
func (s *Server) fail(w http.ResponseWriter, err error) {
	status, code := classify(err)
	if status == http.StatusInternalServerError {
		s.log().Error("control API request failed", "err", err)
	}
	writeError(w, status, code, err.Error())
}

// classify maps an error to its HTTP status and stable code.
func classify(err error) (int, string) {
	switch {
	case errors.Is(err, conference.ErrNotSaved):
		// Before any other: the undo's errors are not the caller's.
		return http.StatusInternalServerError, CodeInternal
	case errors.Is(err, conference.ErrUnknown), errors.Is(err, sdp.ErrUnknownSession), errors.Is(err, conference.ErrNoParticipant), errors.Is(err, conference.ErrNoChange),
		errors.Is(err, sdp.ErrNoStream), errors.Is(err, multicast.ErrNotLeased):
		return http.StatusNotFound, CodeNotFound
	case errors.Is(err, conference.ErrExists), errors.Is(err, sdp.ErrSessionExists):
		return http.StatusConflict, CodeConflict
	case isConflict(err):
		return http.StatusConflict, CodeConflict
	case errors.Is(err, conference.ErrNotOnAir), errors.Is(err, conference.ErrNotScheduled):
		return http.StatusConflict, CodeConflict
	case errors.Is(err, sdp.ErrNotModifiable):
		return http.StatusConflict, CodeNotModifiable
	case errors.Is(err, multicast.ErrPoolExhausted), errors.Is(err, conference.ErrClosed), errors.Is(err, multicast.ErrClosed):
		return http.StatusServiceUnavailable, CodeUnavailable
	case isBadRequest(err):
		return http.StatusBadRequest, CodeBadRequest
	}
	return http.StatusInternalServerError, CodeInternal
}

// isBadRequest reports whether err is the caller's mistake, after which
// nothing changed: a request the API refused itself (badRequest), a name,
// URI, pool or spec the controller or the manager refused, a description
// that does not parse or breaks a rule.
func isBadRequest(err error) bool {
	if _, ok := errors.AsType[*badRequest](err); ok {
		return true
	}
	if _, ok := errors.AsType[*sdp.SyntaxError](err); ok {
		return true
	}
	if _, ok := errors.AsType[*sdp.Problem](err); ok {
		return true
	}
	for _, target := range []error{sdp.ErrInvalid, conference.ErrBadName, conference.ErrBadURI, conference.ErrBadRole, conference.ErrBadReport, multicast.ErrUnknownPool} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// badRequest is a request the API refuses before anything changes.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error { return &badRequest{fmt.Sprintf(format, args...)} }

// conflict is a request the API refuses because of the state of what it
// names, before anything changes (409).
type conflict struct{ msg string }

func (e *conflict) Error() string { return e.msg }

func conflictf(format string, args ...any) error { return &conflict{fmt.Sprintf(format, args...)} }

func isConflict(err error) bool {
	_, ok := errors.AsType[*conflict](err)
	return ok
}

// Limits on what a request may name, beyond the 1 MiB body.
const (
	maxURI     = 1024 // one participant's SIP URI
	maxURIs    = 1000 // participants in one invitation request
	maxID      = 256  // a SAP directory ID, a lease owner, a pool name
	maxEntries = 1000 // allow entries, digest users or sources of one conference
	maxSecret  = 1024 // one digest password
)

// checkLine refuses text that would go into a SIP header or a stored
// record as one line: no control character at all (CR and LF would start
// a header of the caller's choosing, RFC 3261 §7.3.1; NUL ends strings in
// other programs), UTF-8, at most limit bytes.
func checkLine(field, s string, limit int) error {
	if len(s) > limit {
		return badf("%s: %d bytes, more than %d", field, len(s), limit)
	}
	if !utf8.ValidString(s) {
		return badf("%s %q: not UTF-8", field, s)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return badf("%s %q: control character %U is not allowed", field, s, r)
		}
		if why := sdp.Hidden(r); why != "" {
			return badf("%s %q: %U is %s", field, s, r, why)
		}
	}
	return nil
}

// log returns s.Logger, or one that discards when it is nil.
func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}
