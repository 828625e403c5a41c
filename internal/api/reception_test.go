package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"mcc/conference"
	"mcc/multicast/reception"
	"mcc/sdp"
)

// TestReceptionRequests: a probe's report goes in with the address it
// came from added to its own, comes back in the matrix, and shows in
// /metrics with its name escaped; a report that is not a probe's, or
// breaks a bound, is 400 with what was wrong; a report without the token
// is 401.
func TestReceptionRequests(t *testing.T) {
	cl, _ := newAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.Do(ctx, "POST", "/v1/sessions", SessionRequest{Name: "lab", Media: []string{"audio"}}, nil); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := cl.Do(ctx, "GET", "/v1/sessions/lab/sdp", nil, &raw); err != nil {
		t.Fatal(err)
	}
	desc, err := sdp.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	m := desc.Media[0]
	name := `probe "b"\n`
	rep := conference.ReceiverReport{Receiver: name, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.9")}, IntervalMS: 2000,
		Streams: []reception.StreamReport{{Index: 0, Group: desc.EffectiveConnection(m).Addr, Port: int(m.Port),
			Senders: []reception.SenderReport{{SSRC: 0xabcd, Packets: 100, Expected: 105, Lost: 5, Loss: 5.0 / 105, IntervalLoss: 0.05, JitterMS: 2, RateBPS: 64000, LastAgeMS: 10}}}}}
	if err := cl.Do(ctx, "POST", "/v1/sessions/lab/reception", rep, nil); err != nil {
		t.Fatal(err)
	}
	var mat conference.Reception
	if err := cl.Do(ctx, "GET", "/v1/sessions/lab/reception", nil, &mat); err != nil {
		t.Fatal(err)
	}
	if len(mat.Streams) != 1 || len(mat.Streams[0].Receivers) != 1 {
		t.Fatalf("matrix %+v", mat)
	}
	got := mat.Streams[0].Receivers[0]
	if got.Receiver != name || got.Kind != "probe" || len(got.Addrs) != 2 || got.Addrs[1] != netip.MustParseAddr("127.0.0.1") || got.Senders[0].Lost != 5 {
		t.Fatalf("receiver %+v", got)
	}
	var alerts []conference.Alert
	if err := cl.Do(ctx, "GET", "/v1/alerts", nil, &alerts); err != nil || len(alerts) != 1 || alerts[0].Kind != conference.AlertLoss {
		t.Fatalf("alerts %+v (%v)", alerts, err)
	}

	res, err := http.Get(cl.Base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`mcc_reception_loss_ratio{conference="lab",stream="0",kind="probe",receiver="probe \"b\"\\n",ssrc="0000abcd"} 0.05`,
		`mcc_reception_alerts{kind="loss"} 1`,
		`mcc_reception_reports_total{result="taken"} 1`,
		`mcc_reception_silent{conference="lab",stream="0",kind="probe",receiver="probe \"b\"\\n"} 0`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics has no %s", want)
		}
	}

	for _, c := range []struct {
		name string
		rep  conference.ReceiverReport
		want string
	}{
		{"rtcp", conference.ReceiverReport{Receiver: "x", Kind: "rtcp"}, "a report over the API is a probe's"},
		{"no name", conference.ReceiverReport{}, "want a name of 1 to 64 bytes"},
		{"control character", conference.ReceiverReport{Receiver: "a\x1bb"}, "printable text"},
		{"last packet a century ago", conference.ReceiverReport{Receiver: "x", Streams: []reception.StreamReport{{Senders: []reception.SenderReport{{LastAgeMS: 1 << 50}}}}}, "out of its range"},
		{"interval", conference.ReceiverReport{Receiver: "x", IntervalMS: -1}, "interval_ms"},
		{"loss above 1", conference.ReceiverReport{Receiver: "x", Streams: []reception.StreamReport{{Senders: []reception.SenderReport{{IntervalLoss: 3}}}}}, "out of its range"},
	} {
		err := cl.Do(ctx, "POST", "/v1/sessions/lab/reception", c.rep, nil)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeBadRequest || !strings.Contains(e.Message, c.want) {
			t.Errorf("%s: %v, want 400 saying %q", c.name, err, c.want)
		}
	}
	err = cl.Do(ctx, "POST", "/v1/sessions/none/reception", rep, nil)
	if e, ok := errors.AsType[*Error](err); !ok || e.Code != CodeNotFound {
		t.Errorf("a report on no session: %v", err)
	}
	anon := &Client{Base: cl.Base, HTTP: cl.HTTP}
	if err := anon.Do(ctx, "POST", "/v1/sessions/lab/reception", rep, nil); err == nil || !strings.Contains(err.Error(), "bearer token") {
		t.Errorf("a report without the token: %v", err)
	}
}
