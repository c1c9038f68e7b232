package activation_test

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/internal/sqlstore"
	"github.com/liaisonhq/liaison/internal/sqlstore/sqlstoretest"
)

// TestSQLStoreOneConnection: an activation needs one connection of the
// pool at a time. A transaction that prepared a statement on the database
// waited for a second connection, so a pool as small as the number of
// concurrent activations deadlocked on its first activations.
func TestSQLStoreOneConnection(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		db.SetMaxOpenConns(1)
		st := activation.NewSQLStore(db, d)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, st.Migrate(ctx))
		u := activation.User{Tenant: "t", ID: "id-alice", DirectoryID: "guid-alice", Login: "alice", CreatedAt: t0}
		for i, want := range []activation.Activation{
			{UserCreated: true, DeviceCreated: true}, // the transaction
			{DeviceCreated: true},                    // a known user
			{},                                       // a retry
		} {
			dev := activation.Device{Tenant: "t", ID: fmt.Sprintf("dev-%d", min(i, 1)), Hostname: "pc",
				PublicKey: make(ed25519.PublicKey, ed25519.PublicKeySize), ActivatedAt: t0}
			a, err := st.Activate(ctx, u, dev)
			require.NoError(t, err, "activation %d", i)
			assert.Equal(t, want.UserCreated, a.UserCreated, "activation %d", i)
			assert.Equal(t, want.DeviceCreated, a.DeviceCreated, "activation %d", i)
			assert.Equal(t, "id-alice", a.User.ID)
		}
	})
}

// TestConcurrentRetriesOfOneDevice: a device that sends its activation
// several times at once (a client retrying on a timeout) is activated once
// and every copy succeeds with the same user and credential: a second
// insert of the device waits for the first and finds it.
func TestConcurrentRetriesOfOneDevice(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, newStore(t))
			_, err := h.svc.Activate(context.Background(), newDevice(t, "first").request("t1", h.token, "alice", "corp.example"))
			require.NoError(t, err, "alice is known before the retries")
			req := newDevice(t, "pc").request("t1", h.token, "alice", "corp.example")
			const n = 16
			results := make([]activation.Result, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { results[i], errs[i] = h.svc.Activate(context.Background(), req) })
			}
			wg.Wait()
			created := 0
			for i := range n {
				require.NoError(t, errs[i], "copy %d", i)
				if results[i].DeviceCreated {
					created++
				}
				assert.Equal(t, results[0].User.ID, results[i].User.ID)
				assert.Equal(t, results[0].Credential, results[i].Credential)
				assert.False(t, results[i].UserCreated)
			}
			assert.Equal(t, 1, created, "one copy activated the device")
		})
	}
}

// TestActivateExisting: on PostgreSQL, a device of a stored user is
// activated without a transaction; an unknown user is reported, with
// nothing written; SQLite always reports false.
func TestActivateExisting(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		ctx := context.Background()
		st := activation.NewSQLStore(db, d)
		require.NoError(t, st.Migrate(ctx))
		key := func(b byte) ed25519.PublicKey {
			k := make(ed25519.PublicKey, 32)
			k[0] = b
			return k
		}
		alice := activation.User{Tenant: "t", ID: "id-alice", DirectoryID: "guid-alice", Login: "alice", Email: "a@x", CreatedAt: t0}
		dev := func(id string, k byte) activation.Device {
			return activation.Device{Tenant: "t", ID: id, Hostname: "pc", PublicKey: key(k), ActivatedAt: t0.Add(time.Minute)}
		}
		devices := func() int {
			var n int
			require.NoError(t, db.QueryRow(`SELECT count(*) FROM activation_devices`).Scan(&n))
			return n
		}

		_, ok, err := st.ActivateExisting(ctx, alice, dev("pc-1", 1))
		require.NoError(t, err)
		assert.False(t, ok, "alice is not stored yet")
		assert.Zero(t, devices(), "nothing written")

		_, err = st.Activate(ctx, alice, dev("pc-0", 0))
		require.NoError(t, err)
		other := alice
		other.ID, other.Login = "id-other", "changed" // the stored user wins, as in ActivateTx
		a, ok, err := st.ActivateExisting(ctx, other, dev("pc-1", 1))
		require.NoError(t, err)
		if d == sqlstore.SQLite {
			assert.False(t, ok)
			assert.Equal(t, 1, devices(), "nothing written")
			return
		}
		require.True(t, ok)
		assert.True(t, a.User.CreatedAt.Equal(t0))
		assert.True(t, a.Device.ActivatedAt.Equal(t0.Add(time.Minute)))
		a.User.CreatedAt, a.Device.ActivatedAt = time.Time{}, time.Time{}
		alice.CreatedAt = time.Time{}
		assert.Equal(t, activation.Activation{User: alice, Device: activation.Device{Tenant: "t", ID: "pc-1", UserID: "id-alice",
			Hostname: "pc", PublicKey: key(1)}, DeviceCreated: true}, a)
		got, err := st.Device(ctx, "t", "pc-1")
		require.NoError(t, err)
		assert.Equal(t, "id-alice", got.UserID)
		assert.True(t, got.ActivatedAt.Equal(t0.Add(time.Minute)))

		again, ok, err := st.ActivateExisting(ctx, alice, dev("pc-1", 1))
		require.NoError(t, err)
		require.True(t, ok)
		assert.False(t, again.DeviceCreated, "a retry")
		assert.Equal(t, "id-alice", again.Device.UserID)

		_, _, err = st.ActivateExisting(ctx, alice, dev("pc-1", 2))
		assert.ErrorIs(t, err, activation.ErrDeviceConflict, "another key")
		bob := activation.User{Tenant: "t", ID: "id-bob", DirectoryID: "guid-bob", Login: "bob", CreatedAt: t0}
		_, err = st.Activate(ctx, bob, dev("pc-2", 3))
		require.NoError(t, err)
		_, _, err = st.ActivateExisting(ctx, bob, dev("pc-1", 1))
		assert.ErrorIs(t, err, activation.ErrDeviceConflict, "another user")
		assert.Equal(t, 3, devices())
	})
}
