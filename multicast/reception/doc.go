// Package reception measures what a receiver gets of a multicast RTP
// stream, per sender: packets, loss, reordering, duplicates,
// interarrival jitter and bit rate, as RFC 3550 defines them for
// reception reports (§6.4.1; Appendix A.1 for sequence numbers, A.3 for
// expected and lost packets, A.8 for jitter). mcc probe keeps one
// Sender per SSRC of each stream it joins.
package reception
