package directoryhttp

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/liaisonhq/liaison/directory"
)

// Departer is an optional capability of a [Directory]: what left a
// mapping, as *directory.Client's Departures and Whereabouts. A handler
// over a Directory without it answers /departures with
// departures_unseen (the cloud then runs a full scan) and /whereabouts
// with an error.
type Departer interface {
	Departures(ctx context.Context, m directory.Mapping, since directory.Cursor) ([]directory.Departure, error)
	Whereabouts(ctx context.Context, m directory.Mapping, ids []string) ([]directory.Departure, error)
}

// GroupChanger is an optional capability of a [Directory]: the mapping's
// groups changed since a cursor, as *directory.Client's ChangedGroups.
// Without it /changed-groups answers departures_unseen.
type GroupChanger interface {
	ChangedGroups(ctx context.Context, m directory.Mapping, since directory.Cursor) ([]string, error)
}

var (
	_ Departer     = (*directory.Client)(nil)
	_ GroupChanger = (*directory.Client)(nil)
	// So an importer over a tunnel sees departures too.
	_ Departer     = (*Client)(nil)
	_ GroupChanger = (*Client)(nil)
)

type (
	departuresRequest struct {
		Mapping directory.Mapping `json:"mapping"`
		Since   directory.Cursor  `json:"since"`
	}
	whereaboutsRequest struct {
		Mapping directory.Mapping `json:"mapping"`
		IDs     []string          `json:"ids"`
	}
	departuresResponse struct {
		Departures []directory.Departure `json:"departures"`
	}
	groupsResponse struct {
		Groups []string `json:"groups"`
	}
)

func (h *handler) changedGroups(w http.ResponseWriter, r *http.Request) {
	var in departuresRequest
	if !readJSON(w, r, &in) {
		return
	}
	d, ok := h.d.(GroupChanger)
	if !ok {
		writeError(w, fmt.Errorf("%w: this connector's directory has no changed groups", directory.ErrDeparturesUnseen))
		return
	}
	v, err := d.ChangedGroups(r.Context(), in.Mapping, in.Since)
	reply(w, groupsResponse{nonNil(v)}, err)
}

// ChangedGroups returns the mapping's groups changed since a cursor (see
// directory.Client.ChangedGroups); a connector without the call reads as
// directory.ErrDeparturesUnseen, like Departures.
func (c *Client) ChangedGroups(ctx context.Context, m directory.Mapping, since directory.Cursor) ([]string, error) {
	var out groupsResponse
	err := c.post(ctx, "/changed-groups", departuresRequest{Mapping: m, Since: since}, &out)
	var re *Error
	if errors.As(err, &re) && (re.status == http.StatusNotFound || re.status == http.StatusForbidden) {
		return nil, fmt.Errorf("%w: %w", directory.ErrDeparturesUnseen, err)
	}
	return out.Groups, err
}

func (h *handler) departures(w http.ResponseWriter, r *http.Request) {
	var in departuresRequest
	if !readJSON(w, r, &in) {
		return
	}
	d, ok := h.d.(Departer)
	if !ok {
		writeError(w, fmt.Errorf("%w: this connector's directory has no departures", directory.ErrDeparturesUnseen))
		return
	}
	v, err := d.Departures(r.Context(), in.Mapping, in.Since)
	reply(w, departuresResponse{nonNil(v)}, err)
}

func (h *handler) whereabouts(w http.ResponseWriter, r *http.Request) {
	var in whereaboutsRequest
	if !readJSON(w, r, &in) {
		return
	}
	d, ok := h.d.(Departer)
	if !ok {
		writeError(w, errors.New("directoryhttp: this connector's directory has no whereabouts"))
		return
	}
	if len(in.IDs) > directory.MaxWhereabouts {
		writeError(w, fmt.Errorf("%w: %d IDs, at most %d", ErrBadRequest, len(in.IDs), directory.MaxWhereabouts))
		return
	}
	v, err := d.Whereabouts(r.Context(), in.Mapping, in.IDs)
	reply(w, departuresResponse{nonNil(v)}, err)
}

// Departures returns the users who left the mapping since a cursor (see
// directory.Client.Departures). A connector that does not know the call,
// or whose policy refuses it, is reported as an error matching
// directory.ErrDeparturesUnseen, so an importer falls back to a full scan.
func (c *Client) Departures(ctx context.Context, m directory.Mapping, since directory.Cursor) ([]directory.Departure, error) {
	var out departuresResponse
	err := c.post(ctx, "/departures", departuresRequest{Mapping: m, Since: since}, &out)
	var re *Error
	if errors.As(err, &re) && (re.status == http.StatusNotFound || re.status == http.StatusForbidden) {
		return nil, fmt.Errorf("%w: %w", directory.ErrDeparturesUnseen, err)
	}
	return out.Departures, err
}

// Whereabouts says why users are missing from the mapping (see
// directory.Client.Whereabouts).
func (c *Client) Whereabouts(ctx context.Context, m directory.Mapping, ids []string) ([]directory.Departure, error) {
	var out departuresResponse
	err := c.post(ctx, "/whereabouts", whereaboutsRequest{Mapping: m, IDs: ids}, &out)
	return out.Departures, err
}
