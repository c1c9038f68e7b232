// Package importersql keeps a cloud's imported users and everything the
// importer needs between runs in SQL: the users ([importer.Store]), resume
// checkpoints ([importer.CheckpointStore]), the scheduler's next runs
// ([importer.ScheduleStore]), the tenants, their mappings with the cursor
// of their last import, and the history of import runs. It is database/sql
// with the SQLite and PostgreSQL dialects; it imports no driver.
//
// Use it for the users table of a cloud endpoint built on
// [importer.Importer] and [importer.Scheduler]:
//
//	st, err := importersql.New(importersql.Config{DB: db, Dialect: importersql.Postgres})
//	err = st.Migrate(ctx)
//	im, err := importer.New(importer.Config{Source: dir, Store: st, Checkpoints: st})
//
// Users are keyed by (tenant, directory ID): the stable ID the directory
// gives an account, never its login. The mapping that last imported a user
// owns it. Deletes are soft, so a user who comes back keeps the cloud ID
// (and devices) it had. [ActivationStore] makes a device activation and an
// import agree on one cloud user, and refuses the devices of a user an
// import disabled or deleted ([activation.UserStatusStore]). Each mapping
// keeps its removal policy ([importer.RemovalPolicy]); [Store.Import] runs
// one import with it and records the run, with who was removed and why.
// It is also the [importer.RunStore] of an [importer.Tracker], so that every
// node sharing the database follows every run.
//
// It won't cache: every node reading the same database sees the same state.
package importersql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/internal/sqlstore"
)

// Dialect is the SQL flavour of the database; the same type as the other
// stores' of this module (tunnelsql.Dialect, activation.Dialect, ...).
type Dialect = sqlstore.Dialect

// The dialects.
const (
	SQLite   = sqlstore.SQLite
	Postgres = sqlstore.Postgres
)

// Config configures a Store. DB is required.
type Config struct {
	// DB is the database; the caller opens and closes it.
	DB *sql.DB
	// Dialect is SQLite (the zero value) or Postgres.
	Dialect Dialect
	// Writes, when set, is held around every write transaction: with
	// SQLite, pass the one lock shared by every store of the database, so
	// writers queue in process, in order, instead of polling SQLite's busy
	// handler (which starves under a storm of activations). Nil takes no
	// lock.
	Writes sync.Locker
	// NewID makes the cloud ID of a new user; nil: 16 random bytes in hex.
	NewID func() string
	// Now is the clock of the created and updated times; nil: time.Now.
	Now func() time.Time
}

// Store is the SQL store. Its methods are safe for concurrent use.
type Store struct {
	db    *sql.DB
	d     Dialect
	w     sync.Locker
	newID func() string
	now   func() time.Time
	stmts sync.Map // query -> *sql.Stmt, for the per-activation queries
}

var (
	_ importer.Store           = (*Store)(nil)
	_ importer.CheckpointStore = (*Store)(nil)
	_ importer.ScheduleStore   = (*Store)(nil)
)

