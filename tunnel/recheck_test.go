package tunnel

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A revocation another gateway wrote to the shared store, which this
// gateway never heard of: CloseRevoked closes that connector's session and
// leaves the others alone.
func TestCloseRevokedConverges(t *testing.T) {
	checkNoLeaks(t)
	store := NewMemoryStore()
	e := newEnv(t, func(c *GatewayConfig) { c.Store = store })
	revoked, kept := e.enroll("t"), e.enroll("t")
	e.start(revoked, echoHandler())
	e.start(kept, echoHandler())

	ctx := context.Background()
	n, err := e.gw.CloseRevoked(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "nothing revoked yet")

	rec, err := store.Connector(ctx, revoked.ConnectorID)
	require.NoError(t, err)
	rec.Revoked = true // what Revoke on another node writes
	require.NoError(t, store.PutConnector(ctx, rec))
	live := func() []string {
		var ids []string
		for _, lc := range e.gw.Live("t") {
			ids = append(ids, lc.ConnectorID)
		}
		return ids
	}
	require.ElementsMatch(t, []string{revoked.ConnectorID, kept.ConnectorID}, live(),
		"the store alone closes nothing")

	n, err = e.gw.CloseRevoked(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	ev := e.waitEvent(Disconnected, revoked.ConnectorID)
	assert.ErrorIs(t, ev.Err, ErrRevoked)
	assert.Equal(t, []string{kept.ConnectorID}, live())
}
