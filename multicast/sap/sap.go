// Package sap is the Session Announcement Protocol (RFC 2974): the codec
// for its packets, the interval announcers keep to, and (in later files)
// the announcer and the directory of heard sessions.
//
// # Packets
//
//	 0                   1                   2                   3
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| V=1 |A|R|T|E|C|   auth len    |         msg id hash           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	:              originating source (32 or 128 bits)              :
//	:                 authentication data (auth len words)          :
//	:     optional payload type, "application/sdp" and a NUL        :
//	:                            payload                            :
//
// A is set for an IPv6 origin, T for a deletion, E for an encrypted and
// C for a zlib-compressed packet (RFC 2974 §5). Decode reads every field,
// skips authentication data (mcc checks no signature, so it trusts none),
// inflates compressed packets up to MaxPayload, and refuses encrypted
// ones. A packet it cannot read is an error, never a panic.
//
// # Directory
//
// A [Directory] keeps the sessions heard, and the allocator keeps clear of
// their groups. Anyone can send SAP packets and forge their source, so
// what the directory holds is bounded ([DirectoryConfig]): by default
// 10,000 sessions, 4,096 groups and 16 MiB of descriptions in all, and
// 1,000 sessions, 1,024 groups and 1 MiB per source (an IPv6 source
// counts by its /64). A c= line names at most [sdp.MaxAddresses] groups,
// counted from the ends of its range before anything is expanded. An
// announcement of a new session past a bound is dropped and counted in
// [Stats] (OverLimit, by bound); the sessions held keep being refreshed.
// So a flood can take at most a sixteenth of the local scope
// 239.255.0.0/16 from the allocator, and the directory's heap stays near
// 30 MiB whatever it is sent.
package sap

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/netip"
	"time"
)

// Port is the SAP port (RFC 2974 §3).
const Port = 9875

// MaxPayload bounds a payload, after inflation: SDP fits in far less, and
// a compressed packet must not inflate into something large.
const MaxPayload = 64 << 10

// SDPType is the payload type of a session description.
const SDPType = "application/sdp"

// Errors Decode returns; each says why a packet was dropped.
var (
	ErrShort      = errors.New("sap: packet too short")
	ErrVersion    = errors.New("sap: not SAP version 1")
	ErrEncrypted  = errors.New("sap: encrypted packet (not supported)")
	ErrCompressed = errors.New("sap: compressed payload does not inflate")
	ErrTooLarge   = errors.New("sap: payload larger than MaxPayload")
	ErrNoPayload  = errors.New("sap: no payload")
	ErrOrigin     = errors.New("sap: originating source is not a unicast address")
)

// Packet is one SAP message.
type Packet struct {
	// Delete is set for a deletion (T=1), unset for an announcement.
	Delete bool
	// Hash is the message identifier hash: it changes whenever the
	// payload does (RFC 2974 §5); zero means "none" and is not sent.
	Hash uint16
	// Origin is the originating source, IPv4 or IPv6 (the A bit).
	Origin netip.Addr
	// PayloadType is the MIME type before the payload; empty when the
	// packet has none (then the payload is SDP, RFC 2974 §5).
	PayloadType string
	// Payload is the announced description.
	Payload []byte
	// Authenticated is set when the packet carried authentication data,
	// which Decode skips.
	Authenticated bool
}

// Decode reads a packet.
func Decode(b []byte) (*Packet, error) {
	if len(b) < 4 {
		return nil, ErrShort
	}
	flags := b[0]
	if flags>>5 != 1 {
		return nil, fmt.Errorf("%w (version %d)", ErrVersion, flags>>5)
	}
	if flags&0x02 != 0 {
		return nil, ErrEncrypted
	}
	p := &Packet{Delete: flags&0x04 != 0, Hash: binary.BigEndian.Uint16(b[2:4])}
	n := 4
	if flags&0x10 != 0 {
		if len(b) < n+16 {
			return nil, ErrShort
		}
		p.Origin = netip.AddrFrom16([16]byte(b[n : n+16])).Unmap()
		n += 16
	} else {
		if len(b) < n+4 {
			return nil, ErrShort
		}
		p.Origin = netip.AddrFrom4([4]byte(b[n : n+4]))
		n += 4
	}
	if auth := int(b[1]) * 4; auth > 0 {
		if len(b) < n+auth {
			return nil, ErrShort
		}
		p.Authenticated = true
		n += auth
	}
	body := b[n:]
	if flags&0x01 != 0 {
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCompressed, err)
		}
		// Room for a payload type (at most 255 bytes and its NUL) and one
		// byte more, which tells that the payload is too large rather than
		// cut short.
		limit := int64(MaxPayload + 256 + 1)
		body, err = io.ReadAll(io.LimitReader(zr, limit))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCompressed, err)
		}
		if int64(len(body)) == limit {
			return nil, ErrTooLarge
		}
	}
	// The payload type is optional: a payload that starts with "v=0" has
	// none (RFC 2974 §5).
	if !bytes.HasPrefix(body, []byte("v=0")) {
		if i := bytes.IndexByte(body, 0); i >= 0 && i < 256 {
			p.PayloadType = string(body[:i])
			body = body[i+1:]
		}
	}
	if len(body) > MaxPayload {
		return nil, ErrTooLarge
	}
	if len(body) == 0 && !p.Delete {
		return nil, ErrNoPayload
	}
	p.Payload = body
	return p, nil
}

