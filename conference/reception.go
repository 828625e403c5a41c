package conference

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"mcc/multicast/reception"
	"mcc/sdp"
)

// Reception monitoring: who really receives a conference's streams. A
// receiver is a probe (mcc probe, reporting over the API) or a host that
// sends RTCP receiver reports (RFC 3550 §6.4, rtcp.go). The reception
// matrix is, per stream, receivers × senders; alerts say what an operator
// must look at: a stream nobody hears, a receiver that hears nothing or
// loses too much, a joined participant whose host reports nothing.

// ReceptionConfig tunes the matrix and its alerts; the zero value takes
// every default.
type ReceptionConfig struct {
	// SilentAfter is how long a receiver may hear nothing of a stream
	// before it counts as silent. Zero means 10 s.
	SilentAfter time.Duration
	// LossAlert is the fraction lost over one report interval at which
	// a receiver alerts. Zero means 0.02 (2 %, where speech begins to
	// suffer); above 1 turns loss alerts off.
	LossAlert float64
	// ReportGrace is how long a joined participant may go without a
	// report from its host before it alerts. Zero means 30 s; negative
	// turns the alert off.
	ReportGrace time.Duration
	// Forget is how long a receiver that stopped reporting stays in the
	// matrix. Zero means 10 minutes.
	Forget time.Duration
	// RTCP has mcc join every session's RTCP groups and take the
	// receiver and sender reports it hears (rtcp.go). The host then
	// gets the groups' RTP too, where RTCP shares RTP's group.
	RTCP bool
	// RTCPInterface is the interface to join them on; empty: the
	// system's choice.
	RTCPInterface string
}

// Bounds on what reports can make mcc hold.
const (
	maxReceivers       = 256 // per conference, of each kind
	maxReportStreams   = 64  // per report
	maxReceiverNameLen = 64
	maxReceiverAddrs   = 16
	maxReportSources   = 64             // of a stream's source filter
	maxIntervalMS      = 10 * 60 * 1000 // mcc probe's --interval at most
	maxLastAgeMS       = 24 * 3600 * 1000
)

// Receiver kinds.
const (
	ReceiverProbe = "probe"
	ReceiverRTCP  = "rtcp"
)

// ReceiverReport is what one receiver heard of a conference's streams.
type ReceiverReport struct {
	// Receiver names the receiver: the probe's name (its host name by
	// default), or the RTCP CNAME or address of a reporting host.
	Receiver string `json:"receiver"`
	Kind     string `json:"kind"`
	// Addrs are the receiver host's addresses: those the probe lists,
	// and the one its report came from.
	Addrs []netip.Addr `json:"addrs,omitempty"`
	// IntervalMS is how often the receiver reports.
	IntervalMS int64 `json:"interval_ms,omitempty"`
	// Leaving says the receiver stops reporting on purpose (mcc probe
	// ending, an RTCP BYE): its row goes, and no alert says it stopped.
	Leaving bool                     `json:"leaving,omitempty"`
	Streams []reception.StreamReport `json:"streams"`
}

// Reception is a conference's reception matrix.
type Reception struct {
	Conference string            `json:"conference"`
	Version    uint64            `json:"version"`
	Streams    []StreamReception `json:"streams"`
	Alerts     []Alert           `json:"alerts"`
}

// StreamReception is one stream of the matrix: its group and who hears it.
type StreamReception struct {
	Index   int          `json:"index"`
	Kind    string       `json:"kind"`
	Group   netip.Addr   `json:"group"`
	Port    int          `json:"port"`
	TTL     int          `json:"ttl,omitempty"`
	Sources []netip.Addr `json:"sources,omitempty"`
	// Senders are the senders heard of in RTCP sender reports.
	Senders   []StreamSender `json:"senders,omitempty"`
	Receivers []ReceiverCell `json:"receivers"`
}

