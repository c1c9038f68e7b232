package masterkey_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/masterkey"
)

func TestSealOpen(t *testing.T) {
	k := masterkey.New(bytes.Repeat([]byte{7}, masterkey.Size))
	secret := []byte("scheduler seed 0123456789abcdef")
	sealed := k.Seal("scheduler_ed25519_seed", secret)
	assert.NotContains(t, string(sealed), string(secret))
	got, err := k.Open("scheduler_ed25519_seed", sealed)
	require.NoError(t, err)
	assert.Equal(t, secret, got)
	assert.NotEqual(t, sealed, k.Seal("scheduler_ed25519_seed", secret), "nonces must differ")

	t.Run("other name", func(t *testing.T) {
		_, err := k.Open("activation_credential_key", sealed)
		assert.ErrorIs(t, err, masterkey.ErrOpen)
	})
	t.Run("other key", func(t *testing.T) {
		other := masterkey.New(bytes.Repeat([]byte{8}, masterkey.Size))
		_, err := other.Open("scheduler_ed25519_seed", sealed)
		assert.ErrorIs(t, err, masterkey.ErrOpen)
	})
	t.Run("every bit flipped", func(t *testing.T) {
		for i := range sealed {
			for bit := range 8 {
				b := bytes.Clone(sealed)
				b[i] ^= 1 << bit
				_, err := k.Open("scheduler_ed25519_seed", b)
				require.ErrorIs(t, err, masterkey.ErrOpen, "byte %d bit %d", i, bit)
			}
		}
	})
	t.Run("truncated", func(t *testing.T) {
		for n := range len(sealed) {
			_, err := k.Open("scheduler_ed25519_seed", sealed[:n])
			require.ErrorIs(t, err, masterkey.ErrOpen, "length %d", n)
		}
	})
}

func TestParse(t *testing.T) {
	raw := bytes.Repeat([]byte{1}, 32)
	good := "liaison-master-key-v1:" + base64.StdEncoding.EncodeToString(raw) + "\n"
	k, err := masterkey.Parse([]byte(good))
	require.NoError(t, err)
	// The same 32 bytes given to New open what the parsed key sealed.
	_, err = masterkey.New(raw).Open("n", k.Seal("n", []byte("x")))
	require.NoError(t, err)
	for name, in := range map[string]string{
		"empty":       "",
		"no prefix":   base64.StdEncoding.EncodeToString(raw),
		"other v":     "liaison-master-key-v2:" + base64.StdEncoding.EncodeToString(raw),
		"short":       "liaison-master-key-v1:" + base64.StdEncoding.EncodeToString(raw[:31]),
		"long":        "liaison-master-key-v1:" + base64.StdEncoding.EncodeToString(append(raw, 1)),
		"not base64":  "liaison-master-key-v1:!!!!",
		"two newline": good + "\n",
		"url base64":  "liaison-master-key-v1:" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := masterkey.Parse([]byte(in))
			assert.ErrorIs(t, err, masterkey.ErrFormat)
		})
	}
}

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db.key")
	k1, created, tightened, err := masterkey.LoadOrCreate(path)
	require.NoError(t, err)
	assert.True(t, created)
	assert.False(t, tightened)
	k2, created, _, err := masterkey.LoadOrCreate(path)
	require.NoError(t, err)
	assert.False(t, created)
	got, err := k2.Open("n", k1.Seal("n", []byte("secret")))
	require.NoError(t, err, "a reloaded key opens what the first sealed")
	assert.Equal(t, []byte("secret"), got)
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")

	t.Run("garbage file", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.key")
		require.NoError(t, os.WriteFile(bad, []byte("hello"), 0o600))
		_, _, _, err := masterkey.LoadOrCreate(bad)
		assert.ErrorIs(t, err, masterkey.ErrFormat)
		b, _ := os.ReadFile(bad)
		assert.Equal(t, "hello", string(b), "a bad file is never overwritten")
	})
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("liaison-master-key-v1:" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"))
	f.Add([]byte("liaison-master-key-v1:"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := masterkey.Parse(b)
		if err != nil {
			return
		}
		if _, err := k.Open("n", k.Seal("n", []byte("x"))); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzOpen(f *testing.F) {
	k := masterkey.New(make([]byte, 32))
	f.Add(k.Seal("n", []byte("secret")))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = k.Open("n", b) // must not panic
	})
}
