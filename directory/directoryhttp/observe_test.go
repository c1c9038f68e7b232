package directoryhttp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
)

type outcome struct {
	op  string
	err error
}

// startObserved serves f with an observer and returns a client and the
// outcomes seen so far.
func startObserved(t *testing.T, f *fakeDir) (*directoryhttp.Client, func() []outcome) {
	t.Helper()
	var mu sync.Mutex
	var seen []outcome
	h := directoryhttp.NewHandler(f, directoryhttp.WithObserver(func(op string, err error) {
		mu.Lock()
		seen = append(seen, outcome{op, err})
		mu.Unlock()
	}))
	srv := httptest.NewServer(http.StripPrefix("/directory", h))
	t.Cleanup(srv.Close)
	c, err := directoryhttp.NewClient(srv.URL+"/directory", srv.Client().Transport)
	require.NoError(t, err)
	return c, func() []outcome {
		mu.Lock()
		defer mu.Unlock()
		return append([]outcome(nil), seen...)
	}
}

// Every route reports its operation and error to the observer.
func TestObserverSeesEveryOperation(t *testing.T) {
	ctx := context.Background()
	c, seen := startObserved(t, newFake(3))
	_, _ = c.Info(ctx)
	_, _ = c.NamingContexts(ctx)
	_, _ = c.OUs(ctx, "dc=x")
	_, _ = c.Groups(ctx, "dc=x")
	_, _ = c.Users(ctx, directory.Mapping{}, func(directory.User) error { return nil })
	_, _ = c.Changes(ctx, directory.Mapping{}, "bad", func(directory.User) error { return nil })
	_, _ = c.Lookup(ctx, directory.Mapping{}, "nobody")
	_, _ = c.CheckCredentials(ctx, directory.Mapping{}, "user1", "s3cret")
	_, _ = c.CheckAccount(ctx, directory.Mapping{}, "user1", "id-1", "wrong")
	got := seen()
	var ops []string
	for _, o := range got {
		ops = append(ops, o.op)
	}
	assert.Equal(t, []string{"info", "naming-contexts", "ous", "groups", "users", "changes", "lookup", "credentials", "credentials"}, ops)
	require.Len(t, got, 9)
	assert.NoError(t, got[0].err)
	assert.ErrorIs(t, got[5].err, directory.ErrCursorInvalid)
	assert.ErrorIs(t, got[6].err, directory.ErrNotFound)
	assert.NoError(t, got[7].err)
	assert.ErrorIs(t, got[8].err, directory.ErrInvalidCredentials)
}

// A refused service bind and an unreachable directory count as
// unavailable, on the connector (observer) and across the wire (client);
// answers such as "not found" or "bad password" do not.
func TestServiceBindAcrossTheWire(t *testing.T) {
	ctx := context.Background()
	f := newFake(3)
	f.err = fmt.Errorf("%w: LDAP Result Code 49 \"Invalid Credentials\"", directory.ErrServiceBind)
	c, seen := startObserved(t, f)
	_, err := c.Lookup(ctx, directory.Mapping{}, "user1")
	assert.ErrorIs(t, err, directory.ErrServiceBind)
	assert.NotErrorIs(t, err, directory.ErrUnavailable)
	assert.True(t, directory.Unavailable(err), "the cloud's view")
	got := seen()
	require.Len(t, got, 1)
	assert.True(t, directory.Unavailable(got[0].err), "the connector's view")

	f.err = fmt.Errorf("%w: ldap://dc1: connection refused", directory.ErrUnavailable)
	_, err = c.Info(ctx)
	assert.True(t, directory.Unavailable(err))

	f.err = nil
	_, err = c.Lookup(ctx, directory.Mapping{}, "nobody")
	assert.False(t, directory.Unavailable(err))
	_, err = c.CheckCredentials(ctx, directory.Mapping{}, "user1", "wrong")
	assert.False(t, directory.Unavailable(err))
	assert.False(t, directory.Unavailable(nil))
}
