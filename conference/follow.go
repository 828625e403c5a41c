package conference

import (
	"context"
	"errors"
	"fmt"

	"mcc/sdp"
)

// The SAP→SIP bridge: a conference made from a session heard over SAP
// (RFC 2974) follows its announcer. A changed announcement (a new message
// ID hash, §5) re-INVITEs every participant with the new description; a
// deletion (§4) or a timeout (§3.2) ends the conference with BYE, or
// keeps it, as the conference was told. The daemon watches the SAP
// directory and calls Replace and SourceGone; both appear in the event
// stream as kind "sap".

// Follow is what a conference keeps of the announcement it follows.
type Follow struct {
	// Heard is the session's ID in the SAP directory (its o= and source).
	Heard string `json:"heard"`
	// Hash is the message ID hash of the announcement applied last.
	Hash uint16 `json:"hash"`
	// OnEnd is what the conference does when the announcer deletes the
	// session or stops announcing it: FollowEnd or FollowKeep.
	OnEnd string `json:"on_end"`
	// Gone says, once the announcement went and the conference was kept,
	// why: "deleted" or "timeout". A kept conference follows no more: it
	// stays on the last description, whatever is announced later.
	Gone string `json:"gone,omitempty"`
}

// What a conference does when the announcement it follows goes.
const (
	FollowEnd  = "end"  // BYE to everyone, and the conference goes
	FollowKeep = "keep" // the conference stays, with the last description
)

// ErrNotFollowing is a bridge call for a conference that follows no
// announcement, or no longer does.
var ErrNotFollowing = errors.New("conference: the conference follows no SAP announcement")

// ImportFollowing is Import for a session heard over SAP, whose
// conference follows the announcement f names. An empty f.OnEnd is
// FollowEnd.
func (c *Controller) ImportFollowing(name string, desc *sdp.Session, access Access, f Follow) (Info, error) {
	if f.OnEnd == "" {
		f.OnEnd = FollowEnd
	}
	if f.OnEnd != FollowEnd && f.OnEnd != FollowKeep {
		return Info{}, fmt.Errorf("%w: on the announcement's end %q: want %q or %q", sdp.ErrInvalid, f.OnEnd, FollowEnd, FollowKeep)
	}
	f.Gone = ""
	return c.importFollowing(name, desc, access, &f)
}

// Following returns the conferences that follow an announcement still
// there (not gone), by name.
func (c *Controller) Following() map[string]Follow {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]Follow{}
	for name, conf := range c.conferences {
		if conf.pending || conf.removing {
			continue
		}
		if f := conf.follow.Load(); f != nil && f.Gone == "" {
			out[name] = *f
		}
	}
	return out
}

// Replace gives conference name the announcer's new description, heard
// with hash, and re-INVITEs everyone to it as AddStream does (waiting
// while ctx lasts). The description must be the same session (its o=,
// RFC 8866 §5.2); streams it no longer has are offered at port 0, as RFC
// 3264 §8.2 wants of a removed stream.
func (c *Controller) Replace(ctx context.Context, name string, desc *sdp.Session, hash uint16) (Change, error) {
	conf, err := c.conference(name)
	if err != nil {
		return Change{}, err
	}
	if f := conf.follow.Load(); f == nil || f.Gone != "" {
		return Change{}, fmt.Errorf("%w: %q", ErrNotFollowing, name)
	}
	setHash := func() {
		if f := conf.follow.Load(); f != nil {
			nf := *f
			nf.Hash = hash
			conf.follow.Store(&nf)
		}
	}
	ch, err := c.change(ctx, name, false, func(conf *Conference) (*sdp.Session, int, error) {
		old := conf.desc
		s, err := c.cfg.Manager.ReplaceExternal(conf.sessionID, desc)
		if err != nil {
			return nil, 0, err
		}
		setHash() // saved with the change
		// A slot whose stream changed is offered afresh to those who
		// refused what it held (conf.mu is held: then each p.mu).
		// conf.desc has its streams' groups at media level (setDesc).
		for i, m := range s.WithMediaConnections().Media {
			if i < len(old.Media) && sameStream(old.Media[i], m) {
				continue
			}
			for _, p := range conf.participants {
				p.mu.Lock()
				delete(p.rejected, i)
				p.mu.Unlock()
			}
		}
		return s, -1, nil
	})
	if errors.Is(err, sdp.ErrUnchanged) {
		// Another text of the same session (or a hash that changed for
		// nothing): nobody is re-INVITEd.
		setHash()
		return Change{}, c.saveConference(conf)
	}
	if err != nil {
		return ch, err
	}
	c.publish(Event{Conference: name, Kind: "sap", Detail: fmt.Sprintf("changed: version %d re-offered to everyone", ch.Version), Change: &ch})
	return ch, nil
}

// sameStream reports whether two streams write the same m= section.
func sameStream(a, b *sdp.Media) bool {
	x := &sdp.Session{Media: []*sdp.Media{a}}
	y := &sdp.Session{Media: []*sdp.Media{b}}
	bx, err1 := x.Marshal()
	by, err2 := y.Marshal()
	return err1 == nil && err2 == nil && string(bx) == string(by)
}

// SourceGone tells conference name that the announcement it follows was
// deleted or timed out (reason): it ends, BYE to everyone, or stays,
// as its Follow says.
func (c *Controller) SourceGone(ctx context.Context, name, reason string) error {
	conf, err := c.conference(name)
	if err != nil {
		return err
	}
	f := conf.follow.Load()
	if f == nil || f.Gone != "" {
		return fmt.Errorf("%w: %q", ErrNotFollowing, name)
	}
	if f.OnEnd == FollowEnd {
		c.publish(Event{Conference: name, Kind: "sap", Detail: reason + ": the conference ends"})
		return c.Delete(ctx, name)
	}
	nf := *f
	nf.Gone = reason
	conf.follow.Store(&nf)
	c.publish(Event{Conference: name, Kind: "sap", Detail: reason + ": the conference is kept"})
	return c.saveConference(conf)
}
