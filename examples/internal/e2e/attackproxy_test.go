package e2e_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// attackProxy is a hostile TLS-inspecting HTTP CONNECT proxy, in process:
// what a compromised corporate proxy whose CA is in the connector's
// cloud.ca_file can do. It terminates every CONNECT with a certificate
// minted by its own CA (CAPEM), opens its own verified TLS connection to
// the real destination, and relays HTTP/1.1 and, after an upgrade,
// WebSocket frames. It records every plaintext byte it relays, both
// directions, with WebSocket payloads unmasked, and can
//
//   - hijack: answer the connector's tunnel upgrade with a 502, keep its
//     Authorization header (the connect token) and present it on a
//     connection of its own (see ownProxyURL);
//   - substitute: replace byte strings of equal length in request bodies
//     and WebSocket payloads of one direction (keys, verdicts);
//   - drop enrollment: record an enrollment request and answer it with a
//     502 instead of forwarding it;
//   - tamper: flip one bit of the next WebSocket data frame of one direction
//     whose payload is at least a given size, the blind rewrite left to it
//     when payloads are sealed (their sizes and timing are all it can see).
//
// It is a test helper only: it reaches nothing but loopback.
type attackProxy struct {
	t        testing.TB
	ln       net.Listener
	caPEM    []byte
	ca       *x509.Certificate
	caKey    *ecdsa.PrivateKey
	upstream *x509.CertPool // the destination's CA: the proxy verifies it

	mu       sync.Mutex
	rec      []recorded
	leaves   map[string]*tls.Certificate
	subst    []substitution
	hijack   bool
	dropPath string
	captured []http.Header // headers of hijacked upgrades; the last is presented on ownProxyURL
	seen     []http.Header // headers of every tunnel upgrade of the victim
	capCh    chan http.Header
	tamper   []tamperRule
	upgrades int // tunnel upgrades forwarded to the destination
	conns    map[net.Conn]struct{}
	closed   bool
	wg       sync.WaitGroup
}

// recorded is one piece of plaintext the proxy relayed.
type recorded struct {
	dir  direction
	what string // "http" for raw HTTP bytes, "ws" for an unmasked WebSocket payload
	data []byte
}

type direction int

const (
	toCloud     direction = iota // connector (or attacker) to cloud
	toConnector                  // cloud to connector
)

func (d direction) String() string {
	if d == toCloud {
		return "connector->cloud"
	}
	return "cloud->connector"
}

// substitution replaces old with new (same length) in one direction.
type substitution struct {
	dir      direction
	old, new []byte
	hits     int
}

// attackerProxyUser marks the attacker's own connections (ownProxyURL):
// their tunnel upgrade carries the captured connect token.
const attackerProxyUser = "attacker"

func newAttackProxy(t testing.TB, upstreamCAPEM []byte) *attackProxy {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Hostile inspecting proxy CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(upstreamCAPEM) {
		t.Fatal("attack proxy: no upstream CA")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &attackProxy{
		t: t, ln: ln, ca: ca, caKey: key, upstream: pool,
		caPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		leaves: map[string]*tls.Certificate{}, capCh: make(chan http.Header, 16),
		conns: map[net.Conn]struct{}{},
	}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// URL is the proxy URL the victim connector is configured with.
func (p *attackProxy) URL() string { return "http://corp:proxy@" + p.ln.Addr().String() }

// ownProxyURL is the proxy URL of the attacker's own tunnel client: its
// upgrade carries the captured upgrade's headers (the connect token in
// Authorization, or wherever the protocol puts its credentials), all but
// the WebSocket handshake's own.
func (p *attackProxy) ownProxyURL() string {
	return "http://" + attackerProxyUser + ":x@" + p.ln.Addr().String()
}

// CAPEM is the proxy's CA, which the victim connector trusts.
func (p *attackProxy) CAPEM() []byte { return p.caPEM }

func (p *attackProxy) setHijack(on bool) { p.mu.Lock(); p.hijack = on; p.mu.Unlock() }

// dropRequests makes the proxy answer POSTs to path with 502 after
// recording them.
func (p *attackProxy) dropRequests(path string) { p.mu.Lock(); p.dropPath = path; p.mu.Unlock() }

func (p *attackProxy) substitute(dir direction, old, new []byte) {
	if len(old) != len(new) || len(old) == 0 {
		p.t.Fatalf("attack proxy: substitution of %d bytes by %d", len(old), len(new))
	}
	p.mu.Lock()
	p.subst = append(p.subst, substitution{dir: dir, old: old, new: new})
	p.mu.Unlock()
}

// substitutions returns how often each substitution was applied.
func (p *attackProxy) substitutions() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := make([]int, len(p.subst))
	for i, s := range p.subst {
		n[i] = s.hits
	}
	return n
}

// capturedUpgrade waits for the headers of a hijacked upgrade.
func (p *attackProxy) capturedUpgrade(timeout time.Duration) (http.Header, bool) {
	select {
	case h := <-p.capCh:
		return h, true
	case <-time.After(timeout):
		return nil, false
	}
}

// seenUpgrades returns the headers of the victim's tunnel upgrades so far.
func (p *attackProxy) seenUpgrades() []http.Header {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]http.Header(nil), p.seen...)
}

