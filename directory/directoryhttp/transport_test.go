package directoryhttp_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
)

// errNotConnected stands for tunnel.ErrNotConnected (directoryhttp must not
// import the tunnel).
var errNotConnected = errors.New("tunnel: not connected")

type failingRT struct{}

func (failingRT) RoundTrip(*http.Request) (*http.Response, error) { return nil, errNotConnected }

func TestTransportErrorsStayWrapped(t *testing.T) {
	c, err := directoryhttp.NewClient("http://connector/directory", failingRT{})
	require.NoError(t, err)
	ctx := context.Background()
	noop := func(directory.User) error { return nil }
	calls := map[string]func() error{
		"info":              func() error { _, err := c.Info(ctx); return err },
		"naming contexts":   func() error { _, err := c.NamingContexts(ctx); return err },
		"ous":               func() error { _, err := c.OUs(ctx, ""); return err },
		"groups":            func() error { _, err := c.Groups(ctx, ""); return err },
		"users":             func() error { _, err := c.Users(ctx, directory.Mapping{}, noop); return err },
		"changes":           func() error { _, err := c.Changes(ctx, directory.Mapping{}, "dc1.x", noop); return err },
		"lookup":            func() error { _, err := c.Lookup(ctx, directory.Mapping{}, "jdoe"); return err },
		"check credentials": func() error { _, err := c.CheckCredentials(ctx, directory.Mapping{}, "jdoe", "pw"); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			require.Error(t, err)
			assert.ErrorIs(t, err, errNotConnected)
			assert.NotErrorIs(t, err, directory.ErrNotFound)
		})
	}
}
