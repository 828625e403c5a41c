// Command floodprobe helps bench/flood.sh measure mcc under a flood:
//
//	floodprobe recover -from 127.0.0.3 -to 127.0.0.1:25060 [-within 60s]
//	    sends an OPTIONS every 50 ms from -from until one gets 200 in
//	    under 200 ms, and prints the seconds that took.
//	floodprobe idle -from 127.0.0.3 -to 127.0.0.1:25060 -n 2000 -for 30s
//	    opens -n TCP connections from -from, sends nothing on them, and
//	    prints how many mcc accepted and how many it had closed at the end.
//	floodprobe spray -sources 1000 -rate 20000 -for 30s -to 127.0.0.1:25060
//	    sends OPTIONS from -sources loopback addresses (127.0.1.1 on), each
//	    under mcc's per-source rate, -rate a second in all, for -for, and
//	    prints how many it sent.
//
// It sends only to the address given, which bench/flood.sh keeps on
// loopback.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: floodprobe recover|idle [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	from := fs.String("from", "127.0.0.3", "source address")
	to := fs.String("to", "127.0.0.1:25060", "mcc's SIP address")
	within := fs.Duration("within", time.Minute, "give up after this long")
	n := fs.Int("n", 2000, "connections to hold (idle)")
	hold := fs.Duration("for", 30*time.Second, "how long to hold them (idle) or to send (spray)")
	sources := fs.Int("sources", 1000, "source addresses (spray)")
	rate := fs.Int("rate", 20000, "requests a second in all (spray)")
	fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "recover":
		err = recoverTime(*from, *to, *within)
	case "idle":
		err = idle(*from, *to, *n, *hold)
	case "spray":
		err = spray(*to, *sources, *rate, *hold)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "floodprobe:", err)
		os.Exit(1)
	}
}

func options(laddr, to string, seq int) string {
	return fmt.Sprintf("OPTIONS sip:lecture@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bKprobe%d\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:probe@%s>;tag=p%d\r\nTo: <sip:lecture@%s>\r\nCall-ID: probe%d@%s\r\n"+
		"CSeq: %d OPTIONS\r\nContent-Length: 0\r\n\r\n", to, laddr, seq, laddr, seq, to, seq, laddr, seq)
}

func recoverTime(from, to string, within time.Duration) error {
	conn, err := net.ListenPacket("udp", net.JoinHostPort(from, "0"))
	if err != nil {
		return err
	}
	defer conn.Close()
	raddr, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		return err
	}
	start := time.Now()
	buf := make([]byte, 4096)
	for seq := 1; time.Since(start) < within; seq++ {
		sent := time.Now()
		conn.WriteTo([]byte(options(conn.LocalAddr().String(), to, seq)), raddr)
		conn.SetReadDeadline(sent.Add(200 * time.Millisecond))
		for {
			k, _, err := conn.ReadFrom(buf)
			if err != nil {
				break
			}
			reply := string(buf[:k])
			if strings.HasPrefix(reply, "SIP/2.0 200") && strings.Contains(reply, fmt.Sprintf("probe%d@", seq)) {
				fmt.Printf("%.2f\n", time.Since(start).Seconds())
				return nil
			}
		}
		time.Sleep(time.Until(sent.Add(50 * time.Millisecond)))
	}
	return errors.New("no 200 within " + within.String())
}

func idle(from, to string, n int, hold time.Duration) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 2 * time.Second}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := d.Dial("tcp", to)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	time.Sleep(hold)
	closed := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			closed++
		}
	}
	fmt.Printf("%d opened, %d closed by mcc after %v\n", len(conns), closed, hold)
	return nil
}

// spray sends OPTIONS from n loopback sources, rate a second in all, for
// d; what mcc answers is read and thrown away. It stops after d whatever
// happens, and sends at most rate·d requests.
func spray(to string, n, rate int, d time.Duration) error {
	if n < 1 || n > 60000 || rate < 1 {
		return errors.New("spray: want 1 to 60000 sources and a rate above 0")
	}
	raddr, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		return err
	}
	conns := make([]net.PacketConn, n)
	for i := range conns {
		ip := fmt.Sprintf("127.0.%d.%d", 1+i/250, 1+i%250)
		c, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return err
		}
		defer c.Close()
		conns[i] = c
		go func() { // drain what mcc answers; ends when c is closed
			buf := make([]byte, 65535)
			for {
				if _, _, err := c.ReadFrom(buf); err != nil {
					return
				}
			}
		}()
	}
	start := time.Now()
	total := int(float64(rate) * d.Seconds())
	sent := 0
	const tick = 10 * time.Millisecond
	for seq := 0; seq < total && time.Since(start) < d; {
		due := int(float64(rate) * time.Since(start).Seconds())
		for ; seq < due && seq < total; seq++ {
			c := conns[seq%n]
			if _, err := c.WriteTo([]byte(options(c.LocalAddr().String(), to, seq)), raddr); err == nil {
				sent++
			}
		}
		time.Sleep(tick)
	}
	el := time.Since(start)
	fmt.Printf("spray: %d requests from %d sources in %.1fs, %.0f/s\n", sent, n, el.Seconds(), float64(sent)/el.Seconds())
	return nil
}