// StreamSender is a sender of a stream as its RTCP sender reports
// describe it (RFC 3550 §6.4.1): what it has sent so far.
type StreamSender struct {
	SSRC        uint32     `json:"ssrc"`
	Source      netip.Addr `json:"source"`
	Packets     uint64     `json:"packets"`
	Octets      uint64     `json:"octets"`
	ReportAgeMS int64      `json:"report_age_ms"`
}

// ReceiverCell is one receiver's row of a stream: one cell per sender.
type ReceiverCell struct {
	Receiver string       `json:"receiver"`
	Kind     string       `json:"kind"`
	Addrs    []netip.Addr `json:"addrs,omitempty"`
	// Participants are the participants whose host this receiver is.
	Participants []string `json:"participants,omitempty"`
	// ReportAgeMS is how long ago the receiver last reported.
	ReportAgeMS int64 `json:"report_age_ms"`
	// Silent says the receiver has heard nothing of the stream for
	// SilentAfter or longer; Error why it could not join it.
	Silent  bool                     `json:"silent"`
	Error   string                   `json:"error,omitempty"`
	Senders []reception.SenderReport `json:"senders"`
}

// Alert kinds.
const (
	AlertStreamSilent   = "stream-silent"   // no receiver hears the stream
	AlertReceiverSilent = "receiver-silent" // this receiver hears nothing of it
	AlertLoss           = "loss"            // this receiver loses too much of a sender
	AlertUnreported     = "unreported"      // a joined participant's host reports nothing
)

// Alert is a reception problem, from Since until it clears.
type Alert struct {
	Kind       string `json:"kind"`
	Conference string `json:"conference"`
	Stream     int    `json:"stream"` // -1 for unreported
	Receiver   string `json:"receiver,omitempty"`
	// ReceiverKind is the receiver's kind (probe or rtcp): a probe and
	// an RTCP reporter may have one name.
	ReceiverKind string    `json:"receiver_kind,omitempty"`
	SSRC         uint32    `json:"ssrc,omitempty"`
	Participant  string    `json:"participant,omitempty"`
	Since        time.Time `json:"since"`
	Detail       string    `json:"detail"`
	// Cleared is set in the event that says the alert is over.
	Cleared time.Time `json:"cleared,omitzero"`
}

func (a Alert) key() string {
	return fmt.Sprintf("%s|%d|%s|%s|%d|%s", a.Kind, a.Stream, a.ReceiverKind, a.Receiver, a.SSRC, a.Participant)
}

// ReceptionStats are the counters /metrics shows.
type ReceptionStats struct {
	Reports, Refused uint64
	RTCPPackets      uint64
	RTCPMalformed    uint64
	RTCPLimited      uint64            // RTCP packets dropped: their host sent more than two a second
	Raised           map[string]uint64 // alerts raised, by kind
}

type receptionState struct {
	mu     sync.Mutex // a leaf: no other lock is taken under it
	confs  map[string]*confReception
	stats  ReceptionStats
	raised map[string]uint64
}

type confReception struct {
	receivers map[string]*receiverEntry // by kind and name
	alerts    map[string]Alert
	senders   map[int]map[uint32]senderEntry // by stream, by SSRC
}

type senderEntry struct {
	StreamSender
	at    time.Time
	group netip.Addr // the stream's, when its sender report came
	port  int
}

// noteSender takes a sender report's sender information.
func (c *Controller) noteSender(s rtcpStream, x StreamSender, now time.Time) {
	st := &c.rec
	st.mu.Lock()
	defer st.mu.Unlock()
	cr := st.conf(s.conf)
	if cr.senders == nil {
		cr.senders = map[int]map[uint32]senderEntry{}
	}
	if cr.senders[s.index] == nil {
		cr.senders[s.index] = map[uint32]senderEntry{}
	}
	if _, ok := cr.senders[s.index][x.SSRC]; ok || len(cr.senders[s.index]) < reception.MaxSenders {
		cr.senders[s.index][x.SSRC] = senderEntry{x, now, s.group, s.port}
	}
}

