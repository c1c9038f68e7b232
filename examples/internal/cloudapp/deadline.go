package cloudapp

import (
	"context"
	"net/http"

	"github.com/liaisonhq/liaison/httpguard"
)

// tunnelTo returns a RoundTripper reaching any live connector of tenant,
// with the request deadline (httpguard.Deadline) applied, counted in the metrics.
func (s *Server) tunnelTo(tenant string) http.RoundTripper {
	return httpguard.Deadline(metricsTransport{rt: s.gw.RoundTripper(tenant), m: s.metrics}, s.cfg.RequestTimeout)
}

// tunnelVia returns a RoundTripper reaching one connector of tenant, with
// the request deadline applied, counted in the metrics.
func (s *Server) tunnelVia(tenant, connectorID string) http.RoundTripper {
	return httpguard.Deadline(metricsTransport{rt: s.gw.RoundTripperFor(tenant, connectorID), m: s.metrics}, s.cfg.RequestTimeout)
}

// withImportDeadline bounds an import (or a plan's scan) asked for without
// a deadline, by Config.ImportTimeout: longer than RequestTimeout, since a
// full scan of a large directory is one long streamed request.
func (s *Server) withImportDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.ImportTimeout)
}
