package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"mcc/conference"
	"mcc/internal/api"
	"mcc/multicast/reception"
	"mcc/sdp"
)

// mcc probe SESSION: a receiver agent. It fetches the session's
// description from mcc serve, joins its groups (source-specific where the
// description has a source filter), measures what it hears per sender and
// reports to mcc serve every interval, until --for is over or it is
// stopped. When the session changes (a stream added or removed) it joins
// the new description.

func cmdProbe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("probe", stderr)
	var cf clientFlags
	cf.register(fs)
	host, _ := os.Hostname()
	name := fs.String("name", host, "the name the probe reports under (default: the host name)")
	iface := fs.String("iface", "", "interface to join the groups on (default: the system's choice)")
	interval := fs.Duration("interval", 2*time.Second, "how often to report")
	dur := fs.Duration("for", 0, "how long to run (default: until interrupted)")
	cf.check = func() error {
		if *interval < 100*time.Millisecond || *interval > 10*time.Minute {
			return usagef("--interval %v: want 100ms to 10m", *interval)
		}
		if *dur < 0 {
			return usagef("--for %v: want a duration above 0", *dur)
		}
		if *name == "" || len(*name) > 64 || !utf8.ValidString(*name) || strings.IndexFunc(*name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			return usagef("--name %q: want 1 to 64 bytes of printable text (default: the host name)", *name)
		}
		return nil
	}
	pos, cl, err := cf.parse(fs, args, 1, 1, "one session")
	if err != nil {
		return err
	}
	var ifi *net.Interface
	if *iface != "" {
		if ifi, err = net.InterfaceByName(*iface); err != nil {
			return usagef("--iface %q: %v", *iface, err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	pr := &prober{cl: cl, session: pos[0], name: *name, ifi: ifi, interval: *interval, stderr: stderr}
	last, err := pr.run(ctx)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(stdout, last)
	}
	printOwn(stdout, last)
	return nil
}

type prober struct {
	cl       *api.Client
	session  string
	name     string
	ifi      *net.Interface
	interval time.Duration
	stderr   io.Writer
}

// run probes until ctx ends and returns the last report made.
func (p *prober) run(ctx context.Context) (conference.ReceiverReport, error) {
	rep := conference.ReceiverReport{Receiver: p.name, Kind: conference.ReceiverProbe, Addrs: hostAddrs(p.ifi), IntervalMS: p.interval.Milliseconds()}
	desc, err := p.fetch(ctx)
	if err != nil {
		return rep, err
	}
	probe, stopProbe, err := p.listen(desc)
	if err != nil {
		return rep, err
	}
	defer func() { stopProbe() }()
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// The probe leaves on purpose: its row goes rather than
			// alert as a receiver that stopped reporting.
			rep.Streams = probe.Report()
			bye := rep
			bye.Leaving = true
			p.post(bye)
			return rep, nil
		case <-tick.C:
		}
		rep.Streams = probe.Report()
		if err := p.post(rep); errors.Is(err, errGone) {
			return rep, fmt.Errorf("session %q is gone", p.session)
		}
		// A changed description (a stream added, removed or moved) is
		// joined afresh; the figures of the old one end with it.
		now, err := p.fetch(ctx)
		if err != nil || now.Origin.Version == desc.Origin.Version {
			continue
		}
		np, nstop, err := p.listen(now)
		if err != nil {
			fmt.Fprintf(p.stderr, "mcc probe: version %d of %s: %v\n", now.Origin.Version, p.session, err)
			continue
		}
		stopProbe()
		probe, stopProbe, desc = np, nstop, now
		fmt.Fprintf(p.stderr, "mcc probe: %s changed to version %d; joined its streams afresh\n", p.session, desc.Origin.Version)
	}
}

var errGone = errors.New("the session is gone")

func (p *prober) fetch(ctx context.Context) (*sdp.Session, error) {
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var raw []byte
	if err := p.cl.Do(c, "GET", "/v1/sessions/"+url.PathEscape(p.session)+"/sdp", nil, &raw); err != nil {
		return nil, err
	}
	return sdp.Parse(raw)
}

func (p *prober) post(rep conference.ReceiverReport) error {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := p.cl.Do(c, "POST", "/v1/sessions/"+url.PathEscape(p.session)+"/reception", rep, nil)
	if e, ok := errors.AsType[*api.Error](err); ok && e.Code == api.CodeNotFound {
		return errGone
	}
	if err != nil {
		fmt.Fprintf(p.stderr, "mcc probe: report: %v\n", err)
	}
	return err
}

// listen joins desc's streams and runs the probe until the returned stop.
func (p *prober) listen(desc *sdp.Session) (*reception.Probe, func(), error) {
	streams := probeStreams(desc)
	if len(streams) == 0 {
		return nil, nil, fmt.Errorf("session %q has no multicast stream to receive", p.session)
	}
	probe, err := reception.Listen(p.ifi, streams)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { probe.Run(ctx); close(done) }()
	return probe, func() { cancel(); <-done }, nil
}

