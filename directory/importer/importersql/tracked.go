package importersql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/liaisonhq/liaison/directory/importer"
)

var _ importer.RunStore = (*Store)(nil)

// keepTracked is how many finished tracked runs a mapping keeps.
const keepTracked = 100

// BeginRun implements [importer.RunStore]: it saves r as the running run of
// its mapping, unless another running run of it was updated at or after
// notBefore ([importer.ErrRunning]); running runs updated before are
// abandoned (marked failed, so they no longer hold the mapping). A unique
// index on the running run of each mapping makes it exclusive across nodes.
// It also drops the mapping's finished runs beyond the latest 100.
func (s *Store) BeginRun(ctx context.Context, r importer.Run, notBefore time.Time) error {
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("importersql: begin run: %w", err)
	}
	var taken bool
	err = s.tx(ctx, "begin run", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.d.Rebind(`UPDATE tracked_runs SET state = ? WHERE tenant = ? AND mapping_id = ? AND state = ? AND updated_at < ?`),
			string(importer.RunFailed), r.Scope.Tenant, r.Scope.MappingID, string(importer.RunRunning), notBefore.UnixNano()); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.d.Rebind(`INSERT INTO tracked_runs (id, tenant, mapping_id, state, started_at, updated_at, run)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
			r.ID, r.Scope.Tenant, r.Scope.MappingID, string(r.State), r.Started.UnixNano(), r.Updated.UnixNano(), string(body))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			taken = true
			return nil
		}
		_, err = tx.ExecContext(ctx, s.d.Rebind(`DELETE FROM tracked_runs WHERE id IN (SELECT id FROM tracked_runs
			WHERE tenant = ? AND mapping_id = ? AND state <> ? ORDER BY started_at DESC LIMIT ? OFFSET ?)`),
			r.Scope.Tenant, r.Scope.MappingID, string(importer.RunRunning), 1<<31-1, keepTracked)
		return err
	})
	if err != nil {
		return err
	}
	if taken {
		return importer.ErrRunning
	}
	return nil
}

// SaveRun implements [importer.RunStore]: it replaces the saved run r.ID
// while it is running there.
func (s *Store) SaveRun(ctx context.Context, r importer.Run) error {
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("importersql: save run: %w", err)
	}
	if err := s.exec(ctx, `UPDATE tracked_runs SET state = ?, updated_at = ?, run = ? WHERE id = ? AND state = ?`,
		string(r.State), r.Updated.UnixNano(), string(body), r.ID, string(importer.RunRunning)); err != nil {
		return fmt.Errorf("importersql: save run: %w", err)
	}
	return nil
}

// LoadRuns implements [importer.RunStore]: the run q.ID, or the latest
// q.Limit runs of q.Tenant ("" for every tenant), most recent first.
func (s *Store) LoadRuns(ctx context.Context, q importer.RunQuery) ([]importer.Run, error) {
	query := `SELECT run FROM tracked_runs`
	var args []any
	switch {
	case q.ID != "":
		query += ` WHERE id = ?`
		args = append(args, q.ID)
	case q.Tenant != "":
		query += ` WHERE tenant = ?`
		args = append(args, q.Tenant)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = keepTracked
	}
	query += ` ORDER BY started_at DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, s.d.Rebind(query), args...)
	if err != nil {
		return nil, fmt.Errorf("importersql: load runs: %w", err)
	}
	defer rows.Close()
	var out []importer.Run
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("importersql: load runs: %w", err)
		}
		var r importer.Run
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			return nil, fmt.Errorf("importersql: load runs: run of %d bytes: %w", len(body), err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
