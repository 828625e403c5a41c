package sdp

import (
	"container/heap"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	psdp "github.com/pion/sdp/v3"
)

// MaxIntervals is the most intervals [Schedule.Intervals] returns.
const MaxIntervals = 1000

// ZoneYears is how many years of z= adjustments [ParseSchedule] writes
// for a repeating series without a stop time. RFC 8866 §5.11 expects a
// description to be renewed rather than carry years of adjustments: call
// [LocalZones] again and [Session.SetSchedule] before they run out.
const ZoneYears = 2

// Limits of mcc's on one time description, so that computing a schedule
// stays cheap whatever a description holds. They are not RFC rules.
const (
	maxRepeats = 32 // r= lines under one t=
	maxOffsets = 64 // offsets in one r=
	maxZones   = 64 // adjustments in one z=
)

// BUG(mcc): RFC 8866 §9 allows a z= line after the r= lines of every time
// description; Parse and Marshal, through pion/sdp, know one z= line,
// after the last, so a Schedule has zones only on its last period.

// Schedule is when a session is active: its time descriptions, each a t=
// line with its r= lines and their z= line (RFC 8866 §5.9-§5.11). The
// zero Schedule is a permanent session, t=0 0.
//
// Times are whole seconds from 1931-09-09, the first ten-digit SDP time
// (RFC 8866 §9), to the end of the year 9999; durations are whole
// seconds. [Schedule.Validate] says what else a schedule must be.
type Schedule struct {
	// Periods holds one time description per t= line, in order: several
	// are for a session active at irregular times (§5.9). None is the
	// same as one permanent period.
	Periods []Period
}

// Period is one time description (RFC 8866 §5.9-§5.11).
type Period struct {
	// t=<start-time> <stop-time> (§5.9). A zero Stop leaves the period
	// unbounded: active from Start on. Zero Start and Stop make it
	// permanent. A zero Start with a Stop, which RFC 8866 does not
	// describe, mcc reads as active from no particular time until Stop.
	Start, Stop time.Time
	// r=<repeat interval> <active duration> <offsets from start-time>
	// (§5.10). A period with repeats is active only at its repetitions,
	// and its t= line bounds the whole series: a repetition that would
	// run past Stop is cut there.
	Repeats []Repetition
	// z=<adjustment time> <offset> ... (§5.11), the shifts of the time
	// base of Repeats, such as daylight-saving changes. A z= modifies
	// only the r= lines it follows, so only a period with repeats has
	// them (§9), and mcc writes only the last period's.
	Zones []ZoneAdjust
}

// Repetition is an r= line (RFC 8866 §5.10): the period is active for
// For, every Every, from each of Offsets after its Start. The RFC's
// example, r=7d 1h 0 25h, is Every 168h, For 1h, Offsets 0 and 25h: an
// hour each week on the day of Start and, 25 hours later, the next.
type Repetition struct {
	Every, For time.Duration
	Offsets    []time.Duration
}

// ZoneAdjust is one adjustment of a z= line (RFC 8866 §5.11): a
// repetition whose time, computed from the t= start, is At or later
// starts Offset later (earlier when negative). Adjustments are not
// cumulative: each Offset counts from the original time base, and 0
// restores it.
type ZoneAdjust struct {
	At     time.Time
	Offset time.Duration
}

// Interval is a stretch of time in which a session is active, from Start
// up to End, which is not part of it. A zero Start means since no
// particular time (t=0), a zero End never.
type Interval struct {
	Start, End time.Time
}

// Contains reports whether the session is active at t in i.
func (i Interval) Contains(t time.Time) bool {
	return (i.Start.IsZero() || !t.Before(i.Start)) && (i.End.IsZero() || t.Before(i.End))
}

// ScheduleError reports a schedule that breaks a rule of RFC 8866
// §5.9-§5.11, or a limit of mcc's. It matches ErrInvalid.
type ScheduleError struct {
	// Line is the line of the description Parse read; 0 when there is
	// none, such as for a Schedule built in code.
	Line int
	// Field is what is wrong: the t=, r= or z= line, written as mcc
	// writes it but with the units d, h and m where they fit
	// ("r=7d 1h 0 8d"), or an argument of ParseSchedule with its text
	// (`repeat "weekly"`).
	Field string
	// Err is the rule broken.
	Err error
}

