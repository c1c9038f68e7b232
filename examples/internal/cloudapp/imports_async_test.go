package cloudapp_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
)

// A running import is followed at its status URL: phase, done, a total
// known from the start (the last complete scan's count), rate; a run that
// dies is recorded as failed, and as full when it was a full scan; a second
// start while one runs is refused with 409.
func TestImportRunFollowed(t *testing.T) {
	e := newEnv(t, nil)
	c := e.enroll("acme")
	e.start(c)
	e.dir.set(demoUsers(30))
	require.NoError(t, e.srv.PutMapping(context.Background(), "acme", "staff", directory.Mapping{}))
	first := e.importRun("staff", nil)
	require.Equal(t, importer.RunSucceeded, first.State, first.Error)

	e.dir.stallAfter = 20
	var started struct {
		ID        string `json:"id"`
		StatusURL string `json:"status_url"`
	}
	require.Equal(t, http.StatusAccepted, e.do(http.MethodPost, "/v1/admin/tenants/acme/mappings/staff/import",
		cloudapp.ImportOptions{Full: true}, &started))
	<-e.dir.stalled
	var run importer.Run
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, started.StatusURL, nil, &run))
	assert.Equal(t, importer.RunRunning, run.State)
	assert.Equal(t, importer.PhaseScan, run.Progress.Phase)
	assert.Equal(t, 30, run.Progress.Total, "the total is known while scanning")
	assert.LessOrEqual(t, run.Progress.Done, 20)
	var raw map[string]any
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, started.StatusURL, nil, &raw))
	assert.IsType(t, 0.0, raw["duration_seconds"])
	assert.IsType(t, "", raw["duration"], "durations are seconds or Go duration strings")
	progress := raw["progress"].(map[string]any)
	assert.IsType(t, "", progress["eta"])
	assert.IsType(t, 0.0, progress["elapsed_seconds"])

	assert.Equal(t, http.StatusConflict, e.do(http.MethodPost, "/v1/admin/tenants/acme/mappings/staff/import", nil, nil),
		"one run per mapping")
	page := e.statusPage()
	assert.Contains(t, page, `<tr class="import" data-mapping="staff">`, "the status page shows it")

	e.kill(c) // the scan dies half-way
	require.Eventually(t, func() bool {
		require.Equal(t, http.StatusOK, e.do(http.MethodGet, started.StatusURL, nil, &run))
		return run.State != importer.RunRunning
	}, 20*time.Second, 10*time.Millisecond)
	assert.Equal(t, importer.RunFailed, run.State)
	assert.True(t, run.Full)
	assert.NotEmpty(t, run.Error)
	st, err := e.srv.Imports(context.Background(), "acme")
	require.NoError(t, err)
	assert.Equal(t, "failed", st.Recent[0].Status)
	assert.True(t, st.Recent[0].Full, "a failed full run is recorded as full")

	assert.Equal(t, http.StatusNotFound, e.do(http.MethodGet, "/v1/admin/tenants/other/imports/"+started.ID, nil, nil),
		"another tenant's run is not found")
}