// forgetSender drops a sender that said BYE.
func (c *Controller) forgetSender(s rtcpStream, ssrc uint32) {
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	if cr := c.rec.confs[s.conf]; cr != nil {
		delete(cr.senders[s.index], ssrc)
	}
}

// conf returns conference name's reception state, made if need be; st.mu
// is held.
func (st *receptionState) conf(name string) *confReception {
	if st.confs == nil {
		st.confs = map[string]*confReception{}
	}
	cr := st.confs[name]
	if cr == nil {
		cr = &confReception{receivers: map[string]*receiverEntry{}, alerts: map[string]Alert{}}
		st.confs[name] = cr
	}
	return cr
}

type receiverEntry struct {
	report ReceiverReport
	at     time.Time // of the last report
	first  time.Time // of the first
	// heard is when each stream (by index) last had a packet, as far as
	// the receiver's reports tell.
	heard map[int]time.Time
}

// ErrBadReport is returned for a report mcc cannot take.
var ErrBadReport = errors.New("conference: bad reception report")

func (c *Controller) receptionCfg() ReceptionConfig {
	r := c.cfg.Reception
	r.SilentAfter = cmp.Or(r.SilentAfter, 10*time.Second)
	r.LossAlert = cmp.Or(r.LossAlert, 0.02)
	r.ReportGrace = cmp.Or(r.ReportGrace, 30*time.Second)
	r.Forget = cmp.Or(r.Forget, 10*time.Minute)
	return r
}

// ReceptionLossAlert is the loss fraction at which a receiver alerts.
func (c *Controller) ReceptionLossAlert() float64 { return c.receptionCfg().LossAlert }

func checkReport(r *ReceiverReport) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadReport, fmt.Sprintf(format, args...))
	}
	if !printable(r.Receiver) {
		return bad("receiver %q: want a name of 1 to %d bytes of printable text", r.Receiver, maxReceiverNameLen)
	}
	if r.Kind != ReceiverProbe && r.Kind != ReceiverRTCP {
		return bad("kind %q: want %q or %q", r.Kind, ReceiverProbe, ReceiverRTCP)
	}
	if len(r.Addrs) > maxReceiverAddrs {
		return bad("%d addresses: at most %d", len(r.Addrs), maxReceiverAddrs)
	}
	if r.IntervalMS < 0 || r.IntervalMS > maxIntervalMS {
		return bad("interval_ms %d: want 0 to %d", r.IntervalMS, maxIntervalMS)
	}
	if len(r.Streams) > maxReportStreams {
		return bad("%d streams: at most %d", len(r.Streams), maxReportStreams)
	}
	for _, s := range r.Streams {
		if len(s.Senders) > reception.MaxSenders {
			return bad("stream %d: %d senders, at most %d", s.Index, len(s.Senders), reception.MaxSenders)
		}
		if len(s.Sources) > maxReportSources || len(s.Error) > 512 {
			return bad("stream %d: too long", s.Index)
		}
		for _, x := range s.Senders {
			if x.Loss < 0 || x.Loss > 1 || x.IntervalLoss < 0 || x.IntervalLoss > 1 || x.JitterMS < 0 || x.RateBPS < 0 || x.LastAgeMS < 0 || x.LastAgeMS > maxLastAgeMS {
				return bad("stream %d, SSRC %08x: a figure out of its range", s.Index, x.SSRC)
			}
		}
	}
	return nil
}

// Report takes a receiver's report of conference name. Streams the
// description does not have (a stale index, another group or port) are
// left out: the matrix is of the session as it is now.
func (c *Controller) Report(name string, r ReceiverReport) error {
	return c.report(name, r, true)
}

