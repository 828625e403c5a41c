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

// Dialling in, linphone offers unicast; an answer that rejects all its
// streams (port 0, RFC 3264 §6) makes it hang up, and it joins no group
// from an offer in a 2xx or a re-INVITE either. So its unicast offer is
// answered with each stream accepted inactive on a placeholder (mcc's
// address, port 9, RFC 3264 §5.1's "inactive": nothing is sent either
// way), and once it ACKs, the rejoin above brings it in: BYE, and an
// INVITE with the session's offer to its Contact.

// rejoins reports whether the user agent that sent res, with its answer
// body, is one that leaves its group on a re-INVITE.
func rejoins(res *sip.Response, answer []byte) bool {
	return rejoinsUA(res.GetHeader("User-Agent"), answer)
}

// rejoinsUA is rejoins for the User-Agent header h (nil when absent) of a
// request or response with SDP body.
func rejoinsUA(h sip.Header, answer []byte) bool {
	ua := ""
	if h != nil {
		ua = strings.ToLower(h.Value())
	}
	if strings.Contains(ua, "linphone") || strings.Contains(ua, "belle-sip") {
		return true
	}
	talk := bytes.Contains(answer, []byte("\ns=Talk\r\n")) || bytes.Contains(answer, []byte("\ns=Talk\n"))
	return ua == "unknown" && talk
}
