package conference

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// writeTimeout bounds one write to a TCP or TLS peer: one that reads
// nothing must not hold a goroutine of mcc's for ever.
const writeTimeout = 10 * time.Second

// guardedListener is what sipgo's TCP and TLS transports accept from: it
// keeps accepting after a failure such as running out of file
// descriptors (sipgo's accept loop returns on the first error and never
// comes back), bounds connections in all and per source, and hands out
// guardedConns.
type guardedListener struct {
	net.Listener
	g         *guard
	tls       *tls.Config // nil for TCP
	transport string      // "TCP" or "TLS"
	log       *slog.Logger
}

func (l *guardedListener) Accept() (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			// EMFILE, ENFILE, ENOBUFS, ECONNABORTED...: wait and go on.
			l.log.Warn("SIP accept", "transport", l.transport, "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		src := addrPortOf(conn.RemoteAddr())
		if !l.g.openConn(src.Addr()) {
			l.g.count("tcp_conns", false)
			conn.Close()
			continue
		}
		if l.tls != nil {
			conn = tls.Server(conn, l.tls)
		}
		gc := newGuardedConn(conn, l.g, src, l.transport)
		l.g.mu.Lock()
		l.g.accepted[gc.remote]++
		l.g.mu.Unlock()
		gc.registered = true
		return gc, nil
	}
}

// guardedConn frames the SIP messages of one accepted stream (RFC 3261
// §18.3: Content-Length marks each end), screens each one, answers
// keep-alives (RFC 5626 §3.5.1), and hands sipgo only the messages the
// guard passes. It closes a connection idle for Limits.TCPIdle and one
// whose message takes longer than Limits.TCPMessage to arrive.
type guardedConn struct {
	net.Conn
	g         *guard
	src       netip.AddrPort
	transport string

	remote     string // RemoteAddr().String(), as sipgo names the request's source
	registered bool   // counted in guard.accepted

	once sync.Once
	// read side: only sipgo's one reading goroutine calls Read.
	in      []byte    // bytes read, not yet a whole message
	out     []byte    // screened messages for sipgo
	started time.Time // when the first byte of the message in `in` came
	// idleFrom is when the connection last carried a message: accept,
	// then each message; a keep-alive counts only once a message has
	// come, so CRLFs alone cannot hold a connection.
	idleFrom   time.Time
	sawMessage bool
	tmp        []byte
}

func newGuardedConn(c net.Conn, g *guard, src netip.AddrPort, transport string) *guardedConn {
	return &guardedConn{Conn: c, g: g, src: src, transport: transport, remote: c.RemoteAddr().String(),
		idleFrom: time.Now(), tmp: make([]byte, 8<<10)}
}

// maxStreamMessage bounds a message on a stream when Limits.MaxMessage is
// off: framing must never wait for, or buffer, more than this.
const maxStreamMessage = 1 << 20

// errFraming closes a stream whose message boundaries are lost.
var errFraming = errors.New("conference: SIP framing lost on a stream")

func (c *guardedConn) Read(p []byte) (n int, err error) {
	// sipgo's read goroutine recovers nothing: a bug here must close one
	// connection, not stop the process.
	defer func() {
		if r := recover(); r != nil {
			c.g.count("panic", false)
			n, err = 0, errFraming
		}
	}()
	for len(c.out) == 0 {
		if err := c.frame(); err != nil {
			return 0, err
		}
		if len(c.out) > 0 {
			break
		}
		deadline := c.idleFrom.Add(c.g.lim.TCPIdle)
		reason := "tcp_idle"
		if len(c.in) > 0 {
			deadline, reason = c.started.Add(c.g.lim.TCPMessage), "tcp_slow"
		}
		c.Conn.SetReadDeadline(deadline)
		n, err := c.Conn.Read(c.tmp)
		if n > 0 {
			if len(c.in) == 0 {
				c.started = time.Now()
			}
			c.in = append(c.in, c.tmp[:n]...)
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.g.count(reason, false)
				return 0, io.EOF // sipgo closes quietly on EOF
			}
			return 0, err
		}
	}
	n = copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// frame takes whole messages off c.in.
