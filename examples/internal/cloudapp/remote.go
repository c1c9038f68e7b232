package cloudapp

import (
	"context"
	"crypto/ecdh"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/tunnel"
)

// ConnectorStatusURL is where a connector (examples/internal/connectorapp)
// says what it offers, including the X25519 key passwords are sealed to.
const ConnectorStatusURL = "http://connector/status"

// connectorStatus is the part of connectorapp's StatusResponse the cloud
// reads.
type connectorStatus struct {
	ConnectorID     string `json:"connector_id"`
	SealedPasswords bool   `json:"sealed_passwords"`
	CredentialsKey  []byte `json:"credentials_key"`
}

// ErrNoCredentialsKey is returned by a credential check when the chosen
// connector publishes no credentials key to seal the password to (an old
// connector, or one configured without sealing): the password is not sent.
// Upgrade the connector.
var ErrNoCredentialsKey = errors.New("cloudapp: connector publishes no credentials key; password not sent (upgrade the connector)")

// remoteDirectory is the default Directory: directoryhttp over the tenant's
// RoundTripper, except credential checks, which go to one chosen connector
// with the password sealed to that connector's own key, which it publishes
// through the authenticated tunnel session; a connector that publishes none
// gets no password (ErrNoCredentialsKey).
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

func (d *remoteDirectory) CheckCredentials(ctx context.Context, m directory.Mapping, name, password string) (directory.User, error) {
	return d.CheckAccount(ctx, m, name, "", password)
}

// CheckAccount is CheckCredentials bound to the account whose stable ID is
// id (none when id is ""): the connector refuses before any bind when name
// now resolves to another account. The login guard checks through it.
func (d *remoteDirectory) CheckAccount(ctx context.Context, m directory.Mapping, name, id, password string) (directory.User, error) {
	ids := d.s.liveConnectors(d.tenant)
	if len(ids) == 0 {
		return directory.User{}, fmt.Errorf("cloudapp: credential check: %w", tunnel.ErrNotConnected)
	}
	var err error
	for _, connectorID := range ids {
		var u directory.User
		u, err = d.checkVia(ctx, connectorID, m, name, id, password)
		if !errors.Is(err, tunnel.ErrNotConnected) {
			return u, err
		}
		// That connector left meanwhile: try the next one.
	}
	return directory.User{}, err
}

func (d *remoteDirectory) checkVia(ctx context.Context, connectorID string, m directory.Mapping, name, id, password string) (directory.User, error) {
	rt := d.s.tunnelVia(d.tenant, connectorID)
	st, err := d.s.connectorStatus(ctx, connectorID, rt)
	if err != nil {
		return directory.User{}, err
	}
	// Fail closed: a password never leaves the cloud unsealed, even inside
	// the tunnel's own encryption.
	if !st.SealedPasswords || len(st.CredentialsKey) == 0 {
		return directory.User{}, fmt.Errorf("cloudapp: connector %s: %w", connectorID, ErrNoCredentialsKey)
	}
	pub, err := ecdh.X25519().NewPublicKey(st.CredentialsKey)
	if err != nil {
		return directory.User{}, fmt.Errorf("cloudapp: connector %s credentials key: %w", connectorID, err)
	}
	c, err := directoryhttp.NewClient(ConnectorDirectoryURL, rt, directoryhttp.WithConnectorKey(pub))
	if err != nil {
		return directory.User{}, err
	}
	if id == "" {
		return c.CheckCredentials(ctx, m, name, password)
	}
	return c.CheckAccount(ctx, m, name, id, password)
}

// liveConnectors returns the tenant's connectors with a live session here.
func (s *Server) liveConnectors(tenant string) []string {
	var ids []string
	for _, lc := range s.gw.Live(tenant) {
		ids = append(ids, lc.ConnectorID)
	}
	return ids
}

// connectorStatus asks a connector what it offers, once per session: the
// cache entry is dropped when the connector disconnects.
func (s *Server) connectorStatus(ctx context.Context, id string, rt http.RoundTripper) (connectorStatus, error) {
	s.mu.Lock()
	st, ok := s.statuses[id]
	s.mu.Unlock()
	if ok {
		return st, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ConnectorStatusURL, nil)
	if err != nil {
		return st, err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return st, fmt.Errorf("cloudapp: connector status: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		// A connector without a status page seals nothing.
	case resp.StatusCode != http.StatusOK:
		return st, fmt.Errorf("cloudapp: connector status: HTTP %d", resp.StatusCode)
	default:
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&st); err != nil {
			return st, fmt.Errorf("cloudapp: connector status: %w", err)
		}
	}
	s.mu.Lock()
	s.statuses[id] = st
	s.mu.Unlock()
	return st, nil
}