// report is Report; quiet (for RTCP, which the network can flood) takes
// the report without an event or an at-once check of the alerts: the
// check runs each second anyway.
func (c *Controller) report(name string, r ReceiverReport, loud bool) error {
	conf, err := c.conference(name)
	if err != nil {
		return err
	}
	if err := checkReport(&r); err != nil {
		c.rec.count(func(s *ReceptionStats) { s.Refused++ })
		return err
	}
	now := c.clock().Now()
	desc := conf.current()
	st := &c.rec
	st.mu.Lock()
	cr := st.conf(name)
	// A probe is its name; an RTCP reporter its address (its CNAME,
	// which any packet can change, only labels it). Each kind has its
	// own budget: unauthenticated RTCP cannot crowd probes out.
	key := r.Kind + "|" + r.Receiver
	if r.Kind == ReceiverRTCP && len(r.Addrs) > 0 {
		key = r.Kind + "|" + r.Addrs[0].String()
	}
	e := cr.receivers[key]
	if r.Leaving {
		delete(cr.receivers, key)
		st.stats.Reports++
		st.mu.Unlock()
		if loud {
			c.publish(Event{Time: now, Conference: name, Kind: "reception", Detail: fmt.Sprintf("%s %s left", r.Kind, r.Receiver), Receiver: &r})
		}
		c.checkReception(name)
		return nil
	}
	if e == nil {
		n := 0
		for _, x := range cr.receivers {
			if x.report.Kind == r.Kind {
				n++
			}
		}
		if n >= maxReceivers {
			st.stats.Refused++
			st.mu.Unlock()
			return fmt.Errorf("%w: %d receivers of kind %s report on %q already", ErrBadReport, maxReceivers, r.Kind, name)
		}
		e = &receiverEntry{first: now, heard: map[int]time.Time{}}
		cr.receivers[key] = e
	}
	var kept []reception.StreamReport
	for _, s := range r.Streams {
		if !streamMatches(desc, s) {
			continue
		}
		kept = append(kept, s)
		for _, x := range s.Senders {
			at := now.Add(-time.Duration(x.LastAgeMS) * time.Millisecond) // at most now: LastAgeMS ≥ 0
			// A probe says how many packets it had; an RTCP report
			// block is of a source heard since the previous report
			// (RFC 3550 §6.4).
			if (x.Packets > 0 || r.Kind == ReceiverRTCP) && at.After(e.heard[s.Index]) {
				e.heard[s.Index] = at
			}
		}
	}
	r.Streams = kept
	e.report, e.at = r, now
	st.stats.Reports++
	st.mu.Unlock()
	if loud {
		c.publish(Event{Time: now, Conference: name, Kind: "reception", Detail: fmt.Sprintf("%s %s reported on %d streams", r.Kind, r.Receiver, len(kept)), Receiver: &r})
		c.checkReception(name)
	}
	return nil
}

// streamMatches reports whether a stream report is of the description's
// stream at its index: the same group and port.
func streamMatches(desc *sdp.Session, s reception.StreamReport) bool {
	if desc == nil || s.Index < 0 || s.Index >= len(desc.Media) {
		return false
	}
	m := desc.Media[s.Index]
	cn := desc.EffectiveConnection(m)
	return m.Port != 0 && cn != nil && cn.Addr == s.Group && int(m.Port) == s.Port
}

func (st *receptionState) count(f func(*ReceptionStats)) {
	st.mu.Lock()
	f(&st.stats)
	st.mu.Unlock()
}

// ReceptionStats returns the reception counters.
func (c *Controller) ReceptionStats() ReceptionStats {
	st := &c.rec
	st.mu.Lock()
	defer st.mu.Unlock()
	out := st.stats
	out.Raised = map[string]uint64{}
	for k, v := range st.raised {
		out.Raised[k] = v
	}
	return out
}

// Alerts returns every alert standing, over every conference.
func (c *Controller) Alerts() []Alert {
	st := &c.rec
	st.mu.Lock()
	var out []Alert
	for _, cr := range st.confs {
		for _, a := range cr.alerts {
			out = append(out, a)
		}
	}
	st.mu.Unlock()
	sortAlerts(out)
	return out
}

