package conference

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// watcher is a subscriber to the conference event package made on sipgo,
// as a roster display would be: it SUBSCRIBEs, answers every NOTIFY, and
// applies each document to the state it holds (RFC 4575 §4.6), checking
// every one against the schema. A gap in the versions makes it refresh
// for full state, as the RFC says a subscriber does.
type watcher struct {
	t    testing.TB
	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	cl   *sipgo.Client
	addr string
	tr   string
	uri  sip.Uri // the conference URI

	mu       sync.Mutex
	callID   string
	tag      string
	toTag    string
	cseq     uint32
	doc      *ConferenceInfo
	states   []string // each NOTIFY's Subscription-State
	kinds    []string // each document's state: full or partial
	versions []uint32
	gaps     int
	bodies   [][]byte
	via      []string // each NOTIFY's transport
	changed  chan struct{}
}

func newWatcher(t testing.TB, e *env, transport string) *watcher {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("watcher"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	srv, _ := sipgo.NewServer(ua)
	w := &watcher{t: t, ua: ua, tr: transport, callID: sip.GenerateTagN(16), tag: sip.GenerateTagN(8), changed: make(chan struct{}, 1)}
	srv.OnNotify(w.onNotify)
	w.srv = srv
	host := e.host
	switch transport {
	case "udp":
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		w.addr = pc.LocalAddr().String()
		go srv.ServeUDP(pc)
		for i := 0; i < 1000; i++ {
			if conn, _ := ua.TransportLayer().GetConnection("udp", w.addr); conn != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		w.cl, _ = sipgo.NewClient(ua, sipgo.WithClientConnectionAddr(w.addr))
	default:
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		w.addr = ln.Addr().String()
		go srv.ServeTCP(ln)
		w.cl, _ = sipgo.NewClient(ua)
	}
	var target string
	for _, l := range e.c.Addrs() {
		if l.Transport == transport {
			target = l.Addr
		}
	}
	h, p, _ := net.SplitHostPort(target)
	w.uri = sip.Uri{Scheme: "sip", User: e.name, Host: hostForURI(h), UriParams: sip.NewParams()}
	w.uri.Port, _ = strconv.Atoi(p)
	if transport != "udp" {
		w.uri.UriParams.Add("transport", transport)
	}
	return w
}

// request builds a SUBSCRIBE in the watcher's dialog (or its first).
func (w *watcher) request(method sip.RequestMethod, expires int) *sip.Request {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cseq++
	req := sip.NewRequest(method, w.uri)
	req.SetTransport(strings.ToUpper(w.tr))
	h, p, _ := net.SplitHostPort(w.addr)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "watcher", Host: hostForURI(h)}, Params: sip.NewParams()}
	from.Params.Add("tag", w.tag)
	to := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: w.uri.User, Host: w.uri.Host, Port: w.uri.Port}, Params: sip.NewParams()}
	if w.toTag != "" {
		to.Params.Add("tag", w.toTag)
	}
	callID := sip.CallIDHeader(w.callID)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: w.cseq, MethodName: method})
	contact := sip.Uri{Scheme: "sip", User: "watcher", Host: hostForURI(h), UriParams: sip.NewParams()}
	contact.Port, _ = strconv.Atoi(p)
	if w.tr != "udp" {
		contact.UriParams.Add("transport", w.tr)
	}
	req.AppendHeader(&sip.ContactHeader{Address: contact})
	req.AppendHeader(sip.NewHeader("Event", "conference"))
	req.AppendHeader(sip.NewHeader("Accept", ConferenceInfoType))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	return req
}

// subscribe sends a SUBSCRIBE (the first, a refresh, or with 0 an
// unsubscription) and returns its final response.
func (w *watcher) subscribe(expires int) *sip.Response {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := w.cl.Do(ctx, w.request(sip.SUBSCRIBE, expires))
	if err != nil {
		w.t.Fatalf("SUBSCRIBE: %v", err)
	}
	if res.IsSuccess() {
		if tag, ok := tagOf(res.To().Params); ok {
			w.mu.Lock()
			w.toTag = tag
			w.mu.Unlock()
		}
	}
	return res
}

func (w *watcher) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	body := append([]byte(nil), req.Body()...)
	state := ""
	if h := req.GetHeader("Subscription-State"); h != nil {
		state = h.Value()
	}
	tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	w.mu.Lock()
	w.states = append(w.states, state)
	w.via = append(w.via, req.Transport())
	w.mu.Unlock()
	if len(body) > 0 {
		checkConferenceInfoSchema(w.t, body)
		n, err := ParseConferenceInfo(body)
		if err != nil {
			w.t.Errorf("NOTIFY body: %v\n%s", err, body)
			return
		}
		w.mu.Lock()
		w.kinds = append(w.kinds, n.State)
		w.versions = append(w.versions, n.Version)
		w.bodies = append(w.bodies, body)
		if w.doc == nil {
			w.doc = &ConferenceInfo{}
		}
		err = w.doc.Apply(n)
		if errors.Is(err, ErrVersionGap) {
			w.gaps++
		} else if err != nil {
			w.t.Errorf("apply version %d: %v", n.Version, err)
		}
		w.mu.Unlock()
	}
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// until waits for the state the watcher holds to satisfy f.
func (w *watcher) until(what string, f func(doc *ConferenceInfo) bool) {
	w.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		w.mu.Lock()
		ok := w.doc != nil && f(w.doc)
		w.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-w.changed:
		case <-deadline:
			w.mu.Lock()
			defer w.mu.Unlock()
			last := ""
			if n := len(w.bodies); n > 0 {
				last = string(w.bodies[n-1])
			}
			w.t.Fatalf("watcher: no %s; states %v, documents %v %v; last:\n%s", what, w.states, w.kinds, w.versions, last)
		}
	}
}

// lastStateLocked is the Subscription-State of the last NOTIFY; for
// until's functions, which run with w.mu held.
func (w *watcher) lastStateLocked() string {
	if len(w.states) == 0 {
		return ""
	}
	return w.states[len(w.states)-1]
}
