package keyshare_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/keyenvelope/keyshare"
)

// The floor of the KEK file format: tests need no real cost.
var testArgon2 = keyenvelope.Argon2Params{Time: 2, MemoryKiB: 19 << 10, Threads: 1}

func passphrase() ([]byte, error) { return []byte("correct horse"), nil }

// TestKEKFileStore: Changed sees what another process wrote and nothing
// else; Save merges a received version into the file without undoing a
// change made to the file meanwhile.
func TestKEKFileStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek.kenv")
	kr, err := keyenvelope.NewKeyring(nil)
	require.NoError(t, err)
	f := &keyshare.KEKFile{Path: path, Passphrase: passphrase, Argon2: testArgon2}
	got, err := f.Changed()
	require.NoError(t, err)
	assert.Nil(t, got, "no file yet")

	require.NoError(t, f.Save(kr), "nothing stored: the keyring itself")
	got, err = f.Changed()
	require.NoError(t, err)
	assert.Nil(t, got, "its own write is not a change")

	// Another process (the CLI) adds version 2 and disables it.
	disk, err := keyenvelope.ReadKEKFile(path, []byte("correct horse"))
	require.NoError(t, err)
	v2, err := disk.AddVersion()
	require.NoError(t, err)
	require.NoError(t, disk.Disable(v2))
	require.NoError(t, disk.WriteKEKFile(path, []byte("correct horse"), testArgon2))
	got, err = f.Changed()
	require.NoError(t, err)
	require.NotNil(t, got)
	assert.Len(t, got.Versions(), 2)
	got, err = f.Changed()
	require.NoError(t, err)
	assert.Nil(t, got, "seen once")

	// A share brings version 2 enabled (the sender's view): the file keeps
	// it disabled.
	in, err := keyenvelope.ReadKEKFile(path, []byte("correct horse"))
	require.NoError(t, err)
	require.NoError(t, in.Enable(v2))
	require.NoError(t, f.Save(in))
	after, err := keyenvelope.ReadKEKFile(path, []byte("correct horse"))
	require.NoError(t, err)
	for _, v := range after.Versions() {
		if v.Version == v2 {
			assert.Equal(t, keyenvelope.StateDisabled, v.State, "a version disabled on this connector stays disabled")
		}
	}
}
