package tunnel

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// mitm is an HTTP CONNECT proxy that terminates TLS with its own CA (which
// the connector trusts, as it trusts a corporate TLS-inspecting proxy),
// re-originates TLS to the gateway and records every plaintext byte it
// relays: HTTP requests and responses, and the unmasked payload of every
// WebSocket frame. Hooks let a test answer requests itself, rewrite
// answers and drop, alter, inject or reorder WebSocket messages.
type mitm struct {
	t        testing.TB
	ln       net.Listener
	pki      *testPKI    // the proxy's own CA and certificate
	upstream *tls.Config // how it reaches the gateway

	mu       sync.Mutex
	recorded bytes.Buffer
	// intercept answers a request instead of the gateway when it returns a
	// status (0: forward).
	intercept func(req *http.Request, body []byte) int
	// rewrite may replace the body of a forwarded answer.
	rewrite func(req *http.Request, body []byte) []byte
	// tamper sees each WebSocket data frame after the first n of its
	// direction and returns the frames to send instead (nil: drop it).
	tamper func(toConnector bool, f wsFrame) []wsFrame
	conns  []net.Conn
	wg     sync.WaitGroup
}

// wsFrame is one WebSocket frame with its payload unmasked.
type wsFrame struct {
	b0      byte // FIN, RSV and opcode
	masked  bool
	payload []byte
}

func (f wsFrame) data() bool { return f.b0&0x0f < 8 }

func newMITM(t testing.TB, e *env) *mitm {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.pki.caPEM)
	m := &mitm{t: t, ln: ln, pki: newTestPKI(t), upstream: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}}}
	m.wg.Add(1)
	go m.accept()
	t.Cleanup(m.close)
	return m
}

func (m *mitm) close() {
	_ = m.ln.Close()
	m.mu.Lock()
	for _, c := range m.conns {
		_ = c.Close()
	}
	m.mu.Unlock()
	m.wg.Wait()
}

func (m *mitm) track(c net.Conn) {
	m.mu.Lock()
	m.conns = append(m.conns, c)
	m.mu.Unlock()
}

func (m *mitm) URL() string { return "http://" + m.ln.Addr().String() }

// Recorded returns a copy of every plaintext byte relayed so far.
func (m *mitm) Recorded() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.recorded.Bytes())
}

func (m *mitm) record(b []byte) {
	m.mu.Lock()
	m.recorded.Write(b)
	m.mu.Unlock()
}

// connectorConfig routes cfg through the proxy and trusts its CA.
func (m *mitm) connectorConfig(cfg ConnectorConfig) ConnectorConfig {
	cfg.ProxyURL = m.URL()
	cfg.ExtraRootCAs = m.pki.caPEM
	return cfg
}

// httpClient reaches the gateway through the proxy, trusting its CA only.
func (m *mitm) httpClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(m.pki.caPEM)
	pu, _ := url.Parse(m.URL())
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}
}

func (m *mitm) accept() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		m.track(c)
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer c.Close()
			m.serve(c)
		}()
	}
}

func (m *mitm) serve(raw net.Conn) {
	br := bufio.NewReader(raw)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		return
	}
	target := req.Host
	if _, err := io.WriteString(raw, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	client := tls.Server(&bufConn{Conn: raw, r: br}, &tls.Config{Certificates: []tls.Certificate{m.pki.server}, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}})
	if err := client.Handshake(); err != nil {
		return
	}
	up, err := tls.Dial("tcp", target, m.upstream)
	if err != nil {
		return
	}
	m.track(up)
	defer up.Close()
	cbr, ubr := bufio.NewReader(client), bufio.NewReader(up)
	for {
		req, err := http.ReadRequest(cbr)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		dump, _ := httputil.DumpRequest(req, false)
		m.record(dump)
		m.record(body)
		m.mu.Lock()
		icpt := m.intercept
		m.mu.Unlock()
		if icpt != nil {
			if status := icpt(req, body); status != 0 {
				_, _ = io.WriteString(client, "HTTP/1.1 "+statusLine(status)+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				return
			}
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		if err := req.Write(up); err != nil {
			return
		}
		resp, err := http.ReadResponse(ubr, req)
		if err != nil {
			return
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			dump, _ := httputil.DumpResponse(resp, false)
			m.record(dump)
			if _, err := client.Write(dump); err != nil {
				return
			}
			m.relayWebSocket(client, cbr, up, ubr)
			return
		}
		rbody, _ := io.ReadAll(resp.Body)
		m.record(rbody)
		m.mu.Lock()
		rw := m.rewrite
		m.mu.Unlock()
		if rw != nil {
			rbody = rw(req, rbody)
		}
		resp.Body = io.NopCloser(bytes.NewReader(rbody))
		resp.ContentLength = int64(len(rbody))
		resp.TransferEncoding = nil
		dump, _ = httputil.DumpResponse(resp, false)
		m.record(dump)
		if err := resp.Write(client); err != nil {
			return
		}
	}
}

// bufConn reads through a bufio.Reader that may hold bytes already read.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (m *mitm) relayWebSocket(client net.Conn, cbr *bufio.Reader, up net.Conn, ubr *bufio.Reader) {
	done := make(chan struct{}, 2)
	pump := func(toConnector bool, src *bufio.Reader, dst net.Conn) {
		defer func() { done <- struct{}{} }()
		for {
			f, err := readWSFrame(src)
			if err != nil {
				return
			}
			m.record(f.payload)
			out := []wsFrame{f}
			m.mu.Lock()
			tamper := m.tamper
			m.mu.Unlock()
			if tamper != nil && f.data() {
				out = tamper(toConnector, f)
			}
			for _, o := range out {
				if err := writeWSFrame(dst, o); err != nil {
					return
				}
			}
		}
	}
	go pump(true, ubr, client)
	go pump(false, cbr, up)
	<-done
	_ = client.Close()
	_ = up.Close()
	<-done
}

func readWSFrame(r *bufio.Reader) (wsFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return wsFrame{}, err
	}
	f := wsFrame{b0: h[0], masked: h[1]&0x80 != 0}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 64<<20 {
		return f, errors.New("frame too large")
	}
	var key [4]byte
	if f.masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return f, err
		}
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return f, err
	}
	if f.masked {
		for i := range f.payload {
			f.payload[i] ^= key[i%4]
		}
	}
	return f, nil
}

func writeWSFrame(w io.Writer, f wsFrame) error {
	b := []byte{f.b0, 0}
	n := len(f.payload)
	switch {
	case n < 126:
		b[1] = byte(n)
	case n < 1<<16:
		b[1] = 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] = 127
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	p := bytes.Clone(f.payload)
	if f.masked {
		b[1] |= 0x80
		var key [4]byte
		_, _ = rand.Read(key[:])
		b = append(b, key[:]...)
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	_, err := w.Write(append(b, p...))
	return err
}
