package cloudapp_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/keyenvelope/keyhttp"
	"github.com/liaisonhq/liaison/tunnel"
)

const adminToken = "test-admin-token-0123456789"

// env is a running cloudapp.Server and an HTTPS client that trusts its CA.
type env struct {
	t      *testing.T
	srv    *cloudapp.Server
	client *http.Client
	dir    *fakeDir
}

func newEnv(t *testing.T, mod func(*cloudapp.Config)) *env {
	t.Helper()
	e := &env{t: t, dir: newFakeDir()}
	cfg := cloudapp.Config{
		DBPath:           filepath.Join(t.TempDir(), "cloud.db"),
		Addr:             "127.0.0.1:0",
		AdminToken:       adminToken,
		DisableScheduler: true,
		PingInterval:     200 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := cloudapp.New(cfg)
	require.NoError(t, err)
	e.srv = srv
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }()
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		require.NoError(t, <-done)
	})
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(srv.CAPEM()))
	e.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

// do sends a JSON request with the admin token and decodes the answer into
// out (when not nil); it returns the status.
func (e *env) do(method, path string, in, out any) int {
	return e.doToken(adminToken, method, path, in, out)
}

func (e *env) doToken(token, method, path string, in, out any) int {
	e.t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		require.NoError(e.t, err)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.srv.URL()+path, body)
	require.NoError(e.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	if out != nil {
		require.NoError(e.t, json.NewDecoder(resp.Body).Decode(out))
	}
	return resp.StatusCode
}

// connector is an in-process connector enrolled in a tenant and connected
// through the real tunnel, serving the fake directory and a real keyring.
type connector struct {
	id        string
	cloudKey  tunnel.CloudKey
	key       ed25519.PrivateKey
	keyring   *keyenvelope.Keyring
	handler   http.Handler
	stop      context.CancelFunc
	done      chan error
	connected chan struct{}
	info      *tunnel.ConnectorInfo // published once connected, when set
}

func (e *env) enroll(tenant string) *connector {
	e.t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(e.t, err)
	return e.enrollWith(tenant, k)
}

// enrollWith enrolls a connector; with sealKey its directory handler accepts
// only passwords sealed to that key, published at /status as tunnel/connector
// does.
func (e *env) enrollWith(tenant string, sealKey *ecdh.PrivateKey) *connector {
	e.t.Helper()
	tok, err := e.srv.IssueEnrollmentToken(context.Background(), tenant, time.Minute)
	require.NoError(e.t, err)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(e.t, err)
	id, err := tunnel.Enroll(context.Background(), e.client, e.srv.EnrollURL(), tok, key)
	require.NoError(e.t, err)
	require.Equal(e.t, tenant, id.Tenant)
	kr, err := keyenvelope.NewKeyring(rand.Reader)
	require.NoError(e.t, err)
	rel, err := keyenvelope.NewReleaser(keyenvelope.ReleaserConfig{Keyring: kr,
		Policy: keyenvelope.TicketPolicy{SchedulerKey: e.srv.SchedulerPublicKey()}})
	require.NoError(e.t, err)
	kh, err := keyhttp.NewHandler(keyhttp.Config{Keyring: kr, Releaser: rel})
	require.NoError(e.t, err)
	mux := http.NewServeMux()
	mux.Handle("/keys/", http.StripPrefix("/keys", kh))
	var hopts []directoryhttp.HandlerOption
	if sealKey != nil {
		hopts = append(hopts, directoryhttp.WithPrivateKey(sealKey))
		mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(map[string]any{"connector_id": id.ConnectorID, "sealed_passwords": true,
				"credentials_key": sealKey.PublicKey().Bytes()})
		})
	}
	mux.Handle("/directory/", http.StripPrefix("/directory", directoryhttp.NewHandler(e.dir, hopts...)))
	return &connector{id: id.ConnectorID, cloudKey: id.CloudKey, key: key, keyring: kr, handler: mux}
}

