package conference

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pion/rtcp"

	"mcc/multicast"
	"mcc/multicast/reception"
)

// RTCP monitoring: in an any-source session, receivers send their
// receiver reports to the group, on the RTCP port (RTP's plus one, or
// RFC 3605's a=rtcp; RFC 3550 §6, §11), and senders their sender
// reports. mcc serve joins each session's RTCP groups and takes what it
// hears into the reception matrix: an RR's report blocks (fraction lost,
// cumulative loss, jitter: §6.4.2) as a receiver's row, named by its
// CNAME (§6.5.1), an SR's sender information (§6.4.1) as the stream's
// sender. RTCP is not authenticated: any host that can send to the group
// can write a row; the API's probes are.

// rtcpStream is one stream whose RTCP mcc listens to.
type rtcpStream struct {
	conf      string
	index     int
	group     netip.Addr // the RTP group and port the matrix names
	port      int
	clockRate int
	// sources are the stream's RFC 4570 incl sources: in an SSM range
	// mcc joins (S,G) for each (RFC 4607 §1), and nothing without them.
	sources []netip.Addr
}

type rtcpJoin struct {
	group netip.Addr
	port  int // the RTCP port
}

// rtcpMonitor joins the RTCP groups of every conference, as they come
// and go, and reads them.
type rtcpMonitor struct {
	c   *Controller
	ifi *net.Interface

	mu      sync.Mutex                      // guards the fields below; a leaf but for c.Report's locks, taken after it is released
	conns   map[string]*multicast.GroupConn // by family and port
	joined  map[rtcpJoin][]rtcpStream
	reports map[string]*rtcpReporter // by conference and reporter address
	// channels are the sources joined for each SSM group.
	channels map[rtcpJoin][]netip.Addr
	// failed is when a join (or its port's socket) last failed: it is
	// tried again, and logged, once a minute at most.
	failed map[rtcpJoin]time.Time
	// perConf counts the reporters of each conference: one conference's
	// forged RTCP cannot take every slot of maxRTCPReporters.
	perConf map[string]int
	// events bounds the reception events RTCP makes, over every host,
	// so that forged RTCP cannot push the events that matter out of a
	// reader's buffer.
	events eventBudget
}

// eventBudget allows a few events a second (a token bucket of 10, 5 a
// second).
type eventBudget struct {
	tokens float64
	at     time.Time
}

