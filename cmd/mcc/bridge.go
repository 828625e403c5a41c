package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"mcc/conference"
	"mcc/multicast/sap"
	"mcc/sdp"
)

// followInterval is how often the bridge looks at the SAP directory for
// the announcements conferences follow: well inside the 5 s the quickest
// announcers (PipeWire, PulseAudio, VLC, ffmpeg) repeat at.
const followInterval = time.Second

// followHeard is the SAP→SIP bridge (conference/follow.go): every
// followInterval, each conference that follows a heard session gets the
// announcer's new description when its hash changed, or is told the
// session went when the directory says it was deleted or timed out. A
// session missing from a directory that never said why (mcc restarted
// and has not heard it since) counts as timed out once it has been
// missing for sap.Timeout of the RFC's minimum interval (an hour). An
// announcement a conference refuses is said once, not every second. Changes run one at a time, each bounded; the loop ends with
// ctx.
func followHeard(ctx context.Context, ctl *conference.Controller, dir *sap.Directory, ttl uint8, log *slog.Logger) {
	t := time.NewTicker(followInterval)
	defer t.Stop()
	missing := map[string]time.Time{} // since when a conference's session has been absent without a reason
	failed := map[string]uint16{}     // the hash of an announcement a conference refused, tried once
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		following := ctl.Following()
		for name := range missing {
			if _, ok := following[name]; !ok {
				delete(missing, name)
			}
		}
		for name := range failed {
			if _, ok := following[name]; !ok {
				delete(failed, name)
			}
		}
		for name, f := range following {
			if h, ok := dir.Lookup(f.Heard); ok {
				delete(missing, name)
				if h.Hash == f.Hash {
					continue
				}
				if bad, ok := failed[name]; ok && bad == h.Hash {
					continue // said once; the next change is tried
				}
				desc, err := sdp.Liberal(ttl).Parse(h.SDP)
				if err == nil {
					cctx, cancel := context.WithTimeout(ctx, 0) // the re-INVITEs go on; nobody waits here
					_, err = ctl.Replace(cctx, name, desc, h.Hash)
					cancel()
				}
				if err != nil && !errors.Is(err, conference.ErrUnknown) {
					failed[name] = h.Hash
					log.Warn("SAP bridge: the changed announcement cannot be offered; the conference keeps the description it has", "conference", name, "heard", f.Heard, "err", err)
				} else if err == nil {
					log.Info("SAP bridge: the announcement changed; everyone is re-INVITEd", "conference", name, "hash", h.Hash)
				}
				continue
			}
			reason := dir.Gone(f.Heard)
			if reason == "" {
				since, ok := missing[name]
				if !ok {
					since = time.Now()
					missing[name] = since
				}
				if time.Since(since) < sap.Timeout(sap.MinInterval) {
					continue
				}
				reason = "timeout"
			}
			delete(missing, name)
			log.Info("SAP bridge: the announcement went", "conference", name, "heard", f.Heard, "reason", reason, "on_end", f.OnEnd)
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := ctl.SourceGone(cctx, name, reason); err != nil && !errors.Is(err, conference.ErrUnknown) {
				log.Warn("SAP bridge", "conference", name, "err", err)
			}
			cancel()
		}
	}
}
