package cloudapp

import (
	"context"
	"database/sql"

	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/liaisonhq/liaison/directory/importer/importersql"
)

// schema holds cloudapp's own tables; activation and alerts create theirs.
var schema = []string{}

// db is the cloud's database. SQLite has one writer at a time, and its busy
// handler polls with growing sleeps: under a storm of concurrent writers a
// waiting writer can lose the lock to newcomers again and again until its
// busy timeout expires (SQLITE_BUSY, a 500 to the device) and the lucky ones
// still wait seconds. So every write of this package queues on w, a one-slot
// gate whose waiters Go serves in order, and holds it for one statement or
// transaction: SQLite's busy handler is left with writes from other packages
// (alerts) and processes. Reads do not take the gate (WAL readers never wait
// for the writer).
type db struct {
	*sql.DB
	w     chan struct{}
	stmts *sync.Map // query -> *sql.Stmt, for the per-activation queries
}

func newDB(sqldb *sql.DB) db { return db{DB: sqldb, w: make(chan struct{}, 1), stmts: new(sync.Map)} }

// stmt returns query prepared once: parsing a statement costs more than
// running it, and database/sql reuses it on every connection.
func (d db) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := d.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := d.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := d.stmts.LoadOrStore(query, st); loaded {
		_ = st.Close() // a concurrent caller prepared it first
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// lock takes the write gate; unlock releases it.
func (d db) lock(ctx context.Context) error {
	select {
	case d.w <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d db) unlock() { <-d.w }

// gate is the write gate as a sync.Locker, for the public stores.
type gate chan struct{}

func (g gate) Lock()   { g <- struct{}{} }
func (g gate) Unlock() { <-g }

// exec runs one writing statement under the write gate.
func (d db) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := d.lock(ctx); err != nil {
		return nil, err
	}
	defer d.unlock()
	return d.ExecContext(ctx, query, args...)
}

func (d db) createSchema(ctx context.Context) error {
	for _, s := range schema {
		if _, err := d.exec(ctx, s); err != nil {
			return fmt.Errorf("cloudapp: create schema: %w", err)
		}
	}
	return nil
}

// Names of the ticket-signing seeds: the one New signs with, the one
// prepared for the next rotation, and the one replaced by the last
// (kept until retired).
const (
	secretScheduler         = "scheduler_ed25519_seed"
	secretSchedulerNext     = "scheduler_ed25519_seed_next"
	secretSchedulerPrevious = "scheduler_ed25519_seed_previous"
)

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// tx runs fn in one transaction under the write gate; what names the
// operation in the error.
func (d db) tx(ctx context.Context, what string, fn func(*sql.Tx) error) error {
	if err := d.lock(ctx); err != nil {
		return fmt.Errorf("cloudapp: %s: %w", what, err)
	}
	defer d.unlock()
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cloudapp: %s: %w", what, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // the first error is the one to report
		return fmt.Errorf("cloudapp: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cloudapp: %s: %w", what, err)
	}
	return nil
}

// Types of the admin API, kept in importersql.
type (
	// User is a cloud user, as the admin API lists it.
	User = importersql.User
	// Mapping is a stored mapping of a tenant, with the cursor of its
	// last successful import.
	Mapping = importersql.Mapping
	// ImportRun is one finished (or refused) import.
	ImportRun = importersql.Run
)

// DeploymentToken is a mass-deployment token as the admin sees it, without
// its secret or hash.
type DeploymentToken struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	MappingID string    `json:"mapping_id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Revoked   bool      `json:"revoked"`
}

func validName(s string) bool {
	return s != "" && len(s) <= 128 && !strings.ContainsAny(s, "/\\ \t\r\n")
}
