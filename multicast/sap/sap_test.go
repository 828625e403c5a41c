package sap

import (
	"bytes"
	"compress/zlib"
	"errors"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

const sdpText = "v=0\r\no=- 3929000000 1 IN IP4 192.0.2.1\r\ns=Lecture\r\nt=0 0\r\nm=audio 16384 RTP/AVP 0\r\nc=IN IP4 239.255.1.2/15\r\n"

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		p        Packet
		compress bool
	}{
		{"ipv4 announce", Packet{Hash: 0x1234, Origin: netip.MustParseAddr("192.0.2.1"), PayloadType: SDPType, Payload: []byte(sdpText)}, false},
		{"ipv6 announce compressed", Packet{Hash: 0xbeef, Origin: netip.MustParseAddr("2001:db8::1"), PayloadType: SDPType, Payload: []byte(sdpText)}, true},
		{"ipv4 delete", Packet{Delete: true, Hash: 7, Origin: netip.MustParseAddr("198.51.100.7"), PayloadType: SDPType, Payload: []byte(sdpText)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.p.Encode(tc.compress)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(Encode()) = %v", err)
			}
			if !reflect.DeepEqual(*got, tc.p) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", *got, tc.p)
			}
			if wantA := tc.p.Origin.Is6(); (b[0]&0x10 != 0) != wantA {
				t.Fatalf("A bit %v for origin %v", b[0]&0x10 != 0, tc.p.Origin)
			}
		})
	}
}

// header builds a packet by hand: flags, auth words, hash, origin, rest.
func header(flags, auth byte, hash uint16, origin []byte, rest []byte) []byte {
	b := []byte{flags, auth, byte(hash >> 8), byte(hash)}
	return append(append(b, origin...), rest...)
}

