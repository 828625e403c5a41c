package api

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"mcc/conference"
)

// Reception: probes (mcc probe) report what they hear over this API, not
// in RTCP receiver reports sent to mcc (RFC 5760's feedback target). A
// probe needs the session's description from the API anyway, to join its
// groups; the API authenticates it (RTCP has no such thing, so any host
// could forge a report); and a report here carries what an RR has no
// field for: the sender's address, its bit rate, the age of its last
// packet, the probe's own addresses and why a join failed.

// postReception takes a probe's report. The address it came from is
// added to the probe's own, so that a joined participant on that host is
// tied to it.
func (s *Server) postReception(w http.ResponseWriter, r *http.Request) {
	var rep conference.ReceiverReport
	if err := decode(r, &rep); err != nil {
		s.fail(w, err)
		return
	}
	if rep.Kind == "" {
		rep.Kind = conference.ReceiverProbe
	}
	if rep.Kind != conference.ReceiverProbe {
		s.fail(w, badf("kind %q: a report over the API is a probe's", rep.Kind))
		return
	}
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if a, err := netip.ParseAddr(h); err == nil && !slices.Contains(rep.Addrs, a.Unmap()) {
			rep.Addrs = append(rep.Addrs, a.Unmap())
		}
	}
	if err := s.Controller.Report(r.PathValue("name"), rep); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getReception(w http.ResponseWriter, r *http.Request) {
	m, err := s.Controller.Reception(r.PathValue("name"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request) {
	as := s.Controller.Alerts()
	if as == nil {
		as = []conference.Alert{}
	}
	writeJSON(w, http.StatusOK, as)
}

// receptionMetrics writes the reception counters, the standing alerts,
// and a gauge per cell of every conference's matrix.
func (s *Server) receptionMetrics(b *strings.Builder, metric func(name, help, typ string)) {
	st := s.Controller.ReceptionStats()
	metric("mcc_reception_reports_total", "Reception reports, by what became of them.", "counter")
	fmt.Fprintf(b, "mcc_reception_reports_total{result=\"taken\"} %d\n", st.Reports)
	fmt.Fprintf(b, "mcc_reception_reports_total{result=\"refused\"} %d\n", st.Refused)
	metric("mcc_rtcp_packets_total", "RTCP packets heard on the sessions' RTCP ports, by what became of them.", "counter")
	fmt.Fprintf(b, "mcc_rtcp_packets_total{result=\"taken\"} %d\n", st.RTCPPackets)
	fmt.Fprintf(b, "mcc_rtcp_packets_total{result=\"malformed\"} %d\n", st.RTCPMalformed)
	fmt.Fprintf(b, "mcc_rtcp_packets_total{result=\"over_rate\"} %d\n", st.RTCPLimited)

	kinds := []string{conference.AlertStreamSilent, conference.AlertReceiverSilent, conference.AlertLoss, conference.AlertUnreported}
	metric("mcc_reception_alerts_raised_total", "Reception alerts raised, by kind.", "counter")
	for _, k := range kinds {
		fmt.Fprintf(b, "mcc_reception_alerts_raised_total{kind=%q} %d\n", k, st.Raised[k])
	}
	standing := map[string]int{}
	alerts := s.Controller.Alerts()
	for _, a := range alerts {
		standing[a.Kind]++
	}
	metric("mcc_reception_alerts", "Reception alerts standing, by kind.", "gauge")
	for _, k := range kinds {
		fmt.Fprintf(b, "mcc_reception_alerts{kind=%q} %d\n", k, standing[k])
	}

	type cell struct {
		labels string
		v      float64
	}
	var loss, jitter, rate, age []cell
	var silent []cell
	for _, info := range s.Controller.List() {
		m, err := s.Controller.Reception(info.Name)
		if err != nil {
			continue
		}
		for _, st := range m.Streams {
			for _, rc := range st.Receivers {
				base := fmt.Sprintf("conference=\"%s\",stream=\"%d\",kind=\"%s\",receiver=\"%s\"", m.Conference, st.Index, rc.Kind, labelValue(rc.Receiver))
				v := 0.0
				if rc.Silent {
					v = 1
				}
				silent = append(silent, cell{base, v})
				for _, x := range rc.Senders {
					l := fmt.Sprintf("%s,ssrc=\"%08x\"", base, x.SSRC)
					loss = append(loss, cell{l, x.IntervalLoss})
					jitter = append(jitter, cell{l, x.JitterMS / 1000})
					rate = append(rate, cell{l, x.RateBPS})
					age = append(age, cell{l, float64(x.LastAgeMS) / 1000})
				}
			}
		}
	}
	for _, g := range []struct {
		name, help string
		cells      []cell
	}{
		{"mcc_reception_silent", "1 when a receiver has heard nothing of a stream for the silence threshold.", silent},
		{"mcc_reception_loss_ratio", "Fraction of a sender's packets a receiver lost over its last report interval (RFC 3550 A.3).", loss},
		{"mcc_reception_jitter_seconds", "Interarrival jitter a receiver measures of a sender (RFC 3550 A.8).", jitter},
		{"mcc_reception_rate_bits_per_second", "Bit rate a receiver gets of a sender.", rate},
		{"mcc_reception_last_packet_age_seconds", "How long ago a receiver last had a packet of a sender, as of its last report.", age},
	} {
		metric(g.name, g.help, "gauge")
		for _, c := range g.cells {
			fmt.Fprintf(b, "%s{%s} %g\n", g.name, c.labels, c.v)
		}
	}
}

// labelValue escapes a label value as the text exposition format wants:
// backslash, double quote and line feed, nothing else (Go's %q writes
// \x and \u escapes the format does not know).
func labelValue(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}
