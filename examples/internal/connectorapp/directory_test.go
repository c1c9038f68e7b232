package connectorapp_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/examples/internal/connectorapp"
	"github.com/liaisonhq/liaison/examples/internal/demoldap"
	"github.com/liaisonhq/liaison/tunnel"
)

// TestDirectoryOverTunnel: a connector in front of an in-process LDAP server
// serves browse and lookup to the cloud through the real tunnel, and refuses
// what its policy does not allow before the directory sees anything.
func TestDirectoryOverTunnel(t *testing.T) {
	ldap, err := demoldap.Start(demoldap.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ldap.Close() })
	c := newCloud(t)
	ctx := context.Background()
	tok, err := c.gw.IssueEnrollmentToken(ctx, "acme", time.Minute)
	require.NoError(t, err)
	_, key := memIdentity(t)
	cloudCfg := connectorapp.Cloud{URL: c.url, CAPEM: c.caPEM, Key: key}
	enrolled, err := connectorapp.Enroll(ctx, cloudCfg, tok)
	require.NoError(t, err)
	cloudCfg.ConnectorID = enrolled.ConnectorID

	a := newAgent(t, connectorapp.Config{
		Cloud: cloudCfg,
		Directory: &connectorapp.Directory{
			URLs: []string{ldap.URL()}, BindDN: demoldap.ServiceDN, BindPassword: demoldap.ServicePassword,
			CAPEM: ldap.CAPEM(),
		},
		Policy: connectorapp.Policy{Allow: []connectorapp.Operation{connectorapp.OpBrowse, connectorapp.OpLookup}},
	})
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	c.waitPresence(t, tunnel.Connected)

	dc, err := directoryhttp.NewClient("http://connector"+connectorapp.DirectoryPrefix, c.gw.RoundTripper("acme"))
	require.NoError(t, err)

	ous, err := dc.OUs(ctx, demoldap.PeopleDN)
	require.NoError(t, err)
	assert.Len(t, ous, 5, "People and its four departments")

	someone := ldap.Users()[0]
	u, err := dc.Lookup(ctx, directory.Mapping{}, someone.Login)
	require.NoError(t, err)
	assert.Equal(t, someone.Login, u.Login)
	_, err = dc.Lookup(ctx, directory.Mapping{}, "nobody.here")
	assert.ErrorIs(t, err, directory.ErrNotFound, "directory errors still cross the wire typed")

	binds, searches := ldap.Stats()
	refused := []struct {
		name string
		op   connectorapp.Operation
		call func() error
	}{
		{"credentials", connectorapp.OpCredentials, func() error {
			_, err := dc.CheckCredentials(ctx, directory.Mapping{}, someone.Login, demoldap.Password)
			return err
		}},
		{"import", connectorapp.OpImport, func() error {
			_, err := dc.Users(ctx, directory.Mapping{}, func(directory.User) error { return nil })
			return err
		}},
		{"changes", connectorapp.OpImport, func() error {
			_, err := dc.Changes(ctx, directory.Mapping{}, "", func(directory.User) error { return nil })
			return err
		}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			require.Error(t, err)
			var de *directoryhttp.Error
			require.ErrorAs(t, err, &de)
			assert.Equal(t, connectorapp.CodeForbidden, de.Code)
			assert.Contains(t, de.Message, string(tt.op))
			assert.False(t, errors.Is(err, directory.ErrInvalidCredentials), "a policy refusal is not a wrong password")
		})
	}
	b2, s2 := ldap.Stats()
	assert.Equal(t, binds, b2, "refused requests never reached the directory")
	assert.Equal(t, searches, s2, "refused requests never reached the directory")

	require.NoError(t, a.Close())
	assert.ErrorIs(t, <-runErr, connectorapp.ErrClosed)
}
