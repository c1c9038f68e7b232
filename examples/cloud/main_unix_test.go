//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunServesUntilSignalled starts the program on a free port with a
// generated CA, waits for the CA file, and stops it as an operator would.
func TestRunServesUntilSignalled(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("0123456789abcdef-admin\n"), 0o600))
	caOut := filepath.Join(dir, "ca.pem")
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run([]string{"--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "cloud.db"),
			"--admin-token-file", tokenFile, "--self-signed-ca-out", caOut, "--no-scheduler",
			"--log-format", "json"}, io.Discard, &logs)
	}()
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(caOut)
		return err == nil && len(b) > 0
	}, 20*time.Second, 10*time.Millisecond)
	b, err := os.ReadFile(caOut)
	require.NoError(t, err)
	assert.Contains(t, string(b), "BEGIN CERTIFICATE")
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGINT))
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("run did not stop on SIGINT")
	}
	// --log-format json: every line is a JSON object with slog's keys.
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	require.NotEmpty(t, lines)
	for _, l := range lines {
		var m map[string]any
		if assert.NoError(t, json.Unmarshal([]byte(l), &m), l) {
			assert.Contains(t, m, "level")
			assert.Contains(t, m, "msg")
		}
	}
	assert.Contains(t, logs.String(), `"msg":"cloud endpoint serving"`)
	_, err = os.Stat(filepath.Join(dir, "cloud.db"))
	assert.NoError(t, err, "state kept in the database file")
	for _, name := range []string{"cloud.db", "cloud.db.key"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if assert.NoError(t, err, name) {
			assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), name)
		}
	}
}

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
