package cloudapp

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"

	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/liaisonhq/liaison/directory/importer/importersql"
	"github.com/liaisonhq/liaison/internal/masterkey"
)

// schema holds cloudapp's own tables; activation and alerts create theirs.
var schema = []string{
	// settings held the secrets in the clear before they were sealed; New
	// moves what it finds there to sealed_settings and empties it.
	`CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value BLOB NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS sealed_settings (name TEXT PRIMARY KEY, sealed BLOB NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS ekeys (tenant TEXT NOT NULL, user_id TEXT NOT NULL, purpose TEXT NOT NULL,
		ekey_id TEXT NOT NULL, wrapped BLOB NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (tenant, user_id, purpose))`,
}

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
	mk    *masterkey.Key
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

// secret returns the named secret, generating n random bytes on first use.
// It is kept sealed under the master key (Config.MasterKeyFile) and bound
// to its name, so the database file alone does not reveal it and one
// secret's row cannot stand in for another's. Any name works: a new secret
// needs no schema change.
func (d db) secret(ctx context.Context, name string, n int) ([]byte, error) {
	v, err := d.generatedSecret(ctx, name, func() ([]byte, error) {
		fresh := make([]byte, n)
		if _, err := rand.Read(fresh); err != nil {
			return nil, err
		}
		return fresh, nil
	})
	if err != nil {
		return nil, err
	}
	if len(v) != n {
		return nil, fmt.Errorf("cloudapp: secret %s is %d bytes, want %d", name, len(v), n)
	}
	return v, nil
}

// generatedSecret is secret for values gen makes on first use (a CA and its
// key), sealed the same way.
func (d db) generatedSecret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	if v, ok, err := d.existingSecret(ctx, d, name); err != nil || ok {
		return v, err
	}
	fresh, err := gen()
	if err != nil {
		return nil, err
	}
	// Concurrent first uses (other nodes on one database) race here; the
	// first insert wins and everybody reads it back.
	if _, err := d.exec(ctx, `INSERT INTO sealed_settings (name, sealed) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
		name, d.mk.Seal(name, fresh)); err != nil {
		return nil, fmt.Errorf("cloudapp: store %s: %w", name, err)
	}
	clear(fresh)
	var sealed []byte
	if err := d.QueryRowContext(ctx, `SELECT sealed FROM sealed_settings WHERE name = ?`, name).Scan(&sealed); err != nil {
		return nil, fmt.Errorf("cloudapp: load %s: %w", name, err)
	}
	v, err := d.mk.Open(name, sealed)
	if err != nil {
		return nil, fmt.Errorf("cloudapp: secret %s does not open with the master key: MasterKeyFile (--master-key-file) is not the one this database was created with", name)
	}
	return v, nil
}

// hasSealedSecrets reports whether the database already holds secrets
// sealed under some master key.
func (d db) hasSealedSecrets(ctx context.Context) (bool, error) {
	var n int
	if err := d.QueryRowContext(ctx, `SELECT count(*) FROM sealed_settings`).Scan(&n); err != nil {
		return false, fmt.Errorf("cloudapp: count secrets: %w", err)
	}
	return n > 0, nil
}

// migrateSecrets seals every secret an older version kept in the clear in
// settings and removes the clear copies. SQLite would otherwise leave the
// deleted bytes in free pages and the WAL, so the delete runs with
// secure_delete (zeroes them) and the WAL is checkpointed and truncated
// afterwards. It returns the names it moved.
func (d db) migrateSecrets(ctx context.Context) ([]string, error) {
	if err := d.lock(ctx); err != nil {
		return nil, err
	}
	defer d.unlock()
	conn, err := d.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("cloudapp: migrate secrets: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
		return nil, fmt.Errorf("cloudapp: migrate secrets: %w", err)
	}
	// The connection goes back to the pool as it was.
	defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA secure_delete = OFF`) }()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("cloudapp: migrate secrets: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	rows, err := tx.QueryContext(ctx, `SELECT name, value FROM settings ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("cloudapp: migrate secrets: %w", err)
	}
	type kv struct {
		name  string
		value []byte
	}
	var clearRows []kv
	for rows.Next() {
		var r kv
		if err := rows.Scan(&r.name, &r.value); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cloudapp: migrate secrets: %w", err)
		}
		clearRows = append(clearRows, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cloudapp: migrate secrets: %w", err)
	}
	if len(clearRows) == 0 {
		return nil, nil
	}
	var names []string
	for _, r := range clearRows {
		// An existing sealed value wins: it is the one in use.
		if _, err := tx.ExecContext(ctx, `INSERT INTO sealed_settings (name, sealed) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
			r.name, d.mk.Seal(r.name, r.value)); err != nil {
			return nil, fmt.Errorf("cloudapp: migrate secret %s: %w", r.name, err)
		}
		clear(r.value)
		names = append(names, r.name)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM settings`); err != nil {
		return nil, fmt.Errorf("cloudapp: migrate secrets: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("cloudapp: migrate secrets: %w", err)
	}
	// Copy the zeroed pages into the database file and empty the WAL, which
	// still holds the pages as they were before.
	var busy, logFrames, done int
	if err := conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
		return nil, fmt.Errorf("cloudapp: migrate secrets: checkpoint: %w", err)
	}
	if busy != 0 {
		return names, fmt.Errorf("cloudapp: migrate secrets: checkpoint blocked by another reader of the database; the WAL may still hold the old clear copies until the next checkpoint")
	}
	return names, nil
}