// probeStreams are the description's multicast RTP streams, with the
// sources of their include filters (RFC 4570) and their clock rates.
func probeStreams(desc *sdp.Session) []reception.Stream {
	var out []reception.Stream
	for i, m := range desc.Media {
		cn := desc.EffectiveConnection(m)
		if m.Port == 0 || cn == nil || !cn.Addr.IsMulticast() || !strings.HasPrefix(m.Proto, "RTP/") {
			continue
		}
		s := reception.Stream{Index: i, Group: cn.Addr, Port: int(m.Port), ClockRate: m.ClockRate()}
		s.Sources, s.Excluded = desc.SourcesFor(m, cn.Addr)
		out = append(out, s)
	}
	return out
}

// hostAddrs are the host's unicast addresses (of ifi alone, when given),
// by which mcc serve ties the probe to the participants on its host.
func hostAddrs(ifi *net.Interface) []netip.Addr {
	var addrs []net.Addr
	if ifi != nil {
		addrs, _ = ifi.Addrs()
	} else {
		addrs, _ = net.InterfaceAddrs()
	}
	var out []netip.Addr
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil || pfx.Addr().IsLoopback() || pfx.Addr().IsLinkLocalUnicast() || pfx.Addr().IsMulticast() {
			continue
		}
		if ip := pfx.Addr().Unmap(); !slices.Contains(out, ip) && len(out) < 15 { // one left for the address the report comes from
			out = append(out, ip)
		}
	}
	return out
}

// printOwn prints what the probe heard, a row per stream and sender.
func printOwn(w io.Writer, rep conference.ReceiverReport) {
	rows := [][]string{{"STREAM", "GROUP", "SSRC", "SOURCE", "PACKETS", "LOST", "LOSS", "JITTER", "RATE"}}
	for _, s := range rep.Streams {
		g := fmt.Sprintf("%s:%d", hostPortless(s.Group.String()), s.Port)
		if s.Error != "" {
			rows = append(rows, []string{fmt.Sprint(s.Index), g, "-", "not joined: " + s.Error, "", "", "", "", ""})
			continue
		}
		if len(s.Senders) == 0 {
			rows = append(rows, []string{fmt.Sprint(s.Index), g, "-", "heard nothing", "0", "", "", "", ""})
		}
		for _, x := range s.Senders {
			rows = append(rows, []string{fmt.Sprint(s.Index), g, fmt.Sprintf("%08x", x.SSRC), addrOrDash(x.Source), fmt.Sprint(x.Packets),
				fmt.Sprint(x.Lost), fmt.Sprintf("%.2f%%", 100*x.Loss), fmt.Sprintf("%.1fms", x.JitterMS), reception.RateText(x.RateBPS)})
		}
	}
	table(w, rows)
}

// mcc reception NAME: the reception matrix of a session.
func cmdReception(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("reception", stderr)
	var cf clientFlags
	cf.register(fs)
	pos, cl, err := cf.parse(fs, args, 1, 1, "one session")
	if err != nil {
		return err
	}
	ctx, cancel := apiCtx()
	defer cancel()
	var m conference.Reception
	if err := cl.Do(ctx, "GET", "/v1/sessions/"+url.PathEscape(pos[0])+"/reception", nil, &m); err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(stdout, m)
	}
	rows := [][]string{{"STREAM", "GROUP", "RECEIVER", "SSRC", "SOURCE", "PACKETS", "LOSS", "JITTER", "RATE", "LAST", "REPORT"}}
	for _, s := range m.Streams {
		g := fmt.Sprintf("%s:%d", hostPortless(s.Group.String()), s.Port)
		if len(s.Receivers) == 0 {
			rows = append(rows, []string{fmt.Sprint(s.Index), g, "(no receiver reports)", "", "", "", "", "", "", "", ""})
		}
		for _, rc := range s.Receivers {
			who := rc.Receiver
			if len(rc.Participants) > 0 {
				who += " (" + strings.Join(rc.Participants, ",") + ")"
			}
			age := fmt.Sprintf("%.0fs ago", float64(rc.ReportAgeMS)/1000)
			switch {
			case rc.Error != "":
				rows = append(rows, []string{fmt.Sprint(s.Index), g, who, "-", "not joined: " + rc.Error, "", "", "", "", "", age})
				continue
			case len(rc.Senders) == 0:
				rows = append(rows, []string{fmt.Sprint(s.Index), g, who, "-", "SILENT", "0", "", "", "", "", age})
				continue
			}
			for _, x := range rc.Senders {
				last := fmt.Sprintf("%.1fs", float64(x.LastAgeMS)/1000)
				if rc.Silent {
					last += " SILENT"
				}
				rows = append(rows, []string{fmt.Sprint(s.Index), g, who, fmt.Sprintf("%08x", x.SSRC), addrOrDash(x.Source), fmt.Sprint(x.Packets),
					fmt.Sprintf("%.2f%%", 100*x.IntervalLoss), fmt.Sprintf("%.1fms", x.JitterMS), reception.RateText(x.RateBPS), last, age})
			}
		}
	}
	table(stdout, rows)
	if len(m.Alerts) > 0 {
		fmt.Fprintln(stdout)
		for _, a := range m.Alerts {
			fmt.Fprintf(stdout, "ALERT %s since %s: %s\n", a.Kind, a.Since.Local().Format(time.TimeOnly), a.Detail)
		}
	}
	return nil
}

func addrOrDash(a netip.Addr) string {
	if !a.IsValid() {
		return "-"
	}
	return a.String()
}
