package conference

import (
	"cmp"
	"errors"
	"net"
	"sync"
	"time"
)

// udpMux reads one UDP listening socket and hands its datagrams to sipgo
// through a session it can replace. sipgo's UDP read loop keeps, for as
// long as it runs, a connection-pool entry and a map entry for every
// peer address (ip:port) it ever read from; a stranger who changes port
// or IPv6 address with every packet grows both without end. Replacing
// the session ends that loop, which cleans up after itself, while the
// socket, and every transaction sending on it, stays.
type udpMux struct {
	pc    net.PacketConn
	serve func(*udpSession) // starts sipgo's read loop on a session

	mu       sync.RWMutex // held for reading while a packet is handed to cur; for writing to replace it
	cur      *udpSession
	retiring map[*udpSession]*time.Timer // replaced sessions, ended when their timer fires
	closed   bool                        // the socket closed: run has ended cur and the retiring, and no session follows
	retire   time.Duration               // udpRetire; tests make it shorter
}

// udpRetire is how long a replaced session's loop goes on after it was
// handed its last datagram, reading nothing: the requests it handed on
// are still being answered, and sipgo finds their way back (the pool
// entry of their peer) only while that loop runs. Ended at once, those
// answers would leave from a new socket of sipgo's, on another port, that
// nothing ever closes.
const udpRetire = 10 * time.Second

// udpSession is what one sipgo read loop reads from.
type udpSession struct {
	pc   net.PacketConn
	in   chan udpPacket // closed when the session is replaced or the socket closes
	done chan struct{}  // closed by Close
	once sync.Once
}

type udpPacket struct {
	b    []byte
	addr net.Addr
}

// udpQueue is how many datagrams may wait for sipgo's loop; past it the
// reader waits, and the kernel's buffer (udpReadBuffer) holds the rest.
const udpQueue = 256

var udpBufs = sync.Pool{New: func() any { b := make([]byte, 65536); return &b }}

func newUDPSession(pc net.PacketConn) *udpSession {
	return &udpSession{pc: pc, in: make(chan udpPacket, udpQueue), done: make(chan struct{})}
}

func (s *udpSession) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case p, ok := <-s.in:
		if !ok {
			return 0, nil, net.ErrClosed
		}
		n := copy(b, p.b)
		buf := p.b[:cap(p.b)]
		udpBufs.Put(&buf)
		return n, p.addr, nil
	case <-s.done:
		return 0, nil, net.ErrClosed
	}
}

func (s *udpSession) WriteTo(b []byte, addr net.Addr) (int, error) { return s.pc.WriteTo(b, addr) }
func (s *udpSession) LocalAddr() net.Addr                          { return s.pc.LocalAddr() }

// Close ends the session, not the socket: that is the mux's.
func (s *udpSession) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

func (s *udpSession) SetDeadline(time.Time) error      { return nil }
func (s *udpSession) SetReadDeadline(time.Time) error  { return nil }
func (s *udpSession) SetWriteDeadline(time.Time) error { return nil }

// start runs the first session; run must be running (or about to) too.
func (m *udpMux) start() {
	m.cur = newUDPSession(m.pc)
	m.serve(m.cur)
}

// run reads the socket until it is closed, handing each datagram to the
// current session. Its caller owns it (Controller.wg).
func (m *udpMux) run() {
	defer func() {
		m.mu.Lock()
		close(m.cur.in)
		for s, t := range m.retiring {
			t.Stop()
			close(s.in)
		}
		m.retiring = nil
		m.closed = true
		m.mu.Unlock()
	}()
	for {
		bp := udpBufs.Get().(*[]byte)
		n, addr, err := m.pc.ReadFrom(*bp)
		if err != nil {
			udpBufs.Put(bp)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // a transient error; don't spin
			continue
		}
		p := udpPacket{b: (*bp)[:n], addr: addr}
		m.mu.RLock()
		select {
		case m.cur.in <- p:
		case <-m.cur.done:
			udpBufs.Put(bp)
		}
		m.mu.RUnlock()
	}
}

// rotate starts a new session and its sipgo loop, and hands it every
// datagram from then on once it serves; the old one is ended udpRetire
// later (or when the socket closes): its loop reads what it was handed,
// lets those requests be answered, then stops and forgets its peers.
//
// While one replaced session is still retiring, rotate does nothing and
// returns false: at most two loops (and their peers) are alive at once.
func (m *udpMux) rotate(ready func(*udpSession) bool) (rotated bool) {
	m.mu.RLock()
	busy := len(m.retiring) > 0
	m.mu.RUnlock()
	if busy {
		return false
	}
	next := newUDPSession(m.pc)
	m.serve(next)
	for i := 0; i < 1000 && !ready(next); i++ {
		time.Sleep(time.Millisecond)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		close(next.in) // the socket went meanwhile: its loop ends too
		return false
	}
	old := m.cur
	m.cur = next
	if m.retiring == nil {
		m.retiring = map[*udpSession]*time.Timer{}
	}
	m.retiring[old] = time.AfterFunc(cmp.Or(m.retire, udpRetire), func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := m.retiring[old]; ok { // not ended by run meanwhile
			delete(m.retiring, old)
			close(old.in)
		}
	})
	return true
}

// replaced reports whether s is no longer the current session.
func (m *udpMux) replaced(s *udpSession) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.cur != s
}
