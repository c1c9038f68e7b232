package cloudapp_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/tunnel"
)

// TestSelfSignedRestartKeepsConnectors: in self-signed mode a connector that
// trusts the CA written at the first start (cloud.ca_file) reconnects on its
// own after the cloud restarts on the same database and address, and the
// CA, the file and the tunnel identity it pinned are unchanged.
func TestSelfSignedRestartKeepsConnectors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	caOut := filepath.Join(dir, "ca.pem")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	base := cloudapp.Config{DBPath: filepath.Join(dir, "cloud.db"), AdminToken: adminToken, DisableScheduler: true,
		CAOut: caOut, PingInterval: 100 * time.Millisecond}
	start := func(l net.Listener) (*cloudapp.Server, func()) {
		t.Helper()
		cfg := base
		cfg.Listener = l
		srv, err := cloudapp.New(cfg)
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		return srv, func() { require.NoError(t, srv.Close()); require.NoError(t, <-done) }
	}
	srv, stop := start(ln)
	caPEM, err := os.ReadFile(caOut)
	require.NoError(t, err)
	require.Equal(t, srv.CAPEM(), caPEM)
	cloudKey := srv.Gateway().CloudKey()

	// The connector trusts the CA file, as tunnel/connector's cloud.ca_file.
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	tlsCfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer client.CloseIdleConnections()
	tok, err := srv.IssueEnrollmentToken(ctx, "acme", time.Minute)
	require.NoError(t, err)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	id, err := tunnel.Enroll(ctx, client, srv.EnrollURL(), tok, key)
	require.NoError(t, err)
	var connects atomic.Int32
	var mu sync.Mutex
	var history []string // every status, for a failure's message
	t0 := time.Now()
	tc, err := tunnel.NewConnector(tunnel.ConnectorConfig{
		URL: srv.TunnelURL(), ConnectorID: id.ConnectorID, CloudKey: id.CloudKey, Key: key,
		Handler: http.NotFoundHandler(), TLSConfig: tlsCfg,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		OnStatus: func(s tunnel.Status) {
			if s.State == tunnel.StateConnected {
				connects.Add(1)
			}
			mu.Lock()
			history = append(history, fmt.Sprintf("%6dms %v retry_in=%v err=%v", time.Since(t0).Milliseconds(), s.State, s.RetryIn, s.Err))
			mu.Unlock()
		},
	})
	require.NoError(t, err)
	cctx, cancel := context.WithCancel(ctx)
	cdone := make(chan error, 1)
	go func() { cdone <- tc.Run(cctx) }()
	defer func() { cancel(); <-cdone; _ = tc.Close() }()
	live := func(srv *cloudapp.Server) bool {
		cs, err := srv.Connectors(ctx, "acme")
		return err == nil && len(cs) == 1 && cs[0].Sessions > 0
	}
	// Live on the cloud and connected on the connector: the gateway makes
	// a session routable before it sends the key confirmation, so a
	// restart right after the first can cut the connector's handshake
	// short, and the connector never reports that first connect (a CI run
	// failed so: "hello: EOF", one connect in all).
	require.Eventually(t, func() bool { return live(srv) && connects.Load() >= 1 }, 10*time.Second, 10*time.Millisecond)

	stop()
	restarted := time.Since(t0)
	l2, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	srv, stop = start(l2)
	defer stop()
	assert.Equal(t, caPEM, srv.CAPEM(), "the CA survives the restart")
	again, err := os.ReadFile(caOut)
	require.NoError(t, err)
	assert.Equal(t, caPEM, again, "CAOut holds the same CA")
	assert.Equal(t, cloudKey, srv.Gateway().CloudKey(), "the pinned tunnel identity survives the restart")
	if !assert.Eventually(t, func() bool { return live(srv) && connects.Load() >= 2 }, 30*time.Second, 10*time.Millisecond,
		"the connector reconnects with no action") {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("connector statuses (restart at %dms):\n%s", restarted.Milliseconds(), strings.Join(history, "\n"))
	}
}
