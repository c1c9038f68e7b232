package cloudapp

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
)

// testActivationStore opens a file-backed database with dsn's options.
func testActivationStore(t *testing.T, dsn func(path string) string) activationStore {
	t.Helper()
	sqldb, err := sql.Open("sqlite", dsn(filepath.Join(t.TempDir(), "t.db")))
	require.NoError(t, err)
	t.Cleanup(func() { sqldb.Close() })
	d := newDB(sqldb)
	ctx := context.Background()
	require.NoError(t, d.createSchema(ctx))
	act := activation.NewSQLStore(sqldb, activation.SQLite)
	require.NoError(t, act.CreateSchema(ctx))
	return activationStore{users: userStore{db: d, now: time.Now, rnd: randomID}, inner: act}
}

func count(t *testing.T, d db, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, d.QueryRow(query, args...).Scan(&n))
	return n
}

// TestActivationStoreStorm is the activation storm of BENCHMARKS.md on the
// store: 64 concurrent activations, many of them first activations of the
// same users. The busy timeout is short on purpose: before the write gate,
// writers polled SQLite's busy handler and lost the lock to newcomers
// (hundreds of "database is locked" here; with the production 10 s timeout,
// seconds of tail latency and, on a loaded machine, 500s).
func TestActivationStoreStorm(t *testing.T) {
	const workers, devices, users = 64, 2000, 200
	st := testActivationStore(t, func(p string) string {
		return "file:" + p + "?_pragma=busy_timeout(50)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	})
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < devices; i += workers {
				uid := fmt.Sprintf("%06d", i%users)
				u := activation.User{Tenant: "t", ID: randomID(), DirectoryID: "guid-" + uid, Login: "user" + uid, CreatedAt: time.Now()}
				d := activation.Device{Tenant: "t", ID: fmt.Sprintf("dev-%d", i), Hostname: "pc",
					PublicKey: make(ed25519.PublicKey, ed25519.PublicKeySize), ActivatedAt: time.Now()}
				if _, err := st.Activate(context.Background(), u, d); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	require.Empty(t, errs)
	d := st.users.db
	assert.Equal(t, users, count(t, d, `SELECT count(*) FROM users`))
	assert.Equal(t, users, count(t, d, `SELECT count(*) FROM activation_users`))
	assert.Equal(t, devices, count(t, d, `SELECT count(*) FROM activation_devices`))
	assert.Zero(t, count(t, d, `SELECT count(*) FROM users u JOIN activation_users a ON a.tenant = u.tenant
		AND a.directory_id = u.directory_id WHERE a.id != u.id`), "one user, one ID")
}

// TestActivationStoreConflictLeavesNoUser: creating a user and activating
// its device are one transaction, the cloud's user row included.
func TestActivationStoreConflictLeavesNoUser(t *testing.T) {
	ctx := context.Background()
	st := testActivationStore(t, sqliteDSN)
	key := func(b byte) ed25519.PublicKey {
		k := make(ed25519.PublicKey, ed25519.PublicKeySize)
		k[0] = b
		return k
	}
	alice := activation.User{Tenant: "t", ID: "id-alice", DirectoryID: "guid-alice", Login: "alice", CreatedAt: time.Now()}
	dev := activation.Device{Tenant: "t", ID: "dev-1", Hostname: "pc", PublicKey: key(1), ActivatedAt: time.Now()}
	a, err := st.Activate(ctx, alice, dev)
	require.NoError(t, err)
	assert.True(t, a.UserCreated)

	tests := []struct {
		name string
		key  ed25519.PublicKey
	}{
		{name: "same key, another user", key: key(1)},
		{name: "another key, another user", key: key(2)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bob := activation.User{Tenant: "t", ID: "id-bob", DirectoryID: "guid-bob", Login: "bob", CreatedAt: time.Now()}
			d := dev
			d.PublicKey = tc.key
			_, err := st.Activate(ctx, bob, d)
			require.ErrorIs(t, err, activation.ErrDeviceConflict)
			assert.Zero(t, count(t, st.users.db, `SELECT count(*) FROM users WHERE directory_id = ?`, "guid-bob"), "no cloud user left behind")
			assert.Zero(t, count(t, st.users.db, `SELECT count(*) FROM activation_users WHERE directory_id = ?`, "guid-bob"))
			assert.Equal(t, 1, count(t, st.users.db, `SELECT count(*) FROM users`))
		})
	}

	t.Run("retry of the same activation", func(t *testing.T) {
		a, err := st.Activate(ctx, alice, dev)
		require.NoError(t, err)
		assert.False(t, a.UserCreated)
		assert.False(t, a.DeviceCreated)
		assert.Equal(t, "id-alice", a.User.ID)
	})
}