func (e *ScheduleError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("sdp: line %d %q: %v", e.Line, e.Field, e.Err)
	}
	return fmt.Sprintf("sdp: %s: %v", e.Field, e.Err)
}

func (e *ScheduleError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ScheduleError) Is(target error) bool { return target == ErrInvalid }

// IsZero reports whether sch is the zero Schedule, a permanent session.
func (sch Schedule) IsZero() bool { return len(sch.Periods) == 0 }

// End returns when the schedule's last interval is over at the latest:
// the latest t= stop time. It is zero when the session never ends, with
// a period unbounded or permanent, or none.
func (sch Schedule) End() time.Time {
	var end time.Time
	for _, p := range sch.Periods {
		if p.Stop.IsZero() {
			return time.Time{}
		}
		if p.Stop.After(end) {
			end = p.Stop
		}
	}
	return end
}

// The SDP times mcc reads and writes, in NTP seconds (RFC 8866 §5.9).
const (
	minNTP  = 1_000_000_000 // time = POS-DIGIT 9*DIGIT (§9): 1931-09-09T01:46:40Z
	maxUnix = 253402300799  // 9999-12-31T23:59:59Z
	maxNTP  = maxUnix + ntpOffset
	// maxSeconds is the longest r= or z= value that is a time.Duration.
	maxSeconds = math.MaxInt64 / int64(time.Second)
)

// Validate reports the first rule sch breaks, as a *ScheduleError:
//
//   - a time that is not a whole second from 1931-09-09 to 9999 (§9);
//   - a stop time not after its start (§5.9);
//   - a repetition without a start to count from (t=0), with an interval
//     that is not positive (§9), a duration that is not positive or
//     longer than the interval, no offset (§9), or an offset that is
//     negative or not less than the interval (§5.10), or given twice;
//   - a z= line on a period without repetitions (§5.11, §9), or on one
//     other than the last (mcc writes one z= line), or with adjustment
//     times that do not increase (§5.11);
//   - more than 32 r= lines in a period, 64 offsets in an r= line or 64
//     adjustments in a z= line (mcc's limits, not the RFC's).
func (sch Schedule) Validate() error { return sch.validate(nil) }

// validate is Validate, naming the line each period's t= line is at in
// lines (its r= and z= lines follow it), when lines has it.
func (sch Schedule) validate(lines []int) error {
	for i, p := range sch.Periods {
		line := func(k int) int {
			if i < len(lines) && lines[i] > 0 {
				return lines[i] + k
			}
			return 0
		}
		if err := p.checkTimes(); err != nil {
			return &ScheduleError{Line: line(0), Field: p.tLine(), Err: err}
		}
		if len(p.Repeats) > maxRepeats {
			return &ScheduleError{Line: line(0), Field: p.tLine(), Err: fmt.Errorf("%d r= lines follow this t=, more than the %d mcc reads", len(p.Repeats), maxRepeats)}
		}
		for j, r := range p.Repeats {
			err := r.check()
			if err == nil && p.Start.IsZero() {
				err = fmt.Errorf("a repetition needs the start time of its t= line to count from, and t=0 gives none (RFC 8866 §5.9, §5.10)")
			}
			if err != nil {
				return &ScheduleError{Line: line(1 + j), Field: r.line(), Err: err}
			}
		}
		if len(p.Zones) == 0 {
			continue
		}
		bad := func(err error) error {
			return &ScheduleError{Line: line(1 + len(p.Repeats)), Field: zLine(p.Zones), Err: err}
		}
		switch {
		case len(p.Repeats) == 0:
			return bad(fmt.Errorf("a z= line modifies the r= lines it follows, and this t= has none (RFC 8866 §5.11, §9)"))
		case i != len(sch.Periods)-1:
			return bad(fmt.Errorf("only the last t= can have a z= line: mcc reads and writes one, after every t= and r= line"))
		}
		if err := checkZones(p.Zones); err != nil {
			return bad(err)
		}
	}
	return nil
}

// checkTime refuses a time that SDP cannot carry. The zero time is 0.
func checkTime(t time.Time) error {
	switch {
	case t.IsZero():
		return nil
	case t.Nanosecond() != 0:
		return fmt.Errorf("%s has a fraction of a second: SDP times are whole seconds (RFC 8866 §5.9); truncate it", t.Format(time.RFC3339Nano))
	case t.Unix() > maxUnix:
		return fmt.Errorf("%s is after the year 9999", t.UTC().Format(time.RFC3339))
	case t.Unix()+ntpOffset < minNTP:
		return fmt.Errorf("%s is before 1931-09-09, the first ten-digit SDP time (RFC 8866 §9)", t.UTC().Format(time.RFC3339))
	}
	return nil
}

