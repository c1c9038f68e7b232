package cloudapp

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/internal/masterkey"
)

// schema holds cloudapp's own tables; activation and alerts create theirs.
var schema = []string{
	// settings held the secrets in the clear before they were sealed; New
	// moves what it finds there to sealed_settings and empties it.
	`CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value BLOB NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS sealed_settings (name TEXT PRIMARY KEY, sealed BLOB NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS tenants (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS mappings (tenant TEXT NOT NULL, id TEXT NOT NULL, mapping TEXT NOT NULL,
		cursor TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL, PRIMARY KEY (tenant, id))`,
	`CREATE TABLE IF NOT EXISTS users (tenant TEXT NOT NULL, directory_id TEXT NOT NULL, id TEXT NOT NULL,
		mapping_id TEXT NOT NULL, login TEXT NOT NULL, upn TEXT NOT NULL, email TEXT NOT NULL, display_name TEXT NOT NULL,
		dn TEXT NOT NULL, groups_json TEXT NOT NULL, disabled INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (tenant, directory_id))`,
	`CREATE INDEX IF NOT EXISTS users_scope ON users (tenant, mapping_id, deleted)`,
	`CREATE TABLE IF NOT EXISTS import_checkpoints (tenant TEXT NOT NULL, mapping_id TEXT NOT NULL, plan TEXT NOT NULL,
		applied INTEGER NOT NULL, saved_at INTEGER NOT NULL, PRIMARY KEY (tenant, mapping_id))`,
	// The progress of a checkpoint lives in its own small row: SQLite rewrites
	// a whole row on UPDATE, and the plan of a 100 000-user import is tens of
	// megabytes of overflow pages, so updating applied beside it after every
	// batch was three quarters of the cloud's CPU in such an import. The
	// checkpoint row's applied and saved_at are the values when the plan was
	// saved (and what databases written before this table hold).
	`CREATE TABLE IF NOT EXISTS import_progress (tenant TEXT NOT NULL, mapping_id TEXT NOT NULL,
		applied INTEGER NOT NULL, saved_at INTEGER NOT NULL, PRIMARY KEY (tenant, mapping_id))`,
	`CREATE TABLE IF NOT EXISTS import_schedule (tenant TEXT PRIMARY KEY, next_run INTEGER NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS import_runs (id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, mapping_id TEXT NOT NULL,
		started_at INTEGER NOT NULL, finished_at INTEGER NOT NULL, full_scan INTEGER NOT NULL, status TEXT NOT NULL,
		summary TEXT NOT NULL, error TEXT NOT NULL)`,
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

func (d db) addTenant(ctx context.Context, tenant string, now time.Time) error {
	_, err := d.exec(ctx, `INSERT INTO tenants (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, tenant, now.UnixNano())
	if err != nil {
		return fmt.Errorf("cloudapp: add tenant: %w", err)
	}
	return nil
}

func (d db) tenants(ctx context.Context) ([]string, error) {
	rows, err := d.QueryContext(ctx, `SELECT name FROM tenants ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("cloudapp: list tenants: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// userStore is the cloud's users: importer.Store, CheckpointStore and
// ScheduleStore. Users are keyed by (tenant, directory ID); the mapping that
// last imported a user owns it. Deletes are soft, so a user who comes back
// keeps the cloud ID (and devices) it had.
type userStore struct {
	db
	now func() time.Time
	rnd func() string
}

var (
	_ importer.Store           = userStore{}
	_ importer.CheckpointStore = userStore{}
	_ importer.ScheduleStore   = userStore{}
)

const userCols = `directory_id, login, upn, email, display_name, dn, groups_json, disabled`

func scanRecord(sc interface{ Scan(...any) error }) (importer.Record, error) {
	var r importer.Record
	var groups string
	var disabled int
	if err := sc.Scan(&r.DirectoryID, &r.Login, &r.UPN, &r.Email, &r.DisplayName, &r.DN, &groups, &disabled); err != nil {
		return r, err
	}
	r.Disabled = disabled != 0
	if groups != "" && groups != "null" {
		if err := json.Unmarshal([]byte(groups), &r.Groups); err != nil {
			return r, fmt.Errorf("cloudapp: groups of %s: %w", r.DirectoryID, err)
		}
	}
	return r, nil
}

func (s userStore) Users(ctx context.Context, sc importer.Scope, fn func(importer.Record) error) error {
	rows, err := s.QueryContext(ctx, `SELECT `+userCols+` FROM users WHERE tenant = ? AND mapping_id = ? AND deleted = 0 ORDER BY directory_id`,
		sc.Tenant, sc.MappingID)
	if err != nil {
		return fmt.Errorf("cloudapp: list users: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return fmt.Errorf("cloudapp: list users: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (s userStore) User(ctx context.Context, sc importer.Scope, id string) (importer.Record, bool, error) {
	r, err := scanRecord(s.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE tenant = ? AND mapping_id = ? AND directory_id = ? AND deleted = 0`,
		sc.Tenant, sc.MappingID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return importer.Record{}, false, nil
	}
	if err != nil {
		return importer.Record{}, false, fmt.Errorf("cloudapp: get user: %w", err)
	}
	return r, true, nil
}

func (s userStore) Apply(ctx context.Context, sc importer.Scope, ops []importer.Op) (err error) {
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("cloudapp: apply: %w", err)
	}
	defer s.unlock()
	tx, err := s.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cloudapp: apply: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the first error is the one to report
		}
	}()
	// Prepared once per batch: parsing the upsert costs more than running it.
	upsert, err := tx.PrepareContext(ctx, `INSERT INTO users (tenant, directory_id, id, mapping_id, login, upn, email, display_name, dn,
		groups_json, disabled, deleted, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)
		ON CONFLICT (tenant, directory_id) DO UPDATE SET mapping_id = excluded.mapping_id, login = excluded.login,
		upn = excluded.upn, email = excluded.email, display_name = excluded.display_name, dn = excluded.dn,
		groups_json = excluded.groups_json, disabled = excluded.disabled, deleted = 0, updated_at = excluded.updated_at`)
	if err != nil {
		return fmt.Errorf("cloudapp: apply: %w", err)
	}
	defer upsert.Close()
	now := s.now().UnixNano()
	for _, op := range ops {
		r := op.Record
		if op.Kind == importer.OpDelete {
			if _, err := tx.ExecContext(ctx, `UPDATE users SET deleted = 1, updated_at = ? WHERE tenant = ? AND mapping_id = ? AND directory_id = ?`,
				now, sc.Tenant, sc.MappingID, r.DirectoryID); err != nil {
				return fmt.Errorf("cloudapp: apply delete: %w", err)
			}
			continue
		}
		groups, err := json.Marshal(r.Groups)
		if err != nil {
			return err
		}
		if _, err := upsert.ExecContext(ctx, sc.Tenant, r.DirectoryID, s.rnd(), sc.MappingID, r.Login, r.UPN, r.Email, r.DisplayName, r.DN,
			string(groups), boolInt(r.Disabled), now, now); err != nil {
			return fmt.Errorf("cloudapp: apply %s: %w", op.Kind, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cloudapp: apply: %w", err)
	}
	return nil
}

func (s userStore) LoadCheckpoint(ctx context.Context, sc importer.Scope) (*importer.Checkpoint, error) {
	var plan string
	var applied int
	var saved int64
	err := s.QueryRowContext(ctx, `SELECT c.plan, COALESCE(p.applied, c.applied), COALESCE(p.saved_at, c.saved_at)
		FROM import_checkpoints c LEFT JOIN import_progress p ON p.tenant = c.tenant AND p.mapping_id = c.mapping_id
		WHERE c.tenant = ? AND c.mapping_id = ?`,
		sc.Tenant, sc.MappingID).Scan(&plan, &applied, &saved)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cloudapp: load checkpoint: %w", err)
	}
	c := &importer.Checkpoint{Applied: applied, Saved: time.Unix(0, saved), Plan: new(importer.Plan)}
	if err := json.Unmarshal([]byte(plan), c.Plan); err != nil {
		return nil, fmt.Errorf("cloudapp: load checkpoint: %w", err)
	}
	return c, nil
}

const upsertProgress = `INSERT INTO import_progress (tenant, mapping_id, applied, saved_at) VALUES (?, ?, ?, ?)
	ON CONFLICT (tenant, mapping_id) DO UPDATE SET applied = excluded.applied, saved_at = excluded.saved_at`

func (s userStore) SaveCheckpoint(ctx context.Context, sc importer.Scope, c importer.Checkpoint) error {
	if c.Plan == nil {
		// After a batch: only the small progress row changes, never the plan's.
		if _, err := s.exec(ctx, upsertProgress, sc.Tenant, sc.MappingID, c.Applied, c.Saved.UnixNano()); err != nil {
			return fmt.Errorf("cloudapp: save checkpoint: %w", err)
		}
		return nil
	}
	plan, err := json.Marshal(c.Plan)
	if err != nil {
		return err
	}
	return s.tx(ctx, "save checkpoint", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO import_checkpoints (tenant, mapping_id, plan, applied, saved_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (tenant, mapping_id) DO UPDATE SET plan = excluded.plan, applied = excluded.applied, saved_at = excluded.saved_at`,
			sc.Tenant, sc.MappingID, string(plan), c.Applied, c.Saved.UnixNano()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, upsertProgress, sc.Tenant, sc.MappingID, c.Applied, c.Saved.UnixNano())
		return err
	})
}

func (s userStore) ClearCheckpoint(ctx context.Context, sc importer.Scope) error {
	return s.tx(ctx, "clear checkpoint", func(tx *sql.Tx) error {
		for _, q := range []string{`DELETE FROM import_checkpoints WHERE tenant = ? AND mapping_id = ?`,
			`DELETE FROM import_progress WHERE tenant = ? AND mapping_id = ?`} {
			if _, err := tx.ExecContext(ctx, q, sc.Tenant, sc.MappingID); err != nil {
				return err
			}
		}
		return nil
	})
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

func (s userStore) NextRun(ctx context.Context, tenant string) (time.Time, bool, error) {
	var at int64
	err := s.QueryRowContext(ctx, `SELECT next_run FROM import_schedule WHERE tenant = ?`, tenant).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("cloudapp: next run: %w", err)
	}
	return time.Unix(0, at), true, nil
}

func (s userStore) SetNextRun(ctx context.Context, tenant string, at time.Time) error {
	if _, err := s.exec(ctx, `INSERT INTO import_schedule (tenant, next_run) VALUES (?, ?)
		ON CONFLICT (tenant) DO UPDATE SET next_run = excluded.next_run`, tenant, at.UnixNano()); err != nil {
		return fmt.Errorf("cloudapp: set next run: %w", err)
	}
	return nil
}

// User is a cloud user, as the admin API lists it.
type User struct {
	ID          string   `json:"id"`
	DirectoryID string   `json:"directory_id"`
	MappingID   string   `json:"mapping_id"`
	Login       string   `json:"login"`
	UPN         string   `json:"upn,omitempty"`
	Email       string   `json:"email,omitempty"`
	DisplayName string   `json:"display_name,omitempty"`
	DN          string   `json:"dn,omitempty"`
	Groups      []string `json:"groups,omitempty"`
	Disabled    bool     `json:"disabled"`
}

func (s userStore) list(ctx context.Context, tenant string) ([]User, error) {
	rows, err := s.QueryContext(ctx, `SELECT id, mapping_id, `+userCols+` FROM users WHERE tenant = ? AND deleted = 0 ORDER BY login, directory_id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("cloudapp: list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var u User
		var groups string
		var disabled int
		if err := rows.Scan(&u.ID, &u.MappingID, &u.DirectoryID, &u.Login, &u.UPN, &u.Email, &u.DisplayName, &u.DN, &groups, &disabled); err != nil {
			return nil, fmt.Errorf("cloudapp: list users: %w", err)
		}
		u.Disabled = disabled != 0
		_ = json.Unmarshal([]byte(groups), &u.Groups) // written by Apply; a bad value only hides groups
		out = append(out, u)
	}
	return out, rows.Err()
}

// activationStore joins activation's users to the cloud's: a user activated
// by a device before any import, or imported before any activation, is one
// cloud user with one ID. The cloud user row and activation's rows are one
// transaction: a refused activation (device conflict) leaves no user behind.
type activationStore struct {
	users userStore
	inner *activation.SQLStore
}

var _ activation.Store = activationStore{}

func (a activationStore) Activate(ctx context.Context, u activation.User, d activation.Device) (_ activation.Activation, err error) {
	if err := a.users.lock(ctx); err != nil {
		return activation.Activation{}, fmt.Errorf("cloudapp: activate: %w", err)
	}
	defer a.users.unlock()
	tx, err := a.users.BeginTx(ctx, nil)
	if err != nil {
		return activation.Activation{}, fmt.Errorf("cloudapp: activate: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the error that matters is err
		}
	}()
	id, created, err := a.cloudUser(ctx, tx, u)
	if errors.Is(err, activation.ErrUserDisabled) {
		return activation.Activation{}, err
	}
	if err != nil {
		return activation.Activation{}, fmt.Errorf("cloudapp: activate user: %w", err)
	}
	u.ID, d.UserID = id, id
	act, err := a.inner.ActivateTx(ctx, tx, u, d)
	if err != nil {
		return activation.Activation{}, err
	}
	if err := tx.Commit(); err != nil {
		return activation.Activation{}, fmt.Errorf("cloudapp: activate: commit: %w", err)
	}
	act.UserCreated = created
	return act, nil
}

// cloudUser returns the cloud ID of u within tx, creating the cloud user if
// needed (with u.ID). A cloud user disabled by an import is refused with an
// *activation.DisabledError: the directory may have enabled it again
// since, but the cloud decides on what it holds until the next import.
func (a activationStore) cloudUser(ctx context.Context, tx *sql.Tx, u activation.User) (id string, created bool, err error) {
	ins, err := a.users.stmt(ctx, `INSERT INTO users (tenant, directory_id, id, mapping_id, login, upn, email, display_name, dn,
		groups_json, disabled, deleted, created_at, updated_at) VALUES (?, ?, ?, '', ?, ?, ?, ?, '', 'null', 0, 0, ?, ?)
		ON CONFLICT (tenant, directory_id) DO NOTHING`)
	if err != nil {
		return "", false, err
	}
	sel, err := a.users.stmt(ctx, `SELECT id, disabled FROM users WHERE tenant = ? AND directory_id = ?`)
	if err != nil {
		return "", false, err
	}
	now := a.users.now().UnixNano()
	res, err := tx.StmtContext(ctx, ins).ExecContext(ctx,
		u.Tenant, u.DirectoryID, u.ID, u.Login, u.UPN, u.Email, u.DisplayName, now, now)
	if err != nil {
		return "", false, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return "", false, err
	} else if n == 1 {
		return u.ID, true, nil
	}
	var disabled int
	if err := tx.StmtContext(ctx, sel).QueryRowContext(ctx, u.Tenant, u.DirectoryID).Scan(&id, &disabled); err != nil {
		return "", false, err
	}
	if disabled != 0 {
		return "", false, &activation.DisabledError{Where: "cloud", Reason: "disabled"}
	}
	return id, false, nil
}

func (a activationStore) Device(ctx context.Context, tenant, id string) (activation.Device, error) {
	return a.inner.Device(ctx, tenant, id)
}

// Mapping is a stored mapping of a tenant, with the cursor of its last
// successful import.
type Mapping struct {
	ID      string            `json:"id"`
	Tenant  string            `json:"tenant"`
	Mapping directory.Mapping `json:"mapping"`
	Cursor  directory.Cursor  `json:"cursor,omitempty"`
}

func (d db) putMapping(ctx context.Context, m Mapping, now time.Time) error {
	b, err := json.Marshal(m.Mapping)
	if err != nil {
		return err
	}
	// A changed mapping invalidates its cursor: the next import is full.
	_, err = d.exec(ctx, `INSERT INTO mappings (tenant, id, mapping, cursor, created_at) VALUES (?, ?, ?, '', ?)
		ON CONFLICT (tenant, id) DO UPDATE SET mapping = excluded.mapping,
		cursor = CASE WHEN mappings.mapping = excluded.mapping THEN mappings.cursor ELSE '' END`,
		m.Tenant, m.ID, string(b), now.UnixNano())
	if err != nil {
		return fmt.Errorf("cloudapp: put mapping: %w", err)
	}
	return nil
}

func (d db) mappings(ctx context.Context, tenant, id string) ([]Mapping, error) {
	q := `SELECT tenant, id, mapping, cursor FROM mappings WHERE tenant = ?`
	args := []any{tenant}
	if id != "" {
		q += ` AND id = ?`
		args = append(args, id)
	}
	st, err := d.stmt(ctx, q+` ORDER BY id`) // once per activation
	if err != nil {
		return nil, fmt.Errorf("cloudapp: list mappings: %w", err)
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("cloudapp: list mappings: %w", err)
	}
	defer rows.Close()
	var out []Mapping
	for rows.Next() {
		var m Mapping
		var js string
		if err := rows.Scan(&m.Tenant, &m.ID, &js, &m.Cursor); err != nil {
			return nil, fmt.Errorf("cloudapp: list mappings: %w", err)
		}
		if err := json.Unmarshal([]byte(js), &m.Mapping); err != nil {
			return nil, fmt.Errorf("cloudapp: mapping %s: %w", m.ID, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func (d db) setCursor(ctx context.Context, tenant, id string, c directory.Cursor) error {
	if _, err := d.exec(ctx, `UPDATE mappings SET cursor = ? WHERE tenant = ? AND id = ?`, string(c), tenant, id); err != nil {
		return fmt.Errorf("cloudapp: set cursor: %w", err)
	}
	return nil
}

// ImportRun is one finished (or refused) import.
type ImportRun struct {
	ID        int64            `json:"id"`
	Tenant    string           `json:"tenant"`
	MappingID string           `json:"mapping_id"`
	Started   time.Time        `json:"started"`
	Finished  time.Time        `json:"finished"`
	Full      bool             `json:"full"`
	Status    string           `json:"status"` // ok, refused, failed, skipped
	Summary   importer.Summary `json:"summary"`
	Error     string           `json:"error,omitempty"`
}

func (d db) addRun(ctx context.Context, r ImportRun) error {
	sum, _ := json.Marshal(r.Summary)
	_, err := d.exec(ctx, `INSERT INTO import_runs (tenant, mapping_id, started_at, finished_at, full_scan, status, summary, error)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, r.Tenant, r.MappingID, r.Started.UnixNano(), r.Finished.UnixNano(), boolInt(r.Full),
		r.Status, string(sum), r.Error)
	if err != nil {
		return fmt.Errorf("cloudapp: record import: %w", err)
	}
	return nil
}

func (d db) runs(ctx context.Context, tenant string, limit int) ([]ImportRun, error) {
	q := `SELECT id, tenant, mapping_id, started_at, finished_at, full_scan, status, summary, error FROM import_runs`
	var args []any
	if tenant != "" {
		q += ` WHERE tenant = ?`
		args = append(args, tenant)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := d.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cloudapp: list imports: %w", err)
	}
	defer rows.Close()
	var out []ImportRun
	for rows.Next() {
		var r ImportRun
		var st, fin int64
		var full int
		var sum string
		if err := rows.Scan(&r.ID, &r.Tenant, &r.MappingID, &st, &fin, &full, &r.Status, &sum, &r.Error); err != nil {
			return nil, fmt.Errorf("cloudapp: list imports: %w", err)
		}
		r.Started, r.Finished, r.Full = time.Unix(0, st).UTC(), time.Unix(0, fin).UTC(), full != 0
		_ = json.Unmarshal([]byte(sum), &r.Summary) // written by addRun
		out = append(out, r)
	}
	return out, rows.Err()
}

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
