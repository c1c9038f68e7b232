package tunnel

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// socksServer is a minimal SOCKS5 proxy (RFC 1928 CONNECT, RFC 1929
// username/password) written from the RFCs, not from Go's client, so the
// test checks the client against the protocol. scripts/testbed/socks-up
// runs a real one (Dante) for the end-to-end test.
type socksServer struct {
	ln         net.Listener
	user, pass string
	wg         sync.WaitGroup
	connects   atomic.Int32
	authFails  atomic.Int32
	mu         sync.Mutex
	targets    []string
}

func newSOCKSServer(t *testing.T, user, pass string) *socksServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &socksServer{ln: ln, user: user, pass: pass}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); s.wg.Wait() })
	return s
}

func (s *socksServer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	// Greeting: VER=5, NMETHODS, METHODS.
	head := make([]byte, 2)
	if _, err := io.ReadFull(br, head); err != nil || head[0] != 5 {
		return
	}
	methods := make([]byte, head[1])
	if _, err := io.ReadFull(br, methods); err != nil {
		return
	}
	offered := false
	for _, m := range methods {
		offered = offered || m == 2
	}
	if !offered {
		_, _ = c.Write([]byte{5, 0xff}) // no acceptable methods
		return
	}
	_, _ = c.Write([]byte{5, 2})
	// RFC 1929: VER=1, ULEN, UNAME, PLEN, PASSWD.
	readField := func() (string, bool) {
		n, err := br.ReadByte()
		if err != nil {
			return "", false
		}
		b := make([]byte, n)
		_, err = io.ReadFull(br, b)
		return string(b), err == nil
	}
	if v, err := br.ReadByte(); err != nil || v != 1 {
		return
	}
	u, ok1 := readField()
	p, ok2 := readField()
	if !ok1 || !ok2 {
		return
	}
	if u != s.user || p != s.pass {
		s.authFails.Add(1)
		_, _ = c.Write([]byte{1, 1})
		return
	}
	_, _ = c.Write([]byte{1, 0})
	// Request: VER=5, CMD=1 (CONNECT), RSV, ATYP, DST.ADDR, DST.PORT.
	req := make([]byte, 4)
	if _, err := io.ReadFull(br, req); err != nil || req[0] != 5 || req[1] != 1 {
		return
	}
	var host string
	switch req[3] {
	case 1:
		ip := make([]byte, 4)
		if _, err := io.ReadFull(br, ip); err != nil {
			return
		}
		host = net.IP(ip).String()
	case 3:
		h, ok := readField()
		if !ok {
			return
		}
		host = h
	default:
		_, _ = c.Write([]byte{5, 8, 0, 1, 0, 0, 0, 0, 0, 0})
		return
	}
	pb := make([]byte, 2)
	if _, err := io.ReadFull(br, pb); err != nil {
		return
	}
	target := net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(pb))))
	s.mu.Lock()
	s.targets = append(s.targets, target)
	s.mu.Unlock()
	up, err := net.Dial("tcp", target)
	if err != nil {
		_, _ = c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
		return
	}
	defer up.Close()
	s.connects.Add(1)
	_, _ = c.Write([]byte{5, 0, 0, 1, 127, 0, 0, 1, 0, 0})
	_ = c.SetDeadline(time.Time{})
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, br); _ = up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	<-done
}

func (s *socksServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.targets...)
}

