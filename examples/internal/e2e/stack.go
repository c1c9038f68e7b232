package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// Config describes a Stack. Directory is required; zero fields take the
// documented defaults.
type Config struct {
	// Directory is the connector's directory section (URLs, service
	// account, CA).
	Directory connector.Directory
	// Tenant is the tenant the connector enrolls into (default "acme").
	Tenant string
	// Grace is the Not Connected grace period (default 1s).
	Grace time.Duration
	// Threshold is the import removal threshold (default importer's).
	Threshold importer.Threshold
	// LoginMaxFailures is the cloud's per-account web login throttle
	// (default cloudapp's).
	LoginMaxFailures int
	// Dir holds the cloud's database; "" makes a temporary directory that
	// Close removes.
	Dir string
	// OnUser, if set, is called on the cloud side for every user a
	// connector streams to an import (n counts from 1 in each scan),
	// before the importer sees it: tests use it to kill the connector in
	// the middle of an import.
	OnUser func(n int)
	// NewDirectory builds the cloud's client of the connector's directory
	// service from a RoundTripper reaching the tenant's connectors
	// (default: cloudapp's).
	NewDirectory func(rt http.RoundTripper) cloudapp.Directory
	// Logger receives the cloud's and the connector's logs; nil discards.
	Logger *slog.Logger
}

// Stack is a running cloud endpoint and its tenant's connector.
type Stack struct {
	Cloud  *cloudapp.Server
	Tenant string
	// AdminToken authenticates the cloud's admin API.
	AdminToken string

	cfg       Config
	log       *slog.Logger
	tmp       string
	alerts    chan alerts.Notification
	cloudErr  chan error
	closeOnce sync.Once
	closeErr  error
	keyring   *keyenvelope.Keyring

	mu          sync.Mutex
	agent       *connector.Agent
	agentDone   chan error
	connected   chan struct{}
	connectorID string
	cloudKey    tunnel.CloudKey
	key         ed25519.PrivateKey
}

// Start runs a cloud endpoint, enrolls a connector of cfg.Tenant with a
// one-time token and starts it; it returns once the connector is connected
// through the tunnel.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	if len(cfg.Directory.URLs) == 0 {
		return nil, errors.New("e2e: Config.Directory.URLs is required")
	}
	if cfg.Tenant == "" {
		cfg.Tenant = "acme"
	}
	if cfg.Grace == 0 {
		cfg.Grace = time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := &Stack{
		Tenant:   cfg.Tenant,
		cfg:      cfg,
		log:      log,
		alerts:   make(chan alerts.Notification, 64),
		cloudErr: make(chan error, 1),
	}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	dir := cfg.Dir
	if dir == "" {
		if st.tmp, err = os.MkdirTemp("", "liaison-e2e-"); err != nil {
			return nil, fmt.Errorf("e2e: %w", err)
		}
		dir = st.tmp
	}
	tok := make([]byte, 24)
	_, _ = rand.Read(tok)
	st.AdminToken = hex.EncodeToString(tok)

	// The cloud's own directory client (cloudapp's default) unless a test
	// needs to see the users streamed to it.
	var newDir func(string, http.RoundTripper) cloudapp.Directory
	if cfg.NewDirectory != nil || cfg.OnUser != nil {
		mk := cfg.NewDirectory
		if mk == nil {
			mk = func(rt http.RoundTripper) cloudapp.Directory {
				c, err := directoryhttp.NewClient(cloudapp.ConnectorDirectoryURL, rt)
				if err != nil {
					panic(err) // a constant URL and a non-nil RoundTripper
				}
				return c
			}
		}
		newDir = func(tenant string, rt http.RoundTripper) cloudapp.Directory {
			return &countingDirectory{Directory: mk(rt), st: st}
		}
	}
	st.Cloud, err = cloudapp.New(cloudapp.Config{
		DBPath:           filepath.Join(dir, "cloud.db"),
		Addr:             "127.0.0.1:0",
		AdminToken:       st.AdminToken,
		Grace:            cfg.Grace,
		Notifier:         notifier(st.alerts),
		DisableScheduler: true,
		Threshold:        cfg.Threshold,
		LoginMaxFailures: cfg.LoginMaxFailures,
		PingInterval:     time.Second,
		NewDirectory:     newDir,
		Logger:           log.With("side", "cloud"),
	})
	if err != nil {
		return nil, err
	}
	cloud := st.Cloud
	go func() { st.cloudErr <- cloud.Run(context.Background()) }()

	token, err := st.Cloud.IssueEnrollmentToken(ctx, cfg.Tenant, 10*time.Minute)
	if err != nil {
		return nil, fmt.Errorf("e2e: enrollment token: %w", err)
	}
	_, st.key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	id, err := connector.Enroll(ctx, connector.Cloud{URL: st.Cloud.URL(), CAPEM: st.Cloud.CAPEM(), Key: st.key}, token)
	if err != nil {
		return nil, err
	}
	st.connectorID, st.cloudKey = id.ConnectorID, id.CloudKey
	if st.keyring, err = keyenvelope.NewKeyring(rand.Reader); err != nil {
		return nil, err
	}
	if err := st.StartConnector(ctx); err != nil {
		return nil, err
	}
	return st, nil
}

