package importersql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/liaisonhq/liaison/directory/importer"
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
			return r, fmt.Errorf("importersql: groups of %s: %w", r.DirectoryID, err)
		}
	}
	return r, nil
}

// Users implements [importer.Store]: the live users of a mapping, by
// directory ID.
func (s *Store) Users(ctx context.Context, sc importer.Scope, fn func(importer.Record) error) error {
	rows, err := s.db.QueryContext(ctx, s.d.Rebind(`SELECT `+userCols+` FROM users WHERE tenant = ? AND mapping_id = ? AND deleted = 0 ORDER BY directory_id`),
		sc.Tenant, sc.MappingID)
	if err != nil {
		return fmt.Errorf("importersql: list users: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return fmt.Errorf("importersql: list users: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// User implements [importer.Store].
func (s *Store) User(ctx context.Context, sc importer.Scope, id string) (importer.Record, bool, error) {
	r, err := scanRecord(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE tenant = ? AND mapping_id = ? AND directory_id = ? AND deleted = 0`,
		sc.Tenant, sc.MappingID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return importer.Record{}, false, nil
	}
	if err != nil {
		return importer.Record{}, false, fmt.Errorf("importersql: get user: %w", err)
	}
	return r, true, nil
}

// Apply implements [importer.Store]: one transaction per batch. Creates and
// updates are one upsert that keeps the cloud ID of a user seen before
// (also one an earlier import deleted); deletes are soft.
func (s *Store) Apply(ctx context.Context, sc importer.Scope, ops []importer.Op) error {
	return s.tx(ctx, "apply", func(tx *sql.Tx) error {
		// Prepared once per batch: parsing the upsert costs more than running it.
		upsert, err := tx.PrepareContext(ctx, s.d.Rebind(`INSERT INTO users (tenant, directory_id, id, mapping_id, login, upn, email, display_name, dn,
		groups_json, disabled, deleted, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)
		ON CONFLICT (tenant, directory_id) DO UPDATE SET mapping_id = excluded.mapping_id, login = excluded.login,
		upn = excluded.upn, email = excluded.email, display_name = excluded.display_name, dn = excluded.dn,
		groups_json = excluded.groups_json, disabled = excluded.disabled, deleted = 0, updated_at = excluded.updated_at`))
		if err != nil {
			return err
		}
		defer upsert.Close()
		now := s.now().UnixNano()
		for _, op := range ops {
			r := op.Record
			if op.Kind == importer.OpDelete {
				if _, err := tx.ExecContext(ctx, s.d.Rebind(`UPDATE users SET deleted = 1, updated_at = ? WHERE tenant = ? AND mapping_id = ? AND directory_id = ?`),
					now, sc.Tenant, sc.MappingID, r.DirectoryID); err != nil {
					return fmt.Errorf("delete: %w", err)
				}
				continue
			}
			groups, err := json.Marshal(r.Groups)
			if err != nil {
				return err
			}
			if _, err := upsert.ExecContext(ctx, sc.Tenant, r.DirectoryID, s.newID(), sc.MappingID, r.Login, r.UPN, r.Email, r.DisplayName, r.DN,
				string(groups), boolInt(r.Disabled), now, now); err != nil {
				return fmt.Errorf("%s: %w", op.Kind, err)
			}
		}
		return nil
	})
}

// LoadCheckpoint implements [importer.CheckpointStore].
func (s *Store) LoadCheckpoint(ctx context.Context, sc importer.Scope) (*importer.Checkpoint, error) {
	var plan string
	var applied int
	var saved int64
	err := s.queryRow(ctx, `SELECT c.plan, COALESCE(p.applied, c.applied), COALESCE(p.saved_at, c.saved_at)
		FROM import_checkpoints c LEFT JOIN import_progress p ON p.tenant = c.tenant AND p.mapping_id = c.mapping_id
		WHERE c.tenant = ? AND c.mapping_id = ?`,
		sc.Tenant, sc.MappingID).Scan(&plan, &applied, &saved)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("importersql: load checkpoint: %w", err)
	}
	c := &importer.Checkpoint{Applied: applied, Saved: time.Unix(0, saved), Plan: new(importer.Plan)}
	if err := json.Unmarshal([]byte(plan), c.Plan); err != nil {
		return nil, fmt.Errorf("importersql: load checkpoint: %w", err)
	}
	return c, nil
}

const upsertProgress = `INSERT INTO import_progress (tenant, mapping_id, applied, saved_at) VALUES (?, ?, ?, ?)
	ON CONFLICT (tenant, mapping_id) DO UPDATE SET applied = excluded.applied, saved_at = excluded.saved_at`

// SaveCheckpoint implements [importer.CheckpointStore]. After a batch (no
// plan) only the small progress row changes, never the plan's.
func (s *Store) SaveCheckpoint(ctx context.Context, sc importer.Scope, c importer.Checkpoint) error {
	if c.Plan == nil {
		if err := s.exec(ctx, upsertProgress, sc.Tenant, sc.MappingID, c.Applied, c.Saved.UnixNano()); err != nil {
			return fmt.Errorf("importersql: save checkpoint: %w", err)
		}
		return nil
	}
	plan, err := json.Marshal(c.Plan)
	if err != nil {
		return err
	}
	return s.tx(ctx, "save checkpoint", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.d.Rebind(`INSERT INTO import_checkpoints (tenant, mapping_id, plan, applied, saved_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (tenant, mapping_id) DO UPDATE SET plan = excluded.plan, applied = excluded.applied, saved_at = excluded.saved_at`),
			sc.Tenant, sc.MappingID, string(plan), c.Applied, c.Saved.UnixNano()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.d.Rebind(upsertProgress), sc.Tenant, sc.MappingID, c.Applied, c.Saved.UnixNano())
		return err
	})
}

// ClearCheckpoint implements [importer.CheckpointStore].
func (s *Store) ClearCheckpoint(ctx context.Context, sc importer.Scope) error {
	return s.tx(ctx, "clear checkpoint", func(tx *sql.Tx) error {
		for _, q := range []string{`DELETE FROM import_checkpoints WHERE tenant = ? AND mapping_id = ?`,
			`DELETE FROM import_progress WHERE tenant = ? AND mapping_id = ?`} {
			if _, err := tx.ExecContext(ctx, s.d.Rebind(q), sc.Tenant, sc.MappingID); err != nil {
				return err
			}
		}
		return nil
	})
}

// NextRun implements [importer.ScheduleStore].
func (s *Store) NextRun(ctx context.Context, tenant string) (time.Time, bool, error) {
	var at int64
	err := s.queryRow(ctx, `SELECT next_run FROM import_schedule WHERE tenant = ?`, tenant).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("importersql: next run: %w", err)
	}
	return time.Unix(0, at), true, nil
}

// SetNextRun implements [importer.ScheduleStore].
func (s *Store) SetNextRun(ctx context.Context, tenant string, at time.Time) error {
	if err := s.exec(ctx, `INSERT INTO import_schedule (tenant, next_run) VALUES (?, ?)
		ON CONFLICT (tenant) DO UPDATE SET next_run = excluded.next_run`, tenant, at.UnixNano()); err != nil {
		return fmt.Errorf("importersql: set next run: %w", err)
	}
	return nil
}

// User is a cloud user as an admin lists it.
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
	// Deleted is set on a user a full import no longer found (only
	// [Store.UserByID] returns such users).
	Deleted bool `json:"-"`
}

// ListUsers returns the users of tenant that no import deleted, by login.
func (s *Store) ListUsers(ctx context.Context, tenant string) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, s.d.Rebind(`SELECT id, mapping_id, `+userCols+`, deleted FROM users WHERE tenant = ? AND deleted = 0 ORDER BY login, directory_id`), tenant)
	if err != nil {
		return nil, fmt.Errorf("importersql: list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("importersql: list users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// ErrNotFound is returned by [Store.UserByID] and [Store.Mapping] when
// there is no such user or mapping in the tenant.
var ErrNotFound = errors.New("importersql: not found")

// UserByID returns the user of tenant with cloud ID id, deleted or not, or
// ErrNotFound.
func (s *Store) UserByID(ctx context.Context, tenant, id string) (User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT id, mapping_id, `+userCols+`, deleted FROM users WHERE tenant = ? AND id = ?`, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("%w: user %q", ErrNotFound, id)
	}
	if err != nil {
		return User{}, fmt.Errorf("importersql: get user: %w", err)
	}
	return u, nil
}

// CloudUserID returns the cloud ID of tenant's live user with the given
// directory ID, or "" when it was never imported or activated.
func (s *Store) CloudUserID(ctx context.Context, tenant, directoryID string) (string, error) {
	var id string
	err := s.queryRow(ctx, `SELECT id FROM users WHERE tenant = ? AND directory_id = ? AND deleted = 0`, tenant, directoryID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, err
}

func scanUser(sc interface{ Scan(...any) error }) (User, error) {
	var u User
	var groups string
	var disabled, deleted int
	if err := sc.Scan(&u.ID, &u.MappingID, &u.DirectoryID, &u.Login, &u.UPN, &u.Email, &u.DisplayName, &u.DN, &groups, &disabled, &deleted); err != nil {
		return u, err
	}
	u.Disabled, u.Deleted = disabled != 0, deleted != 0
	_ = json.Unmarshal([]byte(groups), &u.Groups) // written by Apply; a bad value only hides groups
	return u, nil
}