func sortAlerts(as []Alert) {
	slices.SortFunc(as, func(a, b Alert) int {
		return cmp.Or(strings.Compare(a.Conference, b.Conference), cmp.Compare(a.Stream, b.Stream),
			strings.Compare(a.Kind, b.Kind), strings.Compare(a.Receiver, b.Receiver), cmp.Compare(a.SSRC, b.SSRC),
			strings.Compare(a.Participant, b.Participant))
	})
}

// hostOf is a participant's host as its remote target names it (an
// address, or the name as written).
type participantHost struct {
	id   string
	host netip.Addr
}

// joinedHosts returns the joined participants of conf that have been so
// for at least grace, with the address their Contact names (those with a
// name there are left out: mcc does not look names up for this).
func (c *Controller) joinedHosts(conf *Conference, now time.Time, grace time.Duration) []participantHost {
	conf.mu.Lock()
	ps := slices.Clone(conf.participants)
	conf.mu.Unlock()
	var out []participantHost
	for _, p := range ps {
		p.mu.Lock()
		d, joined, since, id := p.dlg, p.state == Joined, p.since, p.id
		p.mu.Unlock()
		if !joined || d == nil || grace > 0 && now.Sub(since) < grace {
			continue
		}
		d.mu.Lock()
		h := d.remoteTarget.Host
		d.mu.Unlock()
		if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
			out = append(out, participantHost{id, a.Unmap()})
		}
	}
	return out
}

// Reception returns conference name's reception matrix.
func (c *Controller) Reception(name string) (Reception, error) {
	conf, err := c.conference(name)
	if err != nil {
		return Reception{}, err
	}
	cfg := c.receptionCfg()
	now := c.clock().Now()
	hosts := c.joinedHosts(conf, now, 0)
	desc := conf.current()
	out := Reception{Conference: name, Streams: []StreamReception{}, Alerts: []Alert{}}
	if desc == nil {
		return out, nil
	}
	out.Version = desc.Origin.Version
	st := &c.rec
	st.mu.Lock()
	defer st.mu.Unlock()
	cr := st.confs[name]
	for i, m := range desc.Media {
		cn := desc.EffectiveConnection(m)
		if m.Port == 0 || cn == nil {
			continue
		}
		sr := StreamReception{Index: i, Kind: m.Kind, Group: cn.Addr, Port: int(m.Port), TTL: int(cn.TTL), Receivers: []ReceiverCell{}}
		sr.Sources, _ = desc.SourcesFor(m, cn.Addr)
		if cr != nil {
			for _, x := range cr.senders[i] {
				if x.group != sr.Group || x.port != sr.Port {
					continue // of a stream that was at this index before
				}
				x.ReportAgeMS = now.Sub(x.at).Milliseconds()
				sr.Senders = append(sr.Senders, x.StreamSender)
			}
			slices.SortFunc(sr.Senders, func(a, b StreamSender) int { return cmp.Compare(a.SSRC, b.SSRC) })
			for _, e := range cr.sorted() {
				for _, s := range e.report.Streams {
					if s.Index != i {
						continue
					}
					cell := ReceiverCell{Receiver: e.report.Receiver, Kind: e.report.Kind, Addrs: e.report.Addrs,
						ReportAgeMS: now.Sub(e.at).Milliseconds(), Error: s.Error,
						Silent: e.silent(i, now, cfg.SilentAfter), Senders: s.Senders}
					for _, h := range hosts {
						if slices.Contains(e.report.Addrs, h.host) {
							cell.Participants = append(cell.Participants, h.id)
						}
					}
					sr.Receivers = append(sr.Receivers, cell)
				}
			}
		}
		out.Streams = append(out.Streams, sr)
	}
	if cr != nil {
		for _, a := range cr.alerts {
			out.Alerts = append(out.Alerts, a)
		}
	}
	sortAlerts(out.Alerts)
	return out, nil
}

func (cr *confReception) sorted() []*receiverEntry {
	es := make([]*receiverEntry, 0, len(cr.receivers))
	for _, e := range cr.receivers {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b *receiverEntry) int {
		return cmp.Or(strings.Compare(a.report.Kind, b.report.Kind), strings.Compare(a.report.Receiver, b.report.Receiver))
	})
	return es
}