// ConnectorID is the enrolled connector's ID.
func (st *Stack) ConnectorID() string { return st.connectorID }

// StartConnector starts the connector (again) and waits until the tunnel
// is up or ctx ends.
func (st *Stack) StartConnector(ctx context.Context) error {
	st.mu.Lock()
	if st.agent != nil {
		st.mu.Unlock()
		return errors.New("e2e: connector already running")
	}
	connected := make(chan struct{})
	var once sync.Once
	d := st.cfg.Directory
	agent, err := connector.New(connector.Config{
		Cloud: connector.Cloud{
			URL: st.Cloud.URL(), CAPEM: st.Cloud.CAPEM(),
			ConnectorID: st.connectorID, Key: st.key, CloudKey: st.cloudKey,
			BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		},
		Directory: &d,
		Keys:      &connector.Keys{Keyring: st.keyring, SchedulerKey: st.Cloud.SchedulerPublicKey()},
		Policy: connector.Policy{Allow: []connector.Operation{
			connector.OpBrowse, connector.OpImport, connector.OpLookup,
			connector.OpCredentials, connector.OpKeys,
		}},
		OnStatus: func(s tunnel.Status) {
			if s.State == tunnel.StateConnected {
				once.Do(func() { close(connected) })
			}
		},
		Logger: st.log.With("side", "connector"),
	})
	if err != nil {
		st.mu.Unlock()
		return err
	}
	done := make(chan error, 1)
	st.agent, st.agentDone, st.connected = agent, done, connected
	st.mu.Unlock()
	go func() { done <- agent.Run(context.Background()) }()
	select {
	case <-connected:
		return st.checkReachable(ctx)
	case err := <-done:
		st.mu.Lock()
		st.agent = nil
		st.mu.Unlock()
		return fmt.Errorf("e2e: connector stopped before connecting: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("e2e: waiting for the connector to connect: %w", context.Cause(ctx))
	}
}

// Status is what a connector says about itself at connector.StatusPath.
type Status struct {
	ConnectorID string   `json:"connector_id"`
	Directory   bool     `json:"directory"`
	Keys        bool     `json:"keys"`
	Allow       []string `json:"allow"`
}

// ConnectorStatus asks a live connector of the tenant for its status
// through the tunnel, as any cloud call would reach it.
func (st *Stack) ConnectorStatus(ctx context.Context) (Status, error) {
	var s Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, connectorBase+connector.StatusPath, nil)
	if err != nil {
		return s, err
	}
	resp, err := (&http.Client{Transport: st.Cloud.Gateway().RoundTripper(st.Tenant)}).Do(req)
	if err != nil {
		return s, fmt.Errorf("e2e: connector status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("e2e: connector status: %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&s); err != nil {
		return s, fmt.Errorf("e2e: connector status: %w", err)
	}
	return s, nil
}

// checkReachable makes sure the cloud routes to the connector that just
// reported itself connected.
//
// The connector reports itself connected once it has sent its HELLO; the
// gateway registers the session for routing a moment later, after reading
// it. Until then a call is tunnel.ErrNotConnected, so that error alone is
// retried, briefly.
func (st *Stack) checkReachable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var (
		s   Status
		err error
	)
	for {
		if s, err = st.ConnectorStatus(ctx); !errors.Is(err, tunnel.ErrNotConnected) {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return err
		}
	}
	if err != nil {
		return err
	}
	if s.ConnectorID != st.connectorID {
		return fmt.Errorf("e2e: the tunnel reached connector %q, want %q", s.ConnectorID, st.connectorID)
	}
	return nil
}

