package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/internal/sqlstore"
	"github.com/liaisonhq/liaison/internal/sqlstore/sqlstoretest"
)

func TestRebind(t *testing.T) {
	q := `SELECT a FROM t WHERE b = ? AND c IN (?, ?)`
	assert.Equal(t, q, sqlstore.SQLite.Rebind(q))
	assert.Equal(t, `SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)`, sqlstore.Postgres.Rebind(q))
}

func TestMigrate(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		ctx := context.Background()
		v1 := []string{`CREATE TABLE m_a (id INTEGER PRIMARY KEY AUTOINCREMENT, b BLOB NOT NULL, at BIGINT NOT NULL)`}
		require.NoError(t, sqlstore.Migrate(ctx, db, d, "test", v1))
		require.NoError(t, sqlstore.Migrate(ctx, db, d, "test", v1), "a second run changes nothing")
		v, err := sqlstore.Version(ctx, db, d, "test")
		require.NoError(t, err)
		assert.Equal(t, 1, v)

		v2 := append(v1, `CREATE TABLE m_b (x TEXT)`)
		require.NoError(t, sqlstore.Migrate(ctx, db, d, "test", v2))
		v, err = sqlstore.Version(ctx, db, d, "test")
		require.NoError(t, err)
		assert.Equal(t, 2, v)
		// Nanosecond timestamps need 64 bits; ids are generated; blobs are bytes.
		_, err = db.ExecContext(ctx, d.Rebind(`INSERT INTO m_a (b, at) VALUES (?, ?)`), []byte{0, 1, 2}, int64(1)<<62)
		require.NoError(t, err)
		var id, at int64
		var b []byte
		require.NoError(t, db.QueryRowContext(ctx, `SELECT id, b, at FROM m_a`).Scan(&id, &b, &at))
		assert.Equal(t, int64(1), id)
		assert.Equal(t, []byte{0, 1, 2}, b)
		assert.Equal(t, int64(1)<<62, at)

		err = sqlstore.Migrate(ctx, db, d, "test", v1)
		assert.True(t, errors.Is(err, sqlstore.ErrNewerSchema), "an older program refuses a newer schema: %v", err)
		// A failing step leaves the version where it was.
		bad := append(v2, `CREATE TABLE m_a (dup TEXT)`)
		require.Error(t, sqlstore.Migrate(ctx, db, d, "test", bad))
		v, err = sqlstore.Version(ctx, db, d, "test")
		require.NoError(t, err)
		assert.Equal(t, 2, v)
	})
}