func (p Period) checkTimes() error {
	if err := checkTime(p.Start); err != nil {
		return fmt.Errorf("start time: %w", err)
	}
	if err := checkTime(p.Stop); err != nil {
		return fmt.Errorf("stop time: %w", err)
	}
	if !p.Start.IsZero() && !p.Stop.IsZero() && !p.Stop.After(p.Start) {
		return fmt.Errorf("stop time %s is not after the start time %s (RFC 8866 §5.9)", p.Stop.UTC().Format(time.RFC3339), p.Start.UTC().Format(time.RFC3339))
	}
	return nil
}

// check applies the rules of RFC 8866 §5.10 and §9 to one r= line.
func (r Repetition) check() error {
	for _, d := range append([]time.Duration{r.Every, r.For}, r.Offsets...) {
		if d%time.Second != 0 {
			return fmt.Errorf("%v is not a whole number of seconds (RFC 8866 §5.10: no fractional units)", d)
		}
	}
	switch {
	case r.Every <= 0:
		return fmt.Errorf("repeat interval %s: want more than 0 (RFC 8866 §9)", typed(r.Every))
	case r.For <= 0:
		return fmt.Errorf("active duration %s: want more than 0, or the session is never active", typed(r.For))
	case r.For > r.Every:
		return fmt.Errorf("active duration %s is longer than the repeat interval %s: each repetition would run into the next (RFC 8866 §5.10)", typed(r.For), typed(r.Every))
	case len(r.Offsets) == 0:
		return fmt.Errorf("no offset: want at least one, 0 for the start time itself (RFC 8866 §5.10, §9)")
	case len(r.Offsets) > maxOffsets:
		return fmt.Errorf("%d offsets, more than the %d mcc reads", len(r.Offsets), maxOffsets)
	}
	for i, o := range r.Offsets {
		switch {
		case o < 0:
			return fmt.Errorf("offset %s: want 0 or more (RFC 8866 §9)", typed(o))
		case o >= r.Every:
			return fmt.Errorf("offset %s is not less than the repeat interval %s (RFC 8866 §5.10)", typed(o), typed(r.Every))
		case slices.Contains(r.Offsets[:i], o):
			return fmt.Errorf("offset %s is given twice", typed(o))
		}
	}
	return nil
}

