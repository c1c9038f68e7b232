package cloudapp

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/tunnel"
)

// With 1 000 connectors the page stays one readable document: the few with
// a broken directory or no connection come first, counted in the summary,
// and each row stays small.
func TestStatusPageThousandConnectors(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	d := statusData{Generated: now, RefreshSeconds: 10}
	for i := range 1000 {
		c := ConnectorInfo{ID: fmt.Sprintf("conn-%04d", i), Tenant: fmt.Sprintf("tenant-%03d", i/4), Connected: true, Sessions: 1,
			LastChange: now.Add(-time.Hour), Health: &ConnectorHealth{Version: "v1.4.0", Host: "host", Directory: HealthOK,
				LastOp: &tunnel.Outcome{Op: "lookup", At: now, OK: true}}}
		switch i {
		case 500:
			c.Health.Directory = HealthUnavailable
			c.Health.LastOp = &tunnel.Outcome{Op: "users", At: now, Unavailable: true, Error: "bind refused"}
		case 700:
			c.Connected, c.Sessions = false, 0
		}
		d.Connectors = append(d.Connectors, c)
	}
	sortConnectors(d.Connectors)
	var b strings.Builder
	require.NoError(t, statusPage.Execute(&b, d))
	page := b.String()
	assert.Less(t, len(page), 2<<20, "under 2 MB")
	first := strings.Index(page, `data-connector="conn-0500"`)
	second := strings.Index(page, `data-connector="conn-0700"`)
	healthy := strings.Index(page, `data-connector="conn-0000"`)
	require.Positive(t, first)
	assert.Less(t, first, second, "a broken directory first")
	assert.Less(t, second, healthy, "then a connector not connected, then the healthy ones")
	assert.Equal(t, 1000, strings.Count(page, `<tr class="connector"`))
}
