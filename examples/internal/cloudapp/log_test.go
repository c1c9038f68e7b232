package cloudapp_test

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
