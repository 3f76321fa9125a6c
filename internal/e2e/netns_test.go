package e2e

// Network faults for the agent scenarios, two ways:
//
//   - Proxy, a TCP proxy in the test process between an agent and a
//     server, which can stop forwarding without closing anything (Halt):
//     the agent's connection stays open and goes silent, as when a NAT or
//     a firewall drops it. It needs no privileges.
//   - Netns, a network namespace joined to the host by a veth pair, to run
//     an agent (and so its replicas) in, whose link can be cut (ip link set
//     down) or whose traffic can be dropped with nftables. It needs root;
//     tests skip with the reason where it is not available. The harness
//     creates and removes the namespace, the veth pair and the nftables
//     table itself.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proxy forwards TCP connections from its own address to a target.
type Proxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu      sync.Mutex
	halted  bool
	resumed chan struct{} // closed by Resume, made anew by Halt
	conns   map[net.Conn]bool
	closed  chan struct{}
	wg      sync.WaitGroup
}

// StartProxy starts a proxy on a free loopback port in front of target
// (host:port). It is closed when the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	return StartProxyOn(t, "127.0.0.1:0", target)
}

// StartProxyOn starts a proxy listening on listen in front of target.
func StartProxyOn(t testing.TB, listen, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("proxy for %s: %v", target, err)
	}
	p := &Proxy{t: t, ln: ln, target: target, resumed: make(chan struct{}),
		conns: map[net.Conn]bool{}, closed: make(chan struct{})}
	close(p.resumed)
	t.Cleanup(p.Close)
	p.wg.Add(1)
	go p.accept()
	return p
}

// Addr is the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is http://Addr, for an agent's -servers.
func (p *Proxy) URL() string { return "http://" + p.Addr() }

// Halt stops forwarding, in both directions, on every connection, present
// and future, without closing any: bytes already read are held, the rest
// stays in the kernel's buffers, and a closing side is not passed on.
func (p *Proxy) Halt() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.halted {
		p.halted = true
		p.resumed = make(chan struct{})
	}
}

// Resume forwards again what was held and what follows.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.halted {
		p.halted = false
		close(p.resumed)
	}
}

// Close stops the proxy and closes every connection through it.
func (p *Proxy) Close() {
	p.mu.Lock()
	select {
	case <-p.closed:
		p.mu.Unlock()
		return
	default:
	}
	close(p.closed)
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// gate returns once the proxy forwards (or is closed); false when closed.
func (p *Proxy) gate() bool {
	for {
		p.mu.Lock()
		halted, resumed := p.halted, p.resumed
		p.mu.Unlock()
		if !halted {
			select {
			case <-p.closed:
				return false
			default:
				return true
			}
		}
		select {
		case <-resumed:
		case <-p.closed:
			return false
		}
	}
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.closed:
		c.Close()
		return false
	default:
	}
	p.conns[c] = true
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(in) {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(in)
			out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil {
				return
			}
			if !p.track(out) {
				return
			}
			defer p.untrack(out)
			done := make(chan struct{}, 2)
			go func() { p.pipe(out, in); done <- struct{}{} }()
			go func() { p.pipe(in, out); done <- struct{}{} }()
			<-done
			// One side ended: end the other too (the deferred closes).
		}()
	}
}

// pipe copies src to dst, passing nothing on while the proxy is halted.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if !p.gate() {
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Netns is a network namespace joined to the host by a veth pair: HostIf
// (HostIP) in the host, the other end (NsIP) in the namespace, a /30
// between them. Processes in it reach the host at HostIP only: servers
// listening on loopback need a forwarding Proxy on HostIP.
type Netns struct {
	t      testing.TB
	Name   string
	HostIf string
	NsIf   string
	HostIP string
	NsIP   string
	table  string // nftables table of Drop

	refused []string // rules of Refuse
}

// NewNetns creates a namespace and its veth pair, removed when the test
// ends. It skips the test when not root or when the host does not let it
// create one.
func NewNetns(t testing.TB) *Netns {
	t.Helper()
	skipUnlessNetns(t)
	var b [3]byte
	_, _ = rand.Read(b[:])
	// 10.213.X.Y/30: X and Y from the tag, Y a multiple of 4.
	subnet := fmt.Sprintf("10.213.%d.%d", b[0], b[1]&0xfc)
	base := net.ParseIP(subnet).To4()
	hostIP := net.IPv4(base[0], base[1], base[2], base[3]+1).String()
	nsIP := net.IPv4(base[0], base[1], base[2], base[3]+2).String()
	n := newNetns(t, hex.EncodeToString(b[:]), hostIP, nsIP)
	n.setUp([]string{"addr", "add", hostIP + "/30", "dev", n.HostIf}, "/30")
	return n
}

