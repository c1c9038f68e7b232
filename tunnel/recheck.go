package tunnel

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// CloseRevoked re-reads from the store every connector with a live session
// on this gateway and closes the sessions of those the store says are
// revoked (or no longer knows), as [Gateway.Revoke] would have. It returns
// how many connectors it closed, and the first store error (the other
// connectors are still checked).
//
// [Gateway.Revoke] closes only this gateway's sessions. With several
// gateways on one store, the others learn of a revocation from a broadcast
// (tunnelnats); a gateway that missed it, cut off at that moment, keeps the
// session until the connector reconnects. Call CloseRevoked when such a
// gateway's link comes back, and every so often, so that it converges.
func (g *Gateway) CloseRevoked(ctx context.Context) (int, error) {
	var ids []string
	for _, s := range g.sessionsOf("") {
		ids = append(ids, s.ConnectorID())
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	closed := 0
	var first error
	for _, id := range ids {
		rec, err := g.store.Connector(ctx, id)
		switch {
		case errors.Is(err, ErrUnknownConnector):
		case err != nil:
			if first == nil {
				first = fmt.Errorf("tunnel: re-check connector %s: %w", id, err)
			}
			continue
		case !rec.Revoked:
			continue
		}
		closed++
		for _, s := range g.sessionsOf(id) {
			s.closeNotify(codeRevoked, "connector revoked", ErrRevoked)
		}
	}
	return closed, first
}
