package e2e_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/examples/internal/demoldap"
	"github.com/liaisonhq/liaison/examples/internal/e2e"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

func connectorHealth(t *testing.T, st *e2e.Stack) *cloudapp.ConnectorHealth {
	t.Helper()
	cs, err := st.Cloud.Connectors(ctxT(t, 10*time.Second), st.Tenant)
	require.NoError(t, err)
	for _, c := range cs {
		if c.ID == st.ConnectorID() {
			return c.Health
		}
	}
	return nil
}

// A connector with a wrong service password looks connected, but the
// cloud shows its directory as unavailable after the first real operation,
// raises directory_unavailable with the fix, and an admin's connection test
// fails at the bind step naming the setting. With the password fixed, the
// next real operation resolves the alert. The directory is never touched
// unless the cloud asks.
func TestBrokenDirectoryShowsAndAlerts(t *testing.T) {
	ldap, err := demoldap.Start(demoldap.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ldap.Close() })
	good := connector.Directory{URLs: []string{ldap.URL()}, BindDN: demoldap.ServiceDN,
		BindPassword: demoldap.ServicePassword, CAPEM: ldap.CAPEM()}
	bad := good
	bad.BindPassword = "not-the-service-password"
	ctx := ctxT(t, time.Minute)
	st, err := e2e.Start(ctx, e2e.Config{Directory: bad, Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	t0 := time.Now()

	require.Eventually(t, func() bool { h := connectorHealth(t, st); return h != nil }, 10*time.Second, 10*time.Millisecond)
	h := connectorHealth(t, st)
	assert.Equal(t, cloudapp.HealthUnknown, h.Directory, "no real operation yet")
	assert.NotEmpty(t, h.Version)
	assert.NotEmpty(t, h.Host)
	assert.True(t, h.Keys)
	assert.Len(t, h.KEKVersions, 1)
	binds, searches := ldap.Stats()
	assert.Zero(t, binds+searches, "nothing probed the directory")

	_, err = st.Cloud.OUs(ctx, st.Tenant, demoldap.BaseDN)
	require.Error(t, err)
	a, err := st.WaitAlert(ctxT(t, 20*time.Second), alerts.Kind("directory_unavailable"), alerts.EventRaised, t0)
	require.NoError(t, err)
	assert.Equal(t, st.ConnectorID(), a.Subject)
	assert.Contains(t, a.Message, "directory.bind_dn")
	h = connectorHealth(t, st)
	require.NotNil(t, h.LastOp)
	assert.Equal(t, cloudapp.HealthUnavailable, h.Directory)
	assert.Equal(t, "ous", h.LastOp.Op)

	steps, err := st.Cloud.CheckConnector(ctx, st.Tenant, st.ConnectorID(), cloudapp.CheckRequest{Name: ldap.Users()[0].Login})
	require.NoError(t, err)
	require.Len(t, steps, 2, "%v", steps)
	assert.True(t, steps[0].OK, "the tunnel step: %v", steps[0])
	assert.Equal(t, "bind", steps[1].Step)
	assert.False(t, steps[1].OK)
	assert.Contains(t, steps[1].Fix, "directory.bind_dn")
	assert.True(t, strings.HasPrefix(steps[1].String(), "FAIL"))

	// Fixed: the next real operation resolves the alert.
	require.NoError(t, st.StopConnector())
	st.SetDirectory(good)
	require.NoError(t, st.StartConnector(ctx))
	t1 := time.Now()
	steps, err = st.Cloud.CheckConnector(ctx, st.Tenant, st.ConnectorID(), cloudapp.CheckRequest{Name: ldap.Users()[0].Login})
	require.NoError(t, err)
	require.Len(t, steps, 4, "%v", steps)
	for _, s := range steps {
		assert.True(t, s.OK, s.String())
	}
	r, err := st.WaitAlert(ctxT(t, 20*time.Second), alerts.KindDirectoryUnavailable, alerts.EventResolved, t1)
	require.NoError(t, err)
	assert.Equal(t, a.ID, r.ID)
	require.Eventually(t, func() bool { return connectorHealth(t, st).Directory == cloudapp.HealthOK }, 10*time.Second, 10*time.Millisecond)
}
