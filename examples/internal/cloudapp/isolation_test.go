package cloudapp_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
)

// hang makes c's connector accept directory requests under prefix and
// never answer them, even when the cloud cancels: a wedged connector.
// Everything else it serves normally. entered receives once per request it
// holds; release lets them go (register it with t.Cleanup after e.start, so
// it runs before the connector is stopped).
func hang(c *connector, prefix string) (entered <-chan struct{}, release func()) {
	ch, held := make(chan struct{}), make(chan struct{}, 100)
	inner := c.handler
	c.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, prefix) {
			held <- struct{}{}
			<-ch // ignores r.Context()
			return
		}
		inner.ServeHTTP(w, r)
	})
	return held, func() { close(ch) }
}

// TestHungConnectorDelaysOnlyItsTenant: tenant acme's connector accepts the
// import request and never answers. Tenant beta's scheduled imports still
// run on schedule, and acme's run ends at its deadline with a failed run
// recorded. Before the fix the scheduler ran tenants one after another
// without a deadline, and beta got no run at all once acme's had started.
func TestHungConnectorDelaysOnlyItsTenant(t *testing.T) {
	const runTimeout = 2 * time.Second
	e := newEnv(t, func(c *cloudapp.Config) {
		c.DisableScheduler = false
		c.ImportPoll, c.ImportInterval, c.ImportJitter = 20*time.Millisecond, 50*time.Millisecond, time.Nanosecond
		c.ImportTimeout = runTimeout
	})
	ctx := context.Background()
	e.dir.set(demoUsers(3))
	hung := e.enroll("acme")
	entered, release := hang(hung, "/directory/") // the import's scan
	ok := e.enroll("beta")
	e.start(hung)
	e.start(ok)
	t.Cleanup(release)
	// Mappings only now: a run without a connector is a skip, retried
	// an hour later.
	require.NoError(t, e.srv.PutMapping(ctx, "acme", "staff", directory.Mapping{}))
	require.NoError(t, e.srv.PutMapping(ctx, "beta", "staff", directory.Mapping{}))

	runs := func(tenant, status string) []cloudapp.ImportRun {
		st, err := e.srv.Imports(ctx, tenant)
		if err != nil {
			return nil
		}
		var out []cloudapp.ImportRun
		for _, r := range st.Recent {
			if r.Status == status {
				out = append(out, r)
			}
		}
		return out
	}
	// Wait until acme's import is in flight (its connector holds it).
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("acme's scheduled import did not start")
	}
	started := time.Now()
	// The same mapping never runs twice at once: an import asked for while
	// the scheduled one hangs is refused at once.
	_, err := e.srv.RunImport(ctx, "acme", "staff", cloudapp.ImportOptions{})
	assert.ErrorIs(t, err, cloudapp.ErrBusy)

	// beta keeps importing while acme's run hangs.
	require.Eventually(t, func() bool { return len(runs("beta", "ok")) >= 3 }, 20*time.Second, 10*time.Millisecond,
		"beta's scheduled imports run while acme's connector hangs")

	// acme's run ends at its deadline, recorded as failed.
	require.Eventually(t, func() bool { return len(runs("acme", "failed")) > 0 }, 20*time.Second, 10*time.Millisecond,
		"acme's hung run is cut at ImportTimeout")
	failed := runs("acme", "failed")[0]
	assert.Contains(t, failed.Error, "deadline exceeded")
	assert.LessOrEqual(t, failed.Finished.Sub(failed.Started), runTimeout+time.Second, "cut at the deadline, not later")
	assert.GreaterOrEqual(t, time.Since(started), runTimeout/2, "and not before it")
	assert.Empty(t, runs("acme", "ok"))
}

// TestRequestsToAConnectorHaveADeadline: a request with no deadline of its
// own (here an admin browse) to a connector that never answers ends after
// Config.RequestTimeout with 502/504-class failure instead of hanging.
func TestRequestsToAConnectorHaveADeadline(t *testing.T) {
	e := newEnv(t, func(c *cloudapp.Config) { c.RequestTimeout = 300 * time.Millisecond })
	c := e.enroll("acme")
	_, release := hang(c, "/directory/ous")
	e.start(c)
	t.Cleanup(release)

	done := make(chan error, 1)
	go func() {
		_, err := e.srv.OUs(context.Background(), "acme", "") // context.Background: no deadline
		done <- err
	}()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	case <-time.After(20 * time.Second):
		t.Fatal("a request to a hung connector has no deadline")
	}
}
