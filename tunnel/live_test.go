package tunnel

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLive(t *testing.T) {
	e := newEnv(t, nil)
	assert.Empty(t, e.gw.Live("acme"))
	before := time.Now()
	a := e.enroll("acme")
	b := e.enroll("acme")
	o := e.enroll("other")
	e.start(a, http.NotFoundHandler())
	cb := e.start(b, http.NotFoundHandler())
	e.start(o, http.NotFoundHandler())

	live := e.gw.Live("acme")
	require.Len(t, live, 2, "only the tenant's connectors")
	want := []string{a.ConnectorID, b.ConnectorID}
	if want[0] > want[1] {
		want[0], want[1] = want[1], want[0]
	}
	assert.Equal(t, want, []string{live[0].ConnectorID, live[1].ConnectorID}, "sorted by ID")
	for _, lc := range live {
		assert.Equal(t, "acme", lc.Tenant)
		assert.Equal(t, 1, lc.Sessions)
		assert.False(t, lc.ConnectedAt.Before(before.Add(-time.Second)), "connected at %v", lc.ConnectedAt)
		host, _, err := net.SplitHostPort(lc.RemoteAddr)
		require.NoError(t, err, "remote address %q", lc.RemoteAddr)
		assert.True(t, net.ParseIP(host).IsLoopback(), "the connector's address as the server saw it: %s", host)
	}
	assert.Len(t, e.gw.Live(""), 3, "every tenant")

	require.NoError(t, cb.Close())
	e.waitEvent(Disconnected, b.ConnectorID)
	live = e.gw.Live("acme")
	require.Len(t, live, 1, "a closed session is not live")
	assert.Equal(t, a.ConnectorID, live[0].ConnectorID)
}
