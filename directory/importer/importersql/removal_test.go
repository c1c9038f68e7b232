package importersql_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/directory/importer/importersql"
	"github.com/liaisonhq/liaison/internal/sqlstore"
	"github.com/liaisonhq/liaison/internal/sqlstore/sqlstoretest"
)

// TestImportAppliesTheRemovalPolicy: a user who left the directory is
// deleted under the mapping's "delete" policy and disabled under the
// default, and the history keeps who was removed and why.
func TestImportAppliesTheRemovalPolicy(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		ctx := context.Background()
		st := newStore(t, d, db)
		for _, c := range []struct {
			mapping string
			policy  importer.RemovalPolicy
			deleted bool
		}{{"del", importer.RemoveDelete, true}, {"dis", "", false}} {
			require.NoError(t, st.PutMapping(ctx, importersql.Mapping{Tenant: "acme", ID: c.mapping, Removal: c.policy}))
			src := &source{users: []directory.User{{ID: c.mapping + "-alice", Login: "alice"}, {ID: c.mapping + "-bob", Login: "bob"}}}
			im, err := importer.New(importer.Config{Source: src, Store: st, Checkpoints: st})
			require.NoError(t, err)
			m, err := st.Mapping(ctx, "acme", c.mapping)
			require.NoError(t, err)
			assert.Equal(t, c.policy, m.Removal, "the policy is stored with the mapping")
			_, _, _, err = st.Import(ctx, im, m, importersql.ImportOptions{}, nil)
			require.NoError(t, err)
			bob, err := st.CloudUserID(ctx, "acme", c.mapping+"-bob")
			require.NoError(t, err)
			require.NotEmpty(t, bob)

			src.users = src.users[:1] // bob left the directory
			m, err = st.Mapping(ctx, "acme", c.mapping)
			require.NoError(t, err)
			_, run, histErr, err := st.Import(ctx, im, m, importersql.ImportOptions{Full: true, Override: true}, nil)
			require.NoError(t, err)
			require.NoError(t, histErr)
			wantKind := importer.OpDisable
			if c.deleted {
				wantKind = importer.OpDelete
			}
			require.Len(t, run.Removals, 1)
			assert.Equal(t, "bob", run.Removals[0].Login)
			assert.Equal(t, wantKind, run.Removals[0].Kind)
			assert.Equal(t, importer.ReasonNotSeen, run.Removals[0].Reason)

			u, err := st.UserByID(ctx, "acme", bob)
			require.NoError(t, err)
			assert.Equal(t, c.deleted, u.Deleted, c.mapping)
			assert.True(t, u.Disabled || u.Deleted, c.mapping)

			runs, err := st.Runs(ctx, "acme", 1)
			require.NoError(t, err)
			require.Len(t, runs, 1)
			assert.Equal(t, run.Removals, runs[0].Removals, "removals read back from the history")
			assert.Equal(t, 1, runs[0].Summary.Removals())
		}
	})
}

// TestFailedFullImportKeepsItsKind: a full run that fails is recorded as
// full (it was meant to see every removal); an incremental one that fails
// is not.
func TestFailedFullImportKeepsItsKind(t *testing.T) {
	ctx := context.Background()
	st := newStore(t, importersql.SQLite, sqlstoretest.Open(t, importersql.SQLite))
	require.NoError(t, st.PutMapping(ctx, importersql.Mapping{Tenant: "acme", ID: "staff"}))
	require.NoError(t, st.SetCursor(ctx, "acme", "staff", "c1"))
	src := &source{err: errOffline}
	im, err := importer.New(importer.Config{Source: src, Store: st, Checkpoints: st})
	require.NoError(t, err)
	m, err := st.Mapping(ctx, "acme", "staff")
	require.NoError(t, err)

	_, run, _, err := st.Import(ctx, im, m, importersql.ImportOptions{}, nil)
	require.ErrorIs(t, err, errOffline)
	assert.Equal(t, "failed", run.Status)
	assert.False(t, run.Full, "incremental from c1")

	_, run, _, err = st.Import(ctx, im, m, importersql.ImportOptions{Full: true}, nil)
	require.ErrorIs(t, err, errOffline)
	assert.True(t, run.Full, "a failed full run is still a full run")
	runs, err := st.Runs(ctx, "acme", 2)
	require.NoError(t, err)
	require.Len(t, runs, 2)
	assert.True(t, runs[0].Full)
	assert.False(t, runs[1].Full)
}

