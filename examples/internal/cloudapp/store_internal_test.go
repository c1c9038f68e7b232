package cloudapp

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory/importer"
)

func testDB(t *testing.T) db {
	t.Helper()
	sqldb, err := sql.Open("sqlite", sqliteDSN(filepath.Join(t.TempDir(), "t.db")))
	require.NoError(t, err)
	t.Cleanup(func() { sqldb.Close() })
	d := newDB(sqldb)
	require.NoError(t, d.createSchema(context.Background()))
	return d
}

func TestUserStoreCheckpointRoundTrip(t *testing.T) {
	ctx := context.Background()
	us := userStore{db: testDB(t), now: time.Now, rnd: randomID}
	sc := importer.Scope{Tenant: "t", MappingID: "m"}
	c, err := us.LoadCheckpoint(ctx, sc)
	require.NoError(t, err)
	assert.Nil(t, c)

	plan := &importer.Plan{Scope: sc, Full: true, Cursor: "cur", Existing: 2, Summary: importer.Summary{Creates: 1, Deletes: 1},
		Ops: []importer.Op{
			{Kind: importer.OpCreate, Record: importer.Record{DirectoryID: "a", Login: "a", Groups: []string{"cn=g"}}},
			{Kind: importer.OpDelete, Record: importer.Record{DirectoryID: "b", Login: "b"}},
		}}
	saved := time.Unix(1700000000, 0)
	require.NoError(t, us.SaveCheckpoint(ctx, sc, importer.Checkpoint{Plan: plan, Saved: saved}))
	require.NoError(t, us.SaveCheckpoint(ctx, sc, importer.Checkpoint{Applied: 1, Saved: saved.Add(time.Second)}))
	c, err = us.LoadCheckpoint(ctx, sc)
	require.NoError(t, err)
	require.NotNil(t, c)
	assert.Equal(t, 1, c.Applied)
	assert.Equal(t, plan, c.Plan, "the plan of the first save is kept")
	assert.True(t, c.Saved.Equal(saved.Add(time.Second)))
	other, err := us.LoadCheckpoint(ctx, importer.Scope{Tenant: "t2", MappingID: "m"})
	require.NoError(t, err)
	assert.Nil(t, other)
	require.NoError(t, us.ClearCheckpoint(ctx, sc))
	c, err = us.LoadCheckpoint(ctx, sc)
	require.NoError(t, err)
	assert.Nil(t, c)
}