// presentUpgrade makes the attacker's own connections (ownProxyURL) carry
// the headers of h (see ownProxyURL).
func (p *attackProxy) presentUpgrade(h http.Header) {
	p.mu.Lock()
	p.captured = append(p.captured, h)
	p.mu.Unlock()
}

// handshakeHeaders are the upgrade headers that belong to one WebSocket
// handshake or one hop: the attacker's own connection keeps its own.
var handshakeHeaders = map[string]bool{
	"Host": true, "Connection": true, "Upgrade": true, "Proxy-Authorization": true,
	"Sec-Websocket-Key": true, "Sec-Websocket-Version": true, "Sec-Websocket-Extensions": true,
	"Content-Length": true, "Transfer-Encoding": true,
}

func (p *attackProxy) tunnelUpgrades() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.upgrades
}

// recordings returns a copy of everything recorded so far.
func (p *attackProxy) recordings() []recorded {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]recorded(nil), p.rec...)
}

// tamperRule flips a bit of the next data frame of dir with at least min
// payload bytes; done counts the frames it changed (0 or 1).
type tamperRule struct {
	dir  direction
	min  int
	done int
}

// tamperNext arms a tamper rule (see attackProxy).
func (p *attackProxy) tamperNext(dir direction, minPayload int) {
	p.mu.Lock()
	p.tamper = append(p.tamper, tamperRule{dir: dir, min: minPayload})
	p.mu.Unlock()
}

// tampered is how many frames the tamper rules changed.
func (p *attackProxy) tampered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.tamper {
		n += r.done
	}
	return n
}

// applyTamper flips the last bit of b if an armed rule of dir takes it.
func (p *attackProxy) applyTamper(dir direction, opcode byte, b []byte) {
	if opcode != 1 && opcode != 2 { // text or binary only
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.tamper {
		r := &p.tamper[i]
		if r.dir == dir && r.done == 0 && len(b) >= r.min {
			b[len(b)-1] ^= 1
			r.done++
			return
		}
	}
}

func (p *attackProxy) record(dir direction, what string, b []byte) {
	if len(b) == 0 {
		return
	}
	p.mu.Lock()
	p.rec = append(p.rec, recorded{dir: dir, what: what, data: bytes.Clone(b)})
	p.mu.Unlock()
}

func (p *attackProxy) apply(dir direction, b []byte) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.subst {
		s := &p.subst[i]
		if s.dir != dir {
			continue
		}
		if n := bytes.Count(b, s.old); n > 0 {
			b = bytes.ReplaceAll(b, s.old, s.new)
			s.hits += n
		}
	}
	return b
}

func (p *attackProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

func (p *attackProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *attackProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *attackProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			if err := p.handle(c); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				p.t.Logf("attack proxy: %v", err)
			}
		}()
	}
}

func (p *attackProxy) leaf(host string) (*tls.Certificate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.leaves[host]; ok {
		return c, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		return nil, err
	}
	c := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	p.leaves[host] = c
	return c, nil
}