// TestMappingRemovalPolicyStored: a changed policy is a changed mapping (its
// next import is full); an unknown policy is refused; rows written before
// policies and removals were stored read as the defaults.
func TestMappingRemovalPolicyStored(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		ctx := context.Background()
		st := newStore(t, d, db)
		m := importersql.Mapping{Tenant: "a", ID: "staff", Mapping: directory.Mapping{OUs: []string{"ou=staff,dc=x"}}}
		require.NoError(t, st.PutMapping(ctx, m))
		require.NoError(t, st.SetCursor(ctx, "a", "staff", "c1"))
		m.Removal = importer.RemoveDelete
		require.NoError(t, st.PutMapping(ctx, m))
		got, err := st.Mapping(ctx, "a", "staff")
		require.NoError(t, err)
		assert.Equal(t, importer.RemoveDelete, got.Removal)
		assert.Equal(t, m.Mapping, got.Mapping)
		assert.Empty(t, got.Cursor, "a changed policy's next import is full")

		m.Removal = "purge"
		require.ErrorIs(t, st.PutMapping(ctx, m), importer.ErrInvalidJob)

		// Rows as examples/cloud wrote them before: the bare mapping, the
		// bare summary.
		_, err = db.Exec(d.Rebind(`INSERT INTO mappings (tenant, id, mapping, cursor, created_at) VALUES (?, ?, ?, '', 0)`),
			"a", "old", `{"ous":["ou=old,dc=x"]}`)
		require.NoError(t, err)
		got, err = st.Mapping(ctx, "a", "old")
		require.NoError(t, err)
		assert.Equal(t, importer.RemovalPolicy(""), got.Removal)
		assert.Equal(t, []string{"ou=old,dc=x"}, got.Mapping.OUs)
		_, err = db.Exec(d.Rebind(`INSERT INTO import_runs (tenant, mapping_id, started_at, finished_at, full_scan, status, summary, error)
			VALUES (?, ?, 0, 0, 1, 'ok', ?, '')`), "a", "old", `{"creates":3}`)
		require.NoError(t, err)
		runs, err := st.Runs(ctx, "a", 1)
		require.NoError(t, err)
		require.Len(t, runs, 1)
		assert.Equal(t, 3, runs[0].Summary.Creates)
		assert.Empty(t, runs[0].Removals)
	})
}

// TestActivationStoreUserDisabled: a user an import disabled or deleted is
// disabled for activation's device authentication; an unknown one is not
// found.
func TestActivationStoreUserDisabled(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		ctx := context.Background()
		st := newStore(t, d, db)
		act := activation.NewSQLStore(db, d)
		require.NoError(t, act.Migrate(ctx))
		var as activation.UserStatusStore = importersql.ActivationStore{Users: st, Activations: act}

		_, err := as.UserDisabled(ctx, "t", "nobody")
		require.ErrorIs(t, err, activation.ErrNotFound)

		sc := importer.Scope{Tenant: "t", MappingID: "m"}
		alice := importer.Record{DirectoryID: "guid-alice", Login: "alice"}
		bob := importer.Record{DirectoryID: "guid-bob", Login: "bob"}
		require.NoError(t, st.Apply(ctx, sc, []importer.Op{{Kind: importer.OpCreate, Record: alice}, {Kind: importer.OpCreate, Record: bob}}))
		aliceID, err := st.CloudUserID(ctx, "t", "guid-alice")
		require.NoError(t, err)
		bobID, err := st.CloudUserID(ctx, "t", "guid-bob")
		require.NoError(t, err)
		for _, id := range []string{aliceID, bobID} {
			off, err := as.UserDisabled(ctx, "t", id)
			require.NoError(t, err)
			assert.False(t, off)
		}
		_, err = as.UserDisabled(ctx, "other", aliceID)
		require.ErrorIs(t, err, activation.ErrNotFound, "another tenant's user is not found")

		alice.Disabled = true
		require.NoError(t, st.Apply(ctx, sc, []importer.Op{{Kind: importer.OpDisable, Record: alice}, {Kind: importer.OpDelete, Record: bob}}))
		for _, id := range []string{aliceID, bobID} {
			off, err := as.UserDisabled(ctx, "t", id)
			require.NoError(t, err)
			assert.True(t, off, id)
		}
	})
}

// TestUsersIDIndex: device authentications and key releases read users by
// (tenant, cloud ID); Migrate creates the index they use.
func TestUsersIDIndex(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		newStore(t, d, db)
		q := `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'users_id'`
		if d == sqlstore.Postgres {
			q = `SELECT count(*) FROM pg_indexes WHERE indexname = 'users_id' AND schemaname = current_schema()`
		}
		assert.Equal(t, 1, count(t, d, db, q))
	})
}
