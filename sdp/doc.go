// Package sdp owns multicast session descriptions: the model, its text
// (RFC 8866, through pion/sdp), offer/answer for multicast streams
// (RFC 3264), and the Manager that leases a group for every stream.
//
// # Text
//
// [Parse] reads a description and [Session.Marshal] writes it. pion/sdp
// keeps "224.2.1.1/127/3" as one string, so the c= line has its own codec,
// [ParseConnection]: an IPv4 multicast address carries a TTL, IPv6 never
// does, a number of addresses is allowed at media level only, and a unicast
// address takes no slash (RFC 8866 §5.7). The number of addresses is for
// layered encodings, which have few layers: ParseConnection refuses more
// than [MaxAddresses] (64) and never walks the range; [Connection.Len],
// [Connection.Last], [Connection.Contains] and [Connection.All] read it
// from its ends. [ParseSourceFilter] reads
// a=source-filter (RFC 4570). Every error is a *[SyntaxError] with the line
// number and the rule broken:
//
//	sdp: line 6 "c=IN IP4 239.255.1.1": IPv4 multicast address 239.255.1.1 needs a TTL: 239.255.1.1/<ttl> (RFC 8866 §5.7)
//
// [Session.Check] and [Lint] add what the grammar cannot say, as errors or
// warnings: a stream with no c=, a dynamic payload type without rtpmap, a
// group given only at session level (linphone joins only a media-level
// one), an SSM group without a source filter.
//
// # Schedule
//
// [Session.Schedule] reads when a session is active from its t=, r= and
// z= lines (RFC 8866 §5.9-§5.11) and [Session.SetSchedule] writes them.
// [Schedule.Next] and [Schedule.Intervals] compute the intervals at a time
// the caller gives, never from a clock of their own, and [ParseSchedule]
// reads what people write: a weekly 10:00 lecture in Europe/Berlin gets
// the z= adjustments that keep it at 10:00 through daylight saving.
//
// # Offer and answer
//
// mcc offers the same multicast description to every participant. A
// participant accepts a stream by answering with the offer's address, port
// and direction and a subset of its formats, or declines it with port 0
// (RFC 3264 §6.2); [CheckAnswer] says which. Changes follow RFC 3264 §8:
// [Session.AddMedia] appends an m= line or reuses one at port 0,
// [Session.RemoveMedia] sets a port to 0 and keeps the line, and each bumps
// the o= version by one; [CheckUpdate] checks a change.
//
// # Manager
//
// The [Manager] creates sessions from a [SessionSpec], leasing a group and
// an RTP port pair from package multicast for every stream and writing the
// group at media level. It adds and removes streams, releases the groups of
// removed streams once participants have moved on ([Manager.Settle]), and
// releases everything when a session is deleted. Imported sessions are
// external: participants can be invited into them, but their media stay as
// they are.
package sdp
