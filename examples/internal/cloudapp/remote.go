package cloudapp

import (
	"context"
	"errors"
	"net/http"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/tunnel"
)

// ConnectorStatusURL is where a connector (tunnel/connector)
// says what it offers, including the X25519 key passwords are sealed to.
const ConnectorStatusURL = "http://connector/status"

// ErrNoCredentialsKey is returned by a credential check when the chosen
// connector publishes no credentials key to seal the password to (an old
// connector, or one configured without sealing): the password is not sent.
// Upgrade the connector.
var ErrNoCredentialsKey = directoryhttp.ErrNoCredentialsKey

// remoteDirectory is the default Directory: directoryhttp over the tenant's
// RoundTripper, except credential checks, which go through the
// directoryhttp.SealedChecker (one chosen connector, the password sealed to
// that connector's own key).
type remoteDirectory struct {
	*directoryhttp.Client
	s      *Server
	tenant string
}

func (s *Server) defaultDirectory(tenant string, rt http.RoundTripper) Directory {
	c, err := directoryhttp.NewClient(ConnectorDirectoryURL, rt)
	if err != nil {
		panic(err) // a constant URL
	}
	return &remoteDirectory{Client: c, s: s, tenant: tenant}
}

func (s *Server) newSealedChecker() (*directoryhttp.SealedChecker, error) {
	return directoryhttp.NewSealedChecker(directoryhttp.SealedCheckerConfig{
		DirectoryURL: ConnectorDirectoryURL,
		StatusURL:    ConnectorStatusURL,
		Live:         s.liveConnectors, // cluster.go
		Via:          s.tunnelVia,
		IsGone:       func(err error) bool { return errors.Is(err, tunnel.ErrNotConnected) },
		Unavailable:  tunnel.ErrNotConnected,
	})
}

func (d *remoteDirectory) CheckCredentials(ctx context.Context, m directory.Mapping, name, password string) (directory.User, error) {
	return d.s.checker.CheckAccount(ctx, d.tenant, m, name, "", password)
}

// CheckAccount is CheckCredentials bound to the account whose stable ID is
// id: the login guard checks through it.
func (d *remoteDirectory) CheckAccount(ctx context.Context, m directory.Mapping, name, id, password string) (directory.User, error) {
	return d.s.checker.CheckAccount(ctx, d.tenant, m, name, id, password)
}