// start runs the connector and waits until its session is live.
func (e *env) start(c *connector) {
	e.t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.srv.CAPEM())
	c.connected = make(chan struct{})
	var once sync.Once
	tc, err := tunnel.NewConnector(tunnel.ConnectorConfig{
		URL: e.srv.TunnelURL(), ConnectorID: c.id, CloudKey: c.cloudKey, Key: c.key, Handler: c.handler,
		TLSConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		OnStatus: func(s tunnel.Status) {
			if s.State == tunnel.StateConnected {
				once.Do(func() { close(c.connected) })
			}
		},
	})
	require.NoError(e.t, err)
	if c.info != nil {
		require.NoError(e.t, tc.SetInfo(*c.info))
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.stop, c.done = cancel, make(chan error, 1)
	go func() { c.done <- tc.Run(ctx); _ = tc.Close() }()
	e.t.Cleanup(func() { e.kill(c) })
	select {
	case <-c.connected:
	case <-time.After(10 * time.Second):
		e.t.Fatal("connector did not connect")
	}
	// The gateway reports presence on its own goroutine; wait until the
	// server has seen it, so tests observe a settled state.
	require.Eventually(e.t, func() bool {
		cs, err := e.srv.Connectors(context.Background(), "")
		require.NoError(e.t, err)
		for _, ci := range cs {
			if ci.ID == c.id && ci.Sessions > 0 {
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond)
}

func (e *env) kill(c *connector) {
	if c.stop == nil {
		return
	}
	c.stop()
	<-c.done
	c.stop = nil
}

// fakeDir is an in-memory directory served by the real directoryhttp
// handler on the connector, so the cloud talks the real wire format through
// the real tunnel. It can stall a scan half-way (the connector is then
// killed) and counts credential checks that reached it.
type fakeDir struct {
	mu        sync.Mutex
	users     []directory.User
	passwords map[string]string
	// stallAfter > 0: a scan stops after that many users and blocks until
	// its request ends.
	stallAfter int
	stalled    chan struct{}
	authCalls  atomic.Int32
	cursor     int
}

var _ directoryhttp.Directory = (*fakeDir)(nil)

func newFakeDir() *fakeDir {
	return &fakeDir{passwords: map[string]string{}, stalled: make(chan struct{}, 1)}
}

func (f *fakeDir) set(users []directory.User) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users = users
	f.cursor++
}

func (f *fakeDir) snapshot() ([]directory.User, int, directory.Cursor) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]directory.User(nil), f.users...), f.stallAfter, directory.Cursor(fmt.Sprintf("c%d", f.cursor))
}

func (f *fakeDir) scan(ctx context.Context, fn func(directory.User) error) (directory.Cursor, error) {
	users, stall, cursor := f.snapshot()
	for i, u := range users {
		if stall > 0 && i == stall {
			f.stalled <- struct{}{}
			<-ctx.Done()
			return "", ctx.Err()
		}
		if err := fn(u); err != nil {
			return "", err
		}
	}
	return cursor, nil
}

func (f *fakeDir) Users(ctx context.Context, _ directory.Mapping, fn func(directory.User) error) (directory.Cursor, error) {
	return f.scan(ctx, fn)
}

func (f *fakeDir) Changes(ctx context.Context, _ directory.Mapping, _ directory.Cursor, fn func(directory.User) error) (directory.Cursor, error) {
	return f.scan(ctx, fn) // every user "changed": harmless, the importer skips equal ones
}

func (f *fakeDir) Lookup(_ context.Context, _ directory.Mapping, name string) (directory.User, error) {
	users, _, _ := f.snapshot()
	for _, u := range users {
		// As a directory does: login or UPN, in any case.
		if strings.EqualFold(u.Login, name) || u.UPN != "" && strings.EqualFold(u.UPN, name) {
			return u, nil
		}
	}
	return directory.User{}, directory.ErrNotFound
}

func (f *fakeDir) CheckCredentials(ctx context.Context, m directory.Mapping, name, password string) (directory.User, error) {
	u, err := f.Lookup(ctx, m, name)
	if err != nil {
		return u, err
	}
	f.authCalls.Add(1)
	f.mu.Lock()
	ok := f.passwords[u.Login] == password
	f.mu.Unlock()
	if !ok {
		return directory.User{}, &directory.CredentialError{Reason: directory.ReasonBadPassword}
	}
	return u, nil
}

func (f *fakeDir) OUs(context.Context, string) ([]directory.OU, error) {
	return []directory.OU{{DN: "ou=Corp,dc=corp,dc=test", Name: "Corp", Parent: "dc=corp,dc=test"}}, nil
}

func (f *fakeDir) Groups(context.Context, string) ([]directory.Group, error) {
	return []directory.Group{{DN: "cn=staff,ou=Corp,dc=corp,dc=test", Name: "staff", MemberCount: 1}}, nil
}

func (f *fakeDir) Info(context.Context) (directory.Info, error) {
	return directory.Info{Profile: directory.ProfileOpenLDAP, NamingContexts: []string{"dc=corp,dc=test"}}, nil
}

func (f *fakeDir) NamingContexts(context.Context) ([]string, error) {
	return []string{"dc=corp,dc=test"}, nil
}

func demoUsers(n int) []directory.User {
	out := make([]directory.User, n)
	for i := range out {
		out[i] = directory.User{
			ID: fmt.Sprintf("guid-%03d", i), Login: fmt.Sprintf("user%d", i),
			UPN: fmt.Sprintf("user%d@corp.test", i), DN: fmt.Sprintf("cn=user%d,ou=Corp,dc=corp,dc=test", i),
		}
	}
	return out
}
