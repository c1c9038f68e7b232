// Package tunnelsql is the connector registry of a [tunnel.Gateway] in SQL:
// enrollment tokens (kept hashed) and enrolled connectors with their public
// keys and revocation, over database/sql with the SQLite and PostgreSQL
// dialects. Use it instead of [tunnel.MemoryStore] as soon as connectors
// must survive a restart, or several gateways share one database.
//
//	st, err := tunnelsql.New(tunnelsql.Config{DB: db, Dialect: tunnelsql.Postgres})
//	...
//	err = st.Migrate(ctx) // creates or upgrades its tables
//	gw, err := tunnel.NewGateway(tunnel.GatewayConfig{Store: st, ...})
//
// The package imports no driver: open the *sql.DB with the driver of your
// choice. It keeps nothing in memory, so every node reading the same
// database sees every enrollment and revocation.
package tunnelsql

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/liaisonhq/liaison/internal/sqlstore"
	"github.com/liaisonhq/liaison/tunnel"
)

// Dialect is the SQL flavour of the database; the same type as the other
// stores' of this module (activation.Dialect, ...).
type Dialect = sqlstore.Dialect

// The dialects.
const (
	SQLite   = sqlstore.SQLite
	Postgres = sqlstore.Postgres
)

// Config configures a Store. DB is required.
type Config struct {
	// DB is the database; the caller opens and closes it. With SQLite,
	// open it with a busy timeout and WAL.
	DB *sql.DB
	// Dialect is SQLite (the zero value) or Postgres.
	Dialect Dialect
	// Writes, when set, is held around every write: with SQLite, pass the
	// one lock shared by every store of the database, so writers queue in
	// process, in order, instead of polling SQLite's busy handler. Nil
	// takes no lock (PostgreSQL needs none).
	Writes sync.Locker
}

// Store is a [tunnel.Store] over SQL, plus the listing an admin needs.
type Store struct {
	db *sql.DB
	d  Dialect
	w  sync.Locker
}

var _ tunnel.Store = (*Store)(nil)

// New returns a Store over cfg.DB. Call Migrate before use.
func New(cfg Config) (*Store, error) {
	if cfg.DB == nil {
		return nil, errors.New("tunnelsql: Config.DB is required")
	}
	if !cfg.Dialect.Valid() {
		return nil, fmt.Errorf("tunnelsql: unknown Config.Dialect %d", cfg.Dialect)
	}
	w := cfg.Writes
	if w == nil {
		w = noLock{}
	}
	return &Store{db: cfg.DB, d: cfg.Dialect, w: w}, nil
}

type noLock struct{}

func (noLock) Lock()   {}
func (noLock) Unlock() {}

// migrations are the store's schema versions (append only).
var migrations = []string{
	`CREATE TABLE IF NOT EXISTS tunnel_enrollments (hash BLOB PRIMARY KEY, tenant TEXT NOT NULL, expires_at BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS tunnel_connectors (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, public_key BLOB NOT NULL,
		enrolled_at BIGINT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)`,
	`CREATE INDEX IF NOT EXISTS tunnel_connectors_tenant ON tunnel_connectors (tenant)`,
}

// Migrate creates the store's tables or brings them to this version. It
// is safe to run from several processes at once.
func (s *Store) Migrate(ctx context.Context) error {
	return sqlstore.Migrate(ctx, s.db, s.d, "tunnelsql", migrations)
}

func (s *Store) exec(ctx context.Context, q string, args ...any) error {
	s.w.Lock()
	defer s.w.Unlock()
	_, err := s.db.ExecContext(ctx, s.d.Rebind(q), args...)
	return err
}

// PutEnrollment implements [tunnel.Store].
func (s *Store) PutEnrollment(ctx context.Context, rec tunnel.EnrollmentRecord) error {
	if err := s.exec(ctx, `INSERT INTO tunnel_enrollments (hash, tenant, expires_at) VALUES (?, ?, ?)`,
		rec.Hash[:], rec.Tenant, rec.Expires.UnixNano()); err != nil {
		return fmt.Errorf("tunnelsql: put enrollment: %w", err)
	}
	return nil
}

