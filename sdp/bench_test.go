package sdp

import (
	"os"
	"testing"

	psdp "github.com/pion/sdp/v3"
)

func benchInput(b *testing.B) []byte {
	in, err := os.ReadFile("testdata/lecture-ipv6.sdp")
	if err != nil {
		b.Fatal(err)
	}
	return in
}

// BenchmarkParseCheck is what lint and every received answer cost: Parse
// with the multicast codecs, then Check.
func BenchmarkParseCheck(b *testing.B) {
	in := benchInput(b)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		s, err := Parse(in)
		if err != nil {
			b.Fatal(err)
		}
		if ps := s.Check(); len(ps) != 0 {
			b.Fatal(ps)
		}
	}
}

// BenchmarkPionUnmarshal is the reference for BenchmarkParseCheck: pion
// alone, which does not split c= or check anything multicast.
func BenchmarkPionUnmarshal(b *testing.B) {
	in := benchInput(b)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		var sd psdp.SessionDescription
		if err := sd.Unmarshal(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	s := MustParse(string(benchInput(b)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPionMarshal is the reference for BenchmarkMarshal.
func BenchmarkPionMarshal(b *testing.B) {
	var sd psdp.SessionDescription
	if err := sd.Unmarshal(benchInput(b)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sd.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}