func (c *guardedConn) frame() error {
	for {
		// Keep-alives between messages: a double CRLF is a ping, answered
		// with a single CRLF (RFC 5626 §3.5.1).
		crlf := 0
		for crlf+1 < len(c.in) && c.in[crlf] == '\r' && c.in[crlf+1] == '\n' {
			crlf += 2
		}
		if crlf > 0 {
			if crlf >= 4 {
				c.write([]byte("\r\n"))
			}
			if c.sawMessage {
				c.idleFrom = time.Now()
			}
			c.in = c.in[crlf:]
		}
		if len(c.in) == 0 {
			c.in, c.started = c.in[:0], time.Time{}
			return nil
		}
		end := bytes.Index(c.in, []byte("\r\n\r\n"))
		if end < 0 {
			limit := c.g.lim.MaxMessage
			if unlimited(limit) {
				limit = maxStreamMessage
			}
			if len(c.in) > limit {
				c.g.count("too_large", false)
				return errFraming
			}
			return nil
		}
		n, ok := contentLength(c.in[:end+2])
		if !ok {
			c.g.count("malformed", false)
			return errFraming // no way to tell where the next message starts
		}
		limit := c.g.lim.MaxMessage
		if unlimited(limit) {
			limit = maxStreamMessage
		}
		if n > limit-(end+4) { // compared before adding: n may be near MaxInt
			if pass, reply := c.g.screen(c.in[:end+4], c.transport, c.src); !pass && reply != nil {
				c.write([]byte(reply.String()))
			}
			return errFraming
		}
		total := end + 4 + n
		if total > limit {
			if pass, reply := c.g.screen(c.in[:end+4], c.transport, c.src); !pass && reply != nil {
				c.write([]byte(reply.String()))
			}
			return errFraming
		}
		if len(c.in) < total {
			return nil
		}
		out, reply := c.g.forward(c.in[:total], c.transport, c.src)
		if out != nil {
			c.out = append(c.out, out...)
		} else if reply != nil {
			c.write([]byte(reply.String()))
		}
		c.in = c.in[total:]
		c.started = time.Now()
		c.idleFrom, c.sawMessage = c.started, true
		if len(c.out) > 0 {
			return nil
		}
	}
}

// contentLength reads the one Content-Length of a header section (RFC
// 3261 §18.3: a stream message carries one). Missing means 0 here: the
// guard answers such a message with 400.
func contentLength(head []byte) (int, bool) {
	n, seen := 0, false
	var lines []string
	for _, l := range strings.Split(string(head), "\r\n")[1:] {
		if (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")) && len(lines) > 0 {
			lines[len(lines)-1] += " " + strings.TrimSpace(l) // §7.3.1 folding
			continue
		}
		lines = append(lines, l)
	}
	for _, line := range lines {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "content-length" && name != "l" {
			continue
		}
		v, err := strconv.Atoi(strings.TrimSpace(value))
		if seen || err != nil || v < 0 {
			return 0, false
		}
		n, seen = v, true
	}
	return n, true
}

func (c *guardedConn) write(b []byte) {
	c.Conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	c.Conn.Write(b)
}

// Write bounds each of sipgo's writes.
func (c *guardedConn) Write(b []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.Conn.Write(b)
}

// SetReadDeadline is the guard's alone; sipgo's are ignored.
func (c *guardedConn) SetReadDeadline(time.Time) error { return nil }

// SetDeadline keeps the guard's read deadline.
func (c *guardedConn) SetDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(t) }

func (c *guardedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.g.closeConn(c.src.Addr())
		if c.registered {
			c.g.mu.Lock()
			if c.g.accepted[c.remote]--; c.g.accepted[c.remote] <= 0 {
				delete(c.g.accepted, c.remote)
			}
			c.g.mu.Unlock()
		}
	})
	return err
}