func (b *eventBudget) allow(now time.Time) bool {
	if b.at.IsZero() {
		b.tokens = 10
	} else {
		b.tokens = min(10, b.tokens+5*now.Sub(b.at).Seconds())
	}
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// rtcpReporter is what one host's RTCP has said of one conference.
type rtcpReporter struct {
	conf    string
	name    string
	addr    netip.Addr
	streams map[streamID]map[uint32]rtcpBlock // by stream, by source SSRC
	at      time.Time
	// interval is, per stream (each is an RTP session of its own, with
	// its own RTCP), the time between the host's compound packets,
	// smoothed: RFC 3550 §6.3 scales it with the session's members,
	// from 5 s up (§6.2).
	interval map[streamID]time.Duration
	// last is when each stream's report was last taken. §6.2 has a
	// member send one compound packet per interval, at least 5 s apart
	// for a receiver (less only with a reduced minimum for large
	// bandwidths, or AVPF's early feedback, RFC 4585): more than two a
	// second from one host are taken for a flood, dropped and counted.
	last map[streamID]time.Time
}

// streamID is a stream as its blocks are of it: a stream removed, or a
// conference made again under its name, is another.
type streamID struct {
	index int
	group netip.Addr
	port  int
}

func (s rtcpStream) id() streamID { return streamID{s.index, s.group, s.port} }

type rtcpBlock struct {
	block rtcp.ReceptionReport
	at    time.Time
}

// maxRTCPReporters bounds the hosts whose RTCP mcc keeps, over all
// conferences.
const maxRTCPReporters = 4096

func (c *Controller) runRTCP() {
	m := &rtcpMonitor{c: c, conns: map[string]*multicast.GroupConn{}, joined: map[rtcpJoin][]rtcpStream{}, reports: map[string]*rtcpReporter{}, failed: map[rtcpJoin]time.Time{}, perConf: map[string]int{}, channels: map[rtcpJoin][]netip.Addr{}}
	if name := c.cfg.Reception.RTCPInterface; name != "" {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			c.log.Error("RTCP monitoring is off: its interface is not there", "interface", name, "err", err)
			return
		}
		m.ifi = ifi
	}
	var wg sync.WaitGroup
	defer func() {
		m.mu.Lock()
		for _, conn := range m.conns {
			conn.Close()
		}
		m.mu.Unlock()
		wg.Wait()
	}()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		m.reconcile(&wg)
		m.expire()
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// wanted is every conference's RTCP groups, with the streams each serves.
func (m *rtcpMonitor) wanted() map[rtcpJoin][]rtcpStream {
	c := m.c
	c.mu.Lock()
	confs := make([]*Conference, 0, len(c.conferences))
	for _, conf := range c.conferences {
		if !conf.pending {
			confs = append(confs, conf)
		}
	}
	c.mu.Unlock()
	out := map[rtcpJoin][]rtcpStream{}
	for _, conf := range confs {
		desc := conf.current()
		if desc == nil {
			continue
		}
		for i, md := range desc.Media {
			cn := desc.EffectiveConnection(md)
			if md.Port == 0 || cn == nil || !cn.Addr.IsMulticast() || !strings.HasPrefix(md.Proto, "RTP/") {
				continue
			}
			j := rtcpJoin{cn.Addr, int(md.Port) + 1}
			if md.RTCP != nil {
				j.port = int(md.RTCP.Port)
				if a := md.RTCP.Addr; a != nil && a.Addr.IsMulticast() {
					j.group = a.Addr
				}
			}
			if j.port <= 0 || j.port > 65535 {
				continue
			}
			s := rtcpStream{conf: conf.name, index: i, group: cn.Addr, port: int(md.Port), clockRate: md.ClockRate()}
			s.sources, _ = desc.SourcesFor(md, cn.Addr)
			if multicast.IsSourceSpecific(j.group) && len(s.sources) == 0 {
				continue
			}
			out[j] = append(out[j], s)
		}
	}
	return out
}

// reconcile joins the groups now wanted and leaves those no longer.
func (m *rtcpMonitor) reconcile(wg *sync.WaitGroup) {
	want := m.wanted()
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	defer func() {
		for c, n := range m.perConf {
			if n <= 0 {
				delete(m.perConf, c)
			}
		}
	}()
	confs := map[string]bool{}
	for _, ss := range want {
		for _, s := range ss {
			confs[s.conf] = true
		}
	}
	for k, r := range m.reports {
		if !confs[r.conf] {
			delete(m.reports, k) // its conference is gone, or has no stream left
			m.perConf[r.conf]--
		}
	}
	for j := range m.joined {
		if _, ok := want[j]; !ok {
			m.leaveLocked(j)
		}
	}
	// A socket whose port no group is joined on any more is closed (its
	// reader ends): the allocator's ports are random, and each would
	// otherwise stay for the daemon's life.
	inUse := map[string]bool{}
	for j := range m.joined {
		inUse[connKey(j)] = true
	}
	for j := range want {
		inUse[connKey(j)] = true
	}
	for key, conn := range m.conns {
		if !inUse[key] {
			conn.Close()
			delete(m.conns, key)
		}
	}
	for j := range m.failed {
		if _, ok := want[j]; !ok {
			delete(m.failed, j)
		}
	}
	for j, streams := range want {
		if _, ok := m.joined[j]; ok {
			if !multicast.IsSourceSpecific(j.group) || slices.Equal(m.channels[j], ssmSources(streams)) {
				m.joined[j] = streams
				continue
			}
			m.leaveLocked(j) // its sources changed: join the new ones
		}
		if at, ok := m.failed[j]; ok && now.Sub(at) < time.Minute {
			continue
		}
		key := connKey(j)
		conn := m.conns[key]
		if conn == nil {
			var err error
			if conn, err = multicast.ListenGroup(multicast.FamilyOf(j.group), j.port); err != nil {
				m.c.log.Warn("cannot listen for RTCP", "port", j.port, "err", err)
				m.failed[j] = now
				continue
			}
			m.conns[key] = conn
			wg.Go(func() {
				defer m.retire(conn, key)
				defer m.c.recoverIn("the RTCP reader")
				m.read(conn, j.port)
			})
		}
		join := func() error { return conn.Join(m.ifi, j.group) }
		if multicast.IsSourceSpecific(j.group) {
			join = func() error {
				srcs := ssmSources(streams)
				for i, src := range srcs {
					if err := conn.JoinSource(m.ifi, j.group, src); err != nil {
						for _, done := range srcs[:i] { // all or none
							conn.LeaveSource(m.ifi, j.group, done)
						}
						return err
					}
				}
				m.channels[j] = srcs
				return nil
			}
		}
		if err := join(); err != nil {
			m.c.log.Warn("cannot join an RTCP group", "group", j.group, "port", j.port, "err", err)
			m.failed[j] = now
			continue
		}
		delete(m.failed, j)
		m.joined[j] = streams
	}
}

// leaveLocked leaves j (each of its channels, in an SSM range) and
// forgets it; m.mu is held.
func (m *rtcpMonitor) leaveLocked(j rtcpJoin) {
	if conn := m.conns[connKey(j)]; conn != nil {
		if multicast.IsSourceSpecific(j.group) {
			for _, src := range m.channels[j] {
				conn.LeaveSource(m.ifi, j.group, src)
			}
		} else {
			conn.Leave(m.ifi, j.group)
		}
	}
	delete(m.channels, j)
	delete(m.joined, j)
}

// maxChannels is how many sources of one group mcc joins for RTCP:
// Linux's default bound on a socket's source filter
// (net.ipv4.igmp_max_msf, 10).
const maxChannels = 10

// ssmSources are the sources to join for an SSM group's RTCP: those of
// every stream on it, each once, in order, at most maxChannels.
func ssmSources(streams []rtcpStream) []netip.Addr {
	var out []netip.Addr
	for _, s := range streams {
		for _, a := range s.sources {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	if len(out) > maxChannels {
		out = out[:maxChannels]
	}
	return out
}

// retire closes a socket whose reader ended (closed, a read error, or a
// panic caught): its joins are forgotten, so that the next reconcile
// opens the port again and a new reader runs.
func (m *rtcpMonitor) retire(conn *multicast.GroupConn, key string) {
	conn.Close()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conns[key] != conn {
		return // reconcile closed it, or the monitor is stopping
	}
	delete(m.conns, key)
	for j := range m.joined {
		if connKey(j) == key {
			delete(m.joined, j)
			delete(m.channels, j)
		}
	}
}

func connKey(j rtcpJoin) string { return fmt.Sprintf("%v/%d", multicast.FamilyOf(j.group), j.port) }

func (m *rtcpMonitor) read(conn *multicast.GroupConn, port int) {
	buf := make([]byte, 65536)
	for {
		n, src, dst, err := conn.ReadFrom(buf)
		if errors.Is(err, multicast.ErrNotJoined) {
			continue
		}
		if err != nil {
			return // closed
		}
		m.mu.Lock()
		streams := m.joined[rtcpJoin{dst, port}]
		m.mu.Unlock()
		if len(streams) == 0 {
			continue
		}
		m.take(buf[:n], src.Addr(), streams, m.c.clock().Now())
	}
}

// take reads one compound RTCP packet (RFC 3550 §6.1) from src about
// streams, and reports what it says.
func (m *rtcpMonitor) take(b []byte, src netip.Addr, streams []rtcpStream, now time.Time) {
	pkts, err := rtcp.Unmarshal(b)
	st := &m.c.rec
	if err != nil {
		st.count(func(s *ReceptionStats) { s.RTCPMalformed++ })
		return
	}
	st.count(func(s *ReceptionStats) { s.RTCPPackets++ })
	var blocks []rtcp.ReceptionReport
	cname := ""
	reporter, bye := false, false
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.SenderReport:
			for _, s := range streams {
				m.c.noteSender(s, StreamSender{SSRC: p.SSRC, Source: src, Packets: uint64(p.PacketCount), Octets: uint64(p.OctetCount)}, now)
			}
			blocks = append(blocks, p.Reports...)
			reporter = reporter || len(p.Reports) > 0
		case *rtcp.ReceiverReport:
			blocks = append(blocks, p.Reports...)
			reporter = true
		case *rtcp.Goodbye:
			// A member that leaves (RFC 3550 §6.6) is no sender any
			// more, and its host no receiver.
			for _, s := range streams {
				for _, ssrc := range p.Sources {
					m.c.forgetSender(s, ssrc)
				}
			}
			bye = true
		case *rtcp.SourceDescription:
			for _, ch := range p.Chunks {
				for _, it := range ch.Items {
					if it.Type == rtcp.SDESCNAME && cname == "" {
						cname = it.Text
					}
				}
			}
		}
	}
	if bye {
		m.leave(src, streams)
		return
	}
	if !reporter {
		return
	}
	name := src.String()
	if printable(cname) {
		name = cname
	}
	for _, f := range m.collect(src, streams, blocks, name, now) {
		f()
	}
}

// leave forgets a host that said BYE, in the monitor and in the matrix.
func (m *rtcpMonitor) leave(src netip.Addr, streams []rtcpStream) {
	var gone []*rtcpReporter
	m.mu.Lock()
	for _, s := range streams {
		key := s.conf + "|" + src.String()
		if r := m.reports[key]; r != nil {
			gone = append(gone, r)
			delete(m.reports, key)
			m.perConf[s.conf]--
		}
	}
	m.mu.Unlock()
	for _, r := range gone {
		m.c.report(r.conf, ReceiverReport{Receiver: r.name, Kind: ReceiverRTCP, Addrs: []netip.Addr{r.addr}, Leaving: true}, false)
	}
}

// collect takes a compound packet's blocks under the monitor's lock, and
// returns the reports to make once it is released.
func (m *rtcpMonitor) collect(src netip.Addr, streams []rtcpStream, blocks []rtcp.ReceptionReport, name string, now time.Time) []func() {
	st := &m.c.rec
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.perConf == nil {
		m.perConf = map[string]int{}
	}
	var todo []func()
	for _, s := range streams {
		key := s.conf + "|" + src.String()
		r := m.reports[key]
		if r == nil {
			if len(m.reports) >= maxRTCPReporters || m.perConf[s.conf] >= maxReceivers {
				continue
			}
			m.perConf[s.conf]++
			r = &rtcpReporter{conf: s.conf, addr: src, streams: map[streamID]map[uint32]rtcpBlock{}, interval: map[streamID]time.Duration{}, last: map[streamID]time.Time{}}
			m.reports[key] = r
		}
		at, ok := r.last[s.id()]
		if ok && now.Sub(at) < 500*time.Millisecond {
			st.count(func(s *ReceptionStats) { s.RTCPLimited++ })
			continue
		}
		r.last[s.id()] = now
		if iv, had := r.interval[s.id()]; !had {
			r.interval[s.id()] = 5 * time.Second
		} else if gap := now.Sub(at); ok && gap < time.Hour {
			r.interval[s.id()] = iv + (gap-iv)/4
		}
		if r.name == "" || r.name == src.String() {
			r.name = name // the first CNAME a host gives stays its label
		}
		r.at = now
		kept := r.streams[s.id()]
		if kept == nil {
			kept = map[uint32]rtcpBlock{}
			r.streams[s.id()] = kept
		}
		for _, b := range blocks {
			if _, ok := kept[b.SSRC]; ok || len(kept) < reception.MaxSenders {
				kept[b.SSRC] = rtcpBlock{b, now}
			}
		}
		rep := r.report(s.conf, m.streamsOf(s.conf), now)
		loud := m.events.allow(now)
		todo = append(todo, func() { m.c.report(s.conf, rep, loud) })
	}
	return todo
}

// streamsOf is the streams of conference conf mcc listens to, by index.
func (m *rtcpMonitor) streamsOf(conf string) map[int]rtcpStream {
	out := map[int]rtcpStream{}
	for _, ss := range m.joined {
		for _, s := range ss {
			if s.conf == conf {
				out[s.index] = s
			}
		}
	}
	return out
}

// report is the reporter's row for every stream it has reported on. A
// block is of a source heard since the reporter's previous report
// (§6.4): its age is the block's.
func (r *rtcpReporter) report(conf string, streams map[int]rtcpStream, now time.Time) ReceiverReport {
	// The report's interval is the longest of its streams': the silence
	// threshold must not be shorter than any stream's reports are apart.
	iv := 5 * time.Second
	for id, d := range r.interval {
		if _, ok := streams[id.index]; ok {
			iv = max(iv, d)
		}
	}
	rep := ReceiverReport{Receiver: r.name, Kind: ReceiverRTCP, Addrs: []netip.Addr{r.addr}, IntervalMS: iv.Milliseconds()}
	for id, blocks := range r.streams {
		s, ok := streams[id.index]
		if !ok || s.id() != id {
			continue // a stream that is no more
		}
		sr := streamReportOf(s)
		for ssrc, b := range blocks {
			x := senderOfBlock(ssrc, b.block, s.clockRate)
			x.LastAgeMS = now.Sub(b.at).Milliseconds()
			sr.Senders = append(sr.Senders, x)
		}
		slices.SortFunc(sr.Senders, func(a, b reception.SenderReport) int { return cmp.Compare(a.SSRC, b.SSRC) })
		rep.Streams = append(rep.Streams, sr)
	}
	slices.SortFunc(rep.Streams, func(a, b reception.StreamReport) int { return cmp.Compare(a.Index, b.Index) })
	return rep
}

func streamReportOf(s rtcpStream) reception.StreamReport {
	return reception.StreamReport{Index: s.index, Group: s.group, Port: s.port, Senders: []reception.SenderReport{}}
}

// senderOfBlock reads a report block (RFC 3550 §6.4.1): the fraction
// lost is of the interval, over 256; the cumulative loss is a signed
// 24-bit count (duplicates can make it negative: taken as 0); the jitter
// is in timestamp units.
func senderOfBlock(ssrc uint32, b rtcp.ReceptionReport, clockRate int) reception.SenderReport {
	x := reception.SenderReport{SSRC: ssrc, IntervalLoss: float64(b.FractionLost) / 256}
	if lost := b.TotalLost & 0xffffff; lost < 0x800000 {
		x.Lost = uint64(lost)
	}
	if clockRate > 0 {
		x.JitterMS = float64(b.Jitter) / float64(clockRate) * 1000
	}
	return x
}

func (m *rtcpMonitor) expire() {
	forget := m.c.receptionCfg().Forget
	now := m.c.clock().Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, r := range m.reports {
		if now.Sub(r.at) >= forget {
			delete(m.reports, k)
			m.perConf[r.conf]--
			continue
		}
		// A source no block has named for that long (a sender gone, or
		// a forged SSRC) gives its slot back.
		for _, blocks := range r.streams {
			for ssrc, b := range blocks {
				if now.Sub(b.at) >= forget {
					delete(blocks, ssrc)
				}
			}
		}
	}
}

func printable(s string) bool {
	if s == "" || len(s) > maxReceiverNameLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
