// Package reception measures what a receiver gets of a multicast RTP
// stream, per sender: packets, loss, reordering, duplicates,
// interarrival jitter and bit rate, as RFC 3550 defines them for
// reception reports (§6.4.1; Appendix A.1 for sequence numbers, A.3 for
// expected and lost packets, A.8 for jitter). A Probe joins a session's
// streams, any-source or source-specific (RFC 4607 §4.1, with the
// sources of an RFC 4570 filter), reads their RTP headers (RFC 3550
// §5.1, leaving out RTCP multiplexed on the port, RFC 5761 §4) and keeps
// one Sender per SSRC of each stream; mcc probe reports what it heard.
package reception
