package sdp

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin and Europe/London wherever the tests run

	"mcc/multicast"
)

// timed returns a description with the given t=, r= and z= lines; they
// start at line 4.
func timed(lines ...string) string {
	return "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=Lecture\r\n" + strings.Join(lines, "\r\n") +
		"\r\nm=audio 16384 RTP/AVP 0\r\nc=IN IP4 239.255.1.1/15\r\n"
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func location(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func scheduleOf(t testing.TB, desc string) Schedule {
	t.Helper()
	s, err := Parse([]byte(desc))
	if err != nil {
		t.Fatalf("Parse = %v\n%s", err, desc)
	}
	sch, err := s.Schedule()
	if err != nil {
		t.Fatalf("Schedule() = %v\n%s", err, desc)
	}
	return sch
}

// The RFC 8866 examples: two t= lines (§5.9), a weekly series (§5.10) in
// seconds and in typed units, and a year of it across British Summer Time
// (§5.11).
var (
	rfc8866Times  = []string{"t=3724394400 3724398000", "t=3724484400 3724488000"}
	rfc8866Repeat = []string{"t=3724394400 3730536000", "r=604800 3600 0 90000"}
	rfc8866Typed  = []string{"t=3724394400 3730536000", "r=7d 1h 0 25h"}
	rfc8866Zones  = []string{"t=3724394400 3754123200", "r=604800 3600 0 90000", "z=3730928400 -1h 3749680800 0"}
	// RFC 4566 §5.11's z= line, on an unbounded weekly series from the
	// start time of RFC 4566's example (Sun 20 Jan 1991 21:58:16 UTC).
	rfc4566Zones = []string{"t=2873397496 0", "r=7d 1h 0", "z=2882844526 -1h 2898848070 0"}
)

func TestScheduleNext(t *testing.T) {
	type at struct {
		now        string
		start, end string // "" for a zero time
		ok         bool
	}
	tests := []struct {
		name  string
		lines []string
		at    []at
	}{
		{"RFC 8866 §5.9 two t= lines", rfc8866Times, []at{
			{"2018-01-08T09:00:00Z", "2018-01-08T10:00:00Z", "2018-01-08T11:00:00Z", true},
			{"2018-01-08T10:30:00Z", "2018-01-08T10:00:00Z", "2018-01-08T11:00:00Z", true},
			{"2018-01-08T10:59:59.999Z", "2018-01-08T10:00:00Z", "2018-01-08T11:00:00Z", true},
			{"2018-01-08T11:00:00Z", "2018-01-09T11:00:00Z", "2018-01-09T12:00:00Z", true},
			{"2018-01-09T12:00:00Z", "", "", false},
		}},
		{"RFC 8866 §5.10 r=604800 3600 0 90000", rfc8866Repeat, []at{
			{"2017-12-31T00:00:00Z", "2018-01-08T10:00:00Z", "2018-01-08T11:00:00Z", true},
			{"2018-01-08T11:00:00Z", "2018-01-09T11:00:00Z", "2018-01-09T12:00:00Z", true},
			{"2018-01-09T12:00:00.5Z", "2018-01-15T10:00:00Z", "2018-01-15T11:00:00Z", true},
			{"2018-03-20T11:30:00Z", "2018-03-20T11:00:00Z", "2018-03-20T12:00:00Z", true},
			{"2018-03-20T12:00:00Z", "", "", false},
		}},
		{"RFC 8866 §5.10 r=7d 1h 0 25h", rfc8866Typed, []at{
			{"2018-01-08T11:00:00Z", "2018-01-09T11:00:00Z", "2018-01-09T12:00:00Z", true},
			{"2018-03-20T12:00:00Z", "", "", false},
		}},
		{"RFC 8866 §5.11 z=3730928400 -1h 3749680800 0", rfc8866Zones, []at{
			{"2018-03-20T00:00:00Z", "2018-03-20T11:00:00Z", "2018-03-20T12:00:00Z", true},
			// From Sun 25 Mar 01:00 UTC, an hour earlier: 10:00 BST.
			{"2018-03-24T00:00:00Z", "2018-03-26T09:00:00Z", "2018-03-26T10:00:00Z", true},
			{"2018-10-23T00:00:00Z", "2018-10-23T10:00:00Z", "2018-10-23T11:00:00Z", true},
			// From Sun 28 Oct 02:00 UTC, the original time base again.
			{"2018-10-28T12:00:00Z", "2018-10-29T10:00:00Z", "2018-10-29T11:00:00Z", true},
			{"2018-12-18T11:30:00Z", "2018-12-18T11:00:00Z", "2018-12-18T12:00:00Z", true},
			{"2018-12-18T12:00:00Z", "", "", false},
		}},
		{"RFC 4566 §5.11 z=2882844526 -1h 2898848070 0", rfc4566Zones, []at{
			{"1991-05-04T00:00:00Z", "1991-05-05T21:58:16Z", "1991-05-05T22:58:16Z", true},
			{"1991-05-10T00:00:00Z", "1991-05-12T20:58:16Z", "1991-05-12T21:58:16Z", true},
			{"1991-11-04T00:00:00Z", "1991-11-10T20:58:16Z", "1991-11-10T21:58:16Z", true},
			{"1991-11-12T00:00:00Z", "1991-11-17T21:58:16Z", "1991-11-17T22:58:16Z", true},
		}},
		{"RFC 4566 §5 z= after the stop of the series", []string{"t=2873397496 2873404696", "r=7d 1h 0 25h", "z=2882844526 -1h 2898848070 0"}, []at{
			{"1991-01-01T00:00:00Z", "1991-01-20T21:58:16Z", "1991-01-20T22:58:16Z", true},
			{"1991-01-20T22:58:16Z", "", "", false},
		}},
		{"daily, unbounded", []string{"t=4005626400 0", "r=1d 1h 0"}, []at{
			{"2026-01-01T00:00:00Z", "2026-12-07T10:00:00Z", "2026-12-07T11:00:00Z", true},
			{"2026-12-10T12:00:00Z", "2026-12-11T10:00:00Z", "2026-12-11T11:00:00Z", true},
			{"2126-12-10T10:20:00Z", "2126-12-10T10:00:00Z", "2126-12-10T11:00:00Z", true},
		}},
		// Mondays and Wednesdays 10:00-11:30, to Wed 16 Dec 10:45.
		{"weekly, two offsets, cut at stop", []string{"t=4005626400 4006406700", "r=7d 90m 0 2d"}, []at{
			{"2026-12-07T11:30:00Z", "2026-12-09T10:00:00Z", "2026-12-09T11:30:00Z", true},
			{"2026-12-12T00:00:00Z", "2026-12-14T10:00:00Z", "2026-12-14T11:30:00Z", true},
			{"2026-12-15T00:00:00Z", "2026-12-16T10:00:00Z", "2026-12-16T10:45:00Z", true},
			{"2026-12-16T10:45:00Z", "", "", false},
		}},
		{"unbounded one-off", []string{"t=4005626400 0"}, []at{
			{"2026-12-01T00:00:00Z", "2026-12-07T10:00:00Z", "", true},
			{"2099-01-01T00:00:00Z", "2026-12-07T10:00:00Z", "", true},
		}},
		{"permanent", []string{"t=0 0"}, []at{
			{"1970-01-01T00:00:00Z", "", "", true},
			{"2999-01-01T00:00:00Z", "", "", true},
		}},
		{"until a stop, from no start", []string{"t=0 4005626400"}, []at{
			{"2026-12-01T00:00:00Z", "", "2026-12-07T10:00:00Z", true},
			{"2026-12-07T10:00:00Z", "", "", false},
		}},
		{"several t= lines, one repeating", []string{"t=4005626400 4005630000", "t=4005626400 0", "r=1d 30m 2h"}, []at{
			{"2026-12-07T10:30:00Z", "2026-12-07T10:00:00Z", "2026-12-07T11:00:00Z", true},
			{"2026-12-07T11:00:00Z", "2026-12-07T12:00:00Z", "2026-12-07T12:30:00Z", true},
		}},
	}
	tm := func(s string) time.Time {
		if s == "" {
			return time.Time{}
		}
		return utc(s)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sch := scheduleOf(t, timed(tc.lines...))
			for _, a := range tc.at {
				start, end, ok := sch.Next(utc(a.now))
				if !start.Equal(tm(a.start)) || !end.Equal(tm(a.end)) || ok != a.ok {
					t.Errorf("Next(%s) = %v, %v, %v, want %s, %s, %v", a.now, start, end, ok, a.start, a.end, a.ok)
				}
				// Next is the first of Intervals from now on.
				is := sch.Intervals(utc(a.now), time.Time{})
				if ok != (len(is) > 0) || ok && (!is[0].Start.Equal(start) || !is[0].End.Equal(end)) {
					t.Errorf("Intervals(%s, 0) begins %v; Next = %v, %v, %v", a.now, is[:min(1, len(is))], start, end, ok)
				}
			}
		})
	}
}

