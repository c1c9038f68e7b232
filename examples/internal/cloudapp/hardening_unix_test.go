//go:build unix

package cloudapp_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
)

func perm(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err, path)
	return fi.Mode().Perm()
}

// TestFilesPrivate: under the usual umask 022 every file the cloud writes
// that holds state or secrets is 0600. (Not parallel: umask is per process.)
func TestFilesPrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dbPath := filepath.Join(t.TempDir(), "cloud.db")
	srv := startServer(t, cloudapp.Config{DBPath: dbPath, Addr: "127.0.0.1:0", AdminToken: adminToken, DisableScheduler: true})
	_, err := srv.IssueEnrollmentToken(t.Context(), "acme", 0) // a write: the WAL exists
	require.NoError(t, err)
	for _, p := range []string{dbPath, dbPath + "-wal", dbPath + "-shm", dbPath + ".key"} {
		assert.Equal(t, os.FileMode(0o600), perm(t, p), p)
	}
}

// TestWideFilesTightened: a database and key file left 0644 by an older
// version or by hand are set to 0600 at start, and the log says so.
func TestWideFilesTightened(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "cloud.db")
	cfg := cloudapp.Config{DBPath: dbPath, Addr: "127.0.0.1:0", AdminToken: adminToken, DisableScheduler: true}
	srv, err := cloudapp.New(cfg)
	require.NoError(t, err)
	require.NoError(t, srv.Close())
	for _, p := range []string{dbPath, dbPath + ".key"} {
		require.NoError(t, os.Chmod(p, 0o644))
	}
	var logs syncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	srv = startServer(t, cfg)
	_, err = srv.IssueEnrollmentToken(t.Context(), "acme", 0)
	require.NoError(t, err)
	for _, p := range []string{dbPath, dbPath + "-wal", dbPath + ".key"} {
		assert.Equal(t, os.FileMode(0o600), perm(t, p), p)
	}
	assert.Contains(t, logs.String(), "database file was readable by other users")
	assert.Contains(t, logs.String(), "master key file was readable by other users")
}
