package sdp

import (
	"reflect"
	"strings"
	"testing"

	"mcc/multicast"
)

func TestParseMediaSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want MediaSpec
	}{
		{"audio", MediaSpec{Kind: "audio"}},
		{"Video", MediaSpec{Kind: "video"}},
		{"audio:L16/48000/2", MediaSpec{Kind: "audio", Formats: []RTPMap{{Payload: 96, Encoding: "L16", ClockRate: 48000, Channels: 2}}}},
		{"audio:L24/48000/8", MediaSpec{Kind: "audio", Formats: []RTPMap{{Payload: 96, Encoding: "L24", ClockRate: 48000, Channels: 8}}}},
		// RFC 3551 §6's static types, which listeners know without rtpmap.
		{"audio:L16/44100/2", MediaSpec{Kind: "audio", Formats: []RTPMap{{Payload: 10, Encoding: "L16", ClockRate: 44100, Channels: 2}}}},
		{"audio:L16/44100/1", MediaSpec{Kind: "audio", Formats: []RTPMap{{Payload: 11, Encoding: "L16", ClockRate: 44100}}}},
		{"audio:pcma/8000", MediaSpec{Kind: "audio", Formats: []RTPMap{{Payload: 8, Encoding: "pcma", ClockRate: 8000}}}},
		{"audio:opus/48000/2", MediaSpec{Kind: "audio", Formats: []RTPMap{{Payload: 96, Encoding: "opus", ClockRate: 48000, Channels: 2}}}},
		{"video:H264/90000", MediaSpec{Kind: "video", Formats: []RTPMap{{Payload: 96, Encoding: "H264", ClockRate: 90000, Params: "packetization-mode=1"}}}},
		{"video:MP2T/90000", MediaSpec{Kind: "video", Formats: []RTPMap{{Payload: 33, Encoding: "MP2T", ClockRate: 90000}}}},
		{"audio:MPA/90000", MediaSpec{Kind: "audio", Formats: []RTPMap{{Payload: 14, Encoding: "MPA", ClockRate: 90000}}}},
		{"video:h263/90000", MediaSpec{Kind: "video", Formats: []RTPMap{{Payload: 34, Encoding: "h263", ClockRate: 90000}}}},
		{"video:raw/90000", MediaSpec{Kind: "video", Formats: []RTPMap{{Payload: 96, Encoding: "raw", ClockRate: 90000}}}},
	} {
		got, err := ParseMediaSpec(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "smell", "audio:", "audio:L16", "audio:L16/0", "audio:L16/48000/0", "audio:L16/48000/2/1",
		"video:H264/90000/2", "audio:L 16/48000", "audio:L16/x", "audio:L16\r\n/8000", "audio\n", " audio", "application:x/1"} {
		if _, err := ParseMediaSpec(bad); err == nil || !strings.Contains(err.Error(), "want") {
			t.Errorf("%q: %v, want an error saying what is expected", bad, err)
		}
	}
}

// TestCreateWithFormat: a stream named with its format is written with
// it, and reads back.
func TestCreateWithFormat(t *testing.T) {
	local := scope(t, multicast.IPv4, multicast.ScopeLocal)
	m, _ := newManager(t, local)
	ms, err := ParseMediaSpec("audio:L16/48000/2")
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.Create(SessionSpec{Name: "desk", Pool: local.Name, Media: []MediaSpec{ms}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Marshal()
	if !strings.Contains(string(b), "m=audio ") || !strings.Contains(string(b), " RTP/AVP 96\r\n") || !strings.Contains(string(b), "a=rtpmap:96 L16/48000/2\r\n") {
		t.Fatalf("%s", b)
	}
}
