package importer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/liaisonhq/liaison/directory"
)

// RemovalPolicy is what an import does to a user who left the directory or
// the mapping (deleted, moved out of scope, removed from the mapping's
// groups). It is chosen per mapping (Job.Removal).
type RemovalPolicy string

// Removal policies.
const (
	// RemoveDisable keeps the user in the store, disabled (the default):
	// the cloud refuses the user's device authentications, activations
	// and backup key releases, and an admin can still restore the user's
	// data. A user who comes back into scope is enabled again.
	RemoveDisable RemovalPolicy = "disable"
	// RemoveDelete deletes the user from the store.
	RemoveDelete RemovalPolicy = "delete"
)

// Validate returns an error matching ErrInvalidJob for a policy other than
// "", RemoveDisable and RemoveDelete.
func (p RemovalPolicy) Validate() error {
	if p == "" || p == RemoveDisable || p == RemoveDelete {
		return nil
	}
	return fmt.Errorf("%w: removal policy %q (want %q or %q)", ErrInvalidJob, p, RemoveDisable, RemoveDelete)
}

// Reason says why an Op disables or deletes a user.
type Reason string

// Reasons of disables and deletes.
const (
	// ReasonDisabled: disabled in the directory (the user is still in
	// scope; disabled whatever the removal policy).
	ReasonDisabled Reason = "disabled"
	// ReasonDeleted: deleted in the directory.
	ReasonDeleted = Reason(directory.RemovedDeleted)
	// ReasonOutOfScope: moved out of the mapping's OUs, or no longer
	// matching its filter.
	ReasonOutOfScope = Reason(directory.RemovedOutOfScope)
	// ReasonLeftGroup: removed from the mapping's groups.
	ReasonLeftGroup = Reason(directory.RemovedFromGroup)
	// ReasonNotSeen: absent from a complete scan; the source did not say
	// why (it has no Whereabouts, or did not answer).
	ReasonNotSeen Reason = "not_seen"
)

// Describe is the reason in words, for history pages and alerts.
func (r Reason) Describe() string {
	switch r {
	case ReasonDisabled:
		return "disabled in the directory"
	case ReasonDeleted:
		return "deleted in the directory"
	case ReasonOutOfScope:
		return "moved out of the mapping's scope"
	case ReasonLeftGroup:
		return "removed from the mapping's groups"
	case ReasonNotSeen:
		return "not in the directory's full scan"
	}
	return string(r)
}

// Removed counts the disables and deletes of a plan by reason.
type Removed struct {
	Disabled   int `json:"disabled,omitempty"`
	Deleted    int `json:"deleted,omitempty"`
	OutOfScope int `json:"out_of_scope,omitempty"`
	LeftGroup  int `json:"left_group,omitempty"`
	NotSeen    int `json:"not_seen,omitempty"`
}

func (r *Removed) add(reason Reason) {
	switch reason {
	case ReasonDisabled:
		r.Disabled++
	case ReasonDeleted:
		r.Deleted++
	case ReasonOutOfScope:
		r.OutOfScope++
	case ReasonLeftGroup:
		r.LeftGroup++
	default:
		r.NotSeen++
	}
}

// Removal is one user an import disabled or deleted, and why: a line of
// the import history.
type Removal struct {
	DirectoryID string `json:"directory_id"`
	Login       string `json:"login,omitempty"`
	DN          string `json:"dn,omitempty"`
	Kind        OpKind `json:"kind"`
	Reason      Reason `json:"reason"`
}

// String reads "disable alice (deleted in the directory)".
func (r Removal) String() string {
	name := r.Login
	if name == "" {
		name = r.DirectoryID
	}
	return fmt.Sprintf("%s %s (%s)", r.Kind, name, r.Reason.Describe())
}

// MaxListedRemovals caps Result.Removals; Summary counts every removal.
const MaxListedRemovals = 1000

func removalsOf(ops []Op) []Removal {
	var out []Removal
	for _, o := range ops {
		if o.Kind != OpDisable && o.Kind != OpDelete {
			continue
		}
		if len(out) == MaxListedRemovals {
			break
		}
		out = append(out, Removal{DirectoryID: o.Record.DirectoryID, Login: o.Record.Login, DN: o.Record.DN, Kind: o.Kind, Reason: o.Reason})
	}
	return out
}

// DepartureSource is an optional capability of a Source: the users who
// left a mapping since a cursor, as *directory.Client's Departures. With it,
// incremental imports remove users too; without it they never remove
// anyone, and only full scans (the Scheduler runs one in every Interval) do.
// An error matching directory.ErrDeparturesUnseen makes the import fall back
// to a full scan.
type DepartureSource interface {
	Departures(ctx context.Context, m directory.Mapping, since directory.Cursor) ([]directory.Departure, error)
}

// WhereaboutsSource is an optional capability of a Source: why users are
// missing from a mapping, as *directory.Client's Whereabouts. With it, a
// full scan's removals carry their reason; without it they read
// ReasonNotSeen.
type WhereaboutsSource interface {
	Whereabouts(ctx context.Context, m directory.Mapping, ids []string) ([]directory.Departure, error)
}