func TestScheduleTypedUnits(t *testing.T) {
	a, b := scheduleOf(t, timed(rfc8866Repeat...)), scheduleOf(t, timed(rfc8866Typed...))
	if !sameSchedule(a, b) {
		t.Errorf("r=604800 3600 0 90000 gives %+v, r=7d 1h 0 25h %+v", a, b)
	}
	want := Repetition{Every: 7 * 24 * time.Hour, For: time.Hour, Offsets: []time.Duration{0, 25 * time.Hour}}
	if len(b.Periods) != 1 || len(b.Periods[0].Repeats) != 1 || !sameRepetition(b.Periods[0].Repeats[0], want) {
		t.Errorf("r=7d 1h 0 25h = %+v, want %+v", b, want)
	}
}

func TestScheduleIntervals(t *testing.T) {
	london := location(t, "Europe/London")
	t.Run("RFC 8866 §5.10", func(t *testing.T) {
		is := scheduleOf(t, timed(rfc8866Repeat...)).Intervals(time.Time{}, time.Time{})
		// Eleven Mondays 10:00 and eleven Tuesdays 11:00, 8 Jan to 20 Mar.
		if len(is) != 22 || !is[0].Start.Equal(utc("2018-01-08T10:00:00Z")) || !is[21].End.Equal(utc("2018-03-20T12:00:00Z")) {
			t.Fatalf("Intervals = %d: %v", len(is), is)
		}
	})
	t.Run("RFC 8866 §5.11 keeps London time", func(t *testing.T) {
		is := scheduleOf(t, timed(rfc8866Zones...)).Intervals(time.Time{}, time.Time{})
		if len(is) != 100 {
			t.Fatalf("Intervals = %d, want 100 (50 weeks)", len(is))
		}
		for _, i := range is {
			l := i.Start.In(london)
			if !(l.Weekday() == time.Monday && l.Hour() == 10 || l.Weekday() == time.Tuesday && l.Hour() == 11) || l.Minute() != 0 || i.End.Sub(i.Start) != time.Hour {
				t.Errorf("interval %v is at %v in London", i, l)
			}
		}
	})
	t.Run("a window", func(t *testing.T) {
		sch := scheduleOf(t, timed(rfc8866Repeat...))
		// From inside Tuesday 9 Jan's to just inside Tuesday 16 Jan's.
		is := sch.Intervals(utc("2018-01-09T11:30:00Z"), utc("2018-01-16T11:00:00.5Z"))
		want := []Interval{
			{utc("2018-01-09T11:00:00Z"), utc("2018-01-09T12:00:00Z")},
			{utc("2018-01-15T10:00:00Z"), utc("2018-01-15T11:00:00Z")},
			{utc("2018-01-16T11:00:00Z"), utc("2018-01-16T12:00:00Z")},
		}
		if !slices.EqualFunc(is, want, func(a, b Interval) bool { return a.Start.Equal(b.Start) && a.End.Equal(b.End) }) {
			t.Errorf("Intervals = %v, want %v", is, want)
		}
		if is := sch.Intervals(utc("2018-01-16T11:00:00Z"), utc("2018-01-16T11:00:00Z")); is != nil {
			t.Errorf("Intervals of an empty window = %v", is)
		}
		if is := sch.Intervals(utc("2018-02-01T00:00:00Z"), utc("2018-01-01T00:00:00Z")); is != nil {
			t.Errorf("Intervals of a reversed window = %v", is)
		}
	})
	t.Run("at most MaxIntervals", func(t *testing.T) {
		sch := scheduleOf(t, timed("t=4005626400 0", "r=1m 1m 0"))
		is := sch.Intervals(time.Time{}, time.Time{})
		if len(is) != MaxIntervals || !is[MaxIntervals-1].Start.Equal(utc("2026-12-07T10:00:00Z").Add((MaxIntervals-1)*time.Minute)) {
			t.Errorf("Intervals of an endless series = %d, ending %v", len(is), is[len(is)-1])
		}
	})
	t.Run("permanent", func(t *testing.T) {
		is := Schedule{}.Intervals(utc("2026-01-01T00:00:00Z"), utc("2027-01-01T00:00:00Z"))
		if len(is) != 1 || !is[0].Start.IsZero() || !is[0].End.IsZero() || !is[0].Contains(utc("2026-06-01T00:00:00Z")) {
			t.Errorf("Intervals of a permanent session = %v", is)
		}
	})
}

func TestScheduleRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  []string // the lines Marshal writes
	}{
		{"two t= lines", rfc8866Times, rfc8866Times},
		{"typed units", rfc8866Typed, rfc8866Repeat},
		{"z=", rfc8866Zones, []string{"t=3724394400 3754123200", "r=604800 3600 0 90000", "z=3730928400 -3600 3749680800 0"}},
		{"RFC 4566 z=", rfc4566Zones, []string{"t=2873397496 0", "r=604800 3600 0", "z=2882844526 -3600 2898848070 0"}},
		{"permanent", []string{"t=0 0"}, []string{"t=0 0"}},
		{"two r= lines", []string{"t=4005626400 0", "r=7d 1h 0 2d", "r=1d 15m 12h", "z=4015184400 -1h"}, []string{"t=4005626400 0", "r=604800 3600 0 172800", "r=86400 900 43200", "z=4015184400 -3600"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sch := scheduleOf(t, timed(tc.lines...))
			s := MustParse(good)
			if err := s.SetSchedule(sch); err != nil {
				t.Fatalf("SetSchedule = %v", err)
			}
			out, err := s.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range strings.Split(string(out), "\r\n") {
				if len(l) > 2 && strings.Contains("trz", l[:1]) && l[1] == '=' {
					got = append(got, l)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Marshal writes %q, want %q", got, tc.want)
			}
			back := scheduleOf(t, string(out))
			if !sameSchedule(back, sch) {
				t.Errorf("round trip: %+v, then %+v", sch, back)
			}
		})
	}
	// The zero Schedule writes t=0 0 and reads back as itself.
	s := MustParse(timed(rfc8866Zones...))
	if err := s.SetSchedule(Schedule{}); err != nil {
		t.Fatal(err)
	}
	if out := s.String(); !strings.Contains(out, "\r\nt=0 0\r\n") || strings.Contains(out, "r=") || strings.Contains(out, "z=") {
		t.Errorf("SetSchedule(Schedule{}) writes\n%s", out)
	}
	if sch, err := MustParse(s.String()).Schedule(); err != nil || !sch.IsZero() {
		t.Errorf("t=0 0 reads as %+v, %v", sch, err)
	}
}

