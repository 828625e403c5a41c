package multicast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// GroupConn is a UDP socket that joins multicast groups and sends to them.
// It binds the wildcard address of its port, so on Linux it receives the
// datagrams of every group any socket on the host joined on that port
// (IP_MULTICAST_ALL): ReadFrom drops those whose destination is not a group
// this GroupConn joined. Sends always carry the TTL or hop limit set with
// SetTTL (default 1), never the system default.
type GroupConn struct {
	family Family
	pc     net.PacketConn
	p4     *ipv4.PacketConn
	p6     *ipv6.PacketConn

	mu     sync.Mutex // guards joined
	joined map[netip.Addr]int
}

// ListenGroup opens a GroupConn of family f on the wildcard address and
// port.
func ListenGroup(f Family, port int) (*GroupConn, error) {
	addr := netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port))
	if f == IPv6 {
		addr = netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(port))
	}
	return ListenGroupAt(addr)
}

// ListenGroupAt opens a GroupConn bound to a local address, which then is
// the source of what it sends (on loopback, a wildcard-bound socket sends
// from 0.0.0.0).
func ListenGroupAt(laddr netip.AddrPort) (*GroupConn, error) {
	f := FamilyOf(laddr.Addr())
	network := "udp4"
	if f == IPv6 {
		network = "udp6"
	}
	addr := laddr.String()
	// SO_REUSEADDR lets other receivers on this host (a second directory,
	// ffmpeg, VLC) bind the same port: each gets its copy of a multicast
	// datagram.
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), network, addr)
	if err != nil {
		return nil, fmt.Errorf("multicast: listen %s: %w", addr, err)
	}
	c := &GroupConn{family: f, pc: pc, joined: map[netip.Addr]int{}}
	if f == IPv6 {
		c.p6 = ipv6.NewPacketConn(pc)
		err = c.p6.SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
	} else {
		c.p4 = ipv4.NewPacketConn(pc)
		err = c.p4.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)
	}
	if err == nil {
		err = c.SetTTL(1)
	}
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("multicast: %w", err)
	}
	return c, nil
}

// Join joins group g on ifi (nil: the system's choice).
func (c *GroupConn) Join(ifi *net.Interface, g netip.Addr) error {
	if !g.IsMulticast() || FamilyOf(g) != c.family {
		return fmt.Errorf("multicast: join %v: not an %v group", g, c.family)
	}
	var err error
	if c.p6 != nil {
		err = c.p6.JoinGroup(ifi, &net.UDPAddr{IP: g.AsSlice()})
	} else {
		err = c.p4.JoinGroup(ifi, &net.UDPAddr{IP: g.Unmap().AsSlice()})
	}
	if err != nil {
		return fmt.Errorf("multicast: join %v: %w", g, err)
	}
	c.mu.Lock()
	c.joined[g.Unmap()]++
	c.mu.Unlock()
	return nil
}

// JoinSource joins the source-specific channel (src, g) on ifi: the
// socket then gets g's datagrams from src alone (RFC 4607 §4.1 for SSM
// groups; IGMPv3 and MLDv2 INCLUDE mode, RFC 3376 and RFC 3810, for
// any other group with an RFC 4570 source filter). Each source of a
// filter is one call.
func (c *GroupConn) JoinSource(ifi *net.Interface, g, src netip.Addr) error {
	if !g.IsMulticast() || FamilyOf(g) != c.family {
		return fmt.Errorf("multicast: join %v: not an %v group", g, c.family)
	}
	if !src.IsValid() || src.IsMulticast() || src.IsUnspecified() || FamilyOf(src) != c.family {
		return fmt.Errorf("multicast: join (%v, %v): %v is not an %v unicast source", src, g, src, c.family)
	}
	var err error
	if c.p6 != nil {
		err = c.p6.JoinSourceSpecificGroup(ifi, &net.UDPAddr{IP: g.AsSlice()}, &net.UDPAddr{IP: src.AsSlice()})
	} else {
		err = c.p4.JoinSourceSpecificGroup(ifi, &net.UDPAddr{IP: g.Unmap().AsSlice()}, &net.UDPAddr{IP: src.Unmap().AsSlice()})
	}
	if err != nil {
		return fmt.Errorf("multicast: join (%v, %v): %w", src, g, err)
	}
	c.mu.Lock()
	c.joined[g.Unmap()]++
	c.mu.Unlock()
	return nil
}

// BlockSource keeps src's datagrams to g, a group joined any-source,
// out of the socket (IGMPv3/MLDv2 EXCLUDE mode, RFC 3376 §2, RFC 3810
// §3: RFC 4570's excl filter).
func (c *GroupConn) BlockSource(ifi *net.Interface, g, src netip.Addr) error {
	if FamilyOf(src) != c.family || !src.IsValid() || src.IsMulticast() {
		return fmt.Errorf("multicast: block %v on %v: not an %v unicast source", src, g, c.family)
	}
	var err error
	if c.p6 != nil {
		err = c.p6.ExcludeSourceSpecificGroup(ifi, &net.UDPAddr{IP: g.AsSlice()}, &net.UDPAddr{IP: src.AsSlice()})
	} else {
		err = c.p4.ExcludeSourceSpecificGroup(ifi, &net.UDPAddr{IP: g.Unmap().AsSlice()}, &net.UDPAddr{IP: src.Unmap().AsSlice()})
	}
	if err != nil {
		return fmt.Errorf("multicast: block %v on %v: %w", src, g, err)
	}
	return nil
}

