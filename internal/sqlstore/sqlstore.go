// Package sqlstore is what the module's database/sql stores share: the SQL
// dialect (placeholders and the few types that differ between SQLite and
// PostgreSQL) and versioned schema migrations.
//
// It is internal: each public store re-exports [Dialect] and its values
// (activation.Postgres, tunnelsql.SQLite, ...) so that one value works for
// every store. It opens no database and imports no driver.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Dialect is the SQL flavour of a database.
type Dialect int

const (
	// SQLite: "?" placeholders, BLOB, INTEGER PRIMARY KEY AUTOINCREMENT.
	SQLite Dialect = iota
	// Postgres (PostgreSQL 12 and later): "$1" placeholders, BYTEA,
	// BIGSERIAL, advisory locks around migrations.
	Postgres
)

// String returns "sqlite" or "postgres".
func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// Valid reports whether d is a known dialect.
func (d Dialect) Valid() bool { return d == SQLite || d == Postgres }

// Rebind rewrites the "?" placeholders of query for d. Queries of this
// module carry no "?" inside literals.
func (d Dialect) Rebind(query string) string {
	if d != Postgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// DDL rewrites a CREATE statement written for SQLite for d: BLOB becomes
// BYTEA and "INTEGER PRIMARY KEY AUTOINCREMENT" BIGSERIAL PRIMARY KEY.
// Columns holding Unix nanoseconds must be written BIGINT (PostgreSQL's
// INTEGER has 32 bits; SQLite treats both alike).
func (d Dialect) DDL(stmt string) string {
	if d != Postgres {
		return stmt
	}
	stmt = strings.ReplaceAll(stmt, "INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
	return strings.ReplaceAll(stmt, "BLOB", "BYTEA")
}

// migrationLock is the PostgreSQL advisory lock key that serialises the
// migrations of every node starting at once ("liaison" in ASCII).
const migrationLock = 0x6c6961697369

// ErrNewerSchema is returned by [Migrate] when the database was migrated by
// a newer version of the store than the running one.
var ErrNewerSchema = errors.New("database schema is newer than this program")

// Migrate brings component's tables to len(steps): it runs, in one
// transaction, every step after the version recorded in the table
// liaison_migrations and records the new version. Steps are append-only:
// step i (from 0) is version i+1, and a released step is never edited.
// Statements go through [Dialect.DDL]. Several processes may migrate one
// database at once: PostgreSQL takes an advisory lock, SQLite its write
// lock.
func Migrate(ctx context.Context, db *sql.DB, d Dialect, component string, steps []string) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: migrate: %w", component, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the first error is the one to report
		}
	}()
	if d == Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("%s: migrate: lock: %w", component, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS liaison_migrations (component TEXT PRIMARY KEY, version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("%s: migrate: %w", component, err)
	}
	var version int
	err = tx.QueryRowContext(ctx, d.Rebind(`SELECT version FROM liaison_migrations WHERE component = ?`), component).Scan(&version)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: migrate: %w", component, err)
	}
	if version > len(steps) {
		return fmt.Errorf("%s: migrate: %w (version %d, this program knows %d)", component, ErrNewerSchema, version, len(steps))
	}
	if version == len(steps) {
		return tx.Rollback()
	}
	for i := version; i < len(steps); i++ {
		if _, err := tx.ExecContext(ctx, d.DDL(steps[i])); err != nil {
			return fmt.Errorf("%s: migrate to version %d: %w", component, i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, d.Rebind(`INSERT INTO liaison_migrations (component, version) VALUES (?, ?)
		ON CONFLICT (component) DO UPDATE SET version = excluded.version`), component, len(steps)); err != nil {
		return fmt.Errorf("%s: migrate: %w", component, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: migrate: %w", component, err)
	}
	return nil
}

// Version returns component's schema version (0 before any migration).
func Version(ctx context.Context, db *sql.DB, d Dialect, component string) (int, error) {
	var v int
	err := db.QueryRowContext(ctx, d.Rebind(`SELECT version FROM liaison_migrations WHERE component = ?`), component).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, err
}
