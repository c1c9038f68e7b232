package cloudapp

import (
	"context"
	"io"
	"net/http"
	"time"
)

// deadlineTransport gives every request sent to a connector a deadline: a
// request whose context has none gets one of d (Config.RequestTimeout), so
// a connector that accepts a request and never answers costs its caller at
// most d. Requests that carry a deadline already (scheduled imports, under
// Config.ImportTimeout) keep it. The deadline covers reading the body too.
type deadlineTransport struct {
	rt http.RoundTripper
	d  time.Duration
}

func (t deadlineTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if _, ok := r.Context().Deadline(); ok {
		return t.rt.RoundTrip(r)
	}
	ctx, cancel := context.WithTimeout(r.Context(), t.d)
	resp, err := t.rt.RoundTrip(r.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelBody releases the request's timer when the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// tunnelTo returns a RoundTripper reaching any live connector of tenant,
// with the request deadline applied, counted in the metrics.
func (s *Server) tunnelTo(tenant string) http.RoundTripper {
	return deadlineTransport{rt: metricsTransport{rt: s.gw.RoundTripper(tenant), m: s.metrics}, d: s.cfg.RequestTimeout}
}

// tunnelVia returns a RoundTripper reaching one connector of tenant, with
// the request deadline applied, counted in the metrics.
func (s *Server) tunnelVia(tenant, connectorID string) http.RoundTripper {
	return deadlineTransport{rt: metricsTransport{rt: s.gw.RoundTripperFor(tenant, connectorID), m: s.metrics}, d: s.cfg.RequestTimeout}
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
