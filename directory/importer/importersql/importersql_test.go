package importersql_test

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/directory/importer/importersql"
	"github.com/liaisonhq/liaison/internal/sqlstore"
	"github.com/liaisonhq/liaison/internal/sqlstore/sqlstoretest"
)

func newStore(t *testing.T, d sqlstore.Dialect, db *sql.DB) *importersql.Store {
	t.Helper()
	st, err := importersql.New(importersql.Config{DB: db, Dialect: d, Writes: new(sync.Mutex)})
	require.NoError(t, err)
	require.NoError(t, st.Migrate(context.Background()))
	return st
}

func count(t *testing.T, d sqlstore.Dialect, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(d.Rebind(query), args...).Scan(&n))
	return n
}

func TestCheckpointRoundTrip(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		ctx := context.Background()
		st := newStore(t, d, db)
		sc := importer.Scope{Tenant: "t", MappingID: "m"}
		c, err := st.LoadCheckpoint(ctx, sc)
		require.NoError(t, err)
		assert.Nil(t, c)

		plan := &importer.Plan{Scope: sc, Full: true, Cursor: "cur", Existing: 2, Summary: importer.Summary{Creates: 1, Deletes: 1},
			Ops: []importer.Op{
				{Kind: importer.OpCreate, Record: importer.Record{DirectoryID: "a", Login: "a", Groups: []string{"cn=g"}}},
				{Kind: importer.OpDelete, Record: importer.Record{DirectoryID: "b", Login: "b"}},
			}}
		saved := time.Unix(1700000000, 7)
		require.NoError(t, st.SaveCheckpoint(ctx, sc, importer.Checkpoint{Plan: plan, Saved: saved}))
		for i := 1; i <= 3; i++ {
			require.NoError(t, st.SaveCheckpoint(ctx, sc, importer.Checkpoint{Applied: i, Saved: saved.Add(time.Duration(i) * time.Second)}))
		}
		assert.Zero(t, count(t, d, db, `SELECT applied FROM import_checkpoints WHERE tenant = ?`, "t"), "batches leave the plan's row alone")
		c, err = st.LoadCheckpoint(ctx, sc)
		require.NoError(t, err)
		require.NotNil(t, c)
		assert.Equal(t, 3, c.Applied)
		assert.Equal(t, plan, c.Plan)
		assert.True(t, c.Saved.Equal(saved.Add(3*time.Second)))

		// A new plan resets the progress of the previous one.
		require.NoError(t, st.SaveCheckpoint(ctx, sc, importer.Checkpoint{Plan: plan, Saved: saved}))
		c, err = st.LoadCheckpoint(ctx, sc)
		require.NoError(t, err)
		assert.Zero(t, c.Applied)

		other, err := st.LoadCheckpoint(ctx, importer.Scope{Tenant: "t2", MappingID: "m"})
		require.NoError(t, err)
		assert.Nil(t, other)
		require.NoError(t, st.ClearCheckpoint(ctx, sc))
		c, err = st.LoadCheckpoint(ctx, sc)
		require.NoError(t, err)
		assert.Nil(t, c)
		assert.Zero(t, count(t, d, db, `SELECT (SELECT count(*) FROM import_checkpoints) + (SELECT count(*) FROM import_progress)`))
	})
}

func TestSoftDeleteKeepsID(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		ctx := context.Background()
		st := newStore(t, d, db)
		sc := importer.Scope{Tenant: "t", MappingID: "m"}
		rec := importer.Record{DirectoryID: "guid", Login: "alice", Groups: []string{"cn=a"}}
		require.NoError(t, st.Apply(ctx, sc, []importer.Op{{Kind: importer.OpCreate, Record: rec}}))
		first, err := st.ListUsers(ctx, "t")
		require.NoError(t, err)
		require.Len(t, first, 1)

		require.NoError(t, st.Apply(ctx, sc, []importer.Op{{Kind: importer.OpDelete, Record: rec}}))
		_, ok, err := st.User(ctx, sc, "guid")
		require.NoError(t, err)
		assert.False(t, ok)
		gone, err := st.UserByID(ctx, "t", first[0].ID)
		require.NoError(t, err)
		assert.True(t, gone.Deleted, "a deleted user is still found by ID (restores)")
		require.NoError(t, st.Apply(ctx, sc, []importer.Op{{Kind: importer.OpDelete, Record: rec}}), "twice is harmless")

		rec.Login = "alice2"
		require.NoError(t, st.Apply(ctx, sc, []importer.Op{{Kind: importer.OpCreate, Record: rec}}))
		back, err := st.ListUsers(ctx, "t")
		require.NoError(t, err)
		require.Len(t, back, 1)
		assert.Equal(t, first[0].ID, back[0].ID, "a returning user keeps its cloud ID")
		assert.Equal(t, "alice2", back[0].Login)
		got, ok, err := st.User(ctx, sc, "guid")
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, rec, got)
		id, err := st.CloudUserID(ctx, "t", "guid")
		require.NoError(t, err)
		assert.Equal(t, first[0].ID, id)
		_, err = st.UserByID(ctx, "t", "nope")
		assert.True(t, errors.Is(err, importersql.ErrNotFound))
	})
}

