package sdp

import (
	"errors"
	"fmt"
)

// SyntaxError reports a line of a session description that breaks a rule.
type SyntaxError struct {
	Line int    // 1-based line number; 0 when the problem is the whole text
	Text string // the line as read
	Err  error  // the rule broken
}

func (e *SyntaxError) Error() string {
	if e.Line == 0 {
		return "sdp: " + e.Err.Error()
	}
	return fmt.Sprintf("sdp: line %d %q: %v", e.Line, e.Text, e.Err)
}

func (e *SyntaxError) Unwrap() error { return e.Err }

// ErrNotModifiable is returned when a change is asked of a session whose
// groups mcc does not own, such as one imported from a file.
var ErrNotModifiable = errors.New("sdp: session is external: mcc does not own its groups, so it cannot change its media")

// ErrUnknownSession is returned by the Manager for a session ID it does
// not hold.
var ErrUnknownSession = errors.New("sdp: unknown session")

// ErrNoStream is returned when a change names a stream a session does not
// have, or one already removed.
var ErrNoStream = errors.New("sdp: no such stream")
