package masterkey

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

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

// SecretsConfig configures [Secrets]. DB and Key are required.
type SecretsConfig struct {
	// DB is the database; the caller opens and closes it.
	DB *sql.DB
	// Dialect is SQLite (the zero value) or Postgres.
	Dialect Dialect
	// Key seals every secret.
	Key *Key
	// Writes, when set, is held around every write (with SQLite: the lock
	// shared by every store of the database). Nil takes no lock.
	Writes sync.Locker
}

// Secrets keeps named secrets sealed under a master [Key] in the table
// sealed_settings: made on first use, read by every node sharing the
// database, each bound to its name so one row cannot stand in for another.
// A new secret needs no schema change. Its methods are safe for concurrent
// use, also from several processes.
type Secrets struct {
	db *sql.DB
	d  Dialect
	k  *Key
	w  sync.Locker
}

// NewSecrets returns a Secrets over cfg.DB. Call Migrate before use.
func NewSecrets(cfg SecretsConfig) (*Secrets, error) {
	if cfg.DB == nil || cfg.Key == nil {
		return nil, errors.New("masterkey: SecretsConfig.DB and SecretsConfig.Key are required")
	}
	if !cfg.Dialect.Valid() {
		return nil, fmt.Errorf("masterkey: unknown SecretsConfig.Dialect %d", cfg.Dialect)
	}
	w := cfg.Writes
	if w == nil {
		w = noLock{}
	}
	return &Secrets{db: cfg.DB, d: cfg.Dialect, k: cfg.Key, w: w}, nil
}

type noLock struct{}

func (noLock) Lock()   {}
func (noLock) Unlock() {}

// migrations: settings held secrets in the clear in examples/cloud before
// they were sealed; [Secrets.SealClearSettings] empties it.
var migrations = []string{
	`CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value BLOB NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS sealed_settings (name TEXT PRIMARY KEY, sealed BLOB NOT NULL)`,
}

// Migrate creates the table or brings it to this version.
func (s *Secrets) Migrate(ctx context.Context) error {
	return sqlstore.Migrate(ctx, s.db, s.d, "masterkey", migrations)
}