// Encode writes the packet, zlib-compressed when compress is set. An
// empty PayloadType is written as "application/sdp". Encode sets no
// authentication data.
func (p *Packet) Encode(compress bool) ([]byte, error) {
	if !p.Origin.IsValid() || p.Origin.IsMulticast() || p.Origin.IsUnspecified() {
		return nil, ErrOrigin
	}
	if len(p.Payload) > MaxPayload {
		return nil, ErrTooLarge
	}
	flags := byte(1 << 5)
	origin := p.Origin.Unmap()
	if origin.Is6() {
		flags |= 0x10
	}
	if p.Delete {
		flags |= 0x04
	}
	if compress {
		flags |= 0x01
	}
	out := []byte{flags, 0, 0, 0}
	binary.BigEndian.PutUint16(out[2:], p.Hash)
	out = append(out, origin.AsSlice()...)
	pt := p.PayloadType
	if pt == "" {
		pt = SDPType
	}
	body := append(append([]byte(pt), 0), p.Payload...)
	if !compress {
		return append(out, body...), nil
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(body)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return append(out, z.Bytes()...), nil
}

// Hash returns a message identifier hash for a payload: it changes when
// the payload does, and is never zero (RFC 2974 §5: receivers such as VLC
// drop a zero hash).
func Hash(payload []byte) uint16 {
	h := fnv.New32a()
	h.Write(payload)
	s := h.Sum32()
	v := uint16(s>>16) ^ uint16(s)
	if v == 0 {
		v = 1
	}
	return v
}

// Default figures of RFC 2974 §3.1.
const (
	// DefaultLimit is the bandwidth all announcements on a group share.
	DefaultLimit = 4000 // bit/s
	// MinInterval is the shortest interval between announcements of one
	// session.
	MinInterval = 300 * time.Second
)

// Interval returns how long an announcer waits before announcing one of
// its sessions again (RFC 2974 §3.1): the announcements heard on the
// group, ads of them with an average size of adSize bytes, share limit
// bit/s, and no session is announced more often than every 300 s. The
// result carries a random offset of up to a third either way.
func Interval(r *rand.Rand, ads, adSize, limit int) time.Duration {
	if limit <= 0 {
		limit = DefaultLimit
	}
	base := time.Duration(float64(8*ads*adSize) / float64(limit) * float64(time.Second))
	base = max(base, MinInterval)
	third := base / 3
	return base - third + time.Duration(r.Int64N(int64(2*third)+1))
}

// FixedInterval is the interval of a profile that announces every base
// (Profile.Interval): base, or longer when the ads heard on the group
// would otherwise take more than limit bit/s between them (RFC 2974
// §3.1's bandwidth rule, without its 300 s floor), with a random offset
// of up to a tenth either way.
func FixedInterval(r *rand.Rand, base time.Duration, ads, adSize, limit int) time.Duration {
	if limit <= 0 {
		limit = DefaultLimit
	}
	base = max(base, time.Duration(float64(8*ads*adSize)/float64(limit)*float64(time.Second)))
	tenth := base / 10
	return base - tenth + time.Duration(r.Int64N(int64(2*tenth)+1))
}

// Timeout returns how long a heard session lives without being announced
// again: ten intervals, but at least an hour (RFC 2974 §3.2).
func Timeout(interval time.Duration) time.Duration {
	return max(10*interval, time.Hour)
}