// TestUserStoreCheckpointProgress covers the progress row kept apart from
// the plan: a new plan resets the progress of the previous one, a batch
// leaves the plan's row alone, and a checkpoint written before the progress
// table existed (no progress row) still resumes from its own applied.
func TestUserStoreCheckpointProgress(t *testing.T) {
	ctx := context.Background()
	sc := importer.Scope{Tenant: "t", MappingID: "m"}
	plan := func(login string) *importer.Plan {
		return &importer.Plan{Scope: sc, Full: true, Ops: []importer.Op{{Kind: importer.OpCreate, Record: importer.Record{DirectoryID: login, Login: login}}}}
	}
	saved := time.Unix(1700000000, 0)
	tests := []struct {
		name        string
		setup       func(t *testing.T, us userStore)
		wantApplied int
		wantLogin   string
		wantSaved   time.Time
	}{
		{"new plan resets progress", func(t *testing.T, us userStore) {
			require.NoError(t, us.SaveCheckpoint(ctx, sc, importer.Checkpoint{Plan: plan("old"), Saved: saved}))
			require.NoError(t, us.SaveCheckpoint(ctx, sc, importer.Checkpoint{Applied: 7, Saved: saved.Add(time.Second)}))
			require.NoError(t, us.SaveCheckpoint(ctx, sc, importer.Checkpoint{Plan: plan("new"), Applied: 0, Saved: saved.Add(2 * time.Second)}))
		}, 0, "new", saved.Add(2 * time.Second)},
		{"batches leave the plan row alone", func(t *testing.T, us userStore) {
			require.NoError(t, us.SaveCheckpoint(ctx, sc, importer.Checkpoint{Plan: plan("a"), Saved: saved}))
			for i := 1; i <= 3; i++ {
				require.NoError(t, us.SaveCheckpoint(ctx, sc, importer.Checkpoint{Applied: i * 500, Saved: saved.Add(time.Duration(i) * time.Second)}))
			}
			var applied int
			require.NoError(t, us.QueryRowContext(ctx, `SELECT applied FROM import_checkpoints WHERE tenant = ? AND mapping_id = ?`,
				sc.Tenant, sc.MappingID).Scan(&applied))
			require.Equal(t, 0, applied, "the plan's row keeps the values it was saved with")
		}, 1500, "a", saved.Add(3 * time.Second)},
		{"checkpoint without a progress row", func(t *testing.T, us userStore) {
			_, err := us.exec(ctx, `INSERT INTO import_checkpoints (tenant, mapping_id, plan, applied, saved_at) VALUES (?, ?, ?, ?, ?)`,
				sc.Tenant, sc.MappingID, `{"scope":{"tenant":"t","mapping_id":"m"},"full":true,"ops":[{"kind":"create","record":{"directory_id":"legacy","login":"legacy"}}]}`,
				3, saved.UnixNano())
			require.NoError(t, err)
		}, 3, "legacy", saved},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			us := userStore{db: testDB(t), now: time.Now, rnd: randomID}
			tt.setup(t, us)
			c, err := us.LoadCheckpoint(ctx, sc)
			require.NoError(t, err)
			require.NotNil(t, c)
			assert.Equal(t, tt.wantApplied, c.Applied)
			assert.True(t, c.Saved.Equal(tt.wantSaved), "saved %v, want %v", c.Saved, tt.wantSaved)
			require.Len(t, c.Plan.Ops, 1)
			assert.Equal(t, tt.wantLogin, c.Plan.Ops[0].Record.Login)

			require.NoError(t, us.ClearCheckpoint(ctx, sc))
			var n int
			require.NoError(t, us.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM import_checkpoints) + (SELECT count(*) FROM import_progress)`).Scan(&n))
			assert.Zero(t, n, "clear removes the plan and its progress")
		})
	}
}

func TestUserStoreSoftDeleteKeepsID(t *testing.T) {
	ctx := context.Background()
	us := userStore{db: testDB(t), now: time.Now, rnd: randomID}
	sc := importer.Scope{Tenant: "t", MappingID: "m"}
	rec := importer.Record{DirectoryID: "guid", Login: "alice", Groups: []string{"cn=a"}}
	require.NoError(t, us.Apply(ctx, sc, []importer.Op{{Kind: importer.OpCreate, Record: rec}}))
	first, err := us.list(ctx, "t")
	require.NoError(t, err)
	require.Len(t, first, 1)

	require.NoError(t, us.Apply(ctx, sc, []importer.Op{{Kind: importer.OpDelete, Record: rec}}))
	_, ok, err := us.User(ctx, sc, "guid")
	require.NoError(t, err)
	assert.False(t, ok)
	// Applying the same batch twice is harmless.
	require.NoError(t, us.Apply(ctx, sc, []importer.Op{{Kind: importer.OpDelete, Record: rec}}))

	rec.Login = "alice2"
	require.NoError(t, us.Apply(ctx, sc, []importer.Op{{Kind: importer.OpCreate, Record: rec}}))
	back, err := us.list(ctx, "t")
	require.NoError(t, err)
	require.Len(t, back, 1)
	assert.Equal(t, first[0].ID, back[0].ID, "a returning user keeps its cloud ID")
	assert.Equal(t, "alice2", back[0].Login)
	got, ok, err := us.User(ctx, sc, "guid")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, rec, got)
}
