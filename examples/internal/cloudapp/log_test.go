package cloudapp_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestInternalErrorIsLogged: a 500 of the admin API is never silent.
func TestInternalErrorIsLogged(t *testing.T) {
	sqldb, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "c.db")+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	require.NoError(t, err)
	t.Cleanup(func() { sqldb.Close() })
	var logs syncBuffer
	e := newEnv(t, func(c *cloudapp.Config) {
		c.DB = sqldb
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/v1/admin/tenants/acme/users", nil, nil))
	assert.NotContains(t, logs.String(), "level=ERROR")

	_, err = sqldb.ExecContext(context.Background(), `DROP TABLE users`) // a broken database
	require.NoError(t, err)
	require.Equal(t, http.StatusInternalServerError, e.do(http.MethodGet, "/v1/admin/tenants/acme/users", nil, nil))
	assert.Contains(t, logs.String(), "level=ERROR")
	assert.Contains(t, logs.String(), "no such table: users", "the cause is logged")
	assert.NotContains(t, logs.String(), adminToken)
}

// TestActivationRefusalReasonIsLogged: the device of a disabled user sees
// the uniform 403; the log says why.
func TestActivationRefusalReasonIsLogged(t *testing.T) {
	var logs syncBuffer
	e := newEnv(t, func(c *cloudapp.Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	c := e.enroll("acme")
	e.start(c)
	users := demoUsers(2)
	users[1].Disabled = true
	e.dir.set(users)
	require.NoError(t, e.srv.PutMapping(context.Background(), "acme", "staff", directory.Mapping{}))
	var tok struct {
		Token string `json:"token"`
	}
	require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/v1/admin/tenants/acme/deployment-tokens",
		map[string]any{"mapping_id": "staff", "ttl_seconds": 3600}, &tok))
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	req := activation.Request{Tenant: "acme", Token: tok.Token, Login: "user1", Domain: "corp.test", DeviceID: "d1"}
	req.Sign(priv)
	var out map[string]string
	st := e.doToken("", http.MethodPost, cloudapp.PathActivate, activation.ActivateRequest{
		Tenant: req.Tenant, Token: req.Token, Login: req.Login, Domain: req.Domain, DeviceID: req.DeviceID,
		DevicePublicKey: req.DevicePublicKey, Signature: req.Signature}, &out)
	assert.Equal(t, http.StatusForbidden, st)
	assert.NotContains(t, out["error"], "disabled")
	assert.Contains(t, logs.String(), `reason="activation: user disabled in the directory"`)
	assert.Contains(t, logs.String(), "login=user1")
	assert.NotContains(t, logs.String(), tok.Token[len(activation.TokenPrefix):], "never the token's secret")
}
