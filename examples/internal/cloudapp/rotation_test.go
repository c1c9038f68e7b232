package cloudapp_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/keyenvelope/keyhttp"
	"github.com/liaisonhq/liaison/tunnel"
)

// loopbackCert is a self-signed certificate for 127.0.0.1 that a restarted
// cloud keeps, so a connector reconnects to it.
func loopbackCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test cloud"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestSchedulerKeyRotation walks the documented rotation with a connector
// that releases ekeys through the tunnel: prepare, connectors accept the
// next key, promote at a restart, connectors pin the new key, retire.
// Releases work at every step; a connector that skipped the overlap step is
// refused after the switch.
func TestSchedulerKeyRotation(t *testing.T) {
	ctx := context.Background()
	cert, pool := loopbackCert(t)
	dir := newFakeDir()
	dir.set(demoUsers(1))
	dbPath := filepath.Join(t.TempDir(), "cloud.db")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	base := cloudapp.Config{DBPath: dbPath, Certificate: &cert, AdminToken: adminToken, DisableScheduler: true,
		PingInterval: 200 * time.Millisecond}
	start := func(cfg cloudapp.Config) (*cloudapp.Server, func()) {
		if cfg.Listener == nil {
			l, err := net.Listen("tcp", addr)
			require.NoError(t, err)
			cfg.Listener = l
		}
		srv, err := cloudapp.New(cfg)
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		return srv, func() { require.NoError(t, srv.Close()); require.NoError(t, <-done) }
	}
	cfg1 := base
	cfg1.Listener = ln
	srv, stop := start(cfg1)
	current := srv.SchedulerPublicKey()

	// The connector: a real keyring and keyhttp handler, whose ticket
	// policy the "operator" edits between steps.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}
	defer client.CloseIdleConnections()
	tok, err := srv.IssueEnrollmentToken(ctx, "acme", time.Minute)
	require.NoError(t, err)
	_, ckey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	id, err := tunnel.Enroll(ctx, client, srv.EnrollURL(), tok, ckey)
	require.NoError(t, err)
	kr, err := keyenvelope.NewKeyring(rand.Reader)
	require.NoError(t, err)
	var keysH atomic.Pointer[http.Handler]
	trust := func(pinned ed25519.PublicKey, extra ...ed25519.PublicKey) {
		rel, err := keyenvelope.NewReleaser(keyenvelope.ReleaserConfig{Keyring: kr,
			Policy: keyenvelope.TicketPolicy{SchedulerKey: pinned, ExtraSchedulerKeys: extra}})
		require.NoError(t, err)
		kh, err := keyhttp.NewHandler(keyhttp.Config{Keyring: kr, Releaser: rel})
		require.NoError(t, err)
		h := http.StripPrefix("/keys", kh)
		keysH.Store(&h)
	}
	trust(current)
	mux := http.NewServeMux()
	mux.Handle("/keys/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*keysH.Load()).ServeHTTP(w, r) }))
	mux.Handle("/directory/", http.StripPrefix("/directory", directoryhttp.NewHandler(dir)))
	tc, err := tunnel.NewConnector(tunnel.ConnectorConfig{
		URL: srv.TunnelURL(), ConnectorID: id.ConnectorID, Key: ckey, CloudKey: id.CloudKey, Handler: mux,
		TLSConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	cctx, cancel := context.WithCancel(ctx)
	cdone := make(chan error, 1)
	go func() { cdone <- tc.Run(cctx) }()
	defer func() { cancel(); <-cdone; _ = tc.Close() }()
	connected := func(srv *cloudapp.Server) {
		require.Eventually(t, func() bool {
			cs, err := srv.Connectors(ctx, "acme")
			return err == nil && len(cs) == 1 && cs[0].Sessions > 0
		}, 10*time.Second, 10*time.Millisecond)
	}
	connected(srv)
	require.NoError(t, srv.PutMapping(ctx, "acme", "staff", directory.Mapping{}))
	_, err = srv.RunImport(ctx, "acme", "staff", cloudapp.ImportOptions{})
	require.NoError(t, err)
	users, err := srv.Users(ctx, "acme")
	require.NoError(t, err)
	uid := users[0].ID
	worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	jobs := 0
	release := func(srv *cloudapp.Server) error {
		jobs++
		rel, err := srv.ReleaseKey(ctx, "acme", uid, "job-"+string(rune('a'+jobs)), worker.PublicKey().Bytes(), 0)
		if err != nil {
			return err
		}
		_, err = keyenvelope.OpenRelease(worker, rel.Ticket, rel.Release)
		return err
	}
	require.NoError(t, release(srv), "before the rotation")

	// 1. Prepare: the next key is published; nothing else changes.
	next, err := srv.PrepareSchedulerKey(ctx)
	require.NoError(t, err)
	again, err := srv.PrepareSchedulerKey(ctx)
	require.NoError(t, err)
	assert.Equal(t, next, again, "prepare is idempotent")
	assert.NotEqual(t, current, next)
	var served cloudapp.SchedulerKeys
	resp, err := client.Get(srv.URL() + cloudapp.PathSchedulerKey)
	require.NoError(t, err)
	require.NoError(t, decodeJSON(resp, &served))
	assert.True(t, id.CloudKey.VerifyStatement(cloudapp.SchedulerKeyStatement, served.Current, served.Signature),
		"the served key is signed by the cloud key the connector pinned")
	served.Signature = nil
	assert.Equal(t, cloudapp.SchedulerKeys{Current: current, Next: next}, served)
	require.NoError(t, release(srv), "prepared, still signing with the current key")

	// 2. Connectors accept the next key too.
	trust(current, next)
	require.NoError(t, release(srv))

	// 3. Promote at a restart.
	stop()
	cfg2 := base
	cfg2.PromoteSchedulerKey = true
	srv, stop = start(cfg2)
	assert.Equal(t, next, srv.SchedulerPublicKey(), "tickets are signed with the promoted key")
	keys, err := srv.SchedulerKeys(ctx)
	require.NoError(t, err)
	assert.Equal(t, cloudapp.SchedulerKeys{Current: next, Previous: current}, keys)
	connected(srv)
	require.NoError(t, release(srv), "a connector in the overlap accepts the new key")
	trust(current) // a connector whose operator skipped step 2
	assert.ErrorIs(t, release(srv), keyenvelope.ErrInvalidTicket)

	// 4. Connectors pin the new key; the old one is retired.
	trust(next)
	require.NoError(t, release(srv))
	require.Equal(t, http.StatusNoContent, adminDo(t, client, srv, http.MethodDelete, "/v1/admin/scheduler-keys/previous"))
	keys, err = srv.SchedulerKeys(ctx)
	require.NoError(t, err)
	assert.Equal(t, cloudapp.SchedulerKeys{Current: next}, keys)

	// The promote setting left on fails the next start instead of
	// promoting a key no connector has seen.
	stop()
	cfg3 := base
	cfg3.PromoteSchedulerKey = true
	l, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	cfg3.Listener = l
	_, err = cloudapp.New(cfg3)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "PromoteSchedulerKey")
	_ = l.Close()
	srv, stop = start(base)
	defer stop()
	assert.Equal(t, next, srv.SchedulerPublicKey(), "a plain restart keeps the key")
}

func adminDo(t *testing.T, c *http.Client, srv *cloudapp.Server, method, path string) int {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL()+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func decodeJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
