package cloudapp_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
)

// Every date on the page is in one format, the page refreshes itself,
// and a revoked connector is listed for a day, then only counted.
func TestStatusPage(t *testing.T) {
	e := newEnv(t, nil)
	live := e.enroll("acme")
	e.start(live)
	gone := e.enroll("acme")
	e.start(gone)
	require.NoError(t, e.srv.RevokeConnector(context.Background(), "acme", gone.id))
	require.Eventually(t, func() bool {
		cs, err := e.srv.Connectors(context.Background(), "acme")
		require.NoError(t, err)
		for _, c := range cs {
			if c.ID == gone.id {
				return c.Sessions == 0
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)

	page, err := cloudapp.RenderStatus(e.srv, time.Now())
	require.NoError(t, err)
	assert.Contains(t, page, `<meta http-equiv="refresh" content="10">`)
	assert.Contains(t, page, live.id)
	assert.Contains(t, page, gone.id, "revoked today: still listed")
	assert.Contains(t, page, "revoked")
	assert.Contains(t, page, "1 / 2", "one of the two listed connectors is connected")

	later, err := cloudapp.RenderStatus(e.srv, time.Now().Add(25*time.Hour))
	require.NoError(t, err)
	assert.Contains(t, later, live.id)
	assert.NotContains(t, later, gone.id, "revoked more than a day ago: not listed")
	assert.Contains(t, later, "1 connector(s) revoked more than 24 h ago")

	// One date format: every date-like text is "YYYY-MM-DD hh:mm:ss UTC".
	anyDate := regexp.MustCompile(`\d{4}-\d{2}-\d{2}[T ][0-9:.]+[^<"]{0,4}`)
	oneFormat := regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC`)
	dates := anyDate.FindAllString(page, -1)
	require.NotEmpty(t, dates)
	for _, d := range dates {
		assert.Regexp(t, oneFormat, d)
	}
	assert.NotContains(t, page, " ago", "no relative times mixed in")

	// Served to a browser with the admin password.
	req, err := http.NewRequest(http.MethodGet, e.srv.URL()+"/", nil)
	require.NoError(t, err)
	req.SetBasicAuth("admin", adminToken)
	resp, err := e.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html"))
}
