package cloudapp_test

import (
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
)

// get sends an unauthenticated GET and returns the status and body.
func (e *env) get(path string) (int, string) {
	e.t.Helper()
	resp, err := e.client.Get(e.srv.URL() + path)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, string(b)
}

func readiness(t *testing.T, body string) cloudapp.Readiness {
	t.Helper()
	var rd cloudapp.Readiness
	require.NoError(t, json.Unmarshal([]byte(body), &rd), body)
	return rd
}

func TestHealthzAnswersWithoutAuth(t *testing.T) {
	e := newEnv(t, nil)
	code, body := e.get("/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)
}

func TestReadyzChecks(t *testing.T) {
	t.Run("ready", func(t *testing.T) {
		e := newEnv(t, nil)
		code, body := e.get("/readyz")
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, cloudapp.Readiness{Ready: true, Checks: map[string]string{"database": "ok", "server": "ok"}}, readiness(t, body))
	})
	t.Run("database closed", func(t *testing.T) {
		dir := t.TempDir()
		sqldb, err := sql.Open("sqlite", filepath.Join(dir, "cloud.db"))
		require.NoError(t, err)
		e := newEnv(t, func(c *cloudapp.Config) {
			c.DB, c.DBPath, c.MasterKeyFile = sqldb, "", filepath.Join(dir, "master.key")
		})
		// Serving first: Run reads the database before it serves, so
		// closing it earlier would stop the server, not make it unready.
		code, _ := e.get("/healthz")
		require.Equal(t, http.StatusOK, code)
		require.NoError(t, sqldb.Close())
		code, body := e.get("/readyz")
		assert.Equal(t, http.StatusServiceUnavailable, code)
		rd := readiness(t, body)
		assert.False(t, rd.Ready)
		assert.Equal(t, "unreachable", rd.Checks["database"])
		assert.Equal(t, "ok", rd.Checks["server"])
		code, _ = e.get("/healthz")
		assert.Equal(t, http.StatusOK, code, "the process is still up")
	})
	t.Run("shutting down", func(t *testing.T) {
		e := newEnv(t, nil)
		cloudapp.SetStopping(e.srv)
		code, body := e.get("/readyz")
		assert.Equal(t, http.StatusServiceUnavailable, code)
		assert.Equal(t, cloudapp.Readiness{Ready: false, Checks: map[string]string{"database": "ok", "server": "shutting down"}}, readiness(t, body))
	})
}