// HasSealed reports whether the table holds any sealed secret, without a
// key: a start that finds sealed secrets but no key file must fail rather
// than make a new key (which would lock them away for ever).
func HasSealed(ctx context.Context, db *sql.DB) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM sealed_settings`).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("masterkey: count secrets: %w", err)
	}
	return n > 0, nil
}

// Secret returns the named secret, generating n random bytes on first use.
func (s *Secrets) Secret(ctx context.Context, name string, n int) ([]byte, error) {
	v, err := s.Generated(ctx, name, func() ([]byte, error) {
		fresh := make([]byte, n)
		_, err := rand.Read(fresh)
		return fresh, err
	})
	if err != nil {
		return nil, err
	}
	if len(v) != n {
		return nil, fmt.Errorf("masterkey: secret %s is %d bytes, want %d", name, len(v), n)
	}
	return v, nil
}

// Generated returns the named secret, storing what gen makes on first use
// (a CA and its key, ...). Concurrent first uses (nodes starting at once)
// agree: the first insert wins and everybody reads it back.
func (s *Secrets) Generated(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	if v, ok, err := s.Existing(ctx, name); err != nil || ok {
		return v, err
	}
	fresh, err := gen()
	if err != nil {
		return nil, err
	}
	s.w.Lock()
	_, err = s.db.ExecContext(ctx, s.d.Rebind(`INSERT INTO sealed_settings (name, sealed) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`),
		name, s.k.Seal(name, fresh))
	s.w.Unlock()
	clear(fresh)
	if err != nil {
		return nil, fmt.Errorf("masterkey: store %s: %w", name, err)
	}
	v, ok, err := s.Existing(ctx, name)
	if err == nil && !ok {
		err = fmt.Errorf("masterkey: secret %s vanished after it was stored", name)
	}
	return v, err
}

type queryRower interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

// Existing returns the named secret if the database holds it, without
// generating one. A secret that does not open under the key fails with an
// error saying the key file is not the database's.
func (s *Secrets) Existing(ctx context.Context, name string) ([]byte, bool, error) {
	return s.existing(ctx, s.db, name)
}

func (s *Secrets) existing(ctx context.Context, q queryRower, name string) ([]byte, bool, error) {
	var sealed []byte
	err := q.QueryRowContext(ctx, s.d.Rebind(`SELECT sealed FROM sealed_settings WHERE name = ?`), name).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("masterkey: load %s: %w", name, err)
	}
	v, err := s.k.Open(name, sealed)
	if err != nil {
		return nil, false, fmt.Errorf("masterkey: secret %s does not open with the master key: the key file is not the one this database was created with", name)
	}
	return v, true, nil
}

// Delete forgets the named secret; deleting one that does not exist is not
// an error.
func (s *Secrets) Delete(ctx context.Context, name string) error {
	s.w.Lock()
	defer s.w.Unlock()
	if _, err := s.db.ExecContext(ctx, s.d.Rebind(`DELETE FROM sealed_settings WHERE name = ?`), name); err != nil {
		return fmt.Errorf("masterkey: delete %s: %w", name, err)
	}
	return nil
}

// Rotate makes the secret named next the one named current and keeps the
// replaced current as previous, in one transaction (a key rotation). It
// reports false, changing nothing, when next does not exist.
func (s *Secrets) Rotate(ctx context.Context, next, current, previous string) (rotated bool, err error) {
	s.w.Lock()
	defer s.w.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("masterkey: rotate %s: %w", current, err)
	}
	defer func() {
		if !rotated {
			_ = tx.Rollback()
		}
	}()
	nv, ok, err := s.existing(ctx, tx, next)
	if err != nil || !ok {
		return false, err
	}
	cv, ok, err := s.existing(ctx, tx, current)
	if err != nil {
		return false, err
	}
	put := s.d.Rebind(`INSERT INTO sealed_settings (name, sealed) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed`)
	if ok {
		if _, err := tx.ExecContext(ctx, put, previous, s.k.Seal(previous, cv)); err != nil {
			return false, fmt.Errorf("masterkey: rotate %s: %w", current, err)
		}
	}
	if _, err := tx.ExecContext(ctx, put, current, s.k.Seal(current, nv)); err != nil {
		return false, fmt.Errorf("masterkey: rotate %s: %w", current, err)
	}
	if _, err := tx.ExecContext(ctx, s.d.Rebind(`DELETE FROM sealed_settings WHERE name = ?`), next); err != nil {
		return false, fmt.Errorf("masterkey: rotate %s: %w", current, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("masterkey: rotate %s: %w", current, err)
	}
	return true, nil
}

// SealClearSettings seals every secret an older examples/cloud kept in the
// clear in the table settings and erases the clear copies: on SQLite the
// delete runs with secure_delete (the freed pages are zeroed) and the WAL
// is checkpointed and truncated, so the bytes are gone from the files too.
// An existing sealed value wins (it is the one in use). It returns the
// names it moved.
func (s *Secrets) SealClearSettings(ctx context.Context) ([]string, error) {
	s.w.Lock()
	defer s.w.Unlock()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("masterkey: seal clear settings: %w", err)
	}
	defer conn.Close()
	if s.d == SQLite {
		if _, err := conn.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
			return nil, fmt.Errorf("masterkey: seal clear settings: %w", err)
		}
		// The connection goes back to the pool as it was.
		defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA secure_delete = OFF`) }()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("masterkey: seal clear settings: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	rows, err := tx.QueryContext(ctx, `SELECT name, value FROM settings ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("masterkey: seal clear settings: %w", err)
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
			return nil, fmt.Errorf("masterkey: seal clear settings: %w", err)
		}
		clearRows = append(clearRows, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("masterkey: seal clear settings: %w", err)
	}
	if len(clearRows) == 0 {
		return nil, nil
	}
	var names []string
	for _, r := range clearRows {
		if _, err := tx.ExecContext(ctx, s.d.Rebind(`INSERT INTO sealed_settings (name, sealed) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`),
			r.name, s.k.Seal(r.name, r.value)); err != nil {
			return nil, fmt.Errorf("masterkey: seal setting %s: %w", r.name, err)
		}
		clear(r.value)
		names = append(names, r.name)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM settings`); err != nil {
		return nil, fmt.Errorf("masterkey: seal clear settings: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("masterkey: seal clear settings: %w", err)
	}
	if s.d != SQLite {
		return names, nil
	}
	// Copy the zeroed pages into the database file and empty the WAL, which
	// still holds the pages as they were before.
	var busy, logFrames, done int
	if err := conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
		return nil, fmt.Errorf("masterkey: seal clear settings: checkpoint: %w", err)
	}
	if busy != 0 {
		return names, errors.New("masterkey: seal clear settings: checkpoint blocked by another reader of the database; the WAL may still hold the old clear copies until the next checkpoint")
	}
	return names, nil
}

// ErrKeyFileMissing is returned by [LoadSecrets] when the key file is
// missing but the database holds secrets sealed under some key: making a
// new key would lock them away for ever (and whoever pinned a public key
// derived from one of them would be cut off). Restore the key file from the
// backup taken with the database.
var ErrKeyFileMissing = errors.New("masterkey: key file is missing but the database holds secrets sealed under it; restore it from the backup taken with the database")

// LoadSecrets migrates the table, then loads the master key from keyFile,
// creating it (mode 0600) only when the database holds no sealed secret
// yet, and returns the Secrets sealed under it. cfg.Key must be nil.
// created and tightened say whether the key file was created, or found
// readable by others and set to 0600 (worth a log line each).
func LoadSecrets(ctx context.Context, cfg SecretsConfig, keyFile string) (s *Secrets, created, tightened bool, err error) {
	if cfg.Key != nil {
		return nil, false, false, errors.New("masterkey: LoadSecrets loads the key itself: leave SecretsConfig.Key nil")
	}
	cfg.Key = New(make([]byte, Size)) // placeholder until the file is read
	s, err = NewSecrets(cfg)
	if err != nil {
		return nil, false, false, err
	}
	if err := s.Migrate(ctx); err != nil {
		return nil, false, false, err
	}
	if _, err := os.Stat(keyFile); errors.Is(err, fs.ErrNotExist) {
		sealed, err := HasSealed(ctx, cfg.DB)
		if err != nil {
			return nil, false, false, err
		}
		if sealed {
			return nil, false, false, fmt.Errorf("%w (%s)", ErrKeyFileMissing, keyFile)
		}
	}
	k, created, tightened, err := LoadOrCreate(keyFile)
	if err != nil {
		return nil, false, false, err
	}
	s.k = k
	return s, created, tightened, nil
}
