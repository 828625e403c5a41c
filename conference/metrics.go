package conference

import (
	"sort"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// LatencyBuckets are the upper bounds, in seconds, of the re-INVITE
// latency histogram.
var LatencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 32}

// Metrics is a snapshot of the controller's counters.
type Metrics struct {
	// Requests counts the requests received, by method.
	Requests map[string]uint64
	// Responses counts final responses, by direction ("sent" or
	// "received"), method and status code.
	Responses map[ResponseKey]uint64
	// ReinviteLatency counts re-INVITEs by the time to their final
	// response: Buckets[i] is how many took at most LatencyBuckets[i].
	ReinviteBuckets []uint64
	ReinviteCount   uint64
	ReinviteSum     time.Duration
	// Participants counts participants by state, over every conference.
	Participants map[State]int
	Conferences  int
	// Rejected counts the messages the guard or a handler refused, by
	// reason and whether they were answered; panics recovered count as
	// reason "panic".
	Rejected map[Rejection]uint64
	// Transactions, Pending and TCPConns are what strangers hold now:
	// server transactions, dial-ins waiting for their ACK, accepted
	// connections.
	Transactions, Pending, TCPConns int64
	// Behind counts, per conference, the joined participants that do not
	// have its latest description yet.
	Behind map[string]int
	// Probes counts in-dialog OPTIONS probes by outcome: answered, or
	// not (the participant was ended).
	ProbesAnswered, ProbesUnanswered uint64
	// Subscriptions counts the subscriptions held, by event package:
	// "conference" (RFC 4575) and "refer" (REFER's, RFC 3515).
	Subscriptions map[string]int
}

// ResponseKey says which responses a count is of.
type ResponseKey struct {
	Direction string // "sent" or "received"
	Method    string
	Status    int
}

type counters struct {
	mu        sync.Mutex // guards the fields below
	requests  map[string]uint64
	responses map[ResponseKey]uint64
	buckets   []uint64
	count     uint64
	sum       time.Duration
	probesOK  uint64
	probesNo  uint64
}

func (m *counters) probe(answered bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if answered {
		m.probesOK++
	} else {
		m.probesNo++
	}
}

func (m *counters) request(method sip.RequestMethod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.requests == nil {
		m.requests = map[string]uint64{}
	}
	m.requests[string(method)]++
}

func (m *counters) response(dir string, method sip.RequestMethod, status int) {
	if status < 200 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.responses == nil {
		m.responses = map[ResponseKey]uint64{}
	}
	m.responses[ResponseKey{dir, string(method), status}]++
}

func (m *counters) reinvite(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.buckets == nil {
		m.buckets = make([]uint64, len(LatencyBuckets))
	}
	i := sort.SearchFloat64s(LatencyBuckets, d.Seconds())
	for ; i < len(LatencyBuckets); i++ {
		m.buckets[i]++
	}
	m.count++
	m.sum += d
}

// Metrics returns a snapshot of the controller's counters.
func (c *Controller) Metrics() Metrics {
	c.metrics.mu.Lock()
	out := Metrics{Requests: map[string]uint64{}, Responses: map[ResponseKey]uint64{},
		ReinviteBuckets: make([]uint64, len(LatencyBuckets)), ReinviteCount: c.metrics.count, ReinviteSum: c.metrics.sum}
	for k, v := range c.metrics.requests {
		out.Requests[k] = v
	}
	for k, v := range c.metrics.responses {
		out.Responses[k] = v
	}
	copy(out.ReinviteBuckets, c.metrics.buckets)
	out.ProbesAnswered, out.ProbesUnanswered = c.metrics.probesOK, c.metrics.probesNo
	c.metrics.mu.Unlock()
	out.Rejected = c.guard.rejections()
	out.Transactions, out.Pending, out.TCPConns = c.guard.live.Load(), c.guard.pending.Load(), c.guard.conns.Load()
	out.Subscriptions = c.watch.count()
	out.Participants = map[State]int{}
	out.Behind = map[string]int{}
	list := c.List()
	out.Conferences = len(list)
	for _, in := range list {
		out.Behind[in.Name] = 0
		for _, p := range in.Participants {
			out.Participants[p.State]++
			if p.Behind {
				out.Behind[in.Name]++
			}
		}
	}
	return out
}