// checkZones applies the rules of RFC 8866 §5.11 to a z= line.
func checkZones(zs []ZoneAdjust) error {
	if len(zs) > maxZones {
		return fmt.Errorf("%d adjustments, more than the %d mcc reads: RFC 8866 §5.11 expects a description to be renewed rather than carry years of them", len(zs), maxZones)
	}
	for i, z := range zs {
		if z.At.IsZero() {
			return fmt.Errorf("adjustment %d has no time (RFC 8866 §5.11)", i+1)
		}
		if err := checkTime(z.At); err != nil {
			return fmt.Errorf("adjustment time: %w", err)
		}
		if z.Offset%time.Second != 0 {
			return fmt.Errorf("offset %v is not a whole number of seconds (RFC 8866 §5.11)", z.Offset)
		}
		if i > 0 && !z.At.After(zs[i-1].At) {
			return fmt.Errorf("adjustment time %s is not after the one before it, %s (RFC 8866 §5.11)", z.At.UTC().Format(time.RFC3339), zs[i-1].At.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// typed writes d as an SDP typed time (RFC 8866 §5.10): in days, hours
// or minutes when it is a whole number of them, otherwise in seconds; and
// as Go writes it when it is not a whole number of seconds.
func typed(d time.Duration) string {
	if d%time.Second != 0 {
		return d.String()
	}
	return typedSeconds(int64(d / time.Second))
}

func typedSeconds(s int64) string {
	if s < 0 && s != math.MinInt64 {
		return "-" + typedSeconds(-s)
	}
	for _, u := range []struct {
		n    int64
		unit string
	}{{86400, "d"}, {3600, "h"}, {60, "m"}} {
		if s != 0 && s%u.n == 0 {
			return strconv.FormatInt(s/u.n, 10) + u.unit
		}
	}
	return strconv.FormatInt(s, 10)
}

func ntpText(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	if checkTime(t) != nil {
		return t.Format(time.RFC3339Nano)
	}
	return strconv.FormatUint(NTPTime(t), 10)
}

func (p Period) tLine() string { return "t=" + ntpText(p.Start) + " " + ntpText(p.Stop) }

func (r Repetition) line() string {
	var b strings.Builder
	b.WriteString("r=" + typed(r.Every) + " " + typed(r.For))
	for _, o := range r.Offsets {
		b.WriteString(" " + typed(o))
	}
	return b.String()
}

func zLine(zs []ZoneAdjust) string {
	var b strings.Builder
	b.WriteString("z=")
	for i, z := range zs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(ntpText(z.At) + " " + typed(z.Offset))
	}
	return b.String()
}

// Schedule returns when s is active, read from its t=, r= and z= lines
// (RFC 8866 §5.9-§5.11), or a *ScheduleError naming the first line that
// breaks a rule of [Schedule.Validate] (with its number, when Parse read
// s). A description with t=0 0 alone gives the zero Schedule. Its times
// are in UTC.
//
// Following RFC 8866 §5.11, the z= line modifies only the r= lines of the
// last t=, the ones it follows; a z= line after a t= without r= lines,
// which RFC 4566 allowed, is an error.
func (s *Session) Schedule() (Schedule, error) {
	var lines []int
	if len(s.pos.times) == len(s.Times) {
		lines = s.pos.times // else s was changed since Parse
	}
	line := func(i, k int) int {
		if i < len(lines) && lines[i] > 0 {
			return lines[i] + k
		}
		return 0
	}
	var sch Schedule
	for i, t := range s.Times {
		field := fmt.Sprintf("t=%d %d", t.Start, t.Stop)
		p := Period{}
		var err error
		if p.Start, err = fromSDPTime(t.Start); err != nil {
			return Schedule{}, &ScheduleError{Line: line(i, 0), Field: field, Err: fmt.Errorf("start time %w", err)}
		}
		if p.Stop, err = fromSDPTime(t.Stop); err != nil {
			return Schedule{}, &ScheduleError{Line: line(i, 0), Field: field, Err: fmt.Errorf("stop time %w", err)}
		}
		for j, r := range t.Repeats {
			rp, err := fromSDPRepeat(r)
			if err != nil {
				return Schedule{}, &ScheduleError{Line: line(i, 1+j), Field: rawRLine(r), Err: err}
			}
			p.Repeats = append(p.Repeats, rp)
		}
		sch.Periods = append(sch.Periods, p)
	}
	if len(s.zones) > 0 {
		last := len(sch.Periods) - 1
		field := rawZLine(s.zones)
		if last < 0 {
			return Schedule{}, &ScheduleError{Field: field, Err: fmt.Errorf("a z= line needs a t= and r= lines to modify (RFC 8866 §5.11)")}
		}
		n := line(last, 1+len(s.Times[last].Repeats))
		for _, z := range s.zones {
			at, err := fromSDPTime(z.AdjustmentTime)
			if err != nil {
				return Schedule{}, &ScheduleError{Line: n, Field: field, Err: fmt.Errorf("adjustment time %w", err)}
			}
			off, err := fromSDPSeconds(z.Offset)
			if err != nil {
				return Schedule{}, &ScheduleError{Line: n, Field: field, Err: fmt.Errorf("offset %w", err)}
			}
			sch.Periods[last].Zones = append(sch.Periods[last].Zones, ZoneAdjust{At: at, Offset: off})
		}
	}
	if err := sch.validate(lines); err != nil {
		return Schedule{}, err
	}
	if len(sch.Periods) == 1 && sch.Periods[0].Start.IsZero() && sch.Periods[0].Stop.IsZero() && len(sch.Periods[0].Repeats) == 0 {
		return Schedule{}, nil
	}
	return sch, nil
}

func fromSDPTime(n uint64) (time.Time, error) {
	switch {
	case n == 0:
		return time.Time{}, nil
	case n < minNTP:
		return time.Time{}, fmt.Errorf("%d has fewer than ten digits: SDP times are seconds since 1900, 1000000000 or more (RFC 8866 §9)", n)
	case n > maxNTP:
		return time.Time{}, fmt.Errorf("%d is after the year 9999", n)
	}
	return FromNTP(n), nil
}

func fromSDPSeconds(n int64) (time.Duration, error) {
	if n > maxSeconds || n < -maxSeconds {
		return 0, fmt.Errorf("%d seconds is more than 292 years", n)
	}
	return time.Duration(n) * time.Second, nil
}

func fromSDPRepeat(r Repeat) (Repetition, error) {
	var rp Repetition
	var err error
	if rp.Every, err = fromSDPSeconds(r.Interval); err != nil {
		return rp, fmt.Errorf("repeat interval %w", err)
	}
	if rp.For, err = fromSDPSeconds(r.Duration); err != nil {
		return rp, fmt.Errorf("active duration %w", err)
	}
	for _, o := range r.Offsets {
		d, err := fromSDPSeconds(o)
		if err != nil {
			return rp, fmt.Errorf("offset %w", err)
		}
		rp.Offsets = append(rp.Offsets, d)
	}
	return rp, nil
}

func rawRLine(r Repeat) string {
	var b strings.Builder
	b.WriteString("r=" + typedSeconds(r.Interval) + " " + typedSeconds(r.Duration))
	for _, o := range r.Offsets {
		b.WriteString(" " + typedSeconds(o))
	}
	return b.String()
}

func rawZLine(zs []psdp.TimeZone) string {
	var b strings.Builder
	b.WriteString("z=")
	for i, z := range zs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatUint(z.AdjustmentTime, 10) + " " + typedSeconds(z.Offset))
	}
	return b.String()
}

// SetSchedule writes sch as the t=, r= and z= lines of s (RFC 8866
// §5.9-§5.11), the zero Schedule as t=0 0. It returns the
// *ScheduleError of sch.Validate, and then leaves s as it was. It does
// not change the o= version: bump it when s has been sent before (RFC
// 8866 §5.2).
func (s *Session) SetSchedule(sch Schedule) error {
	if err := sch.Validate(); err != nil {
		return err
	}
	secs := func(d time.Duration) int64 { return int64(d / time.Second) }
	times := make([]Timing, 0, max(1, len(sch.Periods)))
	var zones []psdp.TimeZone
	for _, p := range sch.Periods {
		t := Timing{Start: NTPTime(p.Start), Stop: NTPTime(p.Stop)}
		for _, r := range p.Repeats {
			rp := Repeat{Interval: secs(r.Every), Duration: secs(r.For)}
			for _, o := range r.Offsets {
				rp.Offsets = append(rp.Offsets, secs(o))
			}
			t.Repeats = append(t.Repeats, rp)
		}
		times = append(times, t)
		for _, z := range p.Zones { // the last period's only (Validate)
			zones = append(zones, psdp.TimeZone{AdjustmentTime: NTPTime(z.At), Offset: secs(z.Offset)})
		}
	}
	if len(times) == 0 {
		times = append(times, Timing{})
	}
	s.Times, s.zones, s.pos.times = times, zones, nil
	return nil
}

// The computation works in Unix seconds.
const (
	noStart = math.MinInt64 // t=0: since no particular time
	noEnd   = math.MaxInt64 // a stop time of 0
	// Every time of a valid schedule lies well inside [clampLo,
	// clampHi]: clamping the times asked about changes no answer and
	// keeps the arithmetic far from overflowing.
	clampLo = -1 << 42
	clampHi = 1 << 42
)

// series yields the intervals of a one-off t= line, or of one offset of
// one r= line within one stretch of the time base that a z= line gives
// one shift (RFC 8866 §5.11), in order: repetition k starts, before the
// shift, at u = base + k*every, for the u in [lo, hi).
type series struct {
	once                    bool // a t= line without r=: [start, stop)
	base, every, dur, shift int64
	lo, hi                  int64
	start, stop             int64 // the t= line: every interval is cut to it
	k                       int64
	s, e                    int64 // the current interval
}

// first moves g to its first interval that ends after t, and reports
// whether there is one.
func (g *series) first(t int64) bool {
	if g.once {
		g.s, g.e = g.start, g.stop
		return g.e > t
	}
	if g.stop <= t {
		return false
	}
	// u >= base (k >= 0), u >= lo, and u + shift + dur > max(t, start).
	from := max(g.base, g.lo, max(t, g.start)-g.shift-g.dur+1)
	g.k = (from - g.base + g.every - 1) / g.every
	return g.set()
}

// next moves g to its next interval, and reports whether there is one.
func (g *series) next() bool {
	if g.once {
		return false
	}
	g.k++
	return g.set()
}

func (g *series) set() bool {
	u := g.base + g.k*g.every
	if u >= g.hi || u+g.shift >= g.stop {
		return false
	}
	a := u + g.shift
	g.s, g.e = max(a, g.start), min(a+g.dur, g.stop)
	return true
}

func (g *series) before(h *series) bool { return g.s < h.s || g.s == h.s && g.e < h.e }

// series returns the series of sch, or none when Validate refuses it.
func (sch Schedule) series() []*series {
	if sch.Validate() != nil {
		return nil
	}
	periods := sch.Periods
	if len(periods) == 0 {
		periods = []Period{{}}
	}
	secs := func(d time.Duration) int64 { return int64(d / time.Second) }
	var gs []*series
	for _, p := range periods {
		start, stop := int64(noStart), int64(noEnd)
		if !p.Start.IsZero() {
			start = p.Start.Unix()
		}
		if !p.Stop.IsZero() {
			stop = p.Stop.Unix()
		}
		if len(p.Repeats) == 0 {
			gs = append(gs, &series{once: true, start: start, stop: stop})
			continue
		}
		// Each adjustment of z= starts a stretch of the time base with
		// its own shift, counted from the original base (RFC 8866 §5.11).
		type stretch struct{ lo, hi, shift int64 }
		stretches := []stretch{{lo: noStart, hi: noEnd}}
		for _, z := range p.Zones {
			at := z.At.Unix()
			stretches[len(stretches)-1].hi = at
			stretches = append(stretches, stretch{lo: at, hi: noEnd, shift: secs(z.Offset)})
		}
		for _, r := range p.Repeats {
			for _, o := range r.Offsets {
				for _, st := range stretches {
					gs = append(gs, &series{base: start + secs(o), every: secs(r.Every), dur: secs(r.For),
						shift: st.shift, lo: st.lo, hi: st.hi, start: start, stop: stop})
				}
			}
		}
	}
	return gs
}

func floorUnix(t time.Time) int64 { return min(max(t.Unix(), clampLo), clampHi) }

func ceilUnix(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return min(max(s, clampLo), clampHi)
}

func unixTime(s int64) time.Time {
	if s == noStart || s == noEnd {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// Next returns the interval in progress at now, or else the next one to
// start after now, with ok false when none is left. Of intervals in
// progress together it returns the one that started first (then the one
// that ends first): the first of Intervals(now, time.Time{}).
//
// A permanent session (t=0 0) is always in progress: Next returns a zero
// start and end and true. An unbounded one (t=<start> 0) gives a zero
// end. RFC 8866 §5.9 lets a user interface take an unbounded session for
// one that ends half an hour from now or from its start; Next does not.
//
// Next does not look at a clock: now is the caller's. For a schedule
// that Validate refuses it returns ok false.
func (sch Schedule) Next(now time.Time) (start, end time.Time, ok bool) {
	t := floorUnix(now)
	var best *series
	for _, g := range sch.series() {
		if g.first(t) && (best == nil || g.before(best)) {
			best = g
		}
	}
	if best == nil {
		return time.Time{}, time.Time{}, false
	}
	return unixTime(best.s), unixTime(best.e), true
}

// Intervals lists the intervals that overlap [from, to), ordered by
// start, then by end, at most MaxIntervals of them: a list that long may
// have been cut short. A zero to means no end. Intervals are not merged:
// those of several r= lines, offsets or t= lines may overlap. For a
// schedule that Validate refuses it returns none.
func (sch Schedule) Intervals(from, to time.Time) []Interval {
	if !to.IsZero() && !to.After(from) {
		return nil
	}
	t := floorUnix(from)
	end := int64(noEnd)
	if !to.IsZero() {
		end = ceilUnix(to)
	}
	var h seriesHeap
	for _, g := range sch.series() {
		if g.first(t) && g.s < end {
			h = append(h, g)
		}
	}
	heap.Init(&h)
	var out []Interval
	for len(h) > 0 && len(out) < MaxIntervals {
		g := h[0]
		out = append(out, Interval{unixTime(g.s), unixTime(g.e)})
		if g.next() && g.s < end {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	return out
}

// seriesHeap orders series by their current interval.
type seriesHeap []*series

func (h seriesHeap) Len() int           { return len(h) }
func (h seriesHeap) Less(i, j int) bool { return h[i].before(h[j]) }
func (h seriesHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *seriesHeap) Push(x any)        { *h = append(*h, x.(*series)) }
func (h *seriesHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// LocalZones returns the z= adjustments (RFC 8866 §5.11) that keep a
// series begun at start on start's wall-clock time in loc, through every
// change of loc's offset from UTC (daylight saving) after start and
// before until: one at each change, with the difference between start's
// offset and the new one, or 0 when they are the same again. It returns
// none for a location whose offset does not change, such as UTC; nil loc
// is UTC. A repetition at a local time the change skips or repeats (such
// as 02:30 on the night of the change) may land an hour off.
func LocalZones(start, until time.Time, loc *time.Location) []ZoneAdjust {
	if loc == nil {
		return nil
	}
	t := start.In(loc)
	_, base := t.Zone()
	var zs []ZoneAdjust
	shift := 0
	for {
		change := nextZoneBound(t)
		if change.IsZero() || !change.Before(until) {
			return zs
		}
		_, off := change.Zone()
		if base-off != shift {
			shift = base - off
			zs = append(zs, ZoneAdjust{At: change.UTC(), Offset: time.Duration(shift) * time.Second})
		}
		t = change
	}
}

// nextZoneBound returns the end of the zone in effect at t (in t's
// location), a time after t, or zero when the zone does not end.
func nextZoneBound(t time.Time) time.Time {
	_, end := t.ZoneBounds()
	if end.IsZero() || end.After(t) {
		return end
	}
	// Past the table of transitions, Go 1.26 can give an end that is not
	// after t (the last day of a leap year): find the first change of
	// offset within a day by bisection, or take the day's end as a bound.
	lo := t.Truncate(time.Second)
	_, off := lo.Zone()
	hi := lo.Add(24 * time.Hour)
	if _, o := hi.Zone(); o == off {
		return hi
	}
	for hi.Sub(lo) > time.Second { // whole seconds apart, so mid is between
		mid := lo.Add((hi.Sub(lo) / 2).Truncate(time.Second))
		if _, o := mid.Zone(); o == off {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

// whenLayouts are the local times ParseSchedule reads, besides RFC 3339.
var whenLayouts = []string{"2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02T15:04:05"}

// ParseSchedule reads a schedule as people write it, for the command line
// and the API: one period (one t= line) from start to stop, repeating as
// repeat says. It returns a *ScheduleError naming the argument and what
// was expected.
//
// Start and stop are RFC 3339 times (2026-12-07T10:00:00+01:00) or local
// times in loc (2026-12-07 10:00, seconds optional, nil loc is UTC); an
// empty one is 0 in t= (RFC 8866 §5.9): no stop makes the session
// unbounded, neither start nor stop permanent (the zero Schedule).
//
// Repeat is empty, an r= line's fields (7d 1h 0 25h: the interval, the
// duration, then offsets from start, 0 when there are none; RFC 8866
// §5.10), or daily or weekly, a duration and optional offsets (weekly
// 1h30m). Each is a whole number of seconds with an optional unit d, h, m
// or s, or a Go duration (1h30m). A repeat needs a start.
//
// A repeating series keeps start's wall-clock time in loc: when loc has
// daylight saving, ParseSchedule adds the z= adjustments of [LocalZones]
// through stop, or for ZoneYears after start when there is no stop, so
// that a lecture at 10:00 in Europe/Berlin stays at 10:00 in summer and
// in winter (RFC 8866 §5.11).
func ParseSchedule(start, stop, repeat string, loc *time.Location) (Schedule, error) {
	if loc == nil {
		loc = time.UTC
	}
	st, err := parseWhen("start", start, loc)
	if err != nil {
		return Schedule{}, err
	}
	sp, err := parseWhen("stop", stop, loc)
	if err != nil {
		return Schedule{}, err
	}
	if !st.IsZero() && !sp.IsZero() && !sp.After(st) {
		return Schedule{}, &ScheduleError{Field: fmt.Sprintf("stop %q", stop),
			Err: fmt.Errorf("%s is not after the start, %s (RFC 8866 §5.9)", sp.Format(time.RFC3339), st.Format(time.RFC3339))}
	}
	p := Period{Start: st, Stop: sp}
	if strings.TrimSpace(repeat) != "" {
		r, err := parseRepeat(repeat)
		if err != nil {
			return Schedule{}, err
		}
		if st.IsZero() {
			return Schedule{}, &ScheduleError{Field: fmt.Sprintf("repeat %q", repeat),
				Err: fmt.Errorf("a repeat needs a start: its offsets count from it (RFC 8866 §5.10)")}
		}
		p.Repeats = []Repetition{r}
		until := sp
		if until.IsZero() {
			until = st.AddDate(ZoneYears, 0, 0)
		}
		p.Zones = LocalZones(st, until, loc)
		if len(p.Zones) > maxZones {
			return Schedule{}, &ScheduleError{Field: fmt.Sprintf("stop %q", stop),
				Err: fmt.Errorf("the series crosses %d changes of %s's offset from UTC, more than the %d adjustments mcc writes in z=: end it sooner and renew it (RFC 8866 §5.11)", len(p.Zones), loc, maxZones)}
		}
	}
	if st.IsZero() && sp.IsZero() {
		return Schedule{}, nil
	}
	sch := Schedule{Periods: []Period{p}}
	if err := sch.Validate(); err != nil {
		return Schedule{}, err
	}
	return sch, nil
}

func parseWhen(field, s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	bad := func(err error) error { return &ScheduleError{Field: fmt.Sprintf("%s %q", field, s), Err: err} }
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t = time.Time{}
		for _, l := range whenLayouts {
			lt, err := time.ParseInLocation(l, s, loc)
			if err != nil {
				continue
			}
			// A wall-clock time that the change to daylight saving skips
			// comes back as another.
			if wall, _ := time.Parse(l, s); wall.Format(time.DateTime) != lt.Format(time.DateTime) {
				return time.Time{}, bad(fmt.Errorf("%s does not exist in %s: the clocks skip it", wall.Format("2006-01-02 15:04:05"), loc))
			}
			t = lt
			break
		}
		if t.IsZero() {
			return time.Time{}, bad(fmt.Errorf("want an RFC 3339 time (2026-12-07T10:00:00+01:00) or a local time in %s (2026-12-07 10:00)", loc))
		}
	}
	if err := checkTime(t); err != nil {
		return time.Time{}, bad(err)
	}
	return t, nil
}

func parseRepeat(s string) (Repetition, error) {
	bad := func(err error) error { return &ScheduleError{Field: fmt.Sprintf("repeat %q", s), Err: err} }
	want := fmt.Errorf("want daily or weekly and a duration (weekly 1h30m), or an r= line's interval, duration and offsets (7d 1h 0 25h)")
	f := strings.Fields(s)
	var r Repetition
	switch strings.ToLower(f[0]) {
	case "daily":
		r.Every, f = 24*time.Hour, f[1:]
	case "weekly":
		r.Every, f = 7*24*time.Hour, f[1:]
	default:
		if len(f) < 2 {
			return r, bad(want)
		}
		every, err := parseSpan("interval", f[0])
		if err != nil {
			return r, bad(err)
		}
		r.Every, f = every, f[1:]
	}
	if len(f) == 0 {
		return r, bad(want)
	}
	var err error
	if r.For, err = parseSpan("duration", f[0]); err != nil {
		return r, bad(err)
	}
	for _, o := range f[1:] {
		d, err := parseSpan("offset", o)
		if err != nil {
			return r, bad(err)
		}
		r.Offsets = append(r.Offsets, d)
	}
	if len(r.Offsets) == 0 {
		r.Offsets = []time.Duration{0}
	}
	if err := r.check(); err != nil {
		return r, bad(err)
	}
	return r, nil
}

// parseSpan reads an SDP typed time (RFC 8866 §5.10: 25h, 90m, 3600) or
// a Go duration (1h30m).
func parseSpan(what, s string) (time.Duration, error) {
	bad := fmt.Errorf("%s %q: want a whole number of seconds with an optional unit d, h, m or s (RFC 8866 §5.10), or a duration such as 1h30m", what, s)
	units := map[byte]int64{'d': 86400, 'h': 3600, 'm': 60, 's': 1}
	num, unit := s, int64(1)
	if u, ok := units[s[len(s)-1]]; ok {
		num, unit = s[:len(s)-1], u
	}
	if isDigits(num) {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > maxSeconds/unit {
			return 0, fmt.Errorf("%s %q is more than 292 years", what, s)
		}
		return time.Duration(n*unit) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, bad
	}
	if d%time.Second != 0 {
		return 0, fmt.Errorf("%s %q is not a whole number of seconds (RFC 8866 §5.10)", what, s)
	}
	return d, nil
}
