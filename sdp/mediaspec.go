package sdp

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// staticPayloads are the payload types RFC 3551 §6 (Tables 4 and 5)
// assigns, by encoding/clock rate/channels: a format that has one is
// written with it, as listeners that read no rtpmap (and PulseAudio,
// which knows L16/44100 only by type 10 and 11) expect.
var staticPayloads = map[string]uint8{
	"PCMU/8000/1": 0, "GSM/8000/1": 3, "G723/8000/1": 4, "DVI4/8000/1": 5, "DVI4/16000/1": 6,
	"LPC/8000/1": 7, "PCMA/8000/1": 8, "G722/8000/1": 9, "L16/44100/2": 10, "L16/44100/1": 11,
	"QCELP/8000/1": 12, "CN/8000/1": 13, "MPA/90000/0": 14, "G728/8000/1": 15, "DVI4/11025/1": 16, "DVI4/22050/1": 17,
	"G729/8000/1": 18, "CELB/90000/0": 25, "JPEG/90000/0": 26, "NV/90000/0": 28, "H261/90000/0": 31, "MPV/90000/0": 32, "MP2T/90000/0": 33, "H263/90000/0": 34,
}

// mediaKinds are the kinds ParseMediaSpec takes.
var mediaKinds = []string{"audio", "video", "text"}

// ParseMediaSpec reads a stream as the CLI and the API name it: a kind
// (audio, video, text), which gets DefaultFormats, or KIND:ENCODING/RATE
// with /CHANNELS for audio, such as audio:L16/48000/2 (what PulseAudio
// and PipeWire send), audio:L24/48000/2 (AES67) or video:H264/90000. A
// format RFC 3551 assigns a payload type gets it; any other gets 96.
func ParseMediaSpec(s string) (MediaSpec, error) {
	kind, format, hasFormat := strings.Cut(s, ":")
	kind = strings.ToLower(kind)
	if !slices.Contains(mediaKinds, kind) {
		return MediaSpec{}, fmt.Errorf("sdp: media %q: want audio, video or text, optionally with :ENCODING/RATE[/CHANNELS] (audio:L16/48000/2)", s)
	}
	if !hasFormat {
		return MediaSpec{Kind: kind}, nil
	}
	parts := strings.Split(format, "/")
	bad := func(why string) (MediaSpec, error) {
		return MediaSpec{}, fmt.Errorf("sdp: media %q: %s; want %s:ENCODING/RATE[/CHANNELS], such as audio:L16/48000/2", s, why, kind)
	}
	if len(parts) < 2 || len(parts) > 3 {
		return bad("the format has no clock rate")
	}
	enc := parts[0]
	if enc == "" || strings.ContainsFunc(enc, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) {
		return bad("the encoding is letters, digits, '-', '_' or '.'")
	}
	rate, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil || rate == 0 {
		return bad("the clock rate is a positive number")
	}
	channels := 0
	if len(parts) == 3 {
		if kind != "audio" {
			return bad("only audio has channels (RFC 8866 §6.6)")
		}
		n, err := strconv.Atoi(parts[2])
		if err != nil || n < 1 || n > 64 {
			return bad("channels are 1 to 64")
		}
		channels = n
	}
	f := RTPMap{Payload: 96, Encoding: enc, ClockRate: uint32(rate), Channels: channels}
	key := strings.ToUpper(enc) + "/" + parts[1] + "/"
	if kind == "audio" {
		key += strconv.Itoa(max(channels, 1))
	} else {
		key += "0"
	}
	pt, ok := staticPayloads[key]
	if !ok && kind == "audio" && channels == 0 {
		pt, ok = staticPayloads[strings.ToUpper(enc)+"/"+parts[1]+"/0"] // MPA: audio, written with no channels
	}
	if ok {
		f.Payload = pt
		if channels == 1 {
			f.Channels = 0 // RFC 8866 §6.6: one channel may be left out
		}
	}
	if f.Encoding == "H264" && f.Payload == 96 {
		f.Params = "packetization-mode=1"
	}
	return MediaSpec{Kind: kind, Formats: []RTPMap{f}}, nil
}

// ClockRate is the RTP timestamp rate of the stream's first format: its
// a=rtpmap's, else the rate RFC 3551 §6 gives its static payload type; 0
// when neither says.
func (m *Media) ClockRate() int {
	if len(m.Formats) == 0 {
		return 0
	}
	if r, ok := m.RTPMap(m.Formats[0]); ok {
		return int(r.ClockRate)
	}
	pt, err := strconv.Atoi(m.Formats[0])
	if err != nil {
		return 0
	}
	for key, p := range staticPayloads {
		if int(p) == pt {
			rate, _ := strconv.Atoi(strings.Split(key, "/")[1])
			return rate
		}
	}
	return 0
}
