package masterkey_test

import (
	"bytes"
	"context"
	"database/sql"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/internal/sqlstore"
	"github.com/liaisonhq/liaison/internal/sqlstore/sqlstoretest"
	"github.com/liaisonhq/liaison/masterkey"
)

func newSecrets(t *testing.T, d sqlstore.Dialect, db *sql.DB, k *masterkey.Key) *masterkey.Secrets {
	t.Helper()
	s, err := masterkey.NewSecrets(masterkey.SecretsConfig{DB: db, Dialect: d, Key: k, Writes: new(sync.Mutex)})
	require.NoError(t, err)
	require.NoError(t, s.Migrate(context.Background()))
	return s
}

func TestSecrets(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		ctx := context.Background()
		k := masterkey.New(bytes.Repeat([]byte{1}, masterkey.Size))
		s := newSecrets(t, d, db, k)
		has, err := masterkey.HasSealed(ctx, db)
		require.NoError(t, err)
		assert.False(t, has)

		// Concurrent first uses agree on one value.
		vals := make([][]byte, 8)
		var wg sync.WaitGroup
		for i := range vals {
			wg.Go(func() {
				v, err := s.Secret(ctx, "seed", 32)
				assert.NoError(t, err)
				vals[i] = v
			})
		}
		wg.Wait()
		for _, v := range vals[1:] {
			assert.Equal(t, vals[0], v)
		}
		var sealed []byte
		require.NoError(t, db.QueryRow(d.Rebind(`SELECT sealed FROM sealed_settings WHERE name = ?`), "seed").Scan(&sealed))
		assert.False(t, bytes.Contains(sealed, vals[0]), "stored sealed, never in the clear")
		has, err = masterkey.HasSealed(ctx, db)
		require.NoError(t, err)
		assert.True(t, has)

		// Another key cannot read it, and says which setting is wrong.
		other := newSecrets(t, d, db, masterkey.New(bytes.Repeat([]byte{2}, masterkey.Size)))
		_, err = other.Secret(ctx, "seed", 32)
		assert.ErrorContains(t, err, "not the one this database was created with")

		// One row cannot stand in for another: a copied sealed value fails.
		_, err = db.Exec(d.Rebind(`INSERT INTO sealed_settings (name, sealed) VALUES (?, ?)`), "copy", sealed)
		require.NoError(t, err)
		_, _, err = s.Existing(ctx, "copy")
		assert.Error(t, err)

		// Rotation: next -> current -> previous, atomically.
		ok, err := s.Rotate(ctx, "seed_next", "seed", "seed_prev")
		require.NoError(t, err)
		assert.False(t, ok, "nothing prepared, nothing rotated")
		next, err := s.Secret(ctx, "seed_next", 32)
		require.NoError(t, err)
		ok, err = s.Rotate(ctx, "seed_next", "seed", "seed_prev")
		require.NoError(t, err)
		assert.True(t, ok)
		cur, _, err := s.Existing(ctx, "seed")
		require.NoError(t, err)
		assert.Equal(t, next, cur)
		prev, _, err := s.Existing(ctx, "seed_prev")
		require.NoError(t, err)
		assert.Equal(t, vals[0], prev)
		_, ok, err = s.Existing(ctx, "seed_next")
		require.NoError(t, err)
		assert.False(t, ok)
		require.NoError(t, s.Delete(ctx, "seed_prev"))
		require.NoError(t, s.Delete(ctx, "seed_prev"), "deleting twice is fine")
	})
}

func TestSealClearSettings(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		ctx := context.Background()
		s := newSecrets(t, d, db, masterkey.New(bytes.Repeat([]byte{1}, masterkey.Size)))
		clearSeed := bytes.Repeat([]byte{0xab}, 32)
		_, err := db.Exec(d.Rebind(`INSERT INTO settings (name, value) VALUES (?, ?)`), "old_seed", clearSeed)
		require.NoError(t, err)
		names, err := s.SealClearSettings(ctx)
		require.NoError(t, err)
		assert.Equal(t, []string{"old_seed"}, names)
		v, ok, err := s.Existing(ctx, "old_seed")
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, clearSeed, v)
		var n int
		require.NoError(t, db.QueryRow(`SELECT count(*) FROM settings`).Scan(&n))
		assert.Zero(t, n, "the clear copies are gone")
		names, err = s.SealClearSettings(ctx)
		require.NoError(t, err)
		assert.Empty(t, names)
	})
}

func TestLoadSecretsRefusesANewKeyOverSealedSecrets(t *testing.T) {
	ctx := context.Background()
	db := sqlstoretest.Open(t, masterkey.SQLite)
	keyFile := t.TempDir() + "/db.key"
	s, created, _, err := masterkey.LoadSecrets(ctx, masterkey.SecretsConfig{DB: db}, keyFile)
	require.NoError(t, err)
	assert.True(t, created)
	first, err := s.Secret(ctx, "seed", 32)
	require.NoError(t, err)

	s, created, _, err = masterkey.LoadSecrets(ctx, masterkey.SecretsConfig{DB: db}, keyFile)
	require.NoError(t, err)
	assert.False(t, created)
	again, err := s.Secret(ctx, "seed", 32)
	require.NoError(t, err)
	assert.Equal(t, first, again, "a restart reads the same secret")

	_, _, _, err = masterkey.LoadSecrets(ctx, masterkey.SecretsConfig{DB: db}, keyFile+".lost")
	assert.ErrorIs(t, err, masterkey.ErrKeyFileMissing)
}
