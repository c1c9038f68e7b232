package cloudapp

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// Secret returns the server's named secret as masterkey.Secrets does, for tests that
// look for it in the database files.
func Secret(s *Server, name string, n int) ([]byte, error) {
	return s.secrets.Secret(context.Background(), name, n)
}

// TunnelVia returns the RoundTripper the server uses to reach one connector.
func TunnelVia(s *Server, tenant, connectorID string) http.RoundTripper {
	return s.tunnelVia(tenant, connectorID)
}

// SetStopping marks s as shutting down, as Run does once it is asked to
// stop, for tests of PathReadyz.
func SetStopping(s *Server) { s.stopping.Store(true) }

// RenderStatus renders the status page as of now (revoked connectors and
// resolved alerts age out relative to it).
func RenderStatus(s *Server, now time.Time) (string, error) {
	d, err := s.statusData(context.Background(), now)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	err = statusPage.Execute(&b, d)
	return b.String(), err
}
