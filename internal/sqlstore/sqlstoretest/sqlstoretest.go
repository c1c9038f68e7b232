// Package sqlstoretest opens the databases the store tests run against: a
// fresh SQLite file, and a fresh schema in the PostgreSQL named by
// LIAISON_TEST_POSTGRES_URL (skipped with a message when unset, failed
// when unset under CI=true). Each database is removed when the test ends.
package sqlstoretest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the database/sql driver "pgx"
	_ "modernc.org/sqlite"             // the database/sql driver "sqlite"

	"github.com/liaisonhq/liaison/internal/sqlstore"
)

// EnvPostgres names the PostgreSQL URL the tests use.
const EnvPostgres = "LIAISON_TEST_POSTGRES_URL"

// SQLiteDSN is how the stores expect SQLite opened: WAL, a busy timeout,
// and transactions that take the write lock at BEGIN.
func SQLiteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

// Open returns a fresh, empty database of dialect d.
func Open(t testing.TB, d sqlstore.Dialect) *sql.DB {
	t.Helper()
	if d == sqlstore.SQLite {
		db, err := sql.Open("sqlite", SQLiteDSN(filepath.Join(t.TempDir(), "test.db")))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	base := os.Getenv(EnvPostgres)
	if base == "" && os.Getenv("CI") == "true" {
		t.Fatalf("%s is not set: under CI=true the PostgreSQL tests must run (scripts/testbed/start runs pg-up, which writes it to the test bed's env file)", EnvPostgres)
	}
	if base == "" {
		t.Skipf("%s is not set: PostgreSQL tests skipped (e.g. postgres://user:pass@127.0.0.1:5432/db?sslmode=disable)", EnvPostgres)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema in %s: %v", EnvPostgres, err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		a, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer a.Close()
		_, _ = a.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`)
	})
	return db
}

// Dialects runs fn once per dialect, as subtests "sqlite" and "postgres".
func Dialects(t *testing.T, fn func(t *testing.T, d sqlstore.Dialect, db *sql.DB)) {
	for _, d := range []sqlstore.Dialect{sqlstore.SQLite, sqlstore.Postgres} {
		t.Run(d.String(), func(t *testing.T) { fn(t, d, Open(t, d)) })
	}
}