// New returns a Store over cfg.DB. Call Migrate before use.
func New(cfg Config) (*Store, error) {
	if cfg.DB == nil {
		return nil, errors.New("importersql: Config.DB is required")
	}
	if !cfg.Dialect.Valid() {
		return nil, fmt.Errorf("importersql: unknown Config.Dialect %d", cfg.Dialect)
	}
	s := &Store{db: cfg.DB, d: cfg.Dialect, w: cfg.Writes, newID: cfg.NewID, now: cfg.Now}
	if s.w == nil {
		s.w = noLock{}
	}
	if s.newID == nil {
		s.newID = randomID
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

type noLock struct{}

func (noLock) Lock()   {}
func (noLock) Unlock() {}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// migrations are the store's schema versions (append only). Version 1 is
// the schema examples/cloud created before the store was public, so its
// databases migrate without a change.
var migrations = []string{
	`CREATE TABLE IF NOT EXISTS tenants (name TEXT PRIMARY KEY, created_at BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS mappings (tenant TEXT NOT NULL, id TEXT NOT NULL, mapping TEXT NOT NULL,
		cursor TEXT NOT NULL DEFAULT '', created_at BIGINT NOT NULL, PRIMARY KEY (tenant, id))`,
	`CREATE TABLE IF NOT EXISTS users (tenant TEXT NOT NULL, directory_id TEXT NOT NULL, id TEXT NOT NULL,
		mapping_id TEXT NOT NULL, login TEXT NOT NULL, upn TEXT NOT NULL, email TEXT NOT NULL, display_name TEXT NOT NULL,
		dn TEXT NOT NULL, groups_json TEXT NOT NULL, disabled INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
		created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (tenant, directory_id))`,
	`CREATE INDEX IF NOT EXISTS users_scope ON users (tenant, mapping_id, deleted)`,
	`CREATE TABLE IF NOT EXISTS import_checkpoints (tenant TEXT NOT NULL, mapping_id TEXT NOT NULL, plan TEXT NOT NULL,
		applied INTEGER NOT NULL, saved_at BIGINT NOT NULL, PRIMARY KEY (tenant, mapping_id))`,
	// The progress of a checkpoint lives in its own small row: SQLite
	// rewrites a whole row on UPDATE, and the plan of a 100 000-user import
	// is tens of megabytes of overflow pages, so updating applied beside it
	// after every batch was three quarters of the CPU of such an import.
	`CREATE TABLE IF NOT EXISTS import_progress (tenant TEXT NOT NULL, mapping_id TEXT NOT NULL,
		applied INTEGER NOT NULL, saved_at BIGINT NOT NULL, PRIMARY KEY (tenant, mapping_id))`,
	`CREATE TABLE IF NOT EXISTS import_schedule (tenant TEXT PRIMARY KEY, next_run BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS import_runs (id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, mapping_id TEXT NOT NULL,
		started_at BIGINT NOT NULL, finished_at BIGINT NOT NULL, full_scan INTEGER NOT NULL, status TEXT NOT NULL,
		summary TEXT NOT NULL, error TEXT NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS users_id ON users (tenant, id)`,
	// The runs importer.Tracker follows, shared by every node: a run begun
	// through one is followed through any; the partial unique index lets
	// one run of a mapping run at a time across nodes.
	`CREATE TABLE IF NOT EXISTS tracked_runs (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, mapping_id TEXT NOT NULL,
		state TEXT NOT NULL, started_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, run TEXT NOT NULL)`,
	`CREATE UNIQUE INDEX IF NOT EXISTS tracked_runs_running ON tracked_runs (tenant, mapping_id) WHERE state = 'running'`,
	`CREATE INDEX IF NOT EXISTS tracked_runs_tenant ON tracked_runs (tenant, started_at)`,
}

// Migrate creates the store's tables or brings them to this version. It
// is safe to run from several processes at once.
func (s *Store) Migrate(ctx context.Context) error {
	return sqlstore.Migrate(ctx, s.db, s.d, "importersql", migrations)
}

// stmt returns query prepared once for the dialect: parsing a statement
// costs more than running it on the hot paths (one per activation).
func (s *Store) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, s.d.Rebind(query))
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		_ = st.Close() // a concurrent caller prepared it first
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

func (s *Store) exec(ctx context.Context, query string, args ...any) error {
	s.w.Lock()
	defer s.w.Unlock()
	_, err := s.db.ExecContext(ctx, s.d.Rebind(query), args...)
	return err
}

func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return s.db.QueryRowContext(ctx, s.d.Rebind(query), args...)
}

// tx runs fn in one transaction under the write lock; what names the
// operation in the error.
func (s *Store) tx(ctx context.Context, what string, fn func(*sql.Tx) error) error {
	s.w.Lock()
	defer s.w.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("importersql: %s: %w", what, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // the first error is the one to report
		return fmt.Errorf("importersql: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("importersql: %s: %w", what, err)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
