package atomicfile_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/internal/atomicfile"
)

// TestWrite: the file holds exactly the new bytes, is 0600 even when it
// existed with a wider mode, and no temporary file is left beside it.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	require.NoError(t, os.WriteFile(path, []byte("old content, longer than the new"), 0o644))
	require.NoError(t, atomicfile.Write(path, []byte("new")))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "new", string(b))
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "a secret file is never world-readable")
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")
}

// TestWriteMissingDir fails without creating anything.
func TestWriteMissingDir(t *testing.T) {
	err := atomicfile.Write(filepath.Join(t.TempDir(), "no", "such", "dir", "f"), []byte("x"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// TestCreateNeverReplaces: the first Create wins, a second fails with
// fs.ErrExist and leaves the first content; no temporary file stays.
func TestCreateNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	require.NoError(t, atomicfile.Create(path, []byte("first")))
	err := atomicfile.Create(path, []byte("second"))
	require.ErrorIs(t, err, fs.ErrExist)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "first", string(b))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")
}
