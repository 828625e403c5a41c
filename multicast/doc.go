// Package multicast owns group addresses: the scopes they are drawn from, the
// allocator that hands them out, and the leases that record who holds them.
//
// # Scopes
//
// Every built-in scope is a [Pool] with a default TTL (IPv4) or hop limit
// (IPv6), built by [ScopePool]:
//
//   - IPv4 local 239.255.0.0/16 and organisation-local 239.192.0.0/14
//     (RFC 2365), each without its highest /24, which is kept for relative
//     assignments such as SAP and MZAP (RFC 2365 §6.2, RFC 2974 §3);
//   - IPv4 global 224.2.128.0/17, the SAP dynamic block (RFC 2974 §3,
//     RFC 5771);
//   - IPv4 SSM 232.0.0.0/8 without 232.0.0.0/24 (RFC 4607 §1);
//   - IPv4 GLOP 233.X.Y.0/24 from a 16-bit AS number (RFC 3180);
//   - IPv4 unicast-prefix-based 234/8 from a unicast prefix of /24 or
//     shorter (RFC 6034);
//   - IPv6 transient groups ff1X:: by scope nibble (RFC 4291 §2.7), IPv6
//     unicast-prefix-based ff3X:00PL:<prefix>::/96 (RFC 3306) and IPv6 SSM
//     ff3X::/96 (RFC 4607), all with group IDs from 0x80000000 to
//     0xfeffffff: the dynamic range of RFC 3307 §4.3 less the IDs that
//     would share Ethernet addresses with solicited-node groups.
//
// No pool ever hands out an address for which [IsReserved] holds: the IPv4 link-local and
// internetwork control blocks, the SAP group 224.2.127.254, 232.0.0.0/24 and
// the other blocks RFC 5771 keeps back.
//
// # Allocation
//
// The [Allocator] is informed random: it draws uniformly among the addresses
// of a pool that are neither leased nor reported in use by an [InUseSource]
// (such as a SAP directory), so two allocators that hear each other rarely
// collide, and it always finds a free address while one exists. Each lease
// also carries an even RTP port with RTCP on the next (RFC 3550 §11). Leases
// are written to a [LeaseStore] before they are granted, so they survive a
// restart.
package multicast