// SetDirectory changes the directory section the connector gets at its
// next StartConnector (a fixed bind password, say).
func (st *Stack) SetDirectory(d connector.Directory) {
	st.mu.Lock()
	st.cfg.Directory = d
	st.mu.Unlock()
}

// StopConnector stops the connector as if its process died: the tunnel
// drops at once, calls in flight fail.
func (st *Stack) StopConnector() error {
	st.mu.Lock()
	agent, done := st.agent, st.agentDone
	st.agent = nil
	st.mu.Unlock()
	if agent == nil {
		return nil
	}
	err := agent.Close()
	<-done
	return err
}

// NextAlert returns the next alert notification the cloud sent, waiting
// until ctx ends.
func (st *Stack) NextAlert(ctx context.Context) (alerts.Notification, error) {
	select {
	case n := <-st.alerts:
		return n, nil
	case <-ctx.Done():
		return alerts.Notification{}, fmt.Errorf("e2e: waiting for an alert: %w", context.Cause(ctx))
	}
}

// WaitAlert skips notifications until one of kind with event ev arrives
// that happened at or after since (the alert's FirstSeen when raised, its
// ResolvedAt when resolved), so an earlier occurrence still queued is not
// mistaken for the one a test waits for.
func (st *Stack) WaitAlert(ctx context.Context, kind alerts.Kind, ev alerts.Event, since time.Time) (alerts.Alert, error) {
	for {
		n, err := st.NextAlert(ctx)
		if err != nil {
			return alerts.Alert{}, fmt.Errorf("e2e: no %s %s: %w", kind, ev, err)
		}
		at := n.Alert.FirstSeen
		if ev == alerts.EventResolved {
			at = n.Alert.ResolvedAt
		}
		if n.Alert.Kind == kind && n.Event == ev && !at.Before(since) {
			return n.Alert, nil
		}
	}
}

// Close stops the connector and the cloud (waiting for both) and removes
// the temporary directory. It is idempotent.
func (st *Stack) Close() error {
	st.closeOnce.Do(func() {
		err := st.StopConnector()
		if st.Cloud != nil {
			err = errors.Join(err, st.Cloud.Close())
		}
		if st.tmp != "" {
			err = errors.Join(err, os.RemoveAll(st.tmp))
		}
		st.closeErr = err
	})
	return st.closeErr
}

// connectorBase is the base URL of requests to a connector through the
// tunnel: the host part is not used for routing (the RoundTripper picks a
// live connector of the tenant).
const connectorBase = "http://connector"

// notifier is an alerts.Notifier that hands notifications to a channel,
// dropping them when nobody reads (it must never block the monitor).
type notifier chan alerts.Notification

func (n notifier) Notify(_ context.Context, x alerts.Notification) error {
	select {
	case n <- x:
	default:
	}
	return nil
}

// countingDirectory calls Config.OnUser for every user streamed to the
// cloud.
type countingDirectory struct {
	cloudapp.Directory
	st *Stack
}

func (d *countingDirectory) count(fn func(directory.User) error) func(directory.User) error {
	if d.st.cfg.OnUser == nil {
		return fn
	}
	n := 0
	return func(u directory.User) error {
		n++
		d.st.cfg.OnUser(n)
		return fn(u)
	}
}

func (d *countingDirectory) Users(ctx context.Context, m directory.Mapping, fn func(directory.User) error) (directory.Cursor, error) {
	return d.Directory.Users(ctx, m, d.count(fn))
}

func (d *countingDirectory) Changes(ctx context.Context, m directory.Mapping, since directory.Cursor, fn func(directory.User) error) (directory.Cursor, error) {
	return d.Directory.Changes(ctx, m, since, d.count(fn))
}
