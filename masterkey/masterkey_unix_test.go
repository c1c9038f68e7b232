//go:build unix

package masterkey_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/masterkey"
)

// withUmask runs fn under umask m (process-wide: these tests are not
// parallel).
func withUmask(t *testing.T, m int, fn func()) {
	old := syscall.Umask(m)
	defer syscall.Umask(old)
	fn()
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

func TestModes(t *testing.T) {
	for _, umask := range []int{0o022, 0o000, 0o277} {
		t.Run(os.FileMode(umask).String(), func(t *testing.T) {
			dir := t.TempDir()
			withUmask(t, umask, func() {
				_, _, _, err := masterkey.LoadOrCreate(filepath.Join(dir, "k"))
				require.NoError(t, err)
				require.NoError(t, masterkey.CreatePrivate(filepath.Join(dir, "db")))
			})
			assert.Equal(t, os.FileMode(0o600), mode(t, filepath.Join(dir, "k")))
			assert.Equal(t, os.FileMode(0o600), mode(t, filepath.Join(dir, "db")))
		})
	}
}

func TestRestrict(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(path, []byte("x"), 0o600))
	require.NoError(t, os.Chmod(path, 0o644))
	changed, err := masterkey.Restrict(path)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, os.FileMode(0o600), mode(t, path))
	changed, err = masterkey.Restrict(path)
	require.NoError(t, err)
	assert.False(t, changed, "already private")
	changed, err = masterkey.Restrict(filepath.Join(dir, "missing"))
	require.NoError(t, err)
	assert.False(t, changed)

	// A key file found world-readable is tightened before it is used.
	kp := filepath.Join(dir, "k")
	_, _, _, err = masterkey.LoadOrCreate(kp)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(kp, 0o644))
	_, created, tightened, err := masterkey.LoadOrCreate(kp)
	require.NoError(t, err)
	assert.False(t, created)
	assert.True(t, tightened)
	assert.Equal(t, os.FileMode(0o600), mode(t, kp))
}

// TestDanglingSymlink: a key path that is a symlink to nowhere neither
// loops nor replaces the link.
func TestDanglingSymlink(t *testing.T) {
	dir := t.TempDir()
	kp := filepath.Join(dir, "k")
	require.NoError(t, os.Symlink(filepath.Join(dir, "nowhere"), kp))
	_, _, _, err := masterkey.LoadOrCreate(kp)
	require.Error(t, err)
	target, err := os.Readlink(kp)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "nowhere"), target)
}
