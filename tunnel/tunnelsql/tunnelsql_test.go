package tunnelsql_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/internal/sqlstore"
	"github.com/liaisonhq/liaison/internal/sqlstore/sqlstoretest"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/tunnelsql"
)

func newStore(t *testing.T, d sqlstore.Dialect, db *sql.DB) *tunnelsql.Store {
	t.Helper()
	st, err := tunnelsql.New(tunnelsql.Config{DB: db, Dialect: d, Writes: new(sync.Mutex)})
	require.NoError(t, err)
	require.NoError(t, st.Migrate(context.Background()))
	require.NoError(t, st.Migrate(context.Background()), "migrating twice is harmless")
	return st
}

func TestEnrollmentIsConsumedOnce(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		ctx := context.Background()
		st := newStore(t, d, db)
		now := time.Unix(1_800_000_000, 123)
		h := sha256.Sum256([]byte("token"))
		require.NoError(t, st.PutEnrollment(ctx, tunnel.EnrollmentRecord{Hash: h, Tenant: "acme", Expires: now.Add(time.Hour)}))

		// Racing consumers: exactly one wins.
		var wins, losses int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				rec, err := st.ConsumeEnrollment(ctx, h, now)
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					wins++
					assert.Equal(t, "acme", rec.Tenant)
					assert.True(t, rec.Expires.Equal(now.Add(time.Hour)), "nanoseconds survive: %v", rec.Expires)
					return
				}
				assert.True(t, errors.Is(err, tunnel.ErrBadEnrollmentToken), "%v", err)
				losses++
			})
		}
		wg.Wait()
		assert.Equal(t, 1, wins)
		assert.Equal(t, 7, losses)

		expired := sha256.Sum256([]byte("old"))
		require.NoError(t, st.PutEnrollment(ctx, tunnel.EnrollmentRecord{Hash: expired, Tenant: "acme", Expires: now}))
		_, err := st.ConsumeEnrollment(ctx, expired, now)
		assert.True(t, errors.Is(err, tunnel.ErrBadEnrollmentToken), "a token expiring now is refused")
		_, err = st.ConsumeEnrollment(ctx, expired, now.Add(-time.Hour))
		assert.True(t, errors.Is(err, tunnel.ErrBadEnrollmentToken), "and gone after the refused try")
	})
}

func TestConnectors(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		ctx := context.Background()
		st := newStore(t, d, db)
		_, err := st.Connector(ctx, "nope")
		assert.True(t, errors.Is(err, tunnel.ErrUnknownConnector))

		pub, _, err := ed25519.GenerateKey(nil)
		require.NoError(t, err)
		t0 := time.Unix(1_800_000_000, 5)
		a := tunnel.ConnectorRecord{ID: "c-a", Tenant: "acme", PublicKey: pub, Enrolled: t0}
		b := tunnel.ConnectorRecord{ID: "c-b", Tenant: "other", PublicKey: pub, Enrolled: t0.Add(time.Second)}
		c := tunnel.ConnectorRecord{ID: "c-c", Tenant: "acme", PublicKey: pub, Enrolled: t0.Add(2 * time.Second)}
		for _, r := range []tunnel.ConnectorRecord{c, a, b} {
			require.NoError(t, st.PutConnector(ctx, r))
		}
		a.Revoked = true
		require.NoError(t, st.PutConnector(ctx, a), "a second put replaces")

		got, err := st.Connector(ctx, "c-a")
		require.NoError(t, err)
		assert.True(t, got.Revoked)
		assert.Equal(t, pub, got.PublicKey)
		assert.True(t, got.Enrolled.Equal(t0))

		acme, err := st.Connectors(ctx, "acme")
		require.NoError(t, err)
		require.Len(t, acme, 2)
		assert.Equal(t, []string{"c-a", "c-c"}, []string{acme[0].ID, acme[1].ID}, "oldest first, one tenant only")
		all, err := st.Connectors(ctx, "")
		require.NoError(t, err)
		assert.Len(t, all, 3)
	})
}

func TestNewValidates(t *testing.T) {
	_, err := tunnelsql.New(tunnelsql.Config{})
	assert.ErrorContains(t, err, "Config.DB")
}