// Names of the ticket-signing seeds: the one New signs with, the one
// prepared for the next rotation, and the one replaced by the last
// (kept until retired).
const (
	secretScheduler         = "scheduler_ed25519_seed"
	secretSchedulerNext     = "scheduler_ed25519_seed_next"
	secretSchedulerPrevious = "scheduler_ed25519_seed_previous"
)

func (d db) schedulerKey(ctx context.Context) (ed25519.PrivateKey, error) {
	seed, err := d.secret(ctx, secretScheduler, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// existingSecret returns the named secret if the database holds it, without
// generating one.
func (d db) existingSecret(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, name string) ([]byte, bool, error) {
	var sealed []byte
	err := q.QueryRowContext(ctx, `SELECT sealed FROM sealed_settings WHERE name = ?`, name).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cloudapp: load %s: %w", name, err)
	}
	v, err := d.mk.Open(name, sealed)
	if err != nil {
		return nil, false, fmt.Errorf("cloudapp: secret %s does not open with the master key (MasterKeyFile)", name)
	}
	return v, true, nil
}

func (d db) deleteSecret(ctx context.Context, name string) error {
	if _, err := d.exec(ctx, `DELETE FROM sealed_settings WHERE name = ?`, name); err != nil {
		return fmt.Errorf("cloudapp: delete %s: %w", name, err)
	}
	return nil
}

// promoteSchedulerKey makes the prepared next seed the signing one and keeps
// the signing one as previous, in one transaction. It reports false when no
// next seed was prepared.
func (d db) promoteSchedulerKey(ctx context.Context) (bool, error) {
	promoted := false
	err := d.tx(ctx, "promote scheduler key", func(tx *sql.Tx) error {
		next, ok, err := d.existingSecret(ctx, tx, secretSchedulerNext)
		if err != nil || !ok {
			return err
		}
		cur, ok, err := d.existingSecret(ctx, tx, secretScheduler)
		if err != nil {
			return err
		}
		put := `INSERT INTO sealed_settings (name, sealed) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed`
		if ok {
			if _, err := tx.ExecContext(ctx, put, secretSchedulerPrevious, d.mk.Seal(secretSchedulerPrevious, cur)); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, put, secretScheduler, d.mk.Seal(secretScheduler, next)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sealed_settings WHERE name = ?`, secretSchedulerNext); err != nil {
			return err
		}
		promoted = true
		return nil
	})
	return promoted, err
}

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
