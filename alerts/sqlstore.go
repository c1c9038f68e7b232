package alerts

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/liaisonhq/liaison/internal/sqlstore"
)

// Dialect is the SQL flavour of a [SQLStore]; the same type as the other
// stores' of this module (tunnelsql.Dialect, importersql.Dialect), so one
// value configures them all.
type Dialect = sqlstore.Dialect

// The dialects: SQLite ("?" placeholders) and Postgres ("$1", BYTEA), both
// tested (PostgreSQL when LIAISON_TEST_POSTGRES_URL names one).
const (
	SQLite   = sqlstore.SQLite
	Postgres = sqlstore.Postgres
)

// SQLStore is a [Store] over database/sql. The package imports no driver;
// open the *sql.DB yourself and call [SQLStore.Migrate] once. One open
// alert per key is enforced by a partial unique index.
type SQLStore struct {
	db      *sql.DB
	dialect Dialect
}

var _ Store = (*SQLStore)(nil)

// NewSQLStore returns a store over db.
func NewSQLStore(db *sql.DB, d Dialect) *SQLStore { return &SQLStore{db: db, dialect: d} }

// schema returns the statements creating the tables.
func schema() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS alerts (
		id TEXT NOT NULL PRIMARY KEY,
		tenant TEXT NOT NULL,
		kind TEXT NOT NULL,
		subject TEXT NOT NULL,
		severity TEXT NOT NULL,
		message TEXT NOT NULL,
		first_seen BIGINT NOT NULL,
		last_seen BIGINT NOT NULL,
		resolved_at BIGINT NOT NULL,
		count BIGINT NOT NULL
	)`,
		`CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts (tenant, kind, subject) WHERE resolved_at = 0`,
		`CREATE INDEX IF NOT EXISTS alerts_tenant_first_seen ON alerts (tenant, first_seen)`,
	}
}

// Migrate creates the store's tables or brings them to this version
// (versioned, safe to run from several processes at once).
func (s *SQLStore) Migrate(ctx context.Context) error {
	return sqlstore.Migrate(ctx, s.db, s.dialect, "alerts", schema())
}

// q rewrites "?" placeholders for the dialect.
func (s *SQLStore) q(query string) string { return s.dialect.Rebind(query) }

const alertColumns = `id, tenant, kind, subject, severity, message, first_seen, last_seen, resolved_at, count`

type scanner interface{ Scan(dest ...any) error }

func scanAlert(r scanner) (Alert, error) {
	var a Alert
	var first, last, resolved int64
	if err := r.Scan(&a.ID, &a.Tenant, &a.Kind, &a.Subject, &a.Severity, &a.Message, &first, &last, &resolved, &a.Count); err != nil {
		return Alert{}, err
	}
	a.FirstSeen, a.LastSeen = time.Unix(0, first), time.Unix(0, last)
	if resolved != 0 {
		a.ResolvedAt = time.Unix(0, resolved)
	}
	return a, nil
}

// Raise implements [Store]: an update of the open alert, or an insert.
func (s *SQLStore) Raise(ctx context.Context, a Alert, at time.Time) (_ Alert, _ bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Alert{}, false, fmt.Errorf("alerts: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // err is what matters
		}
	}()
	r, err := tx.ExecContext(ctx, s.q(`UPDATE alerts SET last_seen = ?, severity = ?, message = ?, count = count + 1
		WHERE tenant = ? AND kind = ? AND subject = ? AND resolved_at = 0`),
		at.UnixNano(), a.Severity, a.Message, a.Tenant, a.Kind, a.Subject)
	if err != nil {
		return Alert{}, false, fmt.Errorf("alerts: raise: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return Alert{}, false, fmt.Errorf("alerts: raise: %w", err)
	}
	created := n == 0
	if created {
		var id [16]byte
		_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
		a.ID = hex.EncodeToString(id[:])
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO alerts (`+alertColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 1)`),
			a.ID, a.Tenant, a.Kind, a.Subject, a.Severity, a.Message, at.UnixNano(), at.UnixNano()); err != nil {
			return Alert{}, false, fmt.Errorf("alerts: raise: %w", err)
		}
	}
	got, err := scanAlert(tx.QueryRowContext(ctx, s.q(`SELECT `+alertColumns+` FROM alerts
		WHERE tenant = ? AND kind = ? AND subject = ? AND resolved_at = 0`), a.Tenant, a.Kind, a.Subject))
	if err != nil {
		return Alert{}, false, fmt.Errorf("alerts: raise: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Alert{}, false, fmt.Errorf("alerts: raise: %w", err)
	}
	return got, created, nil
}

// Resolve implements [Store].
func (s *SQLStore) Resolve(ctx context.Context, tenant string, kind Kind, subject string, at time.Time) (_ Alert, _ bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Alert{}, false, fmt.Errorf("alerts: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // err is what matters
		}
	}()
	a, err := scanAlert(tx.QueryRowContext(ctx, s.q(`SELECT `+alertColumns+` FROM alerts
		WHERE tenant = ? AND kind = ? AND subject = ? AND resolved_at = 0`), tenant, kind, subject))
	if errors.Is(err, sql.ErrNoRows) {
		return Alert{}, false, tx.Commit()
	}
	if err != nil {
		return Alert{}, false, fmt.Errorf("alerts: resolve: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE alerts SET resolved_at = ? WHERE id = ?`), at.UnixNano(), a.ID); err != nil {
		return Alert{}, false, fmt.Errorf("alerts: resolve: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Alert{}, false, fmt.Errorf("alerts: resolve: %w", err)
	}
	a.ResolvedAt = time.Unix(0, at.UnixNano())
	return a, true, nil
}

// List implements [Store].
func (s *SQLStore) List(ctx context.Context, f Filter) ([]Alert, error) {
	query := `SELECT ` + alertColumns + ` FROM alerts WHERE 1 = 1`
	var args []any
	if f.Tenant != "" {
		query += ` AND tenant = ?`
		args = append(args, f.Tenant)
	}
	if f.Kind != "" {
		query += ` AND kind = ?`
		args = append(args, f.Kind)
	}
	if f.OpenOnly {
		query += ` AND resolved_at = 0`
	}
	query += ` ORDER BY first_seen DESC, id DESC`
	if f.Limit > 0 {
		query += ` LIMIT ` + strconv.Itoa(f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("alerts: list: %w", err)
	}
	defer rows.Close()
	var out []Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, fmt.Errorf("alerts: list: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("alerts: list: %w", err)
	}
	return out, nil
}