// LeaveSource leaves the channel (src, g) that JoinSource joined.
func (c *GroupConn) LeaveSource(ifi *net.Interface, g, src netip.Addr) error {
	var err error
	if c.p6 != nil {
		err = c.p6.LeaveSourceSpecificGroup(ifi, &net.UDPAddr{IP: g.AsSlice()}, &net.UDPAddr{IP: src.AsSlice()})
	} else {
		err = c.p4.LeaveSourceSpecificGroup(ifi, &net.UDPAddr{IP: g.Unmap().AsSlice()}, &net.UDPAddr{IP: src.Unmap().AsSlice()})
	}
	if err != nil {
		return err // still joined
	}
	c.mu.Lock()
	if c.joined[g.Unmap()]--; c.joined[g.Unmap()] <= 0 {
		delete(c.joined, g.Unmap())
	}
	c.mu.Unlock()
	return nil
}

// Leave leaves group g on ifi.
func (c *GroupConn) Leave(ifi *net.Interface, g netip.Addr) error {
	var err error
	if c.p6 != nil {
		err = c.p6.LeaveGroup(ifi, &net.UDPAddr{IP: g.AsSlice()})
	} else {
		err = c.p4.LeaveGroup(ifi, &net.UDPAddr{IP: g.Unmap().AsSlice()})
	}
	c.mu.Lock()
	if c.joined[g.Unmap()]--; c.joined[g.Unmap()] <= 0 {
		delete(c.joined, g.Unmap())
	}
	c.mu.Unlock()
	return err
}

// SetTTL sets the TTL (IPv4) or hop limit (IPv6) of what the conn sends.
func (c *GroupConn) SetTTL(n int) error {
	if c.p6 != nil {
		return c.p6.SetMulticastHopLimit(n)
	}
	return c.p4.SetMulticastTTL(n)
}

// SetInterface sets the interface multicast goes out on.
func (c *GroupConn) SetInterface(ifi *net.Interface) error {
	if c.p6 != nil {
		return c.p6.SetMulticastInterface(ifi)
	}
	return c.p4.SetMulticastInterface(ifi)
}

// SetLoopback sets whether the host's own sockets get what it sends.
func (c *GroupConn) SetLoopback(on bool) error {
	if c.p6 != nil {
		return c.p6.SetMulticastLoopback(on)
	}
	return c.p4.SetMulticastLoopback(on)
}

// ErrNotJoined is returned by ReadFrom for a datagram sent to a group
// this conn did not join; the caller reads on.
var ErrNotJoined = errors.New("multicast: datagram for a group not joined here")

// ReadFrom reads one datagram sent to a joined group, with its source and
// destination.
func (c *GroupConn) ReadFrom(b []byte) (n int, src netip.AddrPort, dst netip.Addr, err error) {
	var from net.Addr
	if c.p6 != nil {
		var cm *ipv6.ControlMessage
		n, cm, from, err = c.p6.ReadFrom(b)
		if cm != nil {
			dst, _ = netip.AddrFromSlice(cm.Dst)
		}
	} else {
		var cm *ipv4.ControlMessage
		n, cm, from, err = c.p4.ReadFrom(b)
		if cm != nil {
			dst, _ = netip.AddrFromSlice(cm.Dst)
		}
	}
	if err != nil {
		return 0, src, dst, err
	}
	if ua, ok := from.(*net.UDPAddr); ok {
		src = ua.AddrPort()
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	}
	dst = dst.Unmap()
	c.mu.Lock()
	ok := c.joined[dst] > 0
	c.mu.Unlock()
	if !ok {
		return n, src, dst, ErrNotJoined
	}
	return n, src, dst, nil
}

// WriteTo sends b to group g on port.
func (c *GroupConn) WriteTo(b []byte, g netip.Addr, port int) error {
	_, err := c.pc.WriteTo(b, net.UDPAddrFromAddrPort(netip.AddrPortFrom(g, uint16(port))))
	return err
}

// SetReadDeadline bounds a blocked ReadFrom, as net.PacketConn's does.
func (c *GroupConn) SetReadDeadline(t time.Time) error { return c.pc.SetReadDeadline(t) }

// LocalPort returns the bound port.
func (c *GroupConn) LocalPort() int { return c.pc.LocalAddr().(*net.UDPAddr).Port }

// Close closes the socket; a blocked ReadFrom returns.
func (c *GroupConn) Close() error { return c.pc.Close() }
