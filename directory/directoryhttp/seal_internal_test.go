package directoryhttp

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSealWindowAndTamper(t *testing.T) {
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	now := time.Unix(1_800_000_000, 0)
	sealed, err := sealPassword(key.PublicKey(), "alice", "pw", now)
	require.NoError(t, err)

	pw, err := openPassword(key, sealed, "alice", now.Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, "pw", pw)

	tests := []struct {
		name   string
		sealed string
		user   string
		at     time.Time
	}{
		{"replayed late", sealed, "alice", now.Add(SealMaxAge + time.Second)},
		{"from the future", sealed, "alice", now.Add(-SealMaxAge - time.Second)},
		{"other name", sealed, "bob", now},
		{"not base64", "%%%", "alice", now},
		{"truncated", sealed[:len(sealed)-4], "alice", now},
		{"empty", "", "alice", now},
	}
	raw, _ := base64.RawURLEncoding.DecodeString(sealed)
	for i := range raw {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x80
		tests = append(tests, struct {
			name   string
			sealed string
			user   string
			at     time.Time
		}{"bit flip", base64.RawURLEncoding.EncodeToString(b), "alice", now})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := openPassword(key, tt.sealed, tt.user, tt.at)
			assert.ErrorIs(t, err, ErrBadRequest)
			assert.Equal(t, errSealed, err, "one opaque error")
		})
	}
}

// FuzzOpenPassword feeds hostile sealed passwords to the handler's opener.
func FuzzOpenPassword(f *testing.F) {
	// A fixed key: every fuzz worker process must hold the same one.
	key, err := ecdh.X25519().NewPrivateKey([]byte("liaison directoryhttp fuzz key!!"))
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	s, err := sealPassword(key.PublicKey(), "alice", "pw", now)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s, "alice")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, sealed, name string) {
		pw, err := openPassword(key, sealed, name, now)
		if err == nil && (name != "alice" || pw != "pw") {
			t.Fatalf("opened a forged payload: %q %q", name, pw)
		}
	})
}