func TestScheduleErrors(t *testing.T) {
	tests := []struct {
		name    string
		lines   []string
		wantErr string
	}{
		{"stop before start", []string{"t=3724398000 3724394400"},
			`sdp: line 4 "t=3724398000 3724394400": stop time 2018-01-08T10:00:00Z is not after the start time 2018-01-08T11:00:00Z (RFC 8866 §5.9)`},
		{"nine digits", []string{"t=999999999 0"},
			`sdp: line 4 "t=999999999 0": start time 999999999 has fewer than ten digits: SDP times are seconds since 1900, 1000000000 or more (RFC 8866 §9)`},
		{"after 9999", []string{"t=3724394400 99999999999999"},
			`sdp: line 4 "t=3724394400 99999999999999": stop time 99999999999999 is after the year 9999`},
		{"interval 0", []string{"t=3724394400 0", "r=0 1h 0"},
			`sdp: line 5 "r=0 1h 0": repeat interval 0: want more than 0 (RFC 8866 §9)`},
		{"negative interval", []string{"t=3724394400 0", "r=-7d 1h 0"},
			`sdp: line 5 "r=-7d 1h 0": repeat interval -7d: want more than 0 (RFC 8866 §9)`},
		{"duration 0", []string{"t=3724394400 0", "r=7d 0 0"},
			`sdp: line 5 "r=7d 0 0": active duration 0: want more than 0, or the session is never active`},
		{"duration longer than interval", []string{"t=3724394400 0", "r=1d 25h 0"},
			`sdp: line 5 "r=1d 25h 0": active duration 25h is longer than the repeat interval 1d: each repetition would run into the next (RFC 8866 §5.10)`},
		{"no offset", []string{"t=3724394400 0", "r=7d 1h"},
			`sdp: line 5 "r=7d 1h": no offset: want at least one, 0 for the start time itself (RFC 8866 §5.10, §9)`},
		{"offset not less than interval", []string{"t=3724394400 0", "r=7d 1h 0", "r=7d 1h 0 7d"},
			`sdp: line 6 "r=7d 1h 0 7d": offset 7d is not less than the repeat interval 7d (RFC 8866 §5.10)`},
		{"offset twice", []string{"t=3724394400 0", "r=7d 1h 25h 90000"},
			`sdp: line 5 "r=7d 1h 25h 25h": offset 25h is given twice`},
		{"r= under t=0", []string{"t=0 0", "r=7d 1h 0"},
			`sdp: line 5 "r=7d 1h 0": a repetition needs the start time of its t= line to count from, and t=0 gives none (RFC 8866 §5.9, §5.10)`},
		{"z= without r=", []string{"t=0 0", "z=2882844526 -1h 2898848070 0"},
			`sdp: line 5 "z=2882844526 -1h 2898848070 0": a z= line modifies the r= lines it follows, and this t= has none (RFC 8866 §5.11, §9)`},
		{"z= after a last t= without r=", []string{"t=3724394400 0", "r=7d 1h 0", "t=3724484400 3724488000", "z=3730928400 -1h"},
			`sdp: line 7 "z=3730928400 -1h": a z= line modifies the r= lines it follows, and this t= has none (RFC 8866 §5.11, §9)`},
		{"z= times not increasing", []string{"t=3724394400 0", "r=7d 1h 0", "z=3749680800 0 3730928400 -1h"},
			`sdp: line 6 "z=3749680800 0 3730928400 -1h": adjustment time 2018-03-25T01:00:00Z is not after the one before it, 2018-10-28T02:00:00Z (RFC 8866 §5.11)`},
		{"z= time of nine digits", []string{"t=3724394400 0", "r=7d 1h 0", "z=999999999 -1h"},
			`sdp: line 6 "z=999999999 -1h": adjustment time 999999999 has fewer than ten digits: SDP times are seconds since 1900, 1000000000 or more (RFC 8866 §9)`},
		{"huge interval", []string{"t=3724394400 0", "r=9223372037 1h 0"},
			`sdp: line 5 "r=9223372037 1h 0": repeat interval 9223372037 seconds is more than 292 years`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(timed(tc.lines...)))
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			_, err = s.Schedule()
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("Schedule() = %v\nwant %s", err, tc.wantErr)
			}
			if se, ok := errors.AsType[*ScheduleError](err); !ok || !errors.Is(err, ErrInvalid) || se.Line == 0 {
				t.Errorf("Schedule() = %#v, want a *ScheduleError with its line, matching ErrInvalid", err)
			}
		})
	}
}