// skipUnlessNetns skips the test where network namespaces cannot be made.
func skipUnlessNetns(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root (ip netns add)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("network namespaces need the ip command (iproute2): ", err)
	}
}

// newNetns creates the namespace of tag, removed when the test ends; its
// veth pair is made by setUp.
func newNetns(t testing.TB, tag, hostIP, nsIP string) *Netns {
	t.Helper()
	n := &Netns{t: t, Name: "drover-e2e-" + tag, HostIf: "drvh" + tag, NsIf: "drvn" + tag,
		HostIP: hostIP, NsIP: nsIP, table: "drover_e2e_" + tag}
	if out, err := runIP("netns", "add", n.Name); err != nil {
		t.Skipf("cannot create a network namespace here: ip netns add: %v: %s", err, out)
	}
	t.Cleanup(n.remove)
	return n
}

// setUp makes the veth pair, gives the namespace's end NsIP/prefix and
// joins the host's end to the host with hostStep (an address, or a
// bridge to be a port of).
func (n *Netns) setUp(hostStep []string, prefix string) {
	n.t.Helper()
	steps := [][]string{
		{"link", "add", n.HostIf, "type", "veth", "peer", "name", n.NsIf},
		{"link", "set", n.NsIf, "netns", n.Name},
		hostStep,
		{"link", "set", n.HostIf, "up"},
		{"-n", n.Name, "addr", "add", n.NsIP + prefix, "dev", n.NsIf},
		{"-n", n.Name, "link", "set", n.NsIf, "up"},
		{"-n", n.Name, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if out, err := runIP(s...); err != nil {
			n.t.Skipf("cannot set up the veth pair of a network namespace here: ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
}

// Bridge is a Linux bridge in the host with an address of its own
// (HostIP, a /24): namespaces attached to it reach each other and the host
// directly, as machines on one switch, and the host reaches them.
type Bridge struct {
	t      testing.TB
	Name   string
	HostIP string
	prefix string // the /24's first three octets and a dot

	mu   sync.Mutex
	next int // last octet of the next namespace
}

// NewBridge creates a bridge, removed when the test ends. It skips the
// test where it cannot.
func NewBridge(t testing.TB) *Bridge {
	t.Helper()
	skipUnlessNetns(t)
	var b [2]byte
	_, _ = rand.Read(b[:])
	br := &Bridge{t: t, Name: "drvb" + hex.EncodeToString(b[:]), prefix: fmt.Sprintf("10.214.%d.", b[0]), next: 2}
	br.HostIP = br.prefix + "1"
	if out, err := runIP("link", "add", br.Name, "type", "bridge"); err != nil {
		t.Skipf("cannot create a bridge here: ip link add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := runIP("link", "del", br.Name); err != nil {
			t.Errorf("remove bridge %s: %v: %s", br.Name, err, out)
		}
	})
	for _, s := range [][]string{{"addr", "add", br.HostIP + "/24", "dev", br.Name}, {"link", "set", br.Name, "up"}} {
		if out, err := runIP(s...); err != nil {
			t.Skipf("cannot set up bridge %s: ip %s: %v: %s", br.Name, strings.Join(s, " "), err, out)
		}
	}
	return br
}

// Attach creates a network namespace whose veth pair is a port of the
// bridge. Its HostIP is the bridge's; CutLink cuts it from the bridge (the
// host and every other namespace), Drop from the host alone.
func (br *Bridge) Attach() *Netns {
	br.t.Helper()
	br.mu.Lock()
	last := br.next
	br.next++
	br.mu.Unlock()
	var b [3]byte
	_, _ = rand.Read(b[:])
	n := newNetns(br.t, hex.EncodeToString(b[:]), br.HostIP, br.prefix+strconv.Itoa(last))
	n.setUp([]string{"link", "set", n.HostIf, "master", br.Name}, "/24")
	return n
}

func runIP(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func runNft(stdin string, args ...string) (string, error) {
	return runWithInput(stdin, append([]string{"nft"}, args...)...)
}

// runWithInput runs the command line argv with stdin as its input and
// returns its output.
func runWithInput(stdin string, argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// ExecPrefix is the command line that runs a command in the namespace:
// nsenter, which changes the network namespace alone, where it is
// installed. `ip netns exec` also mounts a sysfs of the namespace on /sys,
// which hides the cgroup filesystems under /sys/fs/cgroup: an agent run
// through it finds no cgroups.
func (n *Netns) ExecPrefix() []string {
	nsFile := "/run/netns/" + n.Name // where ip netns add mounts it
	if _, err := exec.LookPath("nsenter"); err == nil {
		if _, err := os.Stat(nsFile); err == nil {
			return []string{"nsenter", "--net=" + nsFile, "--"}
		}
	}
	return []string{"ip", "netns", "exec", n.Name}
}

// CutLink takes the host's end of the veth pair down: packets between the
// namespace and the host are lost, no connection is told.
func (n *Netns) CutLink() {
	n.t.Helper()
	if out, err := runIP("link", "set", n.HostIf, "down"); err != nil {
		n.t.Fatalf("cut link %s: %v: %s", n.HostIf, err, out)
	}
}

// RestoreLink brings the host's end of the veth pair up again.
func (n *Netns) RestoreLink() {
	n.t.Helper()
	if out, err := runIP("link", "set", n.HostIf, "up"); err != nil {
		n.t.Fatalf("restore link %s: %v: %s", n.HostIf, err, out)
	}
}

// Drop makes the host drop, with nftables, every packet from and to the
// namespace while the link stays up. It skips the test when nft is missing.
func (n *Netns) Drop() {
	n.t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		n.t.Skip("dropping traffic needs nft (nftables): ", err)
	}
	rules := fmt.Sprintf(`table inet %[1]s {
	chain in { type filter hook input priority -10; policy accept; iifname %[2]q drop; }
	chain out { type filter hook output priority -10; policy accept; oifname %[2]q drop; }
}
`, n.table, n.HostIf)
	if out, err := runNft(rules, "-f", "-"); err != nil {
		n.t.Fatalf("nft: drop traffic of %s: %v: %s", n.HostIf, err, out)
	}
}

// Undrop removes what Drop added.
func (n *Netns) Undrop() {
	n.t.Helper()
	if out, err := runNft("", "delete", "table", "inet", n.table); err != nil {
		n.t.Fatalf("nft: delete table %s: %v: %s", n.table, err, out)
	}
}

// Refuse makes the namespace drop what comes in from the addresses from:
// every packet, or with ports only those to these local ports, that is
// the connections the peers open to it (those it opens to them still
// work: a one-way cut). Calls add up until AcceptAll.
func (n *Netns) Refuse(from []string, ports ...int) {
	n.t.Helper()
	rule := fmt.Sprintf("ip saddr { %s }", strings.Join(from, ", "))
	if len(ports) > 0 {
		var ps []string
		for _, p := range ports {
			ps = append(ps, strconv.Itoa(p))
		}
		rule += fmt.Sprintf(" tcp dport { %s }", strings.Join(ps, ", "))
	}
	n.refused = append(n.refused, rule+" drop")
	n.applyRefused()
}

// AcceptAll removes every Refuse.
func (n *Netns) AcceptAll() {
	n.t.Helper()
	n.refused = nil
	n.applyRefused()
}

// cutTable is the nftables table of Refuse inside a namespace.
const cutTable = "drover_e2e_cut"

// applyRefused replaces the namespace's cut table with one of the rules
// of Refuse ("table; delete table" first, so that it need not exist).
func (n *Netns) applyRefused() {
	n.t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		n.t.Skip("cutting traffic needs nft (nftables): ", err)
	}
	script := fmt.Sprintf("table inet %[1]s\ndelete table inet %[1]s\n", cutTable)
	if len(n.refused) > 0 {
		script += fmt.Sprintf("table inet %s {\n\tchain in { type filter hook input priority -10; policy accept;\n\t\t%s;\n\t}\n}\n",
			cutTable, strings.Join(n.refused, ";\n\t\t"))
	}
	argv := append(n.ExecPrefix(), "nft", "-f", "-")
	if out, err := runWithInput(script, argv...); err != nil {
		n.t.Fatalf("nft in namespace %s: %v: %s\n%s", n.Name, err, out, script)
	}
}

// remove deletes the nftables table, the veth pair and the namespace.
// Processes still in the namespace keep it alive, unnamed, until they end;
// the agents' cleanups, registered later, have killed them by now.
func (n *Netns) remove() {
	var errs []error
	if out, err := runNft("", "list", "table", "inet", n.table); err == nil {
		if out, err := runNft("", "delete", "table", "inet", n.table); err != nil {
			errs = append(errs, fmt.Errorf("nft delete table %s: %v: %s", n.table, err, out))
		}
	} else {
		_ = out
	}
	if out, err := runIP("link", "del", n.HostIf); err != nil && !strings.Contains(out, "Cannot find device") {
		errs = append(errs, fmt.Errorf("ip link del %s: %v: %s", n.HostIf, err, out))
	}
	if out, err := runIP("netns", "del", n.Name); err != nil {
		errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", n.Name, err, out))
	}
	if err := errors.Join(errs...); err != nil {
		n.t.Errorf("remove network namespace: %v", err)
	}
}

// reachable reports whether a TCP connection to addr opens and answers
// within timeout: it writes an HTTP request and waits for the first byte.
func reachable(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.0\r\n\r\n"); err != nil {
		return err
	}
	var b [1]byte
	_, err = c.Read(b[:])
	return err
}
