package cloudapp_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/tunnel"
)

// What an admin or a device sees behind a round-robin balancer does not
// depend on the node it lands on: an import started through one node is
// followed (and exclusive) through the others, and a revocation a node
// missed (it never heard the broadcast) still closes its sessions.
func TestClusterStateAcrossNodes(t *testing.T) {
	dir := newFakeDir()
	nodes := startCluster(t, 3, dir, func(c *cloudapp.Config) {
		c.Cluster.RevocationRecheck = 200 * time.Millisecond
	})
	dir.set(demoUsers(30))
	c := nodes[0].enroll("acme") // its session is on node 0
	c.info = &tunnel.ConnectorInfo{Version: "v9.8.7", Host: "dc-host", Services: map[string]tunnel.ServiceInfo{
		directoryhttp.Service: {Configured: true, Last: &tunnel.Outcome{Op: "users", OK: true}}}}
	nodes[0].start(c)
	require.Equal(t, http.StatusNoContent, nodes[1].do(http.MethodPut, "/v1/admin/tenants/acme/mappings/staff",
		directory.Mapping{OUs: []string{"ou=Corp,dc=corp,dc=test"}}, nil))

	t.Run("an import started through one node is followed through the others", func(t *testing.T) {
		var started struct {
			ID        string `json:"id"`
			StatusURL string `json:"status_url"`
		}
		require.Equal(t, http.StatusAccepted, nodes[0].do(http.MethodPost, "/v1/admin/tenants/acme/mappings/staff/import",
			cloudapp.ImportOptions{Full: true}, &started))
		var run importer.Run
		require.Eventually(t, func() bool {
			require.Equal(t, http.StatusOK, nodes[1].do(http.MethodGet, started.StatusURL, nil, &run), "node 1 knows node 0's run")
			return run.State != importer.RunRunning
		}, 30*time.Second, 20*time.Millisecond)
		assert.Equal(t, started.ID, run.ID)
		require.Equal(t, importer.RunSucceeded, run.State, run.Error)
		require.NotNil(t, run.Summary)
		assert.Equal(t, 30, run.Summary.Creates)
		assert.Equal(t, 30, run.Scanned)
		var runs []importer.Run
		require.Equal(t, http.StatusOK, nodes[2].do(http.MethodGet, started.StatusURL, nil, &run))
		assert.Equal(t, importer.RunSucceeded, run.State)
		assert.Equal(t, http.StatusNotFound, nodes[2].do(http.MethodGet, "/v1/admin/tenants/other/imports/"+started.ID, nil, nil),
			"another tenant's run is not found")
		runs, err := nodes[2].srv.ImportRuns(context.Background(), "acme")
		require.NoError(t, err)
		require.Len(t, runs, 1)
		assert.Equal(t, started.ID, runs[0].ID)
	})

	t.Run("a running import is visible and exclusive on every node", func(t *testing.T) {
		dir.mu.Lock()
		dir.stallAfter = 20
		dir.mu.Unlock()
		t.Cleanup(func() {
			dir.mu.Lock()
			dir.stallAfter = 0
			dir.mu.Unlock()
		})
		var started struct {
			StatusURL string `json:"status_url"`
		}
		require.Equal(t, http.StatusAccepted, nodes[1].do(http.MethodPost, "/v1/admin/tenants/acme/mappings/staff/import",
			cloudapp.ImportOptions{Full: true}, &started))
		<-dir.stalled
		for i, n := range nodes {
			assert.Equal(t, http.StatusConflict, n.do(http.MethodPost, "/v1/admin/tenants/acme/mappings/staff/import", nil, nil),
				"node %d: one run per mapping across nodes", i)
		}
		var run importer.Run
		require.Eventually(t, func() bool { // node 1 saves its progress every 2 s
			require.Equal(t, http.StatusOK, nodes[2].do(http.MethodGet, started.StatusURL, nil, &run))
			return run.Updated.After(run.Started)
		}, 20*time.Second, 50*time.Millisecond)
		assert.Equal(t, importer.RunRunning, run.State)
		assert.Equal(t, importer.PhaseScan, run.Progress.Phase)
		assert.LessOrEqual(t, run.Progress.Done, 20)
		assert.Equal(t, 30, run.Progress.Total, "estimated from the last complete scan, made through node 0")
		st, err := nodes[2].srv.Imports(context.Background(), "acme")
		require.NoError(t, err)
		require.Len(t, st.Running, 1)
		assert.Contains(t, nodes[0].statusPage(), `<tr class="import" data-mapping="staff">`, "node 0's status page shows it")

		nodes[0].kill(c) // the scan dies half-way
		require.Eventually(t, func() bool {
			require.Equal(t, http.StatusOK, nodes[0].do(http.MethodGet, started.StatusURL, nil, &run))
			return run.State != importer.RunRunning
		}, 20*time.Second, 20*time.Millisecond)
		assert.Equal(t, importer.RunFailed, run.State)
		nodes[0].start(c)
	})

	t.Run("every node shows what a connector published", func(t *testing.T) {
		for i, n := range nodes {
			require.Eventually(t, func() bool {
				cs, err := n.srv.Connectors(context.Background(), "acme")
				require.NoError(t, err)
				return len(cs) == 1 && cs[0].Health != nil && cs[0].Connected // presence and info propagate apart
			}, 10*time.Second, 20*time.Millisecond, "node %d never heard the connector's info or presence", i)
			cs, err := n.srv.Connectors(context.Background(), "acme")
			require.NoError(t, err)
			assert.Equal(t, "v9.8.7", cs[0].Health.Version, "node %d", i)
			assert.Equal(t, "dc-host", cs[0].Health.Host, "node %d", i)
			assert.Equal(t, cloudapp.HealthOK, cs[0].Health.Directory, "node %d", i)
			assert.Equal(t, i == 0, cs[0].Sessions > 0, "node %d: sessions are counted where they are", i)
		}
	})

	t.Run("a connector on a node that is not the leader raises its directory alert", func(t *testing.T) {
		follower := -1
		for i, n := range nodes {
			if !n.srv.ClusterNode().Leader() {
				follower = i
			}
		}
		require.NotEqual(t, -1, follower, "3 nodes, one leader")
		d := nodes[follower].enroll("acme")
		d.info = &tunnel.ConnectorInfo{Version: "v1", Services: map[string]tunnel.ServiceInfo{
			directoryhttp.Service: {Configured: true, Last: &tunnel.Outcome{Op: "users", Unavailable: true, Error: "bind refused"}}}}
		nodes[follower].start(d)
		require.Eventually(t, func() bool {
			as, err := nodes[0].srv.Alerts(context.Background(), alerts.Filter{Kind: alerts.KindDirectoryUnavailable, Tenant: "acme", OpenOnly: true})
			require.NoError(t, err)
			return len(as) == 1 && as[0].Subject == d.id
		}, 10*time.Second, 20*time.Millisecond, "the leader raised the alert of a connector held by node %d", follower)
		nodes[follower].kill(d)
	})

	t.Run("a revocation a node missed still closes its sessions", func(t *testing.T) {
		// Revoke through node 2's gateway alone: the database records it,
		// no broadcast goes out, as when node 0 was cut off from NATS.
		require.NoError(t, nodes[2].srv.Gateway().Revoke(context.Background(), c.id))
		require.Eventually(t, func() bool {
			for _, lc := range nodes[0].srv.Gateway().Live("acme") {
				if lc.ConnectorID == c.id {
					return false
				}
			}
			return true
		}, 10*time.Second, 20*time.Millisecond,
			"node 0 re-checked its sessions against the database")
	})
}
