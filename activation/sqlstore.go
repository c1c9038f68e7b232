package activation

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
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

// SQLStore is a [Store] and [TokenStore] over database/sql. The package
// imports no driver: open the *sql.DB with the driver of your choice and
// call [SQLStore.Migrate] once.
//
// With SQLite, open the database with a busy timeout (for modernc.org/sqlite:
// "file:x.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"): each
// activation transaction starts with a write, so concurrent activations wait
// for the write lock instead of failing. SQLite's busy handler polls, though:
// under dozens of concurrent writers a waiting one can lose the lock to
// newcomers until its timeout expires, so a busy server should also queue
// its writers in-process (one at a time, in order) and may use
// [SQLStore.ActivateTx] inside its own write transaction.
type SQLStore struct {
	db      *sql.DB
	dialect Dialect
	stmts   sync.Map // query -> *sql.Stmt, prepared once on the hot paths
}

var (
	_ Store      = (*SQLStore)(nil)
	_ TokenStore = (*SQLStore)(nil)
)

// NewSQLStore returns a store over db.
func NewSQLStore(db *sql.DB, d Dialect) *SQLStore {
	return &SQLStore{db: db, dialect: d}
}

// schema returns the statements creating the tables.
func schema() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS activation_users (
		tenant TEXT NOT NULL,
		id TEXT NOT NULL,
		directory_id TEXT NOT NULL,
		login TEXT NOT NULL,
		domain TEXT NOT NULL,
		upn TEXT NOT NULL,
		email TEXT NOT NULL,
		display_name TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		PRIMARY KEY (tenant, id),
		UNIQUE (tenant, directory_id)
	)`,
		`CREATE TABLE IF NOT EXISTS activation_devices (
		tenant TEXT NOT NULL,
		id TEXT NOT NULL,
		user_id TEXT NOT NULL,
		hostname TEXT NOT NULL,
		public_key TEXT NOT NULL,
		activated_at BIGINT NOT NULL,
		PRIMARY KEY (tenant, id)
	)`,
		`CREATE TABLE IF NOT EXISTS activation_tokens (
		id TEXT NOT NULL PRIMARY KEY,
		tenant TEXT NOT NULL,
		mapping_id TEXT NOT NULL,
		hash TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		expires_at BIGINT NOT NULL,
		revoked_at BIGINT NOT NULL
	)`,
	}
}

// Migrate creates the store's tables or brings them to this version
// (versioned, safe to run from several processes at once).
func (s *SQLStore) Migrate(ctx context.Context) error {
	return sqlstore.Migrate(ctx, s.db, s.dialect, "activation", schema())
}

// q rewrites "?" placeholders for the dialect.
func (s *SQLStore) q(query string) string { return s.dialect.Rebind(query) }

// stmt returns query prepared for the dialect, preparing it once: parsing a
// statement costs more than running it, and database/sql then reuses it on
// every connection (and in transactions, through Tx.StmtContext).
func (s *SQLStore) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, s.q(query))
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		_ = st.Close() // a concurrent caller prepared it first
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// txStmt is query within tx: the statement prepared on the database when
// there is one, else prepared on tx's own connection. Never prepared on the
// database from here: that needs a second connection of the pool, which a
// pool full of transactions waiting for the same never frees.
func (s *SQLStore) txStmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(query); ok {
		return tx.StmtContext(ctx, st.(*sql.Stmt)), nil
	}
	return tx.PrepareContext(ctx, s.q(query))
}

// The statements of ActivateTx.
const (
	insertUser = `INSERT INTO activation_users
		(tenant, id, directory_id, login, domain, upn, email, display_name, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, directory_id) DO NOTHING`
	selectUser = `SELECT id, login, domain, upn, email, display_name, created_at
		FROM activation_users WHERE tenant = ? AND directory_id = ?`
	selectDevice = `SELECT tenant, id, user_id, hostname, public_key, activated_at
		FROM activation_devices WHERE tenant = ? AND id = ?`
	insertDevice = `INSERT INTO activation_devices
		(tenant, id, user_id, hostname, public_key, activated_at) VALUES (?, ?, ?, ?, ?, ?)`
)

// PrepareTx prepares the statements of [SQLStore.ActivateTx] on the
// database, once (later calls cost nothing). Call it before beginning the
// transaction you pass to ActivateTx: ActivateTx works without it, but
// then prepares its statements again in each transaction.
func (s *SQLStore) PrepareTx(ctx context.Context) error {
	for _, q := range []string{insertUser, selectUser, selectDevice, insertDevice} {
		if _, err := s.stmt(ctx, q); err != nil {
			return fmt.Errorf("activation: prepare: %w", err)
		}
	}
	return nil
}

// Activate implements [Store]: the user insert, the device check and the
// device insert are one transaction. With PostgreSQL, a device of a user
// already stored is activated by [SQLStore.ActivateExisting] instead, in one
// statement.
func (s *SQLStore) Activate(ctx context.Context, u User, d Device) (_ Activation, err error) {
	if a, ok, err := s.ActivateExisting(ctx, u, d); ok || err != nil {
		return a, err
	}
	if err := s.PrepareTx(ctx); err != nil {
		return Activation{}, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Activation{}, fmt.Errorf("activation: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the error that matters is err
		}
	}()
	a, err := s.ActivateTx(ctx, tx, u, d)
	if err != nil {
		return Activation{}, err
	}
	if err := tx.Commit(); err != nil {
		return Activation{}, fmt.Errorf("activation: commit: %w", err)
	}
	return a, nil
}

// ActivateTx does what [SQLStore.Activate] does within the caller's
// transaction (except refusing disabled users: SQLStore keeps no disabled
// state, so a caller whose users can be disabled checks its own user
// record in tx first, as examples/internal/cloudapp does), which must be on this store's database, so that the caller
// can write its own rows (an application's user record, say) atomically
// with the activation. It neither commits nor rolls back: on any error,
// including [ErrDeviceConflict], the caller must roll tx back. Call
// [SQLStore.PrepareTx] before beginning tx. It uses no connection but tx's.
func (s *SQLStore) ActivateTx(ctx context.Context, tx *sql.Tx, u User, d Device) (Activation, error) {
	var a Activation
	// A write first, so SQLite takes the write lock at once and concurrent
	// transactions queue on the busy timeout instead of deadlocking.
	insUser, err := s.txStmt(ctx, tx, insertUser)
	if err != nil {
		return Activation{}, fmt.Errorf("activation: insert user: %w", err)
	}
	r, err := insUser.ExecContext(ctx,
		u.Tenant, u.ID, u.DirectoryID, u.Login, u.Domain, u.UPN, u.Email, u.DisplayName, u.CreatedAt.UnixNano())
	if err != nil {
		return Activation{}, fmt.Errorf("activation: insert user: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return Activation{}, fmt.Errorf("activation: insert user: %w", err)
	}
	a.UserCreated = n == 1
	var created int64
	selUser, err := s.txStmt(ctx, tx, selectUser)
	if err != nil {
		return Activation{}, fmt.Errorf("activation: load user: %w", err)
	}
	err = selUser.QueryRowContext(ctx, u.Tenant, u.DirectoryID).
		Scan(&u.ID, &u.Login, &u.Domain, &u.UPN, &u.Email, &u.DisplayName, &created)
	if err != nil {
		return Activation{}, fmt.Errorf("activation: load user: %w", err)
	}
	u.CreatedAt = time.Unix(0, created)
	a.User = u

	selDev, err := s.txStmt(ctx, tx, selectDevice)
	if err != nil {
		return Activation{}, fmt.Errorf("activation: load device: %w", err)
	}
	old, err := scanDevice(selDev.QueryRowContext(ctx, d.Tenant, d.ID))
	switch {
	case err == nil:
		if old.UserID != u.ID || !old.PublicKey.Equal(d.PublicKey) {
			return Activation{}, fmt.Errorf("%w: device %q", ErrDeviceConflict, d.ID)
		}
		a.Device, a.UserCreated = old, false
		return a, nil
	case !errors.Is(err, ErrNotFound):
		return Activation{}, err
	}
	d.UserID = u.ID
	insDev, err := s.txStmt(ctx, tx, insertDevice)
	if err != nil {
		return Activation{}, fmt.Errorf("activation: insert device: %w", err)
	}
	if _, err := insDev.ExecContext(ctx,
		d.Tenant, d.ID, d.UserID, d.Hostname, base64.StdEncoding.EncodeToString(d.PublicKey), d.ActivatedAt.UnixNano()); err != nil {
		return Activation{}, fmt.Errorf("activation: insert device: %w", err)
	}
	d.ActivatedAt = time.Unix(0, d.ActivatedAt.UnixNano())
	a.Device, a.DeviceCreated = d, true
	return a, nil
}

// activateExisting is ActivateExisting's statement (PostgreSQL only:
// SQLite has no INSERT inside WITH). All its parts see one snapshot, so a
// user committed by a concurrent activation after the statement started is
// not seen (the caller then takes the transaction), and the insert skips a
// device that exists or that a concurrent transaction committed meanwhile
// (ON CONFLICT waits for that transaction).
const activateExisting = `WITH u AS (
		SELECT id, login, domain, upn, email, display_name, created_at
		FROM activation_users WHERE tenant = ? AND directory_id = ?
	), dev AS (
		INSERT INTO activation_devices (tenant, id, user_id, hostname, public_key, activated_at)
		SELECT ?, ?, u.id, ?, ?, ? FROM u
		ON CONFLICT (tenant, id) DO NOTHING
		RETURNING 1
	)
	SELECT id, login, domain, upn, email, display_name, created_at, EXISTS (SELECT 1 FROM dev) FROM u`

// ActivateExisting does what [SQLStore.Activate] does for a device whose
// user (u.Tenant, u.DirectoryID) is already stored, in one statement
// outside any transaction, so that a storm of activations of known users
// costs one round trip and one commit each. It reports ok false, having
// written nothing, when that user is not stored yet (or was stored by a
// transaction that committed while the statement ran): then call
// [SQLStore.Activate] or [SQLStore.ActivateTx]. A device already activated
// is returned as it is (a retry), or refused with [ErrDeviceConflict] if it
// belongs to another user or key, as in ActivateTx. Like ActivateTx it
// keeps no disabled state: check the user first. With SQLite it always
// reports ok false (SQLite has no INSERT inside WITH); SQLite's write
// transactions are cheap.
func (s *SQLStore) ActivateExisting(ctx context.Context, u User, d Device) (a Activation, ok bool, err error) {
	if s.dialect != Postgres {
		return Activation{}, false, nil
	}
	st, err := s.stmt(ctx, activateExisting)
	if err != nil {
		return Activation{}, false, fmt.Errorf("activation: activate: %w", err)
	}
	var created int64
	var inserted bool
	err = st.QueryRowContext(ctx, u.Tenant, u.DirectoryID,
		d.Tenant, d.ID, d.Hostname, base64.StdEncoding.EncodeToString(d.PublicKey), d.ActivatedAt.UnixNano()).
		Scan(&u.ID, &u.Login, &u.Domain, &u.UPN, &u.Email, &u.DisplayName, &created, &inserted)
	if errors.Is(err, sql.ErrNoRows) {
		return Activation{}, false, nil
	}
	if err != nil {
		return Activation{}, false, fmt.Errorf("activation: activate: %w", err)
	}
	u.CreatedAt = time.Unix(0, created)
	a.User = u
	if inserted {
		d.UserID = u.ID
		d.ActivatedAt = time.Unix(0, d.ActivatedAt.UnixNano())
		a.Device, a.DeviceCreated = d, true
		return a, true, nil
	}
	old, err := s.Device(ctx, d.Tenant, d.ID)
	if err != nil {
		return Activation{}, false, err
	}
	if old.UserID != u.ID || !old.PublicKey.Equal(d.PublicKey) {
		return Activation{}, false, fmt.Errorf("%w: device %q", ErrDeviceConflict, d.ID)
	}
	a.Device = old
	return a, true, nil
}

func scanDevice(row *sql.Row) (Device, error) {
	var d Device
	var pub string
	var at int64
	err := row.Scan(&d.Tenant, &d.ID, &d.UserID, &d.Hostname, &pub, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, ErrNotFound
	}
	if err != nil {
		return Device{}, fmt.Errorf("activation: load device: %w", err)
	}
	k, err := base64.StdEncoding.DecodeString(pub)
	if err != nil || len(k) != ed25519.PublicKeySize {
		return Device{}, fmt.Errorf("activation: load device %q: corrupt public key", d.ID)
	}
	d.PublicKey, d.ActivatedAt = k, time.Unix(0, at)
	return d, nil
}

// Device implements [Store].
func (s *SQLStore) Device(ctx context.Context, tenant, id string) (Device, error) {
	st, err := s.stmt(ctx, selectDevice)
	if err != nil {
		return Device{}, fmt.Errorf("activation: load device: %w", err)
	}
	d, err := scanDevice(st.QueryRowContext(ctx, tenant, id))
	if errors.Is(err, ErrNotFound) {
		return Device{}, fmt.Errorf("%w: device %q", ErrNotFound, id)
	}
	return d, err
}

// CreateToken implements [TokenStore].
func (s *SQLStore) CreateToken(ctx context.Context, rec TokenRecord) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO activation_tokens
		(id, tenant, mapping_id, hash, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		rec.ID, rec.Tenant, rec.MappingID, hex.EncodeToString(rec.Hash),
		rec.CreatedAt.UnixNano(), rec.ExpiresAt.UnixNano(), unixOrZero(rec.RevokedAt))
	if err != nil {
		return fmt.Errorf("activation: insert token: %w", err)
	}
	return nil
}

// Token implements [TokenStore].
func (s *SQLStore) Token(ctx context.Context, id string) (TokenRecord, error) {
	st, err := s.stmt(ctx, `SELECT id, tenant, mapping_id, hash, created_at, expires_at, revoked_at
		FROM activation_tokens WHERE id = ?`)
	if err != nil {
		return TokenRecord{}, fmt.Errorf("activation: load token: %w", err)
	}
	rec, err := scanToken(st.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return TokenRecord{}, ErrNotFound
	}
	if err != nil {
		return TokenRecord{}, fmt.Errorf("activation: load token: %w", err)
	}
	return rec, nil
}

// RevokeToken implements [TokenStore]. Revoking twice keeps the first time.
func (s *SQLStore) RevokeToken(ctx context.Context, tenant, id string, at time.Time) error {
	r, err := s.db.ExecContext(ctx, s.q(`UPDATE activation_tokens SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END
		WHERE tenant = ? AND id = ?`), at.UnixNano(), tenant, id)
	if err != nil {
		return fmt.Errorf("activation: revoke token: %w", err)
	}
	if n, err := r.RowsAffected(); err != nil {
		return fmt.Errorf("activation: revoke token: %w", err)
	} else if n == 0 {
		return fmt.Errorf("%w: token %s", ErrNotFound, id)
	}
	return nil
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// ListTokens returns tenant's token records, oldest first, for an admin
// listing (not part of [TokenStore]: the service never lists).
func (s *SQLStore) ListTokens(ctx context.Context, tenant string) ([]TokenRecord, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, tenant, mapping_id, hash, created_at, expires_at, revoked_at
		FROM activation_tokens WHERE tenant = ? ORDER BY created_at, id`), tenant)
	if err != nil {
		return nil, fmt.Errorf("activation: list tokens: %w", err)
	}
	defer rows.Close()
	var out []TokenRecord
	for rows.Next() {
		rec, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("activation: list tokens: %w", err)
	}
	return out, nil
}

func scanToken(r interface{ Scan(...any) error }) (TokenRecord, error) {
	var rec TokenRecord
	var hash string
	var created, expires, revoked int64
	if err := r.Scan(&rec.ID, &rec.Tenant, &rec.MappingID, &hash, &created, &expires, &revoked); err != nil {
		return TokenRecord{}, err
	}
	var err error
	if rec.Hash, err = hex.DecodeString(hash); err != nil {
		return TokenRecord{}, fmt.Errorf("activation: load token %s: corrupt hash", rec.ID)
	}
	rec.CreatedAt, rec.ExpiresAt = time.Unix(0, created), time.Unix(0, expires)
	if revoked != 0 {
		rec.RevokedAt = time.Unix(0, revoked)
	}
	return rec, nil
}