func TestMappingsRunsSchedule(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		ctx := context.Background()
		st := newStore(t, d, db)
		require.NoError(t, st.AddTenant(ctx, "b"))
		require.NoError(t, st.AddTenant(ctx, "a"))
		require.NoError(t, st.AddTenant(ctx, "a"))
		ts, err := st.Tenants(ctx)
		require.NoError(t, err)
		assert.Equal(t, []string{"a", "b"}, ts)

		m := importersql.Mapping{Tenant: "a", ID: "staff", Mapping: directory.Mapping{OUs: []string{"ou=staff,dc=x"}}}
		require.NoError(t, st.PutMapping(ctx, m))
		require.NoError(t, st.SetCursor(ctx, "a", "staff", "c1"))
		require.NoError(t, st.PutMapping(ctx, m))
		got, err := st.Mapping(ctx, "a", "staff")
		require.NoError(t, err)
		assert.Equal(t, directory.Cursor("c1"), got.Cursor, "the same mapping keeps its cursor")
		m.Mapping.Filter = "(title=x)"
		require.NoError(t, st.PutMapping(ctx, m))
		got, err = st.Mapping(ctx, "a", "staff")
		require.NoError(t, err)
		assert.Empty(t, got.Cursor, "a changed mapping's next import is full")
		assert.Equal(t, m.Mapping, got.Mapping)
		_, err = st.Mapping(ctx, "b", "staff")
		assert.True(t, errors.Is(err, importersql.ErrNotFound))

		t0 := time.Unix(1_800_000_000, 0).UTC()
		for i := range 3 {
			require.NoError(t, st.AddRun(ctx, importersql.Run{Tenant: "a", MappingID: "staff", Started: t0, Finished: t0.Add(time.Duration(i) * time.Second),
				Full: i == 0, Status: "ok", Summary: importer.Summary{Creates: i}}))
		}
		runs, err := st.Runs(ctx, "a", 2)
		require.NoError(t, err)
		require.Len(t, runs, 2)
		assert.Equal(t, 2, runs[0].Summary.Creates, "most recent first")
		assert.True(t, runs[0].ID > runs[1].ID)
		assert.True(t, runs[0].Finished.Equal(t0.Add(2*time.Second)))

		_, ok, err := st.NextRun(ctx, "a")
		require.NoError(t, err)
		assert.False(t, ok)
		at := time.Unix(1_800_000_000, 99)
		require.NoError(t, st.SetNextRun(ctx, "a", at))
		require.NoError(t, st.SetNextRun(ctx, "a", at.Add(time.Hour)))
		next, ok, err := st.NextRun(ctx, "a")
		require.NoError(t, err)
		require.True(t, ok)
		assert.True(t, next.Equal(at.Add(time.Hour)))
	})
}

// TestActivationStoreStorm: 64 concurrent activations, many of them first
// activations of the same users, end with one cloud user per directory ID
// sharing activation's ID.
func TestActivationStoreStorm(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		const workers, devices, users = 32, 400, 40
		ctx := context.Background()
		st := newStore(t, d, db)
		act := activation.NewSQLStore(db, d)
		require.NoError(t, act.Migrate(ctx))
		as := importersql.ActivationStore{Users: st, Activations: act}
		var mu sync.Mutex
		var errs []error
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < devices; i += workers {
					uid := fmt.Sprintf("%06d", i%users)
					u := activation.User{Tenant: "t", ID: fmt.Sprintf("id-%d", i), DirectoryID: "guid-" + uid, Login: "user" + uid, CreatedAt: time.Now()}
					dev := activation.Device{Tenant: "t", ID: fmt.Sprintf("dev-%d", i), Hostname: "pc",
						PublicKey: make(ed25519.PublicKey, ed25519.PublicKeySize), ActivatedAt: time.Now()}
					if _, err := as.Activate(ctx, u, dev); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		require.Empty(t, errs)
		assert.Equal(t, users, count(t, d, db, `SELECT count(*) FROM users`))
		assert.Equal(t, users, count(t, d, db, `SELECT count(*) FROM activation_users`))
		assert.Equal(t, devices, count(t, d, db, `SELECT count(*) FROM activation_devices`))
		assert.Zero(t, count(t, d, db, `SELECT count(*) FROM users u JOIN activation_users a ON a.tenant = u.tenant
		AND a.directory_id = u.directory_id WHERE a.id != u.id`), "one user, one ID")
	})
}