// GroupChangeSource is an optional capability of a Source that is also a
// WhereaboutsSource: the mapping's groups changed since a cursor, as
// *directory.Client's ChangedGroups. With it, an incremental import also
// removes users who left the mapping's groups when only the group entry
// changed (AD): it asks Whereabouts about the stored members of those
// groups (at most directory.MaxWhereabouts; more fall back to a full scan).
type GroupChangeSource interface {
	ChangedGroups(ctx context.Context, m directory.Mapping, since directory.Cursor) ([]string, error)
}

var (
	_ DepartureSource   = (*directory.Client)(nil)
	_ WhereaboutsSource = (*directory.Client)(nil)
	_ GroupChangeSource = (*directory.Client)(nil)
)

// explain asks the source why the users of ops (removals of a full scan)
// left, and sets each op's reason. Users the source reports in scope again
// (they came back after the scan) are dropped from the plan. Without an
// answer the reasons stay ReasonNotSeen.
func (im *Importer) explain(ctx context.Context, job Job, removals []Op) []Op {
	ws, ok := im.cfg.Source.(WhereaboutsSource)
	if !ok || len(removals) == 0 {
		return removals
	}
	n := min(len(removals), directory.MaxWhereabouts)
	ids := make([]string, n)
	for i := range n {
		ids[i] = removals[i].Record.DirectoryID
	}
	deps, err := ws.Whereabouts(ctx, job.Mapping, ids)
	if err != nil {
		im.log.Warn("importer: whereabouts of removed users unknown", "tenant", job.Scope.Tenant,
			"mapping_id", job.Scope.MappingID, "err", err)
		return removals
	}
	why := make(map[string]Reason, len(deps))
	for _, d := range deps {
		why[d.ID] = Reason(d.Reason)
	}
	out := removals[:0]
	for i, op := range removals {
		if i < n {
			r, gone := why[op.Record.DirectoryID]
			if !gone {
				continue // back in scope since the scan: the next import updates it
			}
			op.Reason = r
		}
		out = append(out, op)
	}
	return out
}

// departures adds the removals an incremental import learns from the
// source. It returns directory.ErrDeparturesUnseen (wrapped) when the
// source cannot tell, so the caller runs a full scan instead.
func (im *Importer) departures(ctx context.Context, job Job, p *planner) error {
	ds, ok := im.cfg.Source.(DepartureSource)
	if !ok {
		return nil
	}
	deps, err := ds.Departures(ctx, job.Mapping, job.Since)
	if err != nil {
		return err
	}
	for _, d := range deps {
		old, ok, err := im.cfg.Store.User(ctx, job.Scope, d.ID)
		if err != nil {
			return fmt.Errorf("importer: get store user: %w", err)
		}
		if ok {
			p.remove(old, Reason(d.Reason), job.Removal)
		}
	}
	return im.groupLeavers(ctx, job, p)
}

// groupLeavers removes the stored members of the mapping's changed groups
// who are no longer in scope, when the source can name the changed groups.
// Users the run already reported are left alone: the source said where
// they are.
func (im *Importer) groupLeavers(ctx context.Context, job Job, p *planner) error {
	gs, ok := im.cfg.Source.(GroupChangeSource)
	ws, ok2 := im.cfg.Source.(WhereaboutsSource)
	if !ok || !ok2 || len(job.Mapping.Groups) == 0 {
		return nil
	}
	groups, err := gs.ChangedGroups(ctx, job.Mapping, job.Since)
	if err != nil || len(groups) == 0 {
		return err
	}
	changed := make(map[string]bool, len(groups))
	for _, g := range groups {
		changed[strings.ToLower(g)] = true
	}
	var ids []string
	stored := map[string]Record{}
	err = im.cfg.Store.Users(ctx, job.Scope, func(r Record) error {
		if _, reported := p.index[r.DirectoryID]; reported {
			return nil
		}
		for _, g := range r.Groups {
			if changed[strings.ToLower(g)] {
				ids = append(ids, r.DirectoryID)
				stored[r.DirectoryID] = r
				break
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("importer: list store users: %w", err)
	}
	if len(ids) > directory.MaxWhereabouts {
		return fmt.Errorf("%w: %d stored members of changed groups, more than one whereabouts call", directory.ErrDeparturesUnseen, len(ids))
	}
	if len(ids) == 0 {
		return nil
	}
	deps, err := ws.Whereabouts(ctx, job.Mapping, ids)
	if err != nil {
		return err
	}
	for _, d := range deps {
		if r, ok := stored[d.ID]; ok {
			p.remove(r, Reason(d.Reason), job.Removal)
		}
	}
	return nil
}

// errFullScanNeeded tells Plan to fall back to a full scan.
func errFullScanNeeded(err error) bool {
	return errors.Is(err, directory.ErrCursorInvalid) || errors.Is(err, directory.ErrDeparturesUnseen)
}
