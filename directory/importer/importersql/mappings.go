package importersql

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/importer"
)

// AddTenant records a tenant (for [Store.Tenants]); adding one twice is
// not an error.
func (s *Store) AddTenant(ctx context.Context, tenant string) error {
	if err := s.exec(ctx, `INSERT INTO tenants (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, tenant, s.now().UnixNano()); err != nil {
		return fmt.Errorf("importersql: add tenant: %w", err)
	}
	return nil
}

// Tenants lists the tenants, by name: the list an [importer.Scheduler]
// visits (SchedulerConfig.Tenants).
func (s *Store) Tenants(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM tenants ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("importersql: list tenants: %w", err)
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

// Mapping is a stored mapping of a tenant, with the cursor of its last
// successful import.
type Mapping struct {
	ID      string            `json:"id"`
	Tenant  string            `json:"tenant"`
	Mapping directory.Mapping `json:"mapping"`
	// Removal is what imports do to users who left the directory or the
	// mapping: importer.RemoveDisable (the zero value) or
	// importer.RemoveDelete.
	Removal importer.RemovalPolicy `json:"removal,omitempty"`
	Cursor  directory.Cursor       `json:"cursor,omitempty"`
}

// storedMapping is the mapping column: the directory mapping and the
// removal policy, in one JSON object (a row written before the policy
// existed reads as the default, disable).
type storedMapping struct {
	directory.Mapping
	Removal importer.RemovalPolicy `json:"removal,omitempty"`
}

// PutMapping creates or replaces a mapping. A changed mapping (or removal
// policy) loses its cursor, so its next import is a full one; its checkpoint is cleared, so
// a half-applied plan of the old mapping is never resumed.
func (s *Store) PutMapping(ctx context.Context, m Mapping) error {
	if err := m.Removal.Validate(); err != nil {
		return fmt.Errorf("importersql: put mapping: %w", err)
	}
	b, err := json.Marshal(storedMapping{m.Mapping, m.Removal})
	if err != nil {
		return err
	}
	if err := s.exec(ctx, `INSERT INTO mappings (tenant, id, mapping, cursor, created_at) VALUES (?, ?, ?, '', ?)
		ON CONFLICT (tenant, id) DO UPDATE SET mapping = excluded.mapping,
		cursor = CASE WHEN mappings.mapping = excluded.mapping THEN mappings.cursor ELSE '' END`,
		m.Tenant, m.ID, string(b), s.now().UnixNano()); err != nil {
		return fmt.Errorf("importersql: put mapping: %w", err)
	}
	return s.ClearCheckpoint(ctx, importer.Scope{Tenant: m.Tenant, MappingID: m.ID})
}

// Mappings lists the mappings of tenant, by ID.
func (s *Store) Mappings(ctx context.Context, tenant string) ([]Mapping, error) {
	return s.mappings(ctx, `SELECT tenant, id, mapping, cursor FROM mappings WHERE tenant = ? ORDER BY id`, tenant)
}

// Mapping returns one mapping of tenant, or ErrNotFound.
func (s *Store) Mapping(ctx context.Context, tenant, id string) (Mapping, error) {
	ms, err := s.mappings(ctx, `SELECT tenant, id, mapping, cursor FROM mappings WHERE tenant = ? AND id = ?`, tenant, id)
	if err != nil {
		return Mapping{}, err
	}
	if len(ms) == 0 {
		return Mapping{}, fmt.Errorf("%w: mapping %q", ErrNotFound, id)
	}
	return ms[0], nil
}

func (s *Store) mappings(ctx context.Context, q string, args ...any) ([]Mapping, error) {
	st, err := s.stmt(ctx, q) // once per activation
	if err != nil {
		return nil, fmt.Errorf("importersql: list mappings: %w", err)
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("importersql: list mappings: %w", err)
	}
	defer rows.Close()
	var out []Mapping
	for rows.Next() {
		var m Mapping
		var js string
		if err := rows.Scan(&m.Tenant, &m.ID, &js, &m.Cursor); err != nil {
			return nil, fmt.Errorf("importersql: list mappings: %w", err)
		}
		var sm storedMapping
		if err := json.Unmarshal([]byte(js), &sm); err != nil {
			return nil, fmt.Errorf("importersql: mapping %s: %w", m.ID, err)
		}
		m.Mapping, m.Removal = sm.Mapping, sm.Removal
		out = append(out, m)
	}
	return out, rows.Err()
}

// SetCursor stores the cursor a successful import of a mapping returned.
func (s *Store) SetCursor(ctx context.Context, tenant, id string, c directory.Cursor) error {
	if err := s.exec(ctx, `UPDATE mappings SET cursor = ? WHERE tenant = ? AND id = ?`, string(c), tenant, id); err != nil {
		return fmt.Errorf("importersql: set cursor: %w", err)
	}
	return nil
}

// Run is one finished (or refused) import.
type Run struct {
	ID        int64            `json:"id"`
	Tenant    string           `json:"tenant"`
	MappingID string           `json:"mapping_id"`
	Started   time.Time        `json:"started"`
	Finished  time.Time        `json:"finished"`
	Full      bool             `json:"full"`
	Status    string           `json:"status"` // ok, refused, failed, skipped
	Summary   importer.Summary `json:"summary"`
	// Removals lists who the run disabled or deleted (or, refused, would
	// have) and why.
	Removals []importer.Removal `json:"removals,omitempty"`
	Error    string             `json:"error,omitempty"`
}

// runSummary is the summary column: the counts and the removals (a row
// written before removals were recorded reads with none).
type runSummary struct {
	importer.Summary
	Removals []importer.Removal `json:"removals,omitempty"`
}

// AddRun records a finished import (its ID is assigned).
func (s *Store) AddRun(ctx context.Context, r Run) error {
	sum, _ := json.Marshal(runSummary{r.Summary, r.Removals})
	if err := s.exec(ctx, `INSERT INTO import_runs (tenant, mapping_id, started_at, finished_at, full_scan, status, summary, error)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, r.Tenant, r.MappingID, r.Started.UnixNano(), r.Finished.UnixNano(), boolInt(r.Full),
		r.Status, string(sum), r.Error); err != nil {
		return fmt.Errorf("importersql: record import: %w", err)
	}
	return nil
}

// Runs returns the last limit runs of tenant ("" for every tenant), most
// recent first.
func (s *Store) Runs(ctx context.Context, tenant string, limit int) ([]Run, error) {
	q := `SELECT id, tenant, mapping_id, started_at, finished_at, full_scan, status, summary, error FROM import_runs`
	var args []any
	if tenant != "" {
		q += ` WHERE tenant = ?`
		args = append(args, tenant)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, s.d.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("importersql: list imports: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		var r Run
		var st, fin int64
		var full int
		var sum string
		if err := rows.Scan(&r.ID, &r.Tenant, &r.MappingID, &st, &fin, &full, &r.Status, &sum, &r.Error); err != nil {
			return nil, fmt.Errorf("importersql: list imports: %w", err)
		}
		r.Started, r.Finished, r.Full = time.Unix(0, st).UTC(), time.Unix(0, fin).UTC(), full != 0
		var rs runSummary
		_ = json.Unmarshal([]byte(sum), &rs) // written by AddRun
		r.Summary, r.Removals = rs.Summary, rs.Removals
		out = append(out, r)
	}
	return out, rows.Err()
}
