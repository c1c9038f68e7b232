package alerts_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/alerts"
)

var dirDown = alerts.Filter{Kind: "directory_unavailable"} // the kind's name as the issue spells it

// A failed real operation raises directory_unavailable for that connector
// at once; repeats count; the next success resolves it and notifies once;
// a success without an open alert writes nothing.
func TestDirectoryUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, stop := start(t, alerts.Config{})
		defer stop()
		e.m.DirectoryOK("t1", "c1")
		assert.Empty(t, e.list(t, dirDown), "a success opens nothing")

		e.m.DirectoryFailed("t1", "c1", "service account bind refused")
		got := e.list(t, dirDown)
		require.Len(t, got, 1)
		a := got[0]
		assert.Equal(t, "t1", a.Tenant)
		assert.Equal(t, "c1", a.Subject)
		assert.Equal(t, alerts.SeverityCritical, a.Severity)
		assert.Contains(t, a.Message, "service account bind refused")
		assert.True(t, a.Open())

		time.Sleep(time.Minute)
		e.m.DirectoryFailed("t1", "c1", "no server available")
		e.m.DirectoryFailed("t1", "c2", "no server available")
		got = e.list(t, alerts.Filter{Kind: alerts.KindDirectoryUnavailable, OpenOnly: true})
		require.Len(t, got, 2)
		for _, a := range got {
			if a.Subject == "c1" {
				assert.Equal(t, 2, a.Count)
				assert.Contains(t, a.Message, "no server available", "the latest message")
			}
		}

		e.m.DirectoryOK("t1", "c1")
		got = e.list(t, alerts.Filter{Kind: alerts.KindDirectoryUnavailable, OpenOnly: true})
		require.Len(t, got, 1)
		assert.Equal(t, "c2", got[0].Subject, "only c1 resolved")
		e.m.DirectoryOK("t1", "c1")

		var raised, resolved int
		for _, n := range e.rec.all() {
			switch n.Event {
			case alerts.EventRaised:
				raised++
			case alerts.EventResolved:
				resolved++
				assert.Equal(t, "c1", n.Alert.Subject)
			}
		}
		assert.Equal(t, 2, raised, "one per opened alert, not per repeat")
		assert.Equal(t, 1, resolved)

		// Once resolved, the same condition opens a new alert.
		e.m.DirectoryFailed("t1", "c1", "no server available")
		assert.Len(t, e.list(t, alerts.Filter{Kind: alerts.KindDirectoryUnavailable, Tenant: "t1"}), 3)

		// Unregistering the tenant resolves what is open.
		e.m.Unregister("t1")
		assert.Empty(t, e.list(t, alerts.Filter{Kind: alerts.KindDirectoryUnavailable, OpenOnly: true}))
	})
}
