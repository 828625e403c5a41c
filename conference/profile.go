package conference

import (
	"bytes"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Some user agents cannot take a change of media by re-INVITE in a
// multicast session, and mcc works around them by what it learns from
// their 2xx to its INVITE.
//
// linphone (liblinphone 5.1 to 5.4) joins a group only from an initial
// INVITE's offer: on every re-offer it answers, MediaSessionPrivate::
// acceptUpdate turns its multicast off, the audio stream's multicast role
// becomes inactive, the stream is rebuilt unicast and the socket that
// held the group is closed, while its 200 still echoes the group. No
// shape of the offer avoids it. So a change reaches linphone as a BYE and
// a new INVITE with the latest description (rejoin), which it joins
// afresh. linphonec says "Linphonec/…" in User-Agent; linphone-daemon
// says "Unknown", and answers with s=Talk.

// rejoins reports whether the user agent that sent res, with its answer
// body, is one that leaves its group on a re-INVITE.
func rejoins(res *sip.Response, answer []byte) bool {
	ua := ""
	if h := res.GetHeader("User-Agent"); h != nil {
		ua = strings.ToLower(h.Value())
	}
	if strings.Contains(ua, "linphone") || strings.Contains(ua, "belle-sip") {
		return true
	}
	talk := bytes.Contains(answer, []byte("\ns=Talk\r\n")) || bytes.Contains(answer, []byte("\ns=Talk\n"))
	return ua == "unknown" && talk
}