func TestDecodeForms(t *testing.T) {
	v4 := []byte{192, 0, 2, 1}
	// No payload type: the payload starts with v=0 (RFC 2974 §5).
	p, err := Decode(header(0x20, 0, 9, v4, []byte(sdpText)))
	if err != nil || p.PayloadType != "" || string(p.Payload) != sdpText {
		t.Fatalf("implicit SDP: %+v %v", p, err)
	}
	// Authentication data is skipped, and said to be there.
	p, err = Decode(header(0x20, 2, 9, v4, append(bytes.Repeat([]byte{0xaa}, 8), []byte("application/sdp\x00"+sdpText)...)))
	if err != nil || !p.Authenticated || string(p.Payload) != sdpText {
		t.Fatalf("with auth data: %+v %v", p, err)
	}
	// VLC writes a pointer's bytes as the origin: taken as it is.
	p, err = Decode(header(0x20, 0, 9, []byte{0, 0, 0x7f, 0xff}, []byte(sdpText)))
	if err != nil || p.Origin != netip.MustParseAddr("0.0.127.255") {
		t.Fatalf("odd origin: %+v %v", p, err)
	}
	// A deletion may come without its description.
	if p, err = Decode(header(0x24, 0, 9, v4, nil)); err != nil || !p.Delete {
		t.Fatalf("bare deletion: %+v %v", p, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	v4 := []byte{192, 0, 2, 1}
	var bomb bytes.Buffer
	zw := zlib.NewWriter(&bomb)
	zw.Write(append([]byte("application/sdp\x00v=0\r\n"), bytes.Repeat([]byte("a=x\r\n"), MaxPayload)...))
	zw.Close()
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"three bytes", []byte{0x20, 0, 0}, ErrShort},
		{"version 0", header(0x00, 0, 1, v4, []byte(sdpText)), ErrVersion},
		{"version 2", header(0x40, 0, 1, v4, []byte(sdpText)), ErrVersion},
		{"encrypted", header(0x22, 0, 1, v4, []byte(sdpText)), ErrEncrypted},
		{"short ipv6 origin", header(0x30, 0, 1, v4, nil), ErrShort},
		{"auth longer than packet", header(0x20, 200, 1, v4, []byte(sdpText)), ErrShort},
		{"bad zlib", header(0x21, 0, 1, v4, []byte("not zlib at all")), ErrCompressed},
		{"zip bomb", header(0x21, 0, 1, v4, bomb.Bytes()), ErrTooLarge},
		{"no payload", header(0x20, 0, 1, v4, nil), ErrNoPayload},
	} {
		if _, err := Decode(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: Decode = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := (&Packet{Origin: netip.MustParseAddr("224.2.127.254"), Payload: []byte(sdpText)}).Encode(false); !errors.Is(err, ErrOrigin) {
		t.Errorf("multicast origin: %v", err)
	}
}

func TestHash(t *testing.T) {
	a, b := Hash([]byte(sdpText)), Hash([]byte(sdpText+"a=x\r\n"))
	if a == 0 || b == 0 || a == b {
		t.Fatalf("Hash: %#x, %#x", a, b)
	}
	for i := range 100000 { // never zero
		if Hash([]byte{byte(i), byte(i >> 8), byte(i >> 16)}) == 0 {
			t.Fatal("a zero hash")
		}
	}
}

func TestInterval(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		ads, size int
		lo, hi    time.Duration
	}{
		{1, 500, 200 * time.Second, 400 * time.Second},     // the 300 s floor, ±1/3
		{100, 500, 200 * time.Second, 400 * time.Second},   // 100 s of bandwidth: still 300 s
		{1000, 500, 666 * time.Second, 1334 * time.Second}, // 1,000 s ±1/3
	} {
		for range 1000 {
			if d := Interval(r, tc.ads, tc.size, DefaultLimit); d < tc.lo || d > tc.hi {
				t.Fatalf("Interval(%d ads of %d bytes) = %v, want %v-%v", tc.ads, tc.size, d, tc.lo, tc.hi)
			}
		}
	}
	if Timeout(5*time.Second) != time.Hour || Timeout(10*time.Minute) != 100*time.Minute {
		t.Fatal("Timeout is max(10 intervals, 1 h)")
	}
}

func TestGroupFor(t *testing.T) {
	for in, want := range map[string]string{
		"239.255.1.2": "239.255.255.255", "239.193.7.7": "239.195.255.255", "224.2.200.1": "224.2.127.254",
		"232.1.2.3": "224.2.127.254", "ff15::8000:1": "ff05::2:7ffe", "ff1e::8000:1": "ff0e::2:7ffe", "ff38::8000:1": "ff08::2:7ffe",
	} {
		got, err := GroupFor(netip.MustParseAddr(in))
		if err != nil || got.String() != want {
			t.Errorf("GroupFor(%s) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"239.1.2.3", "192.0.2.1", "ff10::1"} {
		if _, err := GroupFor(netip.MustParseAddr(in)); err == nil {
			t.Errorf("GroupFor(%s) succeeded", in)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, p := range []Packet{
		{Hash: 1, Origin: netip.MustParseAddr("192.0.2.1"), Payload: []byte(sdpText)},
		{Hash: 2, Origin: netip.MustParseAddr("2001:db8::1"), Delete: true, Payload: []byte(sdpText)},
	} {
		for _, c := range []bool{false, true} {
			b, _ := p.Encode(c)
			f.Add(b)
		}
	}
	f.Add(header(0x20, 1, 5, []byte{10, 0, 0, 1}, []byte("abcdv=0\r\n")))
	// The 200-byte announcement of issue 8, with a count of 9*10^18.
	huge, _ := (&Packet{Hash: 3, Origin: netip.MustParseAddr("192.0.2.1"), Payload: []byte(hugeCount)}).Encode(false)
	f.Add(huge)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		if len(p.Payload) > MaxPayload {
			t.Fatalf("payload of %d bytes", len(p.Payload))
		}
		if p.Origin.IsMulticast() || p.Origin.IsUnspecified() || p.Authenticated {
			return // a packet mcc would never write
		}
		again, err := p.Encode(b[0]&1 != 0)
		if err != nil {
			t.Fatalf("Encode of a decoded packet: %v", err)
		}
		q, err := Decode(again)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(b))): %v", err)
		}
		want := *p
		if want.PayloadType == "" {
			want.PayloadType = SDPType
		}
		if !reflect.DeepEqual(*q, want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", *q, want)
		}
	})
}
