package check

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// socketState values in /proc/net/{tcp,udp}* (the kernel's TCP states).
const (
	tcpListen  = "0A"
	udpUnbound = "07" // TCP_CLOSE: a UDP socket that is bound but not connected, a server's
)

// listeningSockets returns the local addresses of the sockets that listen for protocol
// ("tcp" or "udp") on port, read from /proc/net. IPv4-mapped IPv6 addresses are unmapped.
func listeningSockets(env Env, protocol string, port int) ([]netip.AddrPort, error) {
	state := tcpListen
	if protocol == "udp" {
		state = udpUnbound
	}
	var out []netip.AddrPort
	read := 0
	var firstErr error
	for _, file := range []string{"/proc/net/" + protocol, "/proc/net/" + protocol + "6"} {
		data, err := env.ReadFile(file)
		if err != nil {
			// A kernel without IPv6 has no tcp6; only both missing is an error.
			if firstErr == nil {
				firstErr = fmt.Errorf("read %s: %w", file, withoutHostPath(err))
			}
			continue
		}
		read++
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 4 || f[3] != state {
				continue
			}
			ap, err := parseProcNetAddr(f[1])
			if err != nil || int(ap.Port()) != port {
				continue
			}
			out = append(out, ap)
		}
	}
	if read == 0 {
		return nil, firstErr
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Compare(out[j]) < 0 })
	return out, nil
}

// parseProcNetAddr reads "0100007F:0016": the address as the kernel's 32-bit words in the
// machine's byte order, the port in hex.
func parseProcNetAddr(s string) (netip.AddrPort, error) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("no port in %q", s)
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port of %q: %w", s, err)
	}
	raw, err := hex.DecodeString(hexAddr)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("address of %q is not 8 or 32 hex digits", s)
	}
	// hex.DecodeString read the words big-endian; put each back in the machine's order.
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}

func describeSockets(s []netip.AddrPort) string {
	if len(s) == 0 {
		return "not listening"
	}
	parts := make([]string, len(s))
	for i, a := range s {
		parts[i] = a.String()
	}
	return "listening on " + strings.Join(parts, ", ")
}

func (c *Check) evalPort(env Env, o *outcome) {
	cc := c.compiled
	listening := orDefault(c.Listening, true)
	where := fmt.Sprintf("%s port %d", cc.protocol, c.Port)
	if cc.address.IsValid() {
		where = fmt.Sprintf("%s %s", cc.protocol, netip.AddrPortFrom(cc.address, uint16(c.Port)))
	}
	want := yesNo(listening, "listening on "+where, "not listening on "+where)
	if !env.Live {
		o.property(want, "unknown")
		o.notLive(env, "Whether "+where+" is listening")
		return
	}
	sockets, err := listeningSockets(env, cc.protocol, c.Port)
	if err != nil {
		o.property(want, "unknown")
		o.error(CodeReadError, "Cannot read the sockets: %v.", err)
		return
	}
	o.property(want, describeSockets(sockets))
	match := len(sockets) > 0
	if cc.address.IsValid() {
		match = false
		for _, s := range sockets {
			match = match || s.Addr() == cc.address
		}
	}
	switch {
	case listening && !match:
		o.mismatch(CodePortNotListening, "Nothing listens on %s (%s).", where, describeSockets(sockets))
	case !listening && match:
		o.mismatch(CodePortListening, "Something listens on %s (%s); expected nothing.", where, describeSockets(sockets))
	}
}