func TestScheduleValidate(t *testing.T) {
	start := utc("2026-12-07T10:00:00Z")
	weekly := Repetition{Every: 7 * 24 * time.Hour, For: time.Hour, Offsets: []time.Duration{0}}
	tests := []struct {
		name    string
		sch     Schedule
		wantErr string
	}{
		{"fraction of a second", Schedule{Periods: []Period{{Start: start.Add(time.Millisecond)}}},
			`sdp: t=2026-12-07T10:00:00.001Z 0: start time: 2026-12-07T10:00:00.001Z has a fraction of a second: SDP times are whole seconds (RFC 8866 §5.9); truncate it`},
		{"before 1931", Schedule{Periods: []Period{{Start: utc("1930-01-01T00:00:00Z")}}},
			`sdp: t=1930-01-01T00:00:00Z 0: start time: 1930-01-01T00:00:00Z is before 1931-09-09, the first ten-digit SDP time (RFC 8866 §9)`},
		{"fractional duration", Schedule{Periods: []Period{{Start: start, Repeats: []Repetition{{Every: time.Hour, For: 1500 * time.Millisecond, Offsets: []time.Duration{0}}}}}},
			`sdp: r=1h 1.5s 0: 1.5s is not a whole number of seconds (RFC 8866 §5.10: no fractional units)`},
		{"zones on another period", Schedule{Periods: []Period{
			{Start: start, Repeats: []Repetition{weekly}, Zones: []ZoneAdjust{{At: start.Add(100 * 24 * time.Hour), Offset: -time.Hour}}},
			{Start: start, Stop: start.Add(time.Hour)}}},
			`sdp: z=4014266400 -1h: only the last t= can have a z= line: mcc reads and writes one, after every t= and r= line`},
		{"zone without a time", Schedule{Periods: []Period{{Start: start, Repeats: []Repetition{weekly}, Zones: []ZoneAdjust{{Offset: time.Hour}}}}},
			`sdp: z=0 1h: adjustment 1 has no time (RFC 8866 §5.11)`},
		{"too many offsets", Schedule{Periods: []Period{{Start: start, Repeats: []Repetition{{Every: time.Hour, For: time.Second, Offsets: seconds(65)}}}}},
			`sdp: ` + Repetition{Every: time.Hour, For: time.Second, Offsets: seconds(65)}.line() + `: 65 offsets, more than the 64 mcc reads`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.sch.Validate()
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("Validate() = %v\nwant %s", err, tc.wantErr)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate() = %v, which does not match ErrInvalid", err)
			}
			s := MustParse(good)
			if err := s.SetSchedule(tc.sch); err == nil || s.String() != MustParse(good).String() {
				t.Errorf("SetSchedule of an invalid schedule = %v, and wrote\n%s", err, s)
			}
			// Next and Intervals refuse it too, without a panic.
			if _, _, ok := tc.sch.Next(start); ok {
				t.Errorf("Next of an invalid schedule is ok")
			}
			if is := tc.sch.Intervals(time.Time{}, time.Time{}); is != nil {
				t.Errorf("Intervals of an invalid schedule = %v", is)
			}
		})
	}
}

func seconds(n int) []time.Duration {
	var ds []time.Duration
	for i := range n {
		ds = append(ds, time.Duration(i)*time.Second)
	}
	return ds
}

