package sdp

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func lecture(t *testing.T) *Session {
	t.Helper()
	return MustParse(string(must(os.ReadFile("testdata/lecture-ipv6.sdp"))))
}

func TestAddRemoveStream(t *testing.T) {
	s := lecture(t)
	prev := s.Clone()
	// Stream 2 is at port 0: a new stream takes its slot (RFC 3264 §8.1).
	grp := func(a string) *Connection { c := must(ParseConnection("IN IP6 "+a, MediaLevel)); return &c }
	i := s.AddMedia(&Media{Kind: "text", Port: 16390, Proto: "RTP/AVP", Formats: []string{"98"},
		RTPMaps: []RTPMap{{Payload: 98, Encoding: "t140", ClockRate: 1000}}, Connection: grp("ff15::8000:77")})
	if i != 2 || len(s.Media) != 3 {
		t.Fatalf("AddMedia reused slot %d of %d, want slot 2 of 3", i, len(s.Media))
	}
	if err := CheckUpdate(prev, s); err != nil {
		t.Fatalf("CheckUpdate after AddMedia = %v", err)
	}
	prev = s.Clone()
	i = s.AddMedia(&Media{Kind: "audio", Port: 16392, Proto: "RTP/AVP", Formats: []string{"0"}, Connection: grp("ff15::8000:78")})
	if i != 3 || len(s.Media) != 4 {
		t.Fatalf("AddMedia appended at %d, want 3", i)
	}
	if err := CheckUpdate(prev, s); err != nil {
		t.Fatal(err)
	}
	prev = s.Clone()
	if err := s.RemoveMedia(1); err != nil {
		t.Fatal(err)
	}
	if m := s.Media[1]; m.Port != 0 || m.Connection == nil || len(s.Media) != 4 || len(m.Formats) == 0 || m.RTPMaps != nil {
		t.Fatalf("removed stream: %+v", m)
	}
	if err := CheckUpdate(prev, s); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveMedia(1); err == nil {
		t.Fatal("removing a removed stream succeeded")
	}
	if err := s.RemoveMedia(9); err == nil {
		t.Fatal("removing stream 9 of 4 succeeded")
	}
	// The result is still a valid description that round-trips.
	out, _ := s.Marshal()
	again, err := Parse(out)
	if err != nil || !equalModel(again, s) {
		t.Fatalf("after edits: %v\n%s", err, out)
	}
	if ps := again.Check(); len(ps) != 0 {
		t.Fatalf("after edits Check = %v", ps)
	}
	if err := s.SetDirection(0, "upward"); err == nil {
		t.Fatal("a bad direction was taken")
	}
}

