// Package conference is mcc's SIP endpoint: it invites participants into
// multicast sessions, accepts dial-in to conference URIs, and changes the
// media of everyone at once by re-INVITE (RFC 3261, RFC 3264, RFC 4579's
// dial-in and dial-out), with digest as RFC 7616 and RFC 8760 say, and
// session timers as RFC 4028 does. It serves the conference event
// package (RFC 4575 over RFC 6665's SIP events) and takes REFER to the
// focus (RFC 4579 §5.5, RFC 3515 with RFC 3892's Referred-By and RFC
// 4488's Refer-Sub), and gives participants roles for lectures. It keeps
// the reception matrix: what probes report, and what RTCP receiver and
// sender reports say (RFC 3550 §6, at RTP's port plus one or RFC 3605's
// a=rtcp), with alerts for silence, loss and participants whose host
// reports nothing.
//
// # Layers
//
// sipgo v1.7.3 gives the transport (UDP, TCP, TLS; IPv4 and IPv6) and the
// transactions (RFC 3261 §17 with RFC 6026). The dialog layer is this
// package's own, because sipgo's leaves out what a conference needs:
//
//   - a dialog table keyed by Call-ID and both tags, each dialog's state
//     behind its own lock, since sipgo runs every message in a goroutine;
//   - the remote CSeq tracked here (sipgo issue 187), with 500 for a request
//     out of order (§12.2.2), and target refresh from Contact (§12.2);
//   - route sets from Record-Route, reversed for the UAC (§12.1.2);
//   - re-INVITE both ways: as UAC with the ACK sent again for a
//     retransmitted 2xx, even after the transaction ended (§13.2.2.4); as
//     UAS with the 2xx retransmitted over UDP from T1 doubling to T2 until
//     the ACK comes or 64·T1 passes (§13.3.1.4);
//   - one INVITE transaction per dialog at a time: 491 to an INVITE that
//     crosses ours, 500 with Retry-After 0-10 to one that overlaps the
//     participant's previous INVITE (§14.2), and after a 491 a new attempt
//     in 2.1-4 s when mcc owns the Call-ID, 0-2 s otherwise (§14.1);
//   - a request too large for UDP sent over TCP (§18.1.1), and no CR or LF
//     from a user reaching a header (sipgo writes values as they are).
//
// # Files
//
// Each file holds what one thing owns, not a half of RFC 3261:
//
//   - controller.go: the endpoint, its listeners and clients, Config;
//   - conference.go: a conference and its participants, as they are read;
//   - lifecycle.go: a conference's life (create, import, delete,
//     restore) and a participant's end (Remove);
//   - invite.go: an invitation out, from INVITE to ACK, CANCEL and 3xx;
//   - dialin.go: a dial-in, from its INVITE to its ACK;
//   - dialog.go: the dialog table, in-dialog requests (BYE, OPTIONS) and
//     what ends a dialog;
//   - change.go: a media change for everyone, how far it got, and when a
//     removed stream's group may go;
//   - worker.go: the participant's worker, its re-INVITEs and the
//     fan-out's slots;
//   - media.go: what a participant receives: mcc's offers, their answers,
//     the participant's own offers;
//   - liveness.go: session timers and OPTIONS probes;
//   - subscribe.go: subscriptions and their NOTIFYs (RFC 6665);
//     roster.go and confinfo.go: the RFC 4575 document, its diffs, and
//     how a subscriber applies them; refer.go: REFER to the focus;
//     roles.go: speakers and listeners;
//   - persist.go and record.go: what is saved, and in what form;
//   - guard.go, guard_tcp.go, udpmux.go, limits.go: what stands in front
//     of the handlers; access.go and digest.go: who may join;
//   - dispatch.go: which handler a request goes to, behind what barrier;
//   - events.go, metrics.go and stacklog.go: what the controller tells;
//   - reception.go and rtcp.go: the reception matrix and its alerts (a
//     goroutine checks them each second), and the RTCP monitor (a
//     goroutine that joins the sessions' RTCP groups, one reader per
//     port).
//
// # In front of every handler
//
// Every message on mcc's listeners passes a guard before sipgo builds a
// transaction for it (guard.go; over TCP and TLS it frames the stream by
// Content-Length itself). It applies RFC 3261 §7.1 (505), §8.1.1 and §18.3
// (400 naming the header; a body shorter than Content-Length), §8.2 in its
// order (405 or 501 with Allow, 416, 404, 482, 420 with Unsupported, 415
// or 406 with Accept), adds received= to a Via that names another host
// (§18.2.1), and drops what cannot be answered, counting each outcome. It
// bounds what a stranger can make mcc hold (Limits): requests and responses
// per source, sources, transactions, message size, TCP connections and
// their idle and trickle times, unACKed and joined dial-ins, the UDP
// peers sipgo keeps, ended participants. Handlers run behind a barrier
// that checks the headers again for requests the guard did not see (on
// connections mcc opened), and answers a panic with 500 (RFC 4475 and RFC
// 5118 messages are its table tests; FuzzSIP runs the whole path).
//
// # Offers and answers
//
// Every participant is offered the session's description with a
// media-level c= for each stream. Each dialog keeps its own o= version
// (RFC 3264 §8). An answer is checked with sdp.CheckAnswer (RFC 3264 §6.2):
// a stream whose answer changes the group, port or direction counts as
// declined, and the participant is offered it at port 0 by re-INVITE, or
// gets BYE when no stream is left. BYE from a participant ends its dialog;
// RFC 3261 §15.1.2 leaves multicast media to the participant.
//
// # Dial-in
//
// An INVITE to sip:NAME@host without SDP gets the offer in the 200 and the
// answer in the ACK; an offer that matches the session is answered with it;
// a unicast-only offer has its streams rejected and is followed by a
// re-INVITE with the session's streams, or gets 488 with a Warning
// (Config.UnicastOffer). Access is anyone, an allow list, or digest.
//
// # Every change reaches every participant
//
// The session's description has a version (its o= version, raised by
// one by each change: the change's ID); each participant records the
// version it last acknowledged (Participant.Acked). A change is applied
// and saved at once (AddStream, RemoveStream, SetDirection); each
// participant's worker (worker.go), one at a time per participant,
// re-INVITEs it until it has the latest, whatever state it was in: after
// the change, after its join, after a 491 (§14.1's waits) or a 500 with
// Retry-After, after a restart (Resume). Changes that come meanwhile
// coalesce into one re-INVITE to the latest. A participant that refuses,
// or whose attempts run out, is shown behind; the next change tries
// again. A change's context bounds only the wait for its outcome
// (Progress), which is never an error.
//
// A removed stream's group stays leased while any participant that has
// not ended has it in its acknowledged description or in an offer in
// flight; the last holder's end, or answer, releases it (settle, with the
// argument for why no offer slips past). A removed stream's m= slot is
// reused only once its group is released.
//
// # Liveness
//
// RFC 4028 session timers with the participants that do them, and
// in-dialog OPTIONS probes for the others (Config.ProbeInterval): a
// participant that stops answering is ended with BYE and failed within
// two probe intervals (liveness.go).
//
// # Concurrency
//
// sipgo runs each message in a goroutine of its own; every goroutine mcc
// starts is the controller's (goOwned), behind the panic barrier, and
// Close waits for it. State sits behind four kinds of lock, always taken
// in this order, never the other way:
//
//	dialog (d.mu) → controller (c.mu) → conference (conf.mu) → participant (p.mu)
//
// A participant's saveMu comes before all four (persist takes the
// dialog's, the conference's and the participant's briefly under it, and
// holds it across the store write). A conference's recordMu is taken with
// no other lock held, and only the manager's is taken under it, across
// the record's store write (saveConference, forgetRecord). A conference's
// removing flag is the controller's lock's. A participant's pubMu orders
// its events: only its own lock and the hub's are taken under it. The
// event hub's, the guard's and the manager's locks are leaves, as is the
// reception state's (reception.go); the RTCP monitor's (rtcp.go) is
// taken before the reception state's and no other, and neither is held
// while a report reads the conference's participants (joinedHosts takes
// the conference's, then each participant's and its dialog's, one at a
// time) or publishes. A path that needs two in another order
// takes them one at a time (groupsInUse, hasRejectedActive). No lock is
// held across network I/O. The conference's lock is held across a
// change's lease write (the manager's edit), and the manager's across a
// release; a dialog never waits for either: it reads the description
// without the conference's lock (Conference.current). TestStressOneConference
// runs every path at once for 30 s with a watchdog.
//
// # Example
//
//	ctl, err := conference.New(conference.Config{
//		Listeners: []conference.Listener{{Transport: "udp", Addr: "192.0.2.1:5060"}},
//		Manager:   manager, // an *sdp.Manager over a multicast.Allocator
//		Store:     store,   // internal/store's DB; nil keeps nothing
//	})
//	...
//	ctl.Restore() // what the last run saved, before anyone is served
//	ctl.CreateSession("lecture", sdp.SessionSpec{Name: "lecture", Pool: "ipv4-local",
//		Media: []sdp.MediaSpec{{Kind: "audio"}}}, conference.Access{})
//	ctl.Invite("lecture", "sip:alice@example.org")
//	ch, err := ctl.AddStream(ctx, "lecture", sdp.MediaSpec{Kind: "video"}) // waits while ctx lasts
//
// # Lifecycle and restarts
//
// The controller owns each conference's life (lifecycle.go): it is made
// around a session mcc leases (CreateSession), one described elsewhere
// (Import: an SDP file, a SAP announcement) or one the manager holds
// (Create); Delete ends it; Restore brings back what Config.Store kept.
// The records are in record.go: a conference's (Record, key c/NAME, with
// the migration of older forms) and a joined participant's dialog
// (SavedParticipant, key p/NAME/ID).
//
// A conference's record is written at its creation and after each
// change, before any participant hears of it; Delete removes it before
// anything else, so a crash leaves leases of no session, which Restore
// releases, never a session whose groups are free. A joined participant's
// dialog is saved when it joins, after every change, and before each
// re-INVITE goes out (so a crash never reuses a CSeq), with the version it
// acknowledged, the re-INVITE in flight and its session timer; Restore
// brings it back, has its worker bring it to the latest description, and
// the participant can be re-INVITEd and sent BYE as if nothing had
// happened. A shutdown (Close, SIGTERM) never rewrites a saved record.
package conference