// silent reports whether the receiver has heard nothing of stream i for
// after or longer (and has been reporting that long).
func (e *receiverEntry) silent(i int, now time.Time, after time.Duration) bool {
	last, ok := e.heard[i]
	if !ok {
		last = e.first
	}
	return now.Sub(last) >= e.silentAfter(after)
}

// silentAfter is how long the receiver must hear nothing to be silent:
// after, or three of its report intervals if longer, since it can only
// tell of what it heard once per report (an RTCP receiver's interval
// grows with the session's members, RFC 3550 §6.3).
func (e *receiverEntry) silentAfter(after time.Duration) time.Duration {
	return max(after, 3*time.Duration(e.report.IntervalMS)*time.Millisecond)
}

// dropReception forgets conference name's reception, and ends its
// alerts with cleared events: the conference is gone.
func (c *Controller) dropReception(name string) {
	now := c.clock().Now()
	var events []Event
	c.rec.mu.Lock()
	if cr := c.rec.confs[name]; cr != nil {
		for _, a := range cr.alerts {
			a.Cleared = now
			events = append(events, Event{Time: now, Conference: name, Kind: "alert", Detail: "cleared (the conference is gone): " + a.Detail, Alert: &a})
		}
	}
	delete(c.rec.confs, name)
	c.rec.mu.Unlock()
	sortEvents(events)
	for _, e := range events {
		c.publish(e)
	}
}

func sortEvents(es []Event) {
	slices.SortFunc(es, func(a, b Event) int { return strings.Compare(a.Detail, b.Detail) })
}