// TestActivationStoreConflictLeavesNoUser: creating a user and activating
// its device are one transaction, the cloud's user row included; a user an
// import disabled is refused.
func TestActivationStoreConflictLeavesNoUser(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		ctx := context.Background()
		st := newStore(t, d, db)
		act := activation.NewSQLStore(db, d)
		require.NoError(t, act.Migrate(ctx))
		as := importersql.ActivationStore{Users: st, Activations: act}
		key := func(b byte) ed25519.PublicKey {
			k := make(ed25519.PublicKey, ed25519.PublicKeySize)
			k[0] = b
			return k
		}
		alice := activation.User{Tenant: "t", ID: "id-alice", DirectoryID: "guid-alice", Login: "alice", CreatedAt: time.Now()}
		dev := activation.Device{Tenant: "t", ID: "dev-1", Hostname: "pc", PublicKey: key(1), ActivatedAt: time.Now()}
		a, err := as.Activate(ctx, alice, dev)
		require.NoError(t, err)
		assert.True(t, a.UserCreated)

		bob := activation.User{Tenant: "t", ID: "id-bob", DirectoryID: "guid-bob", Login: "bob", CreatedAt: time.Now()}
		_, err = as.Activate(ctx, bob, dev)
		require.ErrorIs(t, err, activation.ErrDeviceConflict)
		assert.Zero(t, count(t, d, db, `SELECT count(*) FROM users WHERE directory_id = ?`, "guid-bob"), "no cloud user left behind")

		a, err = as.Activate(ctx, alice, dev)
		require.NoError(t, err)
		assert.False(t, a.UserCreated)
		assert.Equal(t, "id-alice", a.User.ID)

		sc := importer.Scope{Tenant: "t", MappingID: "m"}
		require.NoError(t, st.Apply(ctx, sc, []importer.Op{{Kind: importer.OpDisable, Record: importer.Record{DirectoryID: "guid-carol", Login: "carol", Disabled: true}}}))
		carol := activation.User{Tenant: "t", ID: "id-carol", DirectoryID: "guid-carol", Login: "carol", CreatedAt: time.Now()}
		_, err = as.Activate(ctx, carol, activation.Device{Tenant: "t", ID: "dev-2", Hostname: "pc", PublicKey: key(2), ActivatedAt: time.Now()})
		var de *activation.DisabledError
		require.ErrorAs(t, err, &de)
		assert.Equal(t, "cloud", de.Where)
	})
}

// TestActivationStoreOneConnection: an activation needs one connection of
// the pool at a time (preparing a statement on the database from within
// the transaction waited for a second one: a pool as small as the number
// of concurrent activations deadlocked), and a user an import disabled
// after its first device gets no other.
func TestActivationStoreOneConnection(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		db.SetMaxOpenConns(1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st := newStore(t, d, db)
		act := activation.NewSQLStore(db, d)
		require.NoError(t, act.Migrate(ctx))
		as := importersql.ActivationStore{Users: st, Activations: act}
		alice := activation.User{Tenant: "t", ID: "id-alice", DirectoryID: "guid-alice", Login: "alice", CreatedAt: time.Now()}
		dev := func(id string) activation.Device {
			return activation.Device{Tenant: "t", ID: id, Hostname: "pc", PublicKey: make(ed25519.PublicKey, ed25519.PublicKeySize), ActivatedAt: time.Now()}
		}
		a, err := as.Activate(ctx, alice, dev("pc-1"))
		require.NoError(t, err)
		assert.True(t, a.UserCreated)
		a, err = as.Activate(ctx, alice, dev("pc-2"))
		require.NoError(t, err)
		assert.False(t, a.UserCreated)
		assert.True(t, a.DeviceCreated)
		assert.Equal(t, "id-alice", a.User.ID)

		sc := importer.Scope{Tenant: "t", MappingID: "m"}
		require.NoError(t, st.Apply(ctx, sc, []importer.Op{{Kind: importer.OpDisable, Record: importer.Record{DirectoryID: "guid-alice", Login: "alice", Disabled: true}}}))
		_, err = as.Activate(ctx, alice, dev("pc-3"))
		var de *activation.DisabledError
		require.ErrorAs(t, err, &de)
		assert.Equal(t, "cloud", de.Where)
		assert.Equal(t, 2, count(t, d, db, `SELECT count(*) FROM activation_devices`))
	})
}
