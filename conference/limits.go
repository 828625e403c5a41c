package conference

import "time"

// Limits bound what a stranger can make mcc hold or do. Each zero field
// takes the default its comment gives; a negative one turns that bound
// off, which only a benchmark or a closed lab should want.
type Limits struct {
	// MaxMessage is the largest SIP message accepted, in bytes. A larger
	// request gets 513 (RFC 3261 §21.5.14) when it can be answered and is
	// dropped otherwise. Zero means 32 KiB, sipgo's UDP read buffer.
	MaxMessage int
	// SourceRate is how many requests per second one source may send: an
	// IPv4 address, or an IPv6 /64 (one host holds a whole /64). Beyond it
	// a request gets 503 with Retry-After, or is dropped once the source
	// keeps on. Zero means 200/s. A negative rate tells sources apart no
	// more (behind a proxy, every request comes from it): every per-source
	// bound is off, and only the bounds in all hold.
	SourceRate float64
	// SourceBurst is how many requests a source may send at once above
	// its rate. Zero, or a negative burst, means twice SourceRate.
	SourceBurst int
	// MaxSources bounds the table of sources being rate-limited; past it,
	// new sources share one bucket. Zero means 65,536.
	MaxSources int
	// MaxTransactions bounds the server transactions alive at once (each
	// lives up to 64·T1 = 32 s): past it, new requests get 503. Zero means
	// 200,000: a dial-in keeps two (INVITE and BYE) for 32 s, so 3,000
	// calls/s fit.
	MaxTransactions int
	// TCPConns bounds the TCP and TLS connections accepted, in all and
	// from one source: past them, a new connection is closed at once.
	// Zero means 4,096 in all and 64 per source.
	TCPConns, TCPConnsPerSource int
	// TCPIdle closes an accepted connection that carried nothing, not
	// even a keep-alive, for this long. Zero means 120 s.
	TCPIdle time.Duration
	// TCPMessage is how long a message may take to arrive once its first
	// byte has (a slow sender holds a connection and a buffer). Zero means
	// 10 s.
	TCPMessage time.Duration
	// PendingPerSource bounds the dial-ins from one source that were
	// answered but not yet ACKed; MaxPending bounds them in all. Past
	// them a new dial-in gets 503. Zero means 32 and 2,048.
	PendingPerSource, MaxPending int
	// JoinedPerSource bounds the dial-ins from one source joined at once:
	// each is saved, restored at every start and re-INVITEd at every
	// change. Past it a dial-in gets 486. Zero means 64. MaxJoined bounds
	// them in all: zero means 20,000.
	JoinedPerSource, MaxJoined int
	// EndedKept is how many participants that declined, failed, left or
	// were removed a conference keeps in its list, the newest. Zero means
	// 256.
	EndedKept int
	// MaxSubscriptions bounds the subscriptions held at once, the
	// conference package's and REFER's (each makes mcc send a NOTIFY at
	// every change); SubscriptionsPerSource bounds those made from one
	// source. Past them a SUBSCRIBE or REFER gets 503. Zero means 10,000
	// and 32.
	MaxSubscriptions, SubscriptionsPerSource int
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxMessage, 32<<10)
	if l.SourceRate == 0 {
		l.SourceRate = 200
	}
	if l.SourceBurst < 0 {
		l.SourceBurst = 0 // a burst cannot be off: the rate bounds it
	}
	def(&l.SourceBurst, max(1, int(2*l.SourceRate)))
	def(&l.MaxSources, 65536)
	def(&l.MaxTransactions, 200000)
	def(&l.TCPConns, 4096)
	def(&l.TCPConnsPerSource, 64)
	if l.TCPIdle == 0 {
		l.TCPIdle = 120 * time.Second
	}
	if l.TCPMessage == 0 {
		l.TCPMessage = 10 * time.Second
	}
	for _, d := range []*time.Duration{&l.TCPIdle, &l.TCPMessage} {
		if *d < 0 {
			*d = noDeadline // off: a deadline in the past would close every connection at once
		}
	}
	def(&l.PendingPerSource, 32)
	def(&l.MaxPending, 2048)
	def(&l.EndedKept, 256)
	def(&l.JoinedPerSource, 64)
	def(&l.MaxJoined, 20000)
	def(&l.MaxSubscriptions, 10000)
	def(&l.SubscriptionsPerSource, 32)
	return l
}

// noDeadline is a TCP time bound turned off: far enough to never come,
// near enough that adding it to a time.Time does not overflow.
const noDeadline = 100 * 365 * 24 * time.Hour

// unlimited reports whether a bound was turned off.
func unlimited(v int) bool { return v < 0 }
