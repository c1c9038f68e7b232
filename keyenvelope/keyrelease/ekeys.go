package keyrelease

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/liaisonhq/liaison/internal/sqlstore"
	"github.com/liaisonhq/liaison/keyenvelope"
)

// Dialect is the SQL flavour of the database; the same type as the other
// stores' of this module.
type Dialect = sqlstore.Dialect

// The dialects.
const (
	SQLite   = sqlstore.SQLite
	Postgres = sqlstore.Postgres
)

// SQLEkeysConfig configures NewSQLEkeys. DB is required.
type SQLEkeysConfig struct {
	DB *sql.DB
	// Dialect is SQLite (the zero value) or Postgres.
	Dialect Dialect
	// Writes, when set, is held around every write (with SQLite: the lock
	// shared by every store of the database). Nil takes no lock.
	Writes sync.Locker
	// Now stamps new rows; nil: time.Now.
	Now func() time.Time
}

// SQLEkeys is an [EkeyStore] over database/sql: one wrapped ekey per
// tenant, user and purpose. It holds only ekeys wrapped under a KEK the
// cloud never has.
type SQLEkeys struct {
	db  *sql.DB
	d   Dialect
	w   sync.Locker
	now func() time.Time
}

var _ EkeyStore = (*SQLEkeys)(nil)

// NewSQLEkeys returns the store. Call Migrate before use.
func NewSQLEkeys(cfg SQLEkeysConfig) (*SQLEkeys, error) {
	if cfg.DB == nil {
		return nil, errors.New("keyrelease: SQLEkeysConfig.DB is required")
	}
	if !cfg.Dialect.Valid() {
		return nil, fmt.Errorf("keyrelease: unknown SQLEkeysConfig.Dialect %d", cfg.Dialect)
	}
	s := &SQLEkeys{db: cfg.DB, d: cfg.Dialect, w: cfg.Writes, now: cfg.Now}
	if s.w == nil {
		s.w = new(sync.Mutex)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

var migrations = []string{
	`CREATE TABLE IF NOT EXISTS ekeys (tenant TEXT NOT NULL, user_id TEXT NOT NULL, purpose TEXT NOT NULL,
		ekey_id TEXT NOT NULL, wrapped BLOB NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (tenant, user_id, purpose))`,
}

// Migrate creates the table or brings it to this version.
func (s *SQLEkeys) Migrate(ctx context.Context) error {
	return sqlstore.Migrate(ctx, s.db, s.d, "keyrelease", migrations)
}

// Ekey implements [EkeyStore].
func (s *SQLEkeys) Ekey(ctx context.Context, tenant, user, purpose string) ([]byte, keyenvelope.EkeyID, error) {
	var wrapped []byte
	var idText string
	err := s.db.QueryRowContext(ctx, s.d.Rebind(`SELECT wrapped, ekey_id FROM ekeys WHERE tenant = ? AND user_id = ? AND purpose = ?`),
		tenant, user, purpose).Scan(&wrapped, &idText)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, keyenvelope.EkeyID{}, ErrNoEkey
	}
	if err != nil {
		return nil, keyenvelope.EkeyID{}, fmt.Errorf("keyrelease: load ekey: %w", err)
	}
	id, err := keyenvelope.ParseEkeyID(idText)
	return wrapped, id, err
}

// AddEkey implements [EkeyStore]: of two racing first releases, the first
// ekey stored stays.
func (s *SQLEkeys) AddEkey(ctx context.Context, tenant, user, purpose string, id keyenvelope.EkeyID, wrapped []byte) error {
	s.w.Lock()
	defer s.w.Unlock()
	if _, err := s.db.ExecContext(ctx, s.d.Rebind(`INSERT INTO ekeys (tenant, user_id, purpose, ekey_id, wrapped, created_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant, user_id, purpose) DO NOTHING`), tenant, user, purpose, id.String(), wrapped, s.now().UnixNano()); err != nil {
		return fmt.Errorf("keyrelease: store ekey: %w", err)
	}
	return nil
}
