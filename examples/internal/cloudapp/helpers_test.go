package cloudapp_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
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
		NewDirectory: func(_ string, rt http.RoundTripper) cloudapp.Directory {
			return &remoteDir{client: &http.Client{Transport: rt}}
		},
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
	key       ed25519.PrivateKey
	keyring   *keyenvelope.Keyring
	handler   http.Handler
	stop      context.CancelFunc
	done      chan error
	connected chan struct{}
}

func (e *env) enroll(tenant string) *connector {
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
	mux.Handle("/directory/", http.StripPrefix("/directory", e.dir))
	return &connector{id: id.ConnectorID, key: key, keyring: kr, handler: mux}
}

// start runs the connector and waits until its session is live.
func (e *env) start(c *connector) {
	e.t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.srv.CAPEM())
	c.connected = make(chan struct{})
	var once sync.Once
	tc, err := tunnel.NewConnector(tunnel.ConnectorConfig{
		URL: e.srv.TunnelURL(), ConnectorID: c.id, Key: c.key, Handler: c.handler,
		TLSConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		OnStatus: func(s tunnel.Status) {
			if s.State == tunnel.StateConnected {
				once.Do(func() { close(c.connected) })
			}
		},
	})
	require.NoError(e.t, err)
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

// fakeDir is the connector side of a small directory protocol: JSON lines
// of users, lookup and auth. It is not directoryhttp: it lets these tests
// cut the stream half-way and count what reached the "directory".
type fakeDir struct {
	mu        sync.Mutex
	users     []directory.User
	passwords map[string]string
	// stallAfter > 0: the user stream stops after that many users and
	// blocks until the request ends (the connector is killed meanwhile).
	stallAfter int
	stalled    chan struct{}
	authCalls  atomic.Int32
	cursor     int
}

func newFakeDir() *fakeDir {
	return &fakeDir{passwords: map[string]string{}, stalled: make(chan struct{}, 1)}
}

func (f *fakeDir) set(users []directory.User) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users = users
	f.cursor++
}

func (f *fakeDir) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	users, stall, cursor := append([]directory.User(nil), f.users...), f.stallAfter, f.cursor
	f.mu.Unlock()
	switch r.URL.Path {
	case "/users", "/changes":
		w.Header().Set("Directory-Cursor", fmt.Sprintf("c%d", cursor))
		enc := json.NewEncoder(w)
		for i, u := range users {
			if stall > 0 && i == stall {
				w.(http.Flusher).Flush()
				f.stalled <- struct{}{}
				<-r.Context().Done()
				return
			}
			_ = enc.Encode(u)
		}
		_ = enc.Encode(directory.User{}) // end marker: a complete stream
	case "/lookup", "/auth":
		name := r.URL.Query().Get("name")
		for _, u := range users {
			if u.Login != name {
				continue
			}
			if r.URL.Path == "/auth" {
				f.authCalls.Add(1)
				f.mu.Lock()
				ok := f.passwords[name] == r.Header.Get("Password")
				f.mu.Unlock()
				if !ok {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
			}
			_ = json.NewEncoder(w).Encode(u)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	case "/ous":
		_ = json.NewEncoder(w).Encode([]directory.OU{{DN: "ou=Corp,dc=test", Name: "Corp", Parent: "dc=test"}})
	default:
		http.NotFound(w, r)
	}
}

// remoteDir is the cloud side of fakeDir's protocol over the tunnel.
type remoteDir struct{ client *http.Client }

var _ cloudapp.Directory = (*remoteDir)(nil)

func (d *remoteDir) get(ctx context.Context, path string, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cloudapp.ConnectorDirectoryURL+path, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	return d.client.Do(req)
}

func (d *remoteDir) stream(ctx context.Context, path string, fn func(directory.User) error) (directory.Cursor, error) {
	resp, err := d.get(ctx, path, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var u directory.User
		if err := json.Unmarshal(sc.Bytes(), &u); err != nil {
			return "", err
		}
		if u.ID == "" {
			return directory.Cursor(resp.Header.Get("Directory-Cursor")), nil
		}
		if err := fn(u); err != nil {
			return "", err
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", io.ErrUnexpectedEOF // no end marker: the stream was cut
}

func (d *remoteDir) Users(ctx context.Context, _ directory.Mapping, fn func(directory.User) error) (directory.Cursor, error) {
	return d.stream(ctx, "/users", fn)
}

func (d *remoteDir) Changes(ctx context.Context, _ directory.Mapping, _ directory.Cursor, fn func(directory.User) error) (directory.Cursor, error) {
	return d.stream(ctx, "/changes", fn)
}

func (d *remoteDir) one(ctx context.Context, path, name, password string) (directory.User, error) {
	hdr := http.Header{}
	if password != "" {
		hdr.Set("Password", password)
	}
	resp, err := d.get(ctx, path+"?name="+url.QueryEscape(name), hdr)
	if err != nil {
		return directory.User{}, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotFound:
		return directory.User{}, directory.ErrNotFound
	case http.StatusUnauthorized:
		return directory.User{}, &directory.CredentialError{Reason: directory.ReasonBadPassword}
	}
	var u directory.User
	return u, json.NewDecoder(resp.Body).Decode(&u)
}

func (d *remoteDir) Lookup(ctx context.Context, _ directory.Mapping, name string) (directory.User, error) {
	return d.one(ctx, "/lookup", name, "")
}

func (d *remoteDir) CheckCredentials(ctx context.Context, _ directory.Mapping, name, password string) (directory.User, error) {
	return d.one(ctx, "/auth", name, password)
}

func (d *remoteDir) OUs(ctx context.Context, _ string) ([]directory.OU, error) {
	resp, err := d.get(ctx, "/ous", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ous []directory.OU
	return ous, json.NewDecoder(resp.Body).Decode(&ous)
}

func (d *remoteDir) Groups(context.Context, string) ([]directory.Group, error) {
	return nil, errors.New("fake: no groups")
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
