package conference

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mcc/multicast/reception"
	"mcc/sdp"
)

// TestReceptionMatrix: two probes report on a conference with two audio
// streams and a joined participant. The matrix has each stream's
// receivers × senders, ties the participant to the probe on its host,
// and the alerts come and go as the reports say: a receiver silent on a
// stream, a stream nobody hears, loss above the threshold, and a joined
// participant whose host stops reporting.
func TestReceptionMatrix(t *testing.T) {
	t0 := time.Now() // participants join on the system clock
	r := newLectureRig(t, t0)
	if _, err := r.c.CreateSession("lab", sdp.SessionSpec{Name: "Lab", Pool: r.pool.Name,
		Media: []sdp.MediaSpec{{Kind: "audio"}, {Kind: "audio"}}}, Access{}); err != nil {
		t.Fatal(err)
	}
	events, _, cancel := r.c.Subscribe()
	defer cancel()
	p := newPeer(t, "udp", "127.0.0.1", nil)
	if cl := p.dialIn(t, r.c.URI("lab"), nil, echo); cl.res.StatusCode != 200 {
		t.Fatalf("dial-in: %d", cl.res.StatusCode)
	}
	eventually(t, "the participant joined", func() bool {
		info, _ := r.c.Get("lab")
		return len(info.Participants) == 1 && info.Participants[0].State == Joined
	})
	conf, err := r.c.conference("lab")
	if err != nil {
		t.Fatal(err)
	}
	desc := conf.current()
	stream := func(i int, senders ...reception.SenderReport) reception.StreamReport {
		m := desc.Media[i]
		return reception.StreamReport{Index: i, Group: desc.EffectiveConnection(m).Addr, Port: int(m.Port), Senders: append([]reception.SenderReport{}, senders...)}
	}
	heard := func(loss float64) reception.SenderReport {
		return reception.SenderReport{SSRC: 0x1234, Packets: 500, Expected: 500, IntervalLoss: loss, JitterMS: 1.5, RateBPS: 80000, LastAgeMS: 20}
	}
	report := func(name string, addr string, streams ...reception.StreamReport) {
		t.Helper()
		if err := r.c.Report("lab", ReceiverReport{Receiver: name, Kind: ReceiverProbe, Addrs: []netip.Addr{netip.MustParseAddr(addr)}, IntervalMS: 2000, Streams: streams}); err != nil {
			t.Fatal(err)
		}
	}
	alerts := func() []string {
		var out []string
		for _, a := range r.c.Alerts() {
			out = append(out, strings.Join(slices.DeleteFunc([]string{a.Kind, strconv.Itoa(a.Stream), a.Receiver, a.Participant}, func(s string) bool { return s == "" }), " "))
		}
		return out
	}
	alertEvents := func() []string {
		var out []string
		for {
			select {
			case e := <-events:
				if e.Kind == "alert" {
					s := e.Alert.Kind + " " + strconv.Itoa(e.Alert.Stream)
					if !e.Alert.Cleared.IsZero() {
						s = "cleared " + s
					}
					out = append(out, s)
				}
			default:
				slices.Sort(out)
				return out
			}
		}
	}

	// The near probe, on the participant's host, hears stream 0 and not
	// stream 1; the far one hears nothing of stream 0.
	report("near", "127.0.0.1", stream(0, heard(0)), stream(1))
	report("far", "10.0.0.9", stream(0))
	// A report of a stream the session does not have at that index is
	// left out.
	wrong := stream(1)
	wrong.Port++
	report("far", "10.0.0.9", stream(0), wrong)
	if got := alerts(); len(got) != 0 {
		t.Fatalf("alerts before anyone was silent for 10 s: %v", got)
	}
	r.clk.set(t0.Add(11 * time.Second))
	report("near", "127.0.0.1", stream(0, heard(0.05)), stream(1))
	report("far", "10.0.0.9", stream(0))
	want := []string{"loss 0 near", "receiver-silent 0 far", "receiver-silent 1 near", "stream-silent 1"}
	if got := alerts(); !slices.Equal(got, want) {
		t.Fatalf("alerts %q, want %q", got, want)
	}
	if got := alertEvents(); !slices.Equal(got, []string{"loss 0", "receiver-silent 0", "receiver-silent 1", "stream-silent 1"}) {
		t.Fatalf("alert events %q", got)
	}
	m, err := r.c.Reception("lab")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Streams) != 2 || len(m.Streams[0].Receivers) != 2 || len(m.Streams[1].Receivers) != 1 || len(m.Alerts) != 4 {
		t.Fatalf("matrix %+v", m)
	}
	far, near := m.Streams[0].Receivers[0], m.Streams[0].Receivers[1]
	if far.Receiver != "far" || !far.Silent || len(far.Senders) != 0 || len(far.Participants) != 0 {
		t.Errorf("far: %+v", far)
	}
	info, _ := r.c.Get("lab")
	ps := info.Participants
	if near.Receiver != "near" || near.Silent || len(near.Senders) != 1 || near.Senders[0].SSRC != 0x1234 || !slices.Equal(near.Participants, []string{ps[0].ID}) {
		t.Errorf("near: %+v (participant %s)", near, ps[0].ID)
	}
	if s := m.Streams[0]; s.Group != desc.EffectiveConnection(desc.Media[0]).Addr || s.TTL == 0 {
		t.Errorf("stream 0: %+v", s)
	}

	// The loss stops and the near probe hears stream 1: those clear.
	report("near", "127.0.0.1", stream(0, heard(0)), stream(1, heard(0)))
	if got := alerts(); !slices.Equal(got, []string{"receiver-silent 0 far"}) {
		t.Fatalf("alerts %q", got)
	}
	if got := alertEvents(); !slices.Equal(got, []string{"cleared loss 0", "cleared receiver-silent 1", "cleared stream-silent 1"}) {
		t.Fatalf("alert events %q", got)
	}

	// A probe that leaves on purpose takes its row with it, and its
	// alert clears.
	report("gone", "10.0.0.10", stream(0))
	if err := r.c.Report("lab", ReceiverReport{Receiver: "gone", Kind: ReceiverProbe, Leaving: true}); err != nil {
		t.Fatal(err)
	}
	if m, _ := r.c.Reception("lab"); len(m.Streams[0].Receivers) != 2 {
		t.Fatalf("after a probe left: %+v", m.Streams[0].Receivers)
	}

	// The near probe stops reporting; the far one goes on. 31 s after
	// the participant joined and 20 s after near's last report, its host
	// counts as reporting nothing.
	r.clk.set(t0.Add(31 * time.Second))
	report("far", "10.0.0.9", stream(0))
	got := alerts()
	if !slices.Contains(got, "unreported -1 "+ps[0].ID) {
		t.Fatalf("alerts %q: no unreported participant", got)
	}

	// Bad reports are refused, with what was wrong.
	for _, bad := range []ReceiverReport{
		{Receiver: "", Kind: ReceiverProbe},
		{Receiver: strings.Repeat("x", 65), Kind: ReceiverProbe},
		{Receiver: "bell\a", Kind: ReceiverProbe},
		{Receiver: "x", Kind: "rumour"},
		{Receiver: "x", Kind: ReceiverProbe, Streams: []reception.StreamReport{{Senders: []reception.SenderReport{{Loss: 2}}}}},
		{Receiver: "x", Kind: ReceiverProbe, Streams: make([]reception.StreamReport, maxReportStreams+1)},
	} {
		if err := r.c.Report("lab", bad); !errors.Is(err, ErrBadReport) {
			t.Errorf("report %+.60v: %v", bad, err)
		}
	}
	if err := r.c.Report("nosuch", ReceiverReport{Receiver: "x", Kind: ReceiverProbe}); !errors.Is(err, ErrUnknown) {
		t.Errorf("a report on no conference: %v", err)
	}
	// At most maxReceivers receivers per conference.
	for i := range maxReceivers {
		r.c.Report("lab", ReceiverReport{Receiver: "p" + strconv.Itoa(i), Kind: ReceiverProbe})
	}
	if err := r.c.Report("lab", ReceiverReport{Receiver: "one too many", Kind: ReceiverProbe}); !errors.Is(err, ErrBadReport) {
		t.Errorf("receiver %d: %v", maxReceivers+2, err)
	}
	if st := r.c.ReceptionStats(); st.Reports < 7 || st.Refused < 7 || st.Raised[AlertLoss] != 1 {
		t.Errorf("stats %+v", st)
	}
	// Deleting the conference forgets its reception.
	if err := r.c.Delete(context.Background(), "lab"); err != nil {
		t.Fatal(err)
	}
	r.c.checkReception("lab")
	if a := r.c.Alerts(); len(a) != 0 {
		t.Fatalf("alerts after the delete: %+v", a)
	}
}