func TestParseSchedule(t *testing.T) {
	berlin := location(t, "Europe/Berlin")
	weekly := func(d time.Duration, offs ...time.Duration) Repetition {
		return Repetition{Every: 7 * 24 * time.Hour, For: d, Offsets: offs}
	}
	tests := []struct {
		name                string
		start, stop, repeat string
		loc                 *time.Location
		want                Schedule
	}{
		{"permanent", "", "", "", nil, Schedule{}},
		{"one-off, RFC 3339", "2026-12-07T10:00:00+01:00", "2026-12-07T12:00:00+01:00", "", berlin,
			Schedule{Periods: []Period{{Start: utc("2026-12-07T09:00:00Z"), Stop: utc("2026-12-07T11:00:00Z")}}}},
		{"one-off, local", "2026-12-07 10:00", "2026-12-07 12:00:30", "", berlin,
			Schedule{Periods: []Period{{Start: utc("2026-12-07T09:00:00Z"), Stop: utc("2026-12-07T11:00:30Z")}}}},
		{"unbounded, nil loc is UTC", "2026-12-07T10:00", "", "", nil,
			Schedule{Periods: []Period{{Start: utc("2026-12-07T10:00:00Z")}}}},
		{"until a stop", "", "2026-12-07 10:00", "", nil,
			Schedule{Periods: []Period{{Stop: utc("2026-12-07T10:00:00Z")}}}},
		{"r= fields", "2026-12-07 10:00", "2027-03-01 00:00", "7d 1h 0 25h", time.UTC,
			Schedule{Periods: []Period{{Start: utc("2026-12-07T10:00:00Z"), Stop: utc("2027-03-01T00:00:00Z"), Repeats: []Repetition{weekly(time.Hour, 0, 25*time.Hour)}}}}},
		{"r= fields in seconds and Go durations", "2026-12-07 10:00", "2027-03-01 00:00", "604800 1h30m 0 90000s", time.UTC,
			Schedule{Periods: []Period{{Start: utc("2026-12-07T10:00:00Z"), Stop: utc("2027-03-01T00:00:00Z"), Repeats: []Repetition{weekly(90*time.Minute, 0, 25*time.Hour)}}}}},
		{"r= without offsets", "2026-12-07 10:00", "2027-03-01 00:00", "7d 1h", time.UTC,
			Schedule{Periods: []Period{{Start: utc("2026-12-07T10:00:00Z"), Stop: utc("2027-03-01T00:00:00Z"), Repeats: []Repetition{weekly(time.Hour, 0)}}}}},
		{"weekly", "2026-12-07 10:00", "2027-03-01 00:00", "weekly 1h30m", time.UTC,
			Schedule{Periods: []Period{{Start: utc("2026-12-07T10:00:00Z"), Stop: utc("2027-03-01T00:00:00Z"), Repeats: []Repetition{weekly(90*time.Minute, 0)}}}}},
		{"Daily with offsets", "2026-12-07 10:00", "2026-12-20 00:00", "Daily 45m 0 6h", time.UTC,
			Schedule{Periods: []Period{{Start: utc("2026-12-07T10:00:00Z"), Stop: utc("2026-12-20T00:00:00Z"), Repeats: []Repetition{{Every: 24 * time.Hour, For: 45 * time.Minute, Offsets: []time.Duration{0, 6 * time.Hour}}}}}}},
		// Winter to winter in Berlin: into summer time and back.
		{"weekly in Berlin", "2027-01-04 10:00", "2027-12-31 00:00", "weekly 1h30m", berlin,
			Schedule{Periods: []Period{{Start: utc("2027-01-04T09:00:00Z"), Stop: utc("2027-12-30T23:00:00Z"), Repeats: []Repetition{weekly(90*time.Minute, 0)},
				Zones: []ZoneAdjust{{utc("2027-03-28T01:00:00Z"), -time.Hour}, {utc("2027-10-31T01:00:00Z"), 0}}}}}},
		// From summer, unbounded: ZoneYears of changes.
		{"unbounded in Berlin", "2027-06-07 10:00", "", "weekly 1h", berlin,
			Schedule{Periods: []Period{{Start: utc("2027-06-07T08:00:00Z"), Repeats: []Repetition{weekly(time.Hour, 0)},
				Zones: []ZoneAdjust{{utc("2027-10-31T01:00:00Z"), time.Hour}, {utc("2028-03-26T01:00:00Z"), 0}, {utc("2028-10-29T01:00:00Z"), time.Hour}, {utc("2029-03-25T01:00:00Z"), 0}}}}}},
		{"ended before a change", "2027-01-04 10:00", "2027-03-28 03:00", "weekly 1h", berlin,
			Schedule{Periods: []Period{{Start: utc("2027-01-04T09:00:00Z"), Stop: utc("2027-03-28T01:00:00Z"), Repeats: []Repetition{weekly(time.Hour, 0)}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sch, err := ParseSchedule(tc.start, tc.stop, tc.repeat, tc.loc)
			if err != nil {
				t.Fatalf("ParseSchedule(%q, %q, %q) = %v", tc.start, tc.stop, tc.repeat, err)
			}
			if !sameSchedule(sch, tc.want) {
				t.Errorf("ParseSchedule(%q, %q, %q) = %+v\nwant %+v", tc.start, tc.stop, tc.repeat, sch, tc.want)
			}
		})
	}
}

func TestParseScheduleErrors(t *testing.T) {
	berlin := location(t, "Europe/Berlin")
	tests := []struct {
		start, stop, repeat string
		wantErr             string
	}{
		{"tomorrow", "", "", `sdp: start "tomorrow": want an RFC 3339 time (2026-12-07T10:00:00+01:00) or a local time in Europe/Berlin (2026-12-07 10:00)`},
		{"2026-12-07 10:00", "07/12/2026", "", `sdp: stop "07/12/2026": want an RFC 3339 time (2026-12-07T10:00:00+01:00) or a local time in Europe/Berlin (2026-12-07 10:00)`},
		{"2027-03-28 02:30", "", "", `sdp: start "2027-03-28 02:30": 2027-03-28 02:30:00 does not exist in Europe/Berlin: the clocks skip it`},
		{"2026-12-07T10:00:00.5Z", "", "", `sdp: start "2026-12-07T10:00:00.5Z": 2026-12-07T10:00:00.5Z has a fraction of a second: SDP times are whole seconds (RFC 8866 §5.9); truncate it`},
		{"1900-06-01 00:00", "", "", `sdp: start "1900-06-01 00:00": 1900-05-31T23:00:00Z is before 1931-09-09, the first ten-digit SDP time (RFC 8866 §9)`},
		{"2026-12-07 10:00", "2026-12-07 10:00", "", `sdp: stop "2026-12-07 10:00": 2026-12-07T10:00:00+01:00 is not after the start, 2026-12-07T10:00:00+01:00 (RFC 8866 §5.9)`},
		{"", "", "weekly 1h", `sdp: repeat "weekly 1h": a repeat needs a start: its offsets count from it (RFC 8866 §5.10)`},
		{"2026-12-07 10:00", "", "weekly", `sdp: repeat "weekly": want daily or weekly and a duration (weekly 1h30m), or an r= line's interval, duration and offsets (7d 1h 0 25h)`},
		{"2026-12-07 10:00", "", "7d", `sdp: repeat "7d": want daily or weekly and a duration (weekly 1h30m), or an r= line's interval, duration and offsets (7d 1h 0 25h)`},
		{"2026-12-07 10:00", "", "weekly 8d", `sdp: repeat "weekly 8d": active duration 8d is longer than the repeat interval 7d: each repetition would run into the next (RFC 8866 §5.10)`},
		{"2026-12-07 10:00", "", "7d 1x 0", `sdp: repeat "7d 1x 0": duration "1x": want a whole number of seconds with an optional unit d, h, m or s (RFC 8866 §5.10), or a duration such as 1h30m`},
		{"2026-12-07 10:00", "", "7d 1h 0 7d", `sdp: repeat "7d 1h 0 7d": offset 7d is not less than the repeat interval 7d (RFC 8866 §5.10)`},
		{"2026-12-07 10:00", "", "daily 1.5s", `sdp: repeat "daily 1.5s": duration "1.5s" is not a whole number of seconds (RFC 8866 §5.10)`},
		{"2026-12-07 10:00", "", "daily 1h -1h", `sdp: repeat "daily 1h -1h": offset "-1h": want a whole number of seconds with an optional unit d, h, m or s (RFC 8866 §5.10), or a duration such as 1h30m`},
		{"2026-12-07 10:00", "", "9999999999999d 1h", `sdp: repeat "9999999999999d 1h": interval "9999999999999d" is more than 292 years`},
		{"2026-12-07 10:00", "2060-01-01 00:00", "weekly 1h", `sdp: stop "2060-01-01 00:00": the series crosses 66 changes of Europe/Berlin's offset from UTC, more than the 64 adjustments mcc writes in z=: end it sooner and renew it (RFC 8866 §5.11)`},
	}
	for _, tc := range tests {
		sch, err := ParseSchedule(tc.start, tc.stop, tc.repeat, berlin)
		if err == nil || err.Error() != tc.wantErr {
			t.Errorf("ParseSchedule(%q, %q, %q) = %+v, %v\nwant %s", tc.start, tc.stop, tc.repeat, sch, err, tc.wantErr)
			continue
		}
		if _, ok := errors.AsType[*ScheduleError](err); !ok || !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSchedule(%q, %q, %q) = %#v, want a *ScheduleError", tc.start, tc.stop, tc.repeat, err)
		}
	}
}

// TestBerlinWeekly: a weekly lecture at 10:00 in Berlin stays at 10:00
// local time across the changes to and from summer time of March and
// October 2027, through SetSchedule, Marshal and Parse (RFC 8866 §5.11).
func TestBerlinWeekly(t *testing.T) {
	berlin := location(t, "Europe/Berlin")
	sch, err := ParseSchedule("2027-01-04 10:00", "2027-12-31 00:00", "weekly 1h30m", berlin)
	if err != nil {
		t.Fatal(err)
	}
	s := MustParse(good)
	if err := s.SetSchedule(sch); err != nil {
		t.Fatal(err)
	}
	out := s.String()
	for _, l := range []string{"t=4008042000 4039196400", "r=604800 5400 0", "z=4015184400 -3600 4033933200 0"} {
		if !strings.Contains(out, "\r\n"+l+"\r\n") {
			t.Errorf("no %s in\n%s", l, out)
		}
	}
	back := scheduleOf(t, out)
	for _, sch := range []Schedule{sch, back} {
		is := sch.Intervals(time.Time{}, time.Time{})
		if len(is) != 52 {
			t.Fatalf("Intervals = %d, want the 52 Mondays from 4 January to 27 December", len(is))
		}
		var summer int
		for _, i := range is {
			l := i.Start.In(berlin)
			if l.Weekday() != time.Monday || l.Hour() != 10 || l.Minute() != 0 || i.End.Sub(i.Start) != 90*time.Minute {
				t.Errorf("interval %v is at %v in Berlin, want Monday 10:00 for 1h30m", i, l)
			}
			if _, off := l.Zone(); off == 2*3600 {
				summer++
			}
		}
		if summer != 31 { // 29 March to 25 October
			t.Errorf("%d intervals in summer time, want 31", summer)
		}
		// The Mondays either side of each change.
		for _, c := range []struct{ now, start string }{
			{"2027-03-27T00:00:00Z", "2027-03-29T08:00:00Z"},
			{"2027-03-22T09:30:00Z", "2027-03-22T09:00:00Z"},
			{"2027-10-30T00:00:00Z", "2027-11-01T09:00:00Z"},
			{"2027-10-25T09:00:00Z", "2027-10-25T08:00:00Z"},
		} {
			if start, _, ok := sch.Next(utc(c.now)); !ok || !start.Equal(utc(c.start)) {
				t.Errorf("Next(%s) = %v, %v, want %s", c.now, start, ok, c.start)
			}
		}
	}
	// In UTC there is nothing to adjust.
	if sch, _ := ParseSchedule("2027-01-04 10:00", "2027-12-31 00:00", "weekly 1h30m", time.UTC); len(sch.Periods[0].Zones) != 0 {
		t.Errorf("zones in UTC: %v", sch.Periods[0].Zones)
	}
}

func TestManagerCreateSchedule(t *testing.T) {
	local := scope(t, multicast.IPv4, multicast.ScopeLocal)
	a, err := multicast.NewAllocator(multicast.Config{Pools: []multicast.Pool{local}})
	if err != nil {
		t.Fatal(err)
	}
	now := utc("2027-01-01T00:00:00Z")
	m, err := NewManager(ManagerConfig{Allocator: a, Origin: netip.MustParseAddr("192.0.2.1"), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	sch, err := ParseSchedule("2027-01-04 10:00", "2027-12-31 00:00", "weekly 1h30m", location(t, "Europe/Berlin"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.Create(SessionSpec{Name: "Lecture", Pool: local.Name, Media: []MediaSpec{{Kind: "audio"}}, Schedule: sch})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Schedule(); err != nil || !sameSchedule(got, sch) {
		t.Errorf("created session's Schedule() = %+v, %v, want %+v", got, err, sch)
	}
	if ps := Lint([]byte(s.String())); len(ps) != 0 {
		t.Errorf("Lint = %v", ps)
	}
	if l, ok := a.Lease(s.Media[0].Connection.Addr); !ok || !l.End.Equal(sch.End()) {
		t.Errorf("lease = %+v, %v, want one to %v", l, ok, sch.End())
	}
	// The zero Schedule keeps t=0 0.
	s, err = m.Create(SessionSpec{Name: "Open", Pool: local.Name, Media: []MediaSpec{{Kind: "audio"}}})
	if err != nil || !strings.Contains(s.String(), "\r\nt=0 0\r\n") {
		t.Errorf("Create without a schedule = %v\n%s", err, s)
	}
	for _, tc := range []struct {
		name string
		spec SessionSpec
	}{
		{"Start and a Schedule", SessionSpec{Start: now, Schedule: sch}},
		{"a Schedule that has ended", SessionSpec{Schedule: Schedule{Periods: []Period{{Start: utc("2026-01-01T10:00:00Z"), Stop: utc("2026-01-01T11:00:00Z")}}}}},
		{"an invalid Schedule", SessionSpec{Schedule: Schedule{Periods: []Period{{Start: utc("2027-01-01T11:00:00Z"), Stop: utc("2027-01-01T10:00:00Z")}}}}},
	} {
		tc.spec.Name, tc.spec.Pool, tc.spec.Media = "x", local.Name, []MediaSpec{{Kind: "audio"}}
		if _, err := m.Create(tc.spec); !errors.Is(err, ErrInvalid) {
			t.Errorf("Create with %s = %v, want ErrInvalid", tc.name, err)
		}
	}
	if n := len(a.Leases()); n != 2 {
		t.Errorf("%d leases after the failed creations, want 2", n)
	}
}

// FuzzSchedule: whatever Parse reads, Schedule either refuses with a
// *ScheduleError or returns a schedule whose intervals are sorted,
// bounded and consistent with Next, and which SetSchedule writes back
// as the same schedule.
func FuzzSchedule(f *testing.F) {
	for _, ls := range [][]string{rfc8866Times, rfc8866Repeat, rfc8866Typed, rfc8866Zones, rfc4566Zones,
		{"t=0 0"}, {"t=4005626400 0"}, {"t=0 4005626400"}, {"t=4005626400 0", "r=1d 1h 0"},
		{"t=4005626400 4006406700", "r=7d 90m 0 2d"}, {"t=4008042000 4039196400", "r=604800 5400 0", "z=4015184400 -3600 4033933200 0"},
		{"t=4021344000 0", "r=604800 3600 0", "z=4033933200 3600 4046634000 0 4065382800 3600 4078083600 0"},
		{"t=4005626400 0", "r=1s 1s 0"}, {"t=4005626400 0", "r=1m 1s 0 1s 2s", "z=4005626401 -1d 4005626500 9d"},
		{"t=0 0", "z=2882844526 -1h 2898848070 0"}, {"t=3724394400 0", "r=7d 1h 0 7d"}} {
		f.Add([]byte(timed(ls...)), int64(1515405600), int64(86400*30))
	}
	f.Fuzz(func(t *testing.T, b []byte, now, span int64) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		sch, err := s.Schedule()
		if err != nil {
			if _, ok := errors.AsType[*ScheduleError](err); !ok {
				t.Fatalf("Schedule() error %v is not a *ScheduleError", err)
			}
			return
		}
		if err := sch.Validate(); err != nil {
			t.Fatalf("Schedule() = %+v, which Validate refuses: %v", sch, err)
		}
		at := time.Unix(now, 0)
		start, end, ok := sch.Next(at)
		to := at.Add(time.Duration(span) * time.Second)
		is := sch.Intervals(at, to)
		if len(is) > MaxIntervals {
			t.Fatalf("Intervals returned %d", len(is))
		}
		for i, in := range is {
			if !in.Start.IsZero() && !in.End.IsZero() && !in.Start.Before(in.End) {
				t.Fatalf("empty interval %v", in)
			}
			if !in.End.IsZero() && !in.End.After(at) || !in.Start.IsZero() && !in.Start.Before(to) {
				t.Fatalf("interval %v is outside [%v, %v)", in, at, to)
			}
			if i > 0 && before(in, is[i-1]) {
				t.Fatalf("intervals out of order: %v, then %v", is[i-1], in)
			}
		}
		all := sch.Intervals(at, time.Time{})
		if ok != (len(all) > 0) || ok && (!all[0].Start.Equal(start) || !all[0].End.Equal(end)) {
			t.Fatalf("Next(%v) = %v, %v, %v, but Intervals begins %v", at, start, end, ok, all[:min(1, len(all))])
		}
		c := MustParse(good)
		if err := c.SetSchedule(sch); err != nil {
			t.Fatalf("SetSchedule(%+v) = %v", sch, err)
		}
		back, err := MustParse(c.String()).Schedule()
		if err != nil || !sameSchedule(back, sch) {
			t.Fatalf("round trip of %+v: %+v, %v", sch, back, err)
		}
	})
}

// before orders intervals as Intervals does; a zero start is the earliest
// and a zero end the latest.
func before(a, b Interval) bool {
	key := func(t time.Time, zero int64) int64 {
		if t.IsZero() {
			return zero
		}
		return t.Unix()
	}
	as, bs := key(a.Start, noStart), key(b.Start, noStart)
	return as < bs || as == bs && key(a.End, noEnd) < key(b.End, noEnd)
}

func sameSchedule(a, b Schedule) bool {
	return slices.EqualFunc(a.Periods, b.Periods, func(p, q Period) bool {
		return p.Start.Equal(q.Start) && p.Stop.Equal(q.Stop) &&
			slices.EqualFunc(p.Repeats, q.Repeats, sameRepetition) &&
			slices.EqualFunc(p.Zones, q.Zones, func(y, z ZoneAdjust) bool { return y.At.Equal(z.At) && y.Offset == z.Offset })
	})
}

func sameRepetition(a, b Repetition) bool {
	return a.Every == b.Every && a.For == b.For && slices.Equal(a.Offsets, b.Offsets)
}