// A connector enrolls and keeps its session through a SOCKS5 proxy with
// RFC 1929 credentials; a wrong password or none fails with an error that
// names ConnectorConfig.ProxyURL and does not print the password.
func TestSOCKS5Proxy(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, nil)
	s := newSOCKSServer(t, "carol", "s0cks-Pass")
	gwAddr := e.srv.Listener.Addr().String()

	t.Run("enroll and tunnel", func(t *testing.T) {
		for _, scheme := range []string{"socks5", "socks5h"} {
			t.Run(scheme, func(t *testing.T) {
				before := s.connects.Load()
				proxyURL := scheme + "://carol:s0cks-Pass@" + s.ln.Addr().String()
				pu, err := url.Parse(proxyURL)
				require.NoError(t, err)
				pool := x509.NewCertPool()
				pool.AppendCertsFromPEM(e.pki.caPEM)
				// Enrollment (GET of the cloud key, then POST) through the
				// same proxy, as connectorapp's enroll client does it.
				tr := &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}
				defer tr.CloseIdleConnections()
				tok, err := e.gw.IssueEnrollmentToken(context.Background(), "t", time.Minute)
				require.NoError(t, err)
				_, key, err := ed25519.GenerateKey(rand.Reader)
				require.NoError(t, err)
				id, err := Enroll(context.Background(), &http.Client{Transport: tr}, e.srv.URL+"/enroll", tok, key)
				require.NoError(t, err)
				enrollConnects := s.connects.Load() - before
				assert.GreaterOrEqual(t, enrollConnects, int32(1), "enrollment did not go through the proxy")

				cfg := ConnectorConfig{
					URL: e.url, ConnectorID: id.ConnectorID, CloudKey: id.CloudKey, Key: key,
					TLSConfig: &tls.Config{RootCAs: pool}, ProxyURL: proxyURL,
					BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
				}
				c := e.start(cfg, echoHandler())
				resp, err := get(t, e.gw.RoundTripper("t"), "/via-socks")
				require.NoError(t, err)
				_ = resp.Body.Close()
				assert.Equal(t, "/via-socks", resp.Header.Get("X-Path"))
				assert.Equal(t, before+enrollConnects+1, s.connects.Load(), "the tunnel did not go through the proxy")
				assert.Contains(t, s.seen(), gwAddr)
				require.NoError(t, c.Close())
				e.waitEvent(Disconnected, cfg.ConnectorID)
			})
		}
	})

	refused := func(t *testing.T, proxyURL string) error {
		t.Helper()
		cfg := e.enroll("t")
		cfg.ProxyURL = proxyURL
		cfg.Handler = echoHandler()
		statuses := make(chan Status, 16)
		cfg.OnStatus = func(st Status) { statuses <- st }
		c, err := NewConnector(cfg)
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() { errc <- c.Run(context.Background()) }()
		defer func() { _ = c.Close(); <-errc }()
		for {
			select {
			case st := <-statuses:
				if st.State == StateDisconnected && st.Err != nil {
					return st.Err
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no failed connect reported")
			}
		}
	}
	t.Run("wrong password", func(t *testing.T) {
		fails := s.authFails.Load()
		err := refused(t, "socks5://carol:Wr0ng-Pass@"+s.ln.Addr().String())
		assert.True(t, errors.Is(err, ErrProxyRefused), "%v", err)
		assert.ErrorContains(t, err, "rejected the user name or password in ConnectorConfig.ProxyURL")
		assert.NotContains(t, err.Error(), "Wr0ng-Pass")
		assert.Equal(t, 1, strings.Count(err.Error(), "tunnel:"), "one prefix: %v", err)
		assert.Greater(t, s.authFails.Load(), fails, "the proxy never saw the credentials")
	})
	t.Run("no credentials", func(t *testing.T) {
		err := refused(t, "socks5://"+s.ln.Addr().String())
		assert.True(t, errors.Is(err, ErrProxyRefused), "%v", err)
		assert.ErrorContains(t, err, "ConnectorConfig.ProxyURL")
	})
}

func TestProxyURLSchemes(t *testing.T) {
	e := newEnv(t, nil)
	base := e.enroll("t")
	base.Handler = echoHandler()
	for _, u := range []string{"http://p:3128", "https://u:p@p:3128", "socks5://u:p@p:1080", "SOCKS5H://p:1080"} {
		cfg := base
		cfg.ProxyURL = u
		c, err := NewConnector(cfg)
		if assert.NoError(t, err, u) {
			_ = c.Close()
		}
	}
	for _, u := range []string{"socks4://u:Secr3t@p:1080", "ftp://u:Secr3t@p:21", "socks5://", "u:Secr3t@p:1080", "p:1080"} {
		cfg := base
		cfg.ProxyURL = u
		_, err := NewConnector(cfg)
		if assert.Error(t, err, u) {
			assert.Contains(t, err.Error(), "ConnectorConfig.ProxyURL", u)
			assert.Contains(t, err.Error(), "socks5://", u)
			assert.NotContains(t, err.Error(), "Secr3t", u)
		}
	}
}
