package importersql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/liaisonhq/liaison/activation"
)

// ActivationStore is an [activation.Store] that joins activation's users
// to the Store's: a user activated by a device before any import, or
// imported before any activation, is one cloud user with one ID. The cloud
// user row and activation's rows are one transaction, so a refused
// activation (a device conflict) leaves no user behind. A user an import
// disabled is refused with an *[activation.DisabledError] (Where "cloud"):
// the directory may have enabled it again since, but the cloud decides on
// what it holds until the next import.
type ActivationStore struct {
	Users *Store
	// Activations is activation's own store on the same database.
	Activations *activation.SQLStore
}

var _ activation.Store = ActivationStore{}

// Activate implements [activation.Store]. With PostgreSQL, the device of
// a user both stores already hold is activated without a transaction: one
// statement reads the cloud user, one more activates the device
// ([activation.SQLStore.ActivateExisting]); a first activation takes the
// transaction.
func (a ActivationStore) Activate(ctx context.Context, u activation.User, d activation.Device) (_ activation.Activation, err error) {
	s := a.Users
	s.w.Lock()
	defer s.w.Unlock()
	if s.d == Postgres {
		if act, ok, err := a.activateExisting(ctx, u, d); ok || err != nil {
			return act, err
		}
	}
	// Prepared before the transaction: preparing on the database from
	// within it would need a second connection of the pool.
	ins, err := s.stmt(ctx, insertCloudUser)
	if err != nil {
		return activation.Activation{}, fmt.Errorf("importersql: activate user: %w", err)
	}
	sel, err := s.stmt(ctx, selectCloudUser)
	if err != nil {
		return activation.Activation{}, fmt.Errorf("importersql: activate user: %w", err)
	}
	if err := a.Activations.PrepareTx(ctx); err != nil {
		return activation.Activation{}, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return activation.Activation{}, fmt.Errorf("importersql: activate: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the error that matters is err
		}
	}()
	id, created, err := s.cloudUser(ctx, tx.StmtContext(ctx, ins), tx.StmtContext(ctx, sel), u)
	if errors.Is(err, activation.ErrUserDisabled) {
		return activation.Activation{}, err
	}
	if err != nil {
		return activation.Activation{}, fmt.Errorf("importersql: activate user: %w", err)
	}
	u.ID, d.UserID = id, id
	act, err := a.Activations.ActivateTx(ctx, tx, u, d)
	if err != nil {
		return activation.Activation{}, err
	}
	if err := tx.Commit(); err != nil {
		return activation.Activation{}, fmt.Errorf("importersql: activate: commit: %w", err)
	}
	act.UserCreated = created
	return act, nil
}

// activateExisting activates d for a cloud user that exists already, with
// no transaction (a single write, and no user to roll back); ok is false,
// with nothing written, when the user is not in both stores yet.
func (a ActivationStore) activateExisting(ctx context.Context, u activation.User, d activation.Device) (_ activation.Activation, ok bool, err error) {
	sel, err := a.Users.stmt(ctx, selectCloudUser)
	if err != nil {
		return activation.Activation{}, false, fmt.Errorf("importersql: activate user: %w", err)
	}
	var id string
	var disabled int
	err = sel.QueryRowContext(ctx, u.Tenant, u.DirectoryID).Scan(&id, &disabled)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return activation.Activation{}, false, nil
	case err != nil:
		return activation.Activation{}, false, fmt.Errorf("importersql: activate user: %w", err)
	case disabled != 0:
		return activation.Activation{}, false, &activation.DisabledError{Where: "cloud", Reason: "disabled"}
	}
	u.ID, d.UserID = id, id
	return a.Activations.ActivateExisting(ctx, u, d)
}

var _ activation.UserStatusStore = ActivationStore{}

// UserDisabled implements [activation.UserStatusStore]: a user an import
// disabled or deleted may not use their devices. An unknown user is an
// error wrapping [activation.ErrNotFound].
func (a ActivationStore) UserDisabled(ctx context.Context, tenant, userID string) (bool, error) {
	st, err := a.Users.stmt(ctx, `SELECT disabled, deleted FROM users WHERE tenant = ? AND id = ?`) // once per authentication
	if err != nil {
		return false, fmt.Errorf("importersql: user status: %w", err)
	}
	var disabled, deleted int
	err = st.QueryRowContext(ctx, tenant, userID).Scan(&disabled, &deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("%w: user %q", activation.ErrNotFound, userID)
	}
	if err != nil {
		return false, fmt.Errorf("importersql: user status: %w", err)
	}
	return disabled != 0 || deleted != 0, nil
}

// Device implements [activation.Store].
func (a ActivationStore) Device(ctx context.Context, tenant, id string) (activation.Device, error) {
	return a.Activations.Device(ctx, tenant, id)
}

// The statements of an activation on the users table.
const (
	insertCloudUser = `INSERT INTO users (tenant, directory_id, id, mapping_id, login, upn, email, display_name, dn,
		groups_json, disabled, deleted, created_at, updated_at) VALUES (?, ?, ?, '', ?, ?, ?, ?, '', 'null', 0, 0, ?, ?)
		ON CONFLICT (tenant, directory_id) DO NOTHING`
	selectCloudUser = `SELECT id, disabled FROM users WHERE tenant = ? AND directory_id = ?`
)

// cloudUser returns the cloud ID of u within the transaction of ins (the
// insertCloudUser statement) and sel (selectCloudUser), creating the cloud
// user if needed (with u.ID).
func (s *Store) cloudUser(ctx context.Context, ins, sel *sql.Stmt, u activation.User) (id string, created bool, err error) {
	now := s.now().UnixNano()
	res, err := ins.ExecContext(ctx,
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
	if err := sel.QueryRowContext(ctx, u.Tenant, u.DirectoryID).Scan(&id, &disabled); err != nil {
		return "", false, err
	}
	if disabled != 0 {
		return "", false, &activation.DisabledError{Where: "cloud", Reason: "disabled"}
	}
	return id, false, nil
}
