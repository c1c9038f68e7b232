package directoryhttp

import (
	"context"
	"crypto/ecdh"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/liaisonhq/liaison/directory"
)

// ErrNoCredentialsKey is returned by a [SealedChecker] when the chosen
// connector publishes no credentials key to seal the password to (an old
// connector, or one configured without sealing): the password is not sent.
// Upgrade the connector.
var ErrNoCredentialsKey = errors.New("directoryhttp: connector publishes no credentials key; password not sent (upgrade the connector)")

// SealedCheckerConfig configures a SealedChecker. DirectoryURL, StatusURL,
// Live and Via are required.
type SealedCheckerConfig struct {
	// DirectoryURL is where a connector serves its Handler, as seen
	// through Via (for example "http://connector/directory").
	DirectoryURL string
	// StatusURL is where a connector publishes, as JSON, whether it takes
	// sealed passwords ("sealed_passwords") and the X25519 key to seal
	// them to ("credentials_key", standard base64). A 404 means none.
	StatusURL string
	// Live returns the IDs of tenant's connectors that can be reached now,
	// in the order to try them (tunnel.Gateway.Live).
	Live func(tenant string) []string
	// Via reaches one connector of tenant (tunnel.Gateway.RoundTripperFor,
	// with the caller's deadlines and metrics).
	Via func(tenant, connectorID string) http.RoundTripper
	// IsGone reports whether an error means the chosen connector left
	// meanwhile (tunnel.ErrNotConnected), so the next one is tried; nil
	// tries no other.
	IsGone func(error) bool
	// Unavailable is returned (wrapped) when Live names no connector
	// (tunnel.ErrNotConnected, so callers keep their errors.Is).
	Unavailable error
}

// SealedChecker checks credentials through one connector at a time, the
// password sealed (HPKE) to the key that very connector publishes through
// its own authenticated session: each connector has its own key, so a check
// never goes to "any" connector. It fails closed: a connector that
// publishes no key gets no password ([ErrNoCredentialsKey]). What each
// connector published is kept until [SealedChecker.Forget] (call it when
// the connector's session ends). Safe for concurrent use.
type SealedChecker struct {
	cfg SealedCheckerConfig
	mu  sync.Mutex
	st  map[string]connectorStatus // connector ID -> what it published
}

// connectorStatus is the part of a connector's status the checker reads.
type connectorStatus struct {
	SealedPasswords bool   `json:"sealed_passwords"`
	CredentialsKey  []byte `json:"credentials_key"`
}

// NewSealedChecker validates cfg and returns a SealedChecker.
func NewSealedChecker(cfg SealedCheckerConfig) (*SealedChecker, error) {
	if cfg.DirectoryURL == "" || cfg.StatusURL == "" || cfg.Live == nil || cfg.Via == nil {
		return nil, errors.New("directoryhttp: SealedCheckerConfig.DirectoryURL, StatusURL, Live and Via are required")
	}
	if cfg.IsGone == nil {
		cfg.IsGone = func(error) bool { return false }
	}
	if cfg.Unavailable == nil {
		cfg.Unavailable = errors.New("no connector connected")
	}
	return &SealedChecker{cfg: cfg, st: map[string]connectorStatus{}}, nil
}

// Forget drops what a connector published (its session ended: the next
// session may publish another key).
func (c *SealedChecker) Forget(connectorID string) {
	c.mu.Lock()
	delete(c.st, connectorID)
	c.mu.Unlock()
}

// CheckAccount checks name's password in m through a live connector of
// tenant, bound to the account whose stable ID is id (none when ""): the
// connector refuses before any bind when name now resolves to another
// account. A connector that left meanwhile is skipped for the next one.
func (c *SealedChecker) CheckAccount(ctx context.Context, tenant string, m directory.Mapping, name, id, password string) (directory.User, error) {
	ids := c.cfg.Live(tenant)
	if len(ids) == 0 {
		return directory.User{}, fmt.Errorf("directoryhttp: credential check: %w", c.cfg.Unavailable)
	}
	var err error
	for _, connectorID := range ids {
		var u directory.User
		u, err = c.checkVia(ctx, tenant, connectorID, m, name, id, password)
		if !c.cfg.IsGone(err) {
			return u, err
		}
	}
	return directory.User{}, err
}

func (c *SealedChecker) checkVia(ctx context.Context, tenant, connectorID string, m directory.Mapping, name, id, password string) (directory.User, error) {
	rt := c.cfg.Via(tenant, connectorID)
	st, err := c.status(ctx, connectorID, rt)
	if err != nil {
		return directory.User{}, err
	}
	// Fail closed: a password never leaves unsealed, even inside the
	// tunnel's own encryption.
	if !st.SealedPasswords || len(st.CredentialsKey) == 0 {
		return directory.User{}, fmt.Errorf("directoryhttp: connector %s: %w", connectorID, ErrNoCredentialsKey)
	}
	pub, err := ecdh.X25519().NewPublicKey(st.CredentialsKey)
	if err != nil {
		return directory.User{}, fmt.Errorf("directoryhttp: connector %s credentials key: %w", connectorID, err)
	}
	cl, err := NewClient(c.cfg.DirectoryURL, rt, WithConnectorKey(pub))
	if err != nil {
		return directory.User{}, err
	}
	if id == "" {
		return cl.CheckCredentials(ctx, m, name, password)
	}
	return cl.CheckAccount(ctx, m, name, id, password)
}

// status asks a connector what it offers, once per session.
func (c *SealedChecker) status(ctx context.Context, id string, rt http.RoundTripper) (connectorStatus, error) {
	c.mu.Lock()
	st, ok := c.st[id]
	c.mu.Unlock()
	if ok {
		return st, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.StatusURL, nil)
	if err != nil {
		return st, err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return st, fmt.Errorf("directoryhttp: connector status: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		// A connector without a status page seals nothing.
	case resp.StatusCode != http.StatusOK:
		return st, fmt.Errorf("directoryhttp: connector status: HTTP %d", resp.StatusCode)
	default:
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&st); err != nil {
			return st, fmt.Errorf("directoryhttp: connector status: %w", err)
		}
	}
	c.mu.Lock()
	c.st[id] = st
	c.mu.Unlock()
	return st, nil
}
