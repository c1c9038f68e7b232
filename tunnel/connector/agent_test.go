package connector_test

import (
	"context"
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/keyenvelope/keyhttp"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// agentConfig is a config built in code, with no file but the KEK file.
func agentConfig(t testing.TB, withDirectory, withKeys bool, allow ...connector.Operation) connector.Config {
	t.Helper()
	id, key := memIdentity(t)
	cfg := connector.Config{
		Cloud:  connector.Cloud{URL: "https://cloud.example", ConnectorID: id, Key: key},
		Policy: connector.Policy{Allow: allow},
	}
	if withDirectory {
		// Open is lazy: no server is needed until a request reaches the
		// directory service.
		cfg.Directory = &connector.Directory{URLs: []string{"ldaps://127.0.0.1:1"}, BindDN: "cn=svc", BindPassword: "pw"}
	}
	if withKeys {
		kek, pass, sched := keyFiles(t, t.TempDir())
		cfg.Keys = &connector.Keys{KEKFile: kek, PassphraseFile: pass, SchedulerPublicKey: sched}
	}
	return cfg
}

func newAgent(t *testing.T, cfg connector.Config) *connector.Agent {
	t.Helper()
	a, err := connector.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func do(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestPolicyEnforced(t *testing.T) {
	tests := []struct {
		name    string
		allow   []connector.Operation
		method  string
		path    string
		wantOp  connector.Operation
		allowed bool
	}{
		{"browse allowed", []connector.Operation{connector.OpBrowse}, "GET", "/directory/ous", "browse", true},
		{"import refused", []connector.Operation{connector.OpBrowse}, "GET", "/directory/users", "import", false},
		{"changes refused", []connector.Operation{connector.OpBrowse}, "GET", "/directory/changes", "import", false},
		{"lookup refused", []connector.Operation{connector.OpImport}, "GET", "/directory/lookup", "lookup", false},
		{"credentials refused", []connector.Operation{connector.OpLookup}, "POST", "/directory/credentials", "credentials", false},
		{"credentials key refused", []connector.Operation{connector.OpLookup}, "GET", "/directory/credentials-key", "credentials", false},
		{"credentials allowed", []connector.Operation{connector.OpCredentials}, "POST", "/directory/credentials", "credentials", true},
		{"keys refused", []connector.Operation{connector.OpBrowse}, "POST", "/keys/v1/release", "keys", false},
		{"keys allowed", []connector.Operation{connector.OpKeys}, "POST", "/keys/v1/release", "keys", true},
		{"unknown directory path refused", operationsAll(), "GET", "/directory/delete-everything", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAgent(t, agentConfig(t, true, true, tt.allow...))
			rec := do(t, a.Handler(), tt.method, tt.path)
			if tt.allowed {
				assert.NotEqual(t, http.StatusForbidden, rec.Code, rec.Body.String())
				return
			}
			require.Equal(t, http.StatusForbidden, rec.Code)
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			pe := connector.DecodePolicyError(rec.Body.Bytes())
			require.NotNil(t, pe, rec.Body.String())
			assert.Equal(t, tt.wantOp, pe.Operation)
			if tt.wantOp == "" {
				assert.Equal(t, connector.CodeUnknownOperation, pe.Code)
			} else {
				assert.Equal(t, connector.CodeForbidden, pe.Code)
				assert.Contains(t, pe.Message, string(tt.wantOp))
			}
		})
	}
}

// TestPolicyErrorThroughKeyClient: a refused operation reaches a cloud-side
// client as a typed error it can branch on, not as a transport failure.
func TestPolicyErrorThroughKeyClient(t *testing.T) {
	a := newAgent(t, agentConfig(t, true, true, connector.OpBrowse))
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	kc, err := keyhttp.NewClient(srv.URL+connector.KeysPrefix, http.DefaultTransport)
	require.NoError(t, err)
	_, _, err = kc.GenerateWrapped(context.Background(), keyenvelope.Context{Tenant: "t", User: "u"})
	var ke *keyhttp.Error
	require.ErrorAs(t, err, &ke)
	assert.Equal(t, http.StatusForbidden, ke.StatusCode)
	assert.Equal(t, connector.CodeForbidden, ke.Code)
}

func operationsAll() []connector.Operation {
	return []connector.Operation{connector.OpBrowse, connector.OpImport, connector.OpLookup, connector.OpCredentials, connector.OpKeys}
}

func TestKeyOnlyConnector(t *testing.T) {
	a := newAgent(t, agentConfig(t, false, true, connector.OpKeys))
	assert.Nil(t, a.Directory())
	require.NotNil(t, a.Keyring())

	rec := do(t, a.Handler(), "GET", connector.StatusPath)
	require.Equal(t, http.StatusOK, rec.Code)
	var st map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
	assert.Equal(t, false, st["directory"])
	assert.Equal(t, true, st["keys"])
	assert.Equal(t, []any{"keys"}, st["allow"])

	rec = do(t, a.Handler(), "GET", "/directory/users")
	assert.Equal(t, http.StatusNotFound, rec.Code, "a key-only connector has no directory service")
	rec = do(t, a.Handler(), "POST", "/keys/v1/release")
	assert.NotEqual(t, http.StatusForbidden, rec.Code)
}

func TestNewLoadsSecrets(t *testing.T) {
	t.Run("wrong kek passphrase", func(t *testing.T) {
		cfg := agentConfig(t, false, true, connector.OpKeys)
		require.NoError(t, os.WriteFile(cfg.Keys.PassphraseFile, []byte("wrong horse"), 0o600))
		_, err := connector.New(cfg)
		require.ErrorIs(t, err, connector.ErrConfig)
		assert.Contains(t, err.Error(), "keys.kek_file")
		assert.NotContains(t, err.Error(), "wrong horse")
	})
	t.Run("bind password from env", func(t *testing.T) {
		cfg := agentConfig(t, true, false, connector.OpBrowse)
		cfg.Directory.BindPassword = ""
		cfg.Directory.BindPasswordEnv = "CONNECTORAPP_TEST_BIND_PW"
		_, err := connector.New(cfg)
		require.ErrorIs(t, err, connector.ErrConfig)
		assert.Contains(t, err.Error(), "CONNECTORAPP_TEST_BIND_PW is not set")
		t.Setenv("CONNECTORAPP_TEST_BIND_PW", "s3cret")
		a, err := connector.New(cfg)
		require.NoError(t, err)
		require.NoError(t, a.Close())
	})
	t.Run("not enrolled", func(t *testing.T) {
		cfg := agentConfig(t, true, false, connector.OpBrowse)
		cfg.Cloud.ConnectorID, cfg.Cloud.Key = "", nil
		cfg.Cloud.IdentityFile = filepath.Join(t.TempDir(), "identity.json")
		_, err := connector.New(cfg)
		require.ErrorIs(t, err, connector.ErrNotEnrolled)
		assert.Contains(t, err.Error(), "connector enroll")
	})
}

// TestEnrollAndRun enrolls a connector with files, runs it against a real
// tunnel gateway and calls it from the cloud side.
func TestEnrollAndRun(t *testing.T) {
	c := newCloud(t)
	dir := t.TempDir()
	cloudCfg := connector.Cloud{
		URL: c.url, CAPEM: c.caPEM, IdentityFile: filepath.Join(dir, "identity.json"),
		BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
	}
	ctx := context.Background()

	_, err := connector.Enroll(ctx, cloudCfg, "not-a-token")
	require.ErrorContains(t, err, "malformed enrollment token")
	expired, err := c.gw.IssueEnrollmentToken(ctx, "tenant-a", time.Nanosecond)
	require.NoError(t, err)
	_, err = connector.Enroll(ctx, cloudCfg, expired)
	require.ErrorIs(t, err, tunnel.ErrUnauthorized)

	tok, err := c.gw.IssueEnrollmentToken(ctx, "tenant-a", time.Minute)
	require.NoError(t, err)
	id, err := connector.Enroll(ctx, cloudCfg, tok)
	require.NoError(t, err)
	assert.Equal(t, "tenant-a", id.Tenant)
	for _, f := range []string{cloudCfg.IdentityFile, cloudCfg.IdentityFile + ".key"} {
		st, err := os.Stat(f)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), f)
	}
	_, err = connector.Enroll(ctx, cloudCfg, tok)
	require.ErrorIs(t, err, connector.ErrAlreadyEnrolled)

	// No scheduler key in the config: the one fetched at enrollment is used.
	kek, pass, _ := keyFiles(t, dir)
	a := newAgent(t, connector.Config{
		Cloud:  cloudCfg,
		Keys:   &connector.Keys{KEKFile: kek, PassphraseFile: pass},
		Policy: connector.Policy{Allow: []connector.Operation{connector.OpKeys}},
	})
	assert.Equal(t, id, a.Identity())

	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	ev := c.waitPresence(t, tunnel.Connected)
	assert.Equal(t, id.ConnectorID, ev.ConnectorID)

	hc := &http.Client{Transport: c.gw.RoundTripper("tenant-a")}
	resp, err := hc.Get("http://connector" + connector.StatusPath)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), `"connector_id":"`+id.ConnectorID+`"`)

	// The key service answers through the tunnel, with package keyhttp's
	// client, and what it wraps opens with the connector's keyring.
	kc, err := keyhttp.NewClient("http://connector"+connector.KeysPrefix, c.gw.RoundTripper("tenant-a"))
	require.NoError(t, err)
	kctx := keyenvelope.Context{Tenant: "tenant-a", User: "u1", Purpose: "backup"}
	wrapped, ekeyID, err := kc.GenerateWrapped(ctx, kctx)
	require.NoError(t, err)
	ek, err := a.Keyring().Unwrap(kctx, wrapped)
	require.NoError(t, err)
	assert.Equal(t, ekeyID, ek.ID)

	// A release against a ticket from the cloud's scheduler opens with the
	// worker's key; the key pinned at enrollment verified the ticket.
	worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	ticket, err := keyenvelope.IssueTicket(c.scheduler, &keyenvelope.Ticket{
		JobID: "job-1", Tenant: "tenant-a", User: "u1", Purpose: "backup", JobPurpose: keyenvelope.JobBackup, EkeyID: ekeyID,
		IssuedAt: time.Now().Truncate(time.Second), Expires: time.Now().Add(10 * time.Minute).Truncate(time.Second),
		WorkerKey: worker.PublicKey(),
	})
	require.NoError(t, err)
	release, err := kc.Release(ctx, ticket, wrapped)
	require.NoError(t, err)
	got, err := keyenvelope.OpenRelease(worker, ticket, release)
	require.NoError(t, err)
	assert.Equal(t, ek.Key, got.Key)

	resp, err = hc.Get("http://connector/directory/users")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "key-only over the tunnel")

	_, err = (&http.Client{Transport: c.gw.RoundTripper("tenant-b")}).Get("http://connector" + connector.StatusPath)
	assert.ErrorIs(t, err, tunnel.ErrNotConnected, "another tenant never reaches this connector")

	// Revocation stops Run for good.
	require.NoError(t, c.gw.Revoke(ctx, id.ConnectorID))
	select {
	case err := <-runErr:
		assert.ErrorIs(t, err, tunnel.ErrRevoked)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after revocation")
	}
}

func TestCloseStopsRun(t *testing.T) {
	c := newCloud(t)
	ctx := context.Background()
	tok, err := c.gw.IssueEnrollmentToken(ctx, "tenant-a", time.Minute)
	require.NoError(t, err)
	cfg := agentConfig(t, true, false, connector.OpBrowse)
	cfg.Cloud.URL, cfg.Cloud.CAPEM = c.url, c.caPEM
	id, err := connector.Enroll(ctx, cfg.Cloud, tok)
	require.NoError(t, err)
	cfg.Cloud.ConnectorID, cfg.Cloud.CloudKey = id.ConnectorID, id.CloudKey

	a, err := connector.New(cfg)
	require.NoError(t, err)
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	c.waitPresence(t, tunnel.Connected)
	require.NoError(t, a.Close())
	select {
	case err := <-runErr:
		assert.True(t, errors.Is(err, connector.ErrClosed), "Run returned %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run still running after Close")
	}
	require.NoError(t, a.Close(), "Close is idempotent")
	assert.ErrorIs(t, a.Run(ctx), connector.ErrClosed)
	c.waitPresence(t, tunnel.Disconnected)
}
