package keyenvelope

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSchedulerKeyRotation walks a rotation of the scheduler's key through a
// connector's policy: trust old only, then old and new (the overlap, the
// cloud switching from one to the other), then new only.
func TestSchedulerKeyRotation(t *testing.T) {
	f := newReleaseFixture(t)
	oldKey := f.scheduler
	_, newKey, _ := ed25519.GenerateKey(testRand(9))
	_, stranger, _ := ed25519.GenerateKey(testRand(10))
	signedBy := func(k ed25519.PrivateKey) []byte {
		f.scheduler = k
		defer func() { f.scheduler = oldKey }()
		return f.ticket(t, nil)
	}
	byOld, byNew, byStranger := signedBy(oldKey), signedBy(newKey), signedBy(stranger)
	pub := func(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

	for _, tc := range []struct {
		name               string
		pinned             ed25519.PublicKey
		extra              []ed25519.PublicKey
		old, new, stranger error
	}{
		{"before: old only", pub(oldKey), nil, nil, ErrInvalidTicket, ErrInvalidTicket},
		{"overlap: old pinned, next extra", pub(oldKey), []ed25519.PublicKey{pub(newKey)}, nil, nil, ErrInvalidTicket},
		{"overlap: new pinned, previous extra", pub(newKey), []ed25519.PublicKey{pub(oldKey)}, nil, nil, ErrInvalidTicket},
		{"after: new only", pub(newKey), nil, ErrInvalidTicket, nil, ErrInvalidTicket},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewReleaser(ReleaserConfig{Keyring: f.keyring, Now: func() time.Time { return t0 },
				Policy: TicketPolicy{SchedulerKey: tc.pinned, ExtraSchedulerKeys: tc.extra}})
			require.NoError(t, err)
			for name, c := range map[string]struct {
				ticket []byte
				want   error
			}{"old": {byOld, tc.old}, "new": {byNew, tc.new}, "stranger": {byStranger, tc.stranger}} {
				_, err := r.Release(c.ticket, f.wrapped)
				assert.Equal(t, c.want, err, "ticket signed by the %s key", name)
			}
		})
	}

	t.Run("bad extra key refused", func(t *testing.T) {
		_, err := NewReleaser(ReleaserConfig{Keyring: f.keyring,
			Policy: TicketPolicy{SchedulerKey: pub(oldKey), ExtraSchedulerKeys: []ed25519.PublicKey{make([]byte, 31)}}})
		assert.Error(t, err)
	})
	t.Run("caller's slice copied", func(t *testing.T) {
		extra := []ed25519.PublicKey{append(ed25519.PublicKey(nil), pub(newKey)...)}
		r, err := NewReleaser(ReleaserConfig{Keyring: f.keyring, Now: func() time.Time { return t0 },
			Policy: TicketPolicy{SchedulerKey: pub(oldKey), ExtraSchedulerKeys: extra}})
		require.NoError(t, err)
		extra[0][0] ^= 1
		_, err = r.Release(byNew, f.wrapped)
		assert.NoError(t, err)
	})
}