func TestCheckUpdate(t *testing.T) {
	prev := lecture(t)
	tests := []struct {
		name string
		edit func(*Session)
		want string
	}{
		{"same version", func(s *Session) {}, "want 2"},
		{"version +2", func(s *Session) { s.Origin.Version += 2 }, "want 2"},
		{"origin changed", func(s *Session) { s.Origin.Version++; s.Origin.SessionID++ }, "o= changed"},
		{"stream dropped", func(s *Session) { s.Origin.Version++; s.Media = s.Media[:2] }, "never dropped"},
		{"kind swapped", func(s *Session) { s.Origin.Version++; s.Media[0].Kind = "video" }, "without being removed"},
		{"fine", func(s *Session) { s.Origin.Version++; s.Media[2].Kind = "audio" }, ""},
	}
	for _, tc := range tests {
		next := prev.Clone()
		tc.edit(next)
		err := CheckUpdate(prev, next)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: CheckUpdate = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestCheckAnswer(t *testing.T) {
	offer := lecture(t)
	answerOrigin := Origin{Username: "bob", SessionID: 9, Version: 9, Host: "bob.example.com"}
	tests := []struct {
		name   string
		edit   func(a *Session)
		states []StreamState
		want   string
	}{
		{"echo", func(a *Session) {}, []StreamState{StreamAccepted, StreamAccepted, StreamRemoved}, ""},
		{"declines video", func(a *Session) { a.Media[1].Port = 0 }, []StreamState{StreamAccepted, StreamDeclined, StreamRemoved}, ""},
		{"format subset", func(a *Session) { a.Media[0].Formats = []string{"0"} }, []StreamState{StreamAccepted, StreamAccepted, StreamRemoved}, ""},
		{"other group", func(a *Session) {
			a.Media[0].Connection = &Connection{Addr: must(ParseConnection("IN IP6 ff15::9", MediaLevel)).Addr}
		},
			[]StreamState{StreamInvalid, StreamAccepted, StreamRemoved}, "stream 0: address ff15::9 for the offered group ff15::8000:1234"},
		{"unicast answer", func(a *Session) {
			a.Media[1].Connection = &Connection{Addr: must(ParseConnection("IN IP6 2001:db8::5", MediaLevel)).Addr}
		},
			[]StreamState{StreamAccepted, StreamInvalid, StreamRemoved}, "keeps the offer's address"},
		{"other port", func(a *Session) { a.Media[0].Port = 5004 }, []StreamState{StreamInvalid, StreamAccepted, StreamRemoved}, "port 5004 for the offered 16384"},
		{"other direction", func(a *Session) { a.Direction = SendRecv }, []StreamState{StreamInvalid, StreamInvalid, StreamRemoved}, "direction sendrecv for the offered recvonly"},
		{"unoffered format", func(a *Session) { a.Media[0].Formats = []string{"8"} }, []StreamState{StreamInvalid, StreamAccepted, StreamRemoved}, "format 8 was not offered"},
		{"other bandwidth", func(a *Session) { a.Media[0].Bandwidths = []Bandwidth{{"AS", 128}} }, []StreamState{StreamInvalid, StreamAccepted, StreamRemoved}, "bandwidth must equal"},
		{"revives removed", func(a *Session) { a.Media[2].Port = 16388 }, []StreamState{StreamAccepted, StreamAccepted, StreamInvalid}, "must stay 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := Answer(offer, answerOrigin)
			tc.edit(a)
			res, err := CheckAnswer(offer, a)
			for i, r := range res {
				if r.State != tc.states[i] {
					t.Errorf("stream %d: %v, want %v", i, r.State, tc.states[i])
				}
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckAnswer = %v", err)
				}
				return
			}
			var ae *AnswerError
			if !errors.As(err, &ae) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckAnswer = %v, want an *AnswerError containing %q", err, tc.want)
			}
		})
	}
	short := Answer(offer, answerOrigin)
	short.Media = short.Media[:2]
	if _, err := CheckAnswer(offer, short); err == nil || !strings.Contains(err.Error(), "counts must match") {
		t.Fatalf("an answer with fewer m= lines: %v", err)
	}
	// TTL is part of an IPv4 group's connection address.
	v4 := MustParse(good)
	a := Answer(v4, answerOrigin)
	a.Media[0].Connection.TTL = 1
	if _, err := CheckAnswer(v4, a); err == nil || !strings.Contains(err.Error(), "TTL 1 for the offered 15") {
		t.Fatalf("changed TTL: %v", err)
	}
}

// TestRFC4317Exchange runs the unicast exchange of RFC 4317 §2.2: Bob
// declines video with port 0, Alice's second offer keeps the m= line at
// port 0 with a version one higher.
func TestRFC4317Exchange(t *testing.T) {
	read := func(name string) *Session {
		return MustParse(string(must(os.ReadFile("testdata/rfc4317-2.2-" + name + ".sdp"))))
	}
	offer, answer, offer2, answer2 := read("offer"), read("answer"), read("second-offer"), read("second-answer")
	res, err := CheckAnswer(offer, answer)
	if err != nil || res[0].State != StreamAccepted || res[1].State != StreamDeclined {
		t.Fatalf("first exchange: %v %v", res, err)
	}
	if err := CheckUpdate(offer, offer2); err != nil {
		t.Fatalf("second offer: %v", err)
	}
	res, err = CheckAnswer(offer2, answer2)
	if err != nil || res[0].State != StreamAccepted || res[1].State != StreamRemoved {
		t.Fatalf("second exchange: %v %v", res, err)
	}
	if err := CheckUpdate(answer, answer2); err != nil {
		t.Fatalf("second answer as an update of the first: %v", err)
	}
}
