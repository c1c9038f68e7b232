package e2e_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/examples/internal/demoldap"
	"github.com/liaisonhq/liaison/examples/internal/e2e"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// These tests run the Stack against the in-process demo directory, so they
// need no server and run everywhere.

func demoStack(t *testing.T, cfg e2e.Config, users ...demoldap.User) (*e2e.Stack, *demoldap.Server) {
	t.Helper()
	l, err := demoldap.Start(demoldap.Config{Users: users})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	cfg.Directory = connector.Directory{URLs: []string{l.URL()}, BindDN: demoldap.ServiceDN,
		BindPassword: demoldap.ServicePassword, CAPEM: l.CAPEM()}
	cfg.Dir = t.TempDir()
	st, err := e2e.Start(ctxT(t, time.Minute), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st, l
}

func TestStackConnectorStatus(t *testing.T) {
	st, _ := demoStack(t, e2e.Config{})
	s, err := st.ConnectorStatus(ctxT(t, 10*time.Second))
	require.NoError(t, err)
	assert.Equal(t, st.ConnectorID(), s.ConnectorID)
	assert.True(t, s.Directory)
	assert.True(t, s.Keys)

	require.NoError(t, st.StopConnector())
	_, err = st.ConnectorStatus(ctxT(t, 10*time.Second))
	assert.Error(t, err, "no connector, no status")
	require.NoError(t, st.StartConnector(ctxT(t, 30*time.Second)))
	require.Error(t, st.StartConnector(ctxT(t, 30*time.Second)), "already running")
}

func TestStackAlertsWaitForTheRightOccurrence(t *testing.T) {
	st, _ := demoStack(t, e2e.Config{Grace: 200 * time.Millisecond})
	for range 2 { // two outages: each wait sees its own alert
		t0 := time.Now()
		require.NoError(t, st.StopConnector())
		a, err := st.WaitAlert(ctxT(t, 20*time.Second), alerts.KindNotConnected, alerts.EventRaised, t0)
		require.NoError(t, err)
		assert.False(t, a.FirstSeen.Before(t0))
		require.NoError(t, st.StartConnector(ctxT(t, 30*time.Second)))
		r, err := st.WaitAlert(ctxT(t, 20*time.Second), alerts.KindNotConnected, alerts.EventResolved, t0)
		require.NoError(t, err)
		assert.Equal(t, a.ID, r.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := st.WaitAlert(ctx, alerts.KindNotConnected, alerts.EventRaised, time.Now())
	assert.ErrorIs(t, err, context.DeadlineExceeded, "nothing more to wait for")
}

func TestStackKilledMidImportOnDemo(t *testing.T) {
	// Enough users that the stream cannot sit whole in the tunnel's
	// buffers when the connector dies.
	const n = 3000
	many := make([]demoldap.User, n)
	for i := range many {
		many[i] = demoldap.User{Login: fmt.Sprintf("user%04d", i), Surname: "Demo", Department: "Sales"}
	}
	var st *e2e.Stack
	var armed atomic.Bool
	killed := make(chan error, 1)
	st, _ = demoStack(t, e2e.Config{OnUser: func(i int) {
		if i == 100 && armed.CompareAndSwap(true, false) {
			go func() { killed <- st.StopConnector() }()
			select {
			case <-killed:
			case <-time.After(30 * time.Second):
			}
		}
	}}, many...)
	ctx := ctxT(t, time.Minute)
	require.NoError(t, st.Cloud.PutMapping(ctx, st.Tenant, "all", directory.Mapping{}))
	armed.Store(true)
	_, err := st.Cloud.RunImport(ctx, st.Tenant, "all", cloudapp.ImportOptions{})
	require.ErrorIs(t, err, importer.ErrIncompleteScan)
	users, err := st.Cloud.Users(ctx, st.Tenant)
	require.NoError(t, err)
	assert.Empty(t, users, "nothing of the partial scan was applied")

	require.NoError(t, st.StartConnector(ctx))
	res, err := st.Cloud.RunImport(ctx, st.Tenant, "all", cloudapp.ImportOptions{})
	require.NoError(t, err)
	assert.Equal(t, n, res.Summary.Creates, "the next import does it all")
}