// checkReception raises and clears conference name's alerts, and
// forgets the receivers that stopped reporting long ago.
func (c *Controller) checkReception(name string) {
	conf, err := c.conference(name)
	if err != nil {
		c.dropReception(name)
		return
	}
	cfg := c.receptionCfg()
	now := c.clock().Now()
	desc := conf.current()
	var hosts []participantHost
	if cfg.ReportGrace > 0 {
		hosts = c.joinedHosts(conf, now, cfg.ReportGrace)
	}
	st := &c.rec
	st.mu.Lock()
	cr := st.confs[name]
	if cr == nil {
		if len(hosts) == 0 {
			st.mu.Unlock()
			return
		}
		cr = st.conf(name)
	}
	for k, e := range cr.receivers {
		if now.Sub(e.at) >= cfg.Forget {
			delete(cr.receivers, k)
		}
	}
	for i, ss := range cr.senders {
		for k, x := range ss {
			if now.Sub(x.at) >= cfg.Forget {
				delete(ss, k)
			}
		}
		if len(ss) == 0 {
			delete(cr.senders, i)
		}
	}
	want := map[string]Alert{}
	raise := func(a Alert) {
		a.Conference = name
		want[a.key()] = a
	}
	// A receiver counts for a stream while its reports are fresh: three
	// of its intervals, or SilentAfter, whichever is longer.
	fresh := func(e *receiverEntry) bool {
		return now.Sub(e.at) < max(3*time.Duration(e.report.IntervalMS)*time.Millisecond, cfg.SilentAfter)
	}
	for i, m := range mediaOf(desc) {
		if m.Port == 0 {
			continue
		}
		hearing, reporting := 0, 0
		for _, e := range cr.sorted() {
			for _, s := range e.report.Streams {
				if s.Index != i {
					continue
				}
				reporting++
				if !fresh(e) {
					// A receiver whose reports stopped (its site lost
					// its link, or the probe died) hears nothing that
					// anyone knows of: it stays silent until forgotten.
					raise(Alert{Kind: AlertReceiverSilent, Stream: i, Receiver: e.report.Receiver, ReceiverKind: e.report.Kind,
						Detail: fmt.Sprintf("%s %s has not reported for %v", e.report.Kind, e.report.Receiver, now.Sub(e.at).Round(time.Second))})
					continue
				}
				if e.silent(i, now, cfg.SilentAfter) {
					raise(Alert{Kind: AlertReceiverSilent, Stream: i, Receiver: e.report.Receiver, ReceiverKind: e.report.Kind,
						Detail: fmt.Sprintf("%s %s has heard nothing of stream %d for %v or more", e.report.Kind, e.report.Receiver, i, e.silentAfter(cfg.SilentAfter))})
				} else {
					hearing++
				}
				for _, x := range s.Senders {
					if cfg.LossAlert <= 1 && x.IntervalLoss >= cfg.LossAlert && x.LastAgeMS < cfg.SilentAfter.Milliseconds() {
						raise(Alert{Kind: AlertLoss, Stream: i, Receiver: e.report.Receiver, ReceiverKind: e.report.Kind, SSRC: x.SSRC,
							Detail: fmt.Sprintf("%s %s loses %.1f%% of SSRC %08x on stream %d (alert at %.1f%%)", e.report.Kind, e.report.Receiver, 100*x.IntervalLoss, x.SSRC, i, 100*cfg.LossAlert)})
					}
				}
			}
		}
		if reporting > 0 && hearing == 0 {
			raise(Alert{Kind: AlertStreamSilent, Stream: i,
				Detail: fmt.Sprintf("no receiver of %d has heard stream %d for %v or more", reporting, i, cfg.SilentAfter)})
		}
	}
	// Only where reception is monitored at all (a receiver reports on
	// the conference) does a host that reports nothing say something.
	monitored := false
	for _, e := range cr.receivers {
		monitored = monitored || fresh(e)
	}
	if !monitored {
		hosts = nil
	}
	for _, h := range hosts {
		reported := false
		for _, e := range cr.receivers {
			if fresh(e) && slices.Contains(e.report.Addrs, h.host) {
				reported = true
				break
			}
		}
		if !reported {
			raise(Alert{Kind: AlertUnreported, Stream: -1, Participant: h.id,
				Detail: fmt.Sprintf("participant %s is joined, and its host %v has sent no reception report for %v", h.id, h.host, cfg.ReportGrace)})
		}
	}
	var events []Event
	for k, a := range want {
		if old, ok := cr.alerts[k]; ok {
			a.Since = old.Since
			cr.alerts[k] = a
			continue
		}
		a.Since = now
		cr.alerts[k] = a
		if st.raised == nil {
			st.raised = map[string]uint64{}
		}
		st.raised[a.Kind]++
		events = append(events, Event{Time: now, Conference: name, Kind: "alert", Detail: a.Detail, Alert: &a})
	}
	for k, a := range cr.alerts {
		if _, ok := want[k]; !ok {
			delete(cr.alerts, k)
			a.Cleared = now
			events = append(events, Event{Time: now, Conference: name, Kind: "alert", Detail: "cleared: " + a.Detail, Alert: &a})
		}
	}
	if len(cr.receivers) == 0 && len(cr.alerts) == 0 && len(cr.senders) == 0 {
		delete(st.confs, name)
	}
	st.mu.Unlock()
	slices.SortFunc(events, func(a, b Event) int { return strings.Compare(a.Detail, b.Detail) })
	for _, e := range events {
		c.publish(e)
	}
}

func mediaOf(desc *sdp.Session) []*sdp.Media {
	if desc == nil {
		return nil
	}
	return desc.Media
}

// runReception checks every conference's alerts each second, until the
// controller closes.
func (c *Controller) runReception() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		names := make([]string, 0, len(c.conferences))
		for n, conf := range c.conferences {
			if !conf.pending {
				names = append(names, n)
			}
		}
		c.mu.Unlock()
		c.rec.mu.Lock()
		for n := range c.rec.confs {
			if !slices.Contains(names, n) {
				names = append(names, n) // deleted: its state goes
			}
		}
		c.rec.mu.Unlock()
		for _, n := range names {
			func() {
				defer c.recoverIn("the reception check of " + n)
				c.checkReception(n)
			}()
		}
	}
}
