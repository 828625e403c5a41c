package api

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"mcc/conference"
)

// metrics writes the Prometheus text exposition format (version 0.0.4).
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m := s.Controller.Metrics()
	var b strings.Builder
	metric := func(name, help, typ string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	metric("mcc_conferences", "Conferences the daemon holds.", "gauge")
	fmt.Fprintf(&b, "mcc_conferences %d\n", m.Conferences)

	metric("mcc_participants", "Participants by state, over every conference.", "gauge")
	var states []conference.State
	for st := range m.Participants {
		states = append(states, st)
	}
	slices.Sort(states)
	for _, st := range states {
		fmt.Fprintf(&b, "mcc_participants{state=%q} %d\n", st.String(), m.Participants[st])
	}

	metric("mcc_participants_behind", "Joined participants that do not have their conference's latest description yet, by conference.", "gauge")
	confs := make([]string, 0, len(m.Behind))
	for n := range m.Behind {
		confs = append(confs, n)
	}
	slices.Sort(confs)
	for _, n := range confs {
		// Conference names are letters, digits, '-', '_' and '.'
		// (conference.ValidName): nothing to escape in a label.
		fmt.Fprintf(&b, "mcc_participants_behind{conference=\"%s\"} %d\n", n, m.Behind[n])
	}
	metric("mcc_probes_total", "In-dialog OPTIONS probes of silent participants, by outcome: answered (a 408 or 481 answer ends the participant too), or unanswered (it was ended).", "counter")
	fmt.Fprintf(&b, "mcc_probes_total{outcome=\"answered\"} %d\n", m.ProbesAnswered)
	fmt.Fprintf(&b, "mcc_probes_total{outcome=\"unanswered\"} %d\n", m.ProbesUnanswered)

	metric("mcc_sip_requests_total", "SIP requests received, by method.", "counter")
	methods := make([]string, 0, len(m.Requests))
	for k := range m.Requests {
		methods = append(methods, k)
	}
	slices.Sort(methods)
	for _, k := range methods {
		fmt.Fprintf(&b, "mcc_sip_requests_total{method=%q} %d\n", k, m.Requests[k])
	}

	metric("mcc_sip_responses_total", "Final SIP responses sent and received, by method and status.", "counter")
	keys := make([]conference.ResponseKey, 0, len(m.Responses))
	for k := range m.Responses {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b conference.ResponseKey) int {
		return strings.Compare(fmt.Sprint(a.Direction, a.Method, a.Status), fmt.Sprint(b.Direction, b.Method, b.Status))
	})
	for _, k := range keys {
		fmt.Fprintf(&b, "mcc_sip_responses_total{direction=%q,method=%q,status=\"%d\"} %d\n", k.Direction, k.Method, k.Status, m.Responses[k])
	}

	metric("mcc_sip_rejected_total", "SIP messages mcc refused before or in a handler, by reason and whether they were answered; reason panic counts panics recovered.", "counter")
	rej := make([]conference.Rejection, 0, len(m.Rejected))
	for k := range m.Rejected {
		rej = append(rej, k)
	}
	slices.SortFunc(rej, func(a, b conference.Rejection) int {
		return strings.Compare(fmt.Sprint(a.Reason, a.Answered), fmt.Sprint(b.Reason, b.Answered))
	})
	for _, k := range rej {
		action := "dropped"
		if k.Answered {
			action = "answered"
		}
		fmt.Fprintf(&b, "mcc_sip_rejected_total{reason=%q,action=%q} %d\n", k.Reason, action, m.Rejected[k])
	}
	metric("mcc_sip_server_transactions", "SIP server transactions alive.", "gauge")
	fmt.Fprintf(&b, "mcc_sip_server_transactions %d\n", m.Transactions)
	metric("mcc_sip_pending_dialins", "Dial-ins answered and waiting for their ACK.", "gauge")
	fmt.Fprintf(&b, "mcc_sip_pending_dialins %d\n", m.Pending)
	metric("mcc_sip_tcp_connections", "TCP and TLS connections accepted and open.", "gauge")
	fmt.Fprintf(&b, "mcc_sip_tcp_connections %d\n", m.TCPConns)

	metric("mcc_reinvite_duration_seconds", "Time from a re-INVITE to its final response.", "histogram")
	for i, le := range conference.LatencyBuckets {
		fmt.Fprintf(&b, "mcc_reinvite_duration_seconds_bucket{le=%q} %d\n", strconv.FormatFloat(le, 'g', -1, 64), m.ReinviteBuckets[i])
	}
	fmt.Fprintf(&b, "mcc_reinvite_duration_seconds_bucket{le=\"+Inf\"} %d\n", m.ReinviteCount)
	fmt.Fprintf(&b, "mcc_reinvite_duration_seconds_sum %g\n", m.ReinviteSum.Seconds())
	fmt.Fprintf(&b, "mcc_reinvite_duration_seconds_count %d\n", m.ReinviteCount)

	metric("mcc_leases", "Group leases held, by pool.", "gauge")
	var sizes strings.Builder
	for _, p := range s.Allocator.Pools() {
		leased, size, _ := s.Allocator.Usage(p.Name)
		fmt.Fprintf(&b, "mcc_leases{pool=%q} %d\n", p.Name, leased)
		fmt.Fprintf(&sizes, "mcc_pool_size{pool=%q} %d\n", p.Name, size)
	}
	metric("mcc_pool_size", "Addresses each pool can hand out.", "gauge")
	b.WriteString(sizes.String())

	if s.Directory != nil {
		st := s.Directory.Stats()
		metric("mcc_sap_heard_sessions", "Sessions in the SAP directory.", "gauge")
		fmt.Fprintf(&b, "mcc_sap_heard_sessions %d\n", len(s.Directory.List()))
		metric("mcc_sap_packets_total", "SAP packets heard, by what became of them.", "counter")
		fmt.Fprintf(&b, "mcc_sap_packets_total{result=\"announcement\"} %d\n", st.Announcements)
		fmt.Fprintf(&b, "mcc_sap_packets_total{result=\"deletion\"} %d\n", st.Deletions)
		fmt.Fprintf(&b, "mcc_sap_packets_total{result=\"dropped\"} %d\n", st.Dropped)
		fmt.Fprintf(&b, "mcc_sap_packets_total{result=\"malformed\"} %d\n", st.Malformed)
		fmt.Fprintf(&b, "mcc_sap_packets_total{result=\"over_limit\"} %d\n", st.OverLimit)
		fmt.Fprintf(&b, "mcc_sap_packets_total{result=\"own\"} %d\n", st.Own)
	}
	s.receptionMetrics(&b, metric)
	io.WriteString(w, b.String())
}