// handle serves one client connection: CONNECT, TLS termination, then
// HTTP/1.1 requests relayed to the destination over the proxy's own TLS.
func (p *attackProxy) handle(raw net.Conn) error {
	br := bufio.NewReader(raw)
	req, err := http.ReadRequest(br)
	if err != nil {
		return err
	}
	if req.Method != http.MethodConnect {
		_, _ = io.WriteString(raw, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
		return nil
	}
	own := false
	if u, _, ok := parseProxyAuth(req.Header.Get("Proxy-Authorization")); ok && u == attackerProxyUser {
		own = true
	}
	target := req.Host
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		_, _ = io.WriteString(raw, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
		return nil
	}
	if _, err := io.WriteString(raw, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return err
	}
	cert, err := p.leaf(host)
	if err != nil {
		return err
	}
	client := tls.Server(&prefixConn{Conn: raw, r: br}, &tls.Config{
		Certificates: []tls.Certificate{*cert},
		NextProtos:   []string{"http/1.1"},
	})
	if err := client.Handshake(); err != nil {
		return fmt.Errorf("client handshake: %w", err)
	}
	defer client.Close()
	d := tls.Dialer{Config: &tls.Config{RootCAs: p.upstream, ServerName: host, NextProtos: []string{"http/1.1"}}}
	upc, err := d.Dial("tcp", target)
	if err != nil {
		return fmt.Errorf("dial %s: %w", target, err)
	}
	if !p.track(upc) {
		return nil
	}
	defer p.untrack(upc)
	cr := bufio.NewReader(client)
	ur := bufio.NewReader(upc)
	for {
		req, err := http.ReadRequest(cr)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(io.LimitReader(req.Body, 8<<20))
		if err != nil {
			return err
		}
		req.Body.Close()
		body = p.apply(toCloud, body)
		req.Body = nil
		if len(body) > 0 {
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		req.ContentLength = int64(len(body))
		req.TransferEncoding = nil
		upgrade := strings.EqualFold(req.Header.Get("Upgrade"), "websocket")

		p.mu.Lock()
		hijack, drop := p.hijack, p.dropPath
		p.mu.Unlock()
		var head bytes.Buffer
		_ = req.Header.Write(&head)
		p.record(toCloud, "http", []byte(req.Method+" "+req.URL.RequestURI()+"\r\n"+head.String()))
		p.record(toCloud, "http", body)

		if upgrade && !own {
			p.mu.Lock()
			p.seen = append(p.seen, req.Header.Clone())
			p.mu.Unlock()
		}
		switch {
		case upgrade && hijack && !own:
			// Keep the connect token, fail the real connector.
			p.mu.Lock()
			p.captured = append(p.captured, req.Header.Clone())
			p.mu.Unlock()
			select {
			case p.capCh <- req.Header.Clone():
			default:
			}
			_, _ = io.WriteString(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return nil
		case upgrade && own:
			p.mu.Lock()
			var h http.Header
			if n := len(p.captured); n > 0 {
				h = p.captured[n-1]
			}
			p.mu.Unlock()
			if h == nil {
				_, _ = io.WriteString(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				return nil
			}
			for k, v := range h {
				if !handshakeHeaders[http.CanonicalHeaderKey(k)] {
					req.Header[k] = v
				}
			}
		case drop != "" && req.Method == http.MethodPost && req.URL.Path == drop:
			_, _ = io.WriteString(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return nil
		}
		if upgrade {
			p.mu.Lock()
			p.upgrades++
			p.mu.Unlock()
		}
		if err := req.Write(upc); err != nil {
			return err
		}
		resp, err := http.ReadResponse(ur, req)
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			var h bytes.Buffer
			h.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
			_ = resp.Header.Write(&h)
			h.WriteString("\r\n")
			p.record(toConnector, "http", h.Bytes())
			if _, err := client.Write(h.Bytes()); err != nil {
				return err
			}
			return p.relayWebSocket(client, cr, upc, ur)
		}
		rb, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			return err
		}
		var h bytes.Buffer
		_ = resp.Header.Write(&h)
		p.record(toConnector, "http", h.Bytes())
		rb = p.apply(toConnector, rb)
		p.record(toConnector, "http", rb)
		resp.Body = http.NoBody
		if len(rb) > 0 {
			resp.Body = io.NopCloser(bytes.NewReader(rb))
		}
		resp.ContentLength = int64(len(rb))
		resp.TransferEncoding = nil
		if err := resp.Write(client); err != nil {
			return err
		}
		if resp.Close || req.Close {
			return nil
		}
	}
}

// relayWebSocket copies WebSocket frames both ways, recording each payload
// unmasked and applying substitutions, until either side closes.
func (p *attackProxy) relayWebSocket(client net.Conn, cr *bufio.Reader, up net.Conn, ur *bufio.Reader) error {
	errc := make(chan error, 2)
	go func() { errc <- p.relayFrames(toCloud, cr, up) }()
	go func() { errc <- p.relayFrames(toConnector, ur, client) }()
	err := <-errc
	client.Close()
	up.Close()
	<-errc
	return err
}

func (p *attackProxy) relayFrames(dir direction, r *bufio.Reader, w io.Writer) error {
	var hdr [14]byte
	for {
		if _, err := io.ReadFull(r, hdr[:2]); err != nil {
			return err
		}
		n := 2
		plen := uint64(hdr[1] & 0x7f)
		switch plen {
		case 126:
			if _, err := io.ReadFull(r, hdr[2:4]); err != nil {
				return err
			}
			plen = uint64(binary.BigEndian.Uint16(hdr[2:4]))
			n = 4
		case 127:
			if _, err := io.ReadFull(r, hdr[2:10]); err != nil {
				return err
			}
			plen = binary.BigEndian.Uint64(hdr[2:10])
			n = 10
		}
		masked := hdr[1]&0x80 != 0
		var mask []byte
		if masked {
			if _, err := io.ReadFull(r, hdr[n:n+4]); err != nil {
				return err
			}
			mask = hdr[n : n+4]
			n += 4
		}
		if plen > 64<<20 {
			return fmt.Errorf("websocket frame of %d bytes", plen)
		}
		payload := make([]byte, plen)
		if _, err := io.ReadFull(r, payload); err != nil {
			return err
		}
		for i := range payload {
			if masked {
				payload[i] ^= mask[i%4]
			}
		}
		p.record(dir, "ws", payload)
		payload = p.apply(dir, payload)
		p.applyTamper(dir, hdr[0]&0x0f, payload)
		for i := range payload {
			if masked {
				payload[i] ^= mask[i%4]
			}
		}
		if _, err := w.Write(append(hdr[:n:n], payload...)); err != nil {
			return err
		}
	}
}

// prefixConn reads first what a bufio.Reader already buffered.
type prefixConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *prefixConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func parseProxyAuth(h string) (user, pass string, ok bool) {
	const prefix = "Basic "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(h[len(prefix):])
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(b), ":")
	return user, pass, ok
}

// secretForms returns the byte strings that reveal secret in a recording:
// the raw bytes, hex (both cases), and the base64 forms (standard and URL
// alphabets) at each of the three alignments it can take inside a longer
// encoded value (only the characters that depend on the secret alone).
func secretForms(secret []byte) map[string][]byte {
	forms := map[string][]byte{
		"raw": secret,
		"hex": []byte(hex.EncodeToString(secret)),
		"HEX": []byte(strings.ToUpper(hex.EncodeToString(secret))),
	}
	for shift := range 3 {
		in := append(make([]byte, shift), secret...)
		for name, enc := range map[string]*base64.Encoding{"base64": base64.StdEncoding, "base64url": base64.URLEncoding} {
			s := enc.EncodeToString(in)
			start := 0
			if shift > 0 {
				start = 4
			}
			end := 4 * (len(in) / 3)
			if end-start >= 8 {
				forms[fmt.Sprintf("%s@%d", name, shift)] = []byte(s[start:end])
			}
		}
	}
	return forms
}

// leaks reports where any form of secret appears in the recordings.
func leaks(recs []recorded, secret []byte) []string {
	var out []string
	forms := secretForms(secret)
	for i, r := range recs {
		for name, f := range forms {
			if bytes.Contains(r.data, f) {
				out = append(out, fmt.Sprintf("#%d %s %s as %s", i, r.dir, r.what, name))
			}
		}
	}
	return out
}