// ConsumeEnrollment implements [tunnel.Store]. DELETE ... RETURNING makes it
// atomic: two connectors racing with one token cannot both enroll, on one
// node or several.
func (s *Store) ConsumeEnrollment(ctx context.Context, h [32]byte, now time.Time) (tunnel.EnrollmentRecord, error) {
	var tenant string
	var exp int64
	s.w.Lock()
	err := s.db.QueryRowContext(ctx, s.d.Rebind(`DELETE FROM tunnel_enrollments WHERE hash = ? RETURNING tenant, expires_at`), h[:]).Scan(&tenant, &exp)
	s.w.Unlock()
	if errors.Is(err, sql.ErrNoRows) {
		return tunnel.EnrollmentRecord{}, tunnel.ErrBadEnrollmentToken
	}
	if err != nil {
		return tunnel.EnrollmentRecord{}, fmt.Errorf("tunnelsql: consume enrollment: %w", err)
	}
	rec := tunnel.EnrollmentRecord{Hash: h, Tenant: tenant, Expires: time.Unix(0, exp)}
	if !now.Before(rec.Expires) {
		return tunnel.EnrollmentRecord{}, tunnel.ErrBadEnrollmentToken
	}
	return rec, nil
}

// PutConnector implements [tunnel.Store].
func (s *Store) PutConnector(ctx context.Context, rec tunnel.ConnectorRecord) error {
	revoked := 0
	if rec.Revoked {
		revoked = 1
	}
	if err := s.exec(ctx, `INSERT INTO tunnel_connectors (id, tenant, public_key, enrolled_at, revoked) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, public_key = excluded.public_key,
		enrolled_at = excluded.enrolled_at, revoked = excluded.revoked`,
		rec.ID, rec.Tenant, []byte(rec.PublicKey), rec.Enrolled.UnixNano(), revoked); err != nil {
		return fmt.Errorf("tunnelsql: put connector: %w", err)
	}
	return nil
}

// Connector implements [tunnel.Store].
func (s *Store) Connector(ctx context.Context, id string) (tunnel.ConnectorRecord, error) {
	recs, err := s.list(ctx, `WHERE id = ?`, id)
	if err != nil {
		return tunnel.ConnectorRecord{}, err
	}
	if len(recs) == 0 {
		return tunnel.ConnectorRecord{}, tunnel.ErrUnknownConnector
	}
	return recs[0], nil
}

// Connectors lists the connectors of tenant ("" for every tenant), revoked
// ones included, oldest enrollment first.
func (s *Store) Connectors(ctx context.Context, tenant string) ([]tunnel.ConnectorRecord, error) {
	if tenant == "" {
		return s.list(ctx, "")
	}
	return s.list(ctx, `WHERE tenant = ?`, tenant)
}

func (s *Store) list(ctx context.Context, where string, args ...any) ([]tunnel.ConnectorRecord, error) {
	rows, err := s.db.QueryContext(ctx, s.d.Rebind(`SELECT id, tenant, public_key, enrolled_at, revoked FROM tunnel_connectors `+where+` ORDER BY enrolled_at, id`), args...)
	if err != nil {
		return nil, fmt.Errorf("tunnelsql: list connectors: %w", err)
	}
	defer rows.Close()
	var out []tunnel.ConnectorRecord
	for rows.Next() {
		var r tunnel.ConnectorRecord
		var pk []byte
		var enrolled int64
		var revoked int
		if err := rows.Scan(&r.ID, &r.Tenant, &pk, &enrolled, &revoked); err != nil {
			return nil, fmt.Errorf("tunnelsql: list connectors: %w", err)
		}
		r.PublicKey, r.Enrolled, r.Revoked = ed25519.PublicKey(pk), time.Unix(0, enrolled), revoked != 0
		out = append(out, r)
	}
	return out, rows.Err()
}
