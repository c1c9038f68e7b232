package connector

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/keyenvelope/keyshare"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/audit"
)

// ErrClosed is returned by Agent.Run after Agent.Close.
var ErrClosed = errors.New("connector: agent closed")

// Paths the connector serves over the tunnel. The cloud reaches the
// directory service below DirectoryPrefix and the key service below
// KeysPrefix; StatusPath is always allowed.
const (
	StatusPath      = "/status"
	DirectoryPrefix = "/directory"
	KeysPrefix      = "/keys"
)

// Agent is a running connector: the directory and key services behind the
// capability policy, served over the tunnel.
type Agent struct {
	cfg      Config
	log      *slog.Logger // scoped with the connector ID
	baseLog  *slog.Logger // the caller's, for packages that add the ID themselves
	identity tunnel.Identity
	// schedulerKey is the scheduler key from the identity file (base64).
	schedulerKey string
	key          ed25519.PrivateKey
	handler      http.Handler

	dir      *directory.Client    // nil: key-only connector
	credKey  *ecdh.PrivateKey     // nil when plain passwords are allowed
	keyring  *keyenvelope.Keyring // nil: directory-only connector
	releaser *keyenvelope.Releaser
	tickets  keyenvelope.TicketPolicy // the releaser's, to name a release's user in the audit log
	audit    *audit.Log               // nil: audit log off

	// keysH serves KeysPrefix once a keyring is installed (a joining
	// connector receives it at run time); kekRead says New read the KEK
	// file.
	keysH   atomic.Pointer[http.Handler]
	kekRead bool

	done     chan struct{} // closed by Close: Run returns
	wg       sync.WaitGroup
	mu       sync.Mutex
	closed   bool
	status   tunnel.Status
	failures int       // consecutive failed connects, for the log level
	pub      publisher // what the connector publishes about itself (health.go)
}

// New checks cfg, reads the files it names (identity, key, passwords, KEK
// file) and prepares the services. It does not connect anywhere: the
// directory is dialled when the cloud first asks, the cloud when Run starts.
// Errors about the configuration wrap ErrConfig. New never changes the
// caller's cfg.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, log: logger, baseLog: logger, done: make(chan struct{})}
	if err := a.loadIdentity(); err != nil {
		return nil, err
	}
	a.identity.ConnectorID = a.cfg.Cloud.ConnectorID
	a.log = logger.With(slog.String("connector_id", a.identity.ConnectorID))
	if cfg.Cloud.CAFile != "" && cfg.Cloud.CAPEM == nil {
		pem, err := readFile(cfg.Cloud.CAFile, "cloud.ca_file")
		if err != nil {
			return nil, err
		}
		a.cfg.Cloud.CAPEM = pem
	}
	if cfg.Directory != nil {
		d, err := openDirectory(*cfg.Directory, logger)
		if err != nil {
			return nil, err
		}
		a.dir = d
		if a.credKey, err = credentialsKey(*cfg.Directory, cfg.Cloud.IdentityFile); err != nil {
			d.Close()
			return nil, err
		}
	}
	if cfg.Keys != nil {
		if err := a.openKeys(*cfg.Keys); err != nil {
			if a.dir != nil {
				a.dir.Close()
			}
			return nil, err
		}
	}
	h, err := a.buildHandler()
	if err == nil {
		a.audit, err = a.openAudit(logger)
	}
	if err != nil {
		if a.dir != nil {
			a.dir.Close()
		}
		return nil, err
	}
	a.handler = h
	if a.audit != nil {
		a.handler = a.audit.Middleware(annotate(h, a.tickets))
	}
	return a, nil
}

func (a *Agent) loadIdentity() error {
	c := &a.cfg.Cloud
	if c.ConnectorID == "" {
		id, err := readIdentity(c.IdentityFile)
		if err != nil {
			return err
		}
		c.ConnectorID, c.CloudKey = id.ConnectorID, id.CloudKey
		a.identity = tunnel.Identity{ConnectorID: id.ConnectorID, Tenant: id.Tenant, CloudKey: id.CloudKey}
		a.schedulerKey = id.SchedulerPublicKey
	} else if k := a.cfg.Keys; k != nil && k.SchedulerKey == nil && k.SchedulerPublicKey == "" && c.IdentityFile != "" {
		id, err := readIdentity(c.IdentityFile)
		if err != nil {
			return err
		}
		a.schedulerKey = id.SchedulerPublicKey
	}
	if c.Key == nil {
		key, err := loadKey(c.keyFile())
		if err != nil {
			return err
		}
		c.Key = key
	}
	if _, ok := c.Key.Public().(ed25519.PublicKey); !ok {
		return fmt.Errorf("%w: the connector key must be Ed25519", ErrConfig)
	}
	return nil
}

func openDirectory(d Directory, logger *slog.Logger) (*directory.Client, error) {
	pw := d.BindPassword
	if pw == "" {
		b, err := secret(d.BindPasswordFile, d.BindPasswordEnv, "directory bind password")
		if err != nil {
			return nil, err
		}
		pw = string(b)
	}
	profile, _ := directory.ParseProfile(d.Profile) // validated
	dc := directory.Config{
		URLs:         d.URLs,
		BindDN:       d.BindDN,
		BindPassword: pw,
		CAPEM:        d.CAPEM,
		Profile:      profile,
		Plaintext:    d.InsecurePlaintext,
		Logger:       logger.With(slog.String("service", "directory")),
	}
	if dc.CAPEM == nil && d.CAFile != "" {
		pem, err := readFile(d.CAFile, "directory.ca_file")
		if err != nil {
			return nil, err
		}
		dc.CAPEM = pem
	}
	c, err := directory.Open(dc)
	if err != nil {
		return nil, fmt.Errorf("%w: directory: %w", ErrConfig, err)
	}
	return c, nil
}

func (a *Agent) openKeys(k Keys) error {
	sched := k.SchedulerKey
	if sched == nil {
		b64 := k.SchedulerPublicKey
		if b64 == "" {
			b64 = a.schedulerKey
		}
		var err error
		if sched, err = parseEd25519(b64); err != nil {
			return fmt.Errorf("%w: keys: no scheduler key: set keys.scheduler_public_key (the identity file holds none)", ErrConfig)
		}
	}
	var extra []ed25519.PublicKey
	for i, b64 := range k.ExtraSchedulerPublicKeys {
		e, err := parseEd25519(b64)
		if err != nil {
			return fmt.Errorf("%w: keys.extra_scheduler_public_keys[%d]: %w", ErrConfig, i, err)
		}
		extra = append(extra, e)
	}
	a.tickets = keyenvelope.TicketPolicy{SchedulerKey: sched, ExtraSchedulerKeys: extra}
	kr := k.Keyring
	if kr == nil {
		if _, err := os.Stat(k.KEKFile); errors.Is(err, fs.ErrNotExist) && k.shareFile() != "" {
			if joining, serr := keyshare.Joining(k.shareFile()); serr == nil && joining {
				return nil // joining: the keyring arrives in a key-share round
			}
		}
		pass, err := secret(k.PassphraseFile, k.PassphraseEnv, "kek passphrase")
		if err != nil {
			return err
		}
		kr, err = keyenvelope.ReadKEKFile(k.KEKFile, pass)
		clear(pass)
		if err != nil {
			return fmt.Errorf("%w: keys.kek_file %s: %w (wrong passphrase or not a KEK file; a new connector of a tenant that has a keyring runs connector keys join instead)", ErrConfig, k.KEKFile, err)
		}
		a.kekRead = true
	}
	return a.setKeyring(kr)
}

// setKeyring makes kr the keyring the key service serves.
func (a *Agent) setKeyring(kr *keyenvelope.Keyring) error {
	rel, err := keyenvelope.NewReleaser(keyenvelope.ReleaserConfig{Keyring: kr, Policy: a.tickets})
	if err != nil {
		return fmt.Errorf("%w: keys: %w", ErrConfig, err)
	}
	a.mu.Lock()
	a.keyring, a.releaser = kr, rel
	a.mu.Unlock()
	a.publishInfo() // health.go: the KEK versions changed
	return nil
}

// installKeyring serves a keyring received at run time.
func (a *Agent) installKeyring(kr *keyenvelope.Keyring) error {
	if err := a.setKeyring(kr); err != nil {
		return err
	}
	kh, err := a.keysHandler()
	if err != nil {
		return fmt.Errorf("connector: keys: %w", err)
	}
	a.keysH.Store(&kh)
	return nil
}

// Handler returns the connector's HTTP handler, policy included: what the
// tunnel serves. It is usable on its own (httptest) without Run.
func (a *Agent) Handler() http.Handler { return a.handler }

// Directory returns the directory client, or nil for a key-only connector.
func (a *Agent) Directory() *directory.Client { return a.dir }

// Keyring returns the keyring, or nil for a directory-only connector.
func (a *Agent) Keyring() *keyenvelope.Keyring {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.keyring
}

// Identity returns the connector's enrolled identity. Tenant is empty when
// the identity was given in code.
func (a *Agent) Identity() tunnel.Identity { return a.identity }

// Status returns the tunnel's last reported status (zero before Run).
func (a *Agent) Status() tunnel.Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

func (a *Agent) buildHandler() (http.Handler, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StatusPath, a.serveStatus)
	if a.dir != nil {
		mux.Handle(DirectoryPrefix+"/", enforce(a.cfg.Policy, classifyDirectory,
			http.StripPrefix(DirectoryPrefix, a.directoryHandler())))
		mux.Handle("POST "+CheckPath, enforce(a.cfg.Policy, only(OpBrowse), http.HandlerFunc(a.serveCheck))) // check.go
	}
	if a.cfg.Keys != nil {
		if a.keyring != nil {
			kh, err := a.keysHandler()
			if err != nil {
				return nil, fmt.Errorf("connector: keys: %w", err)
			}
			a.keysH.Store(&kh)
		}
		keys := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := a.keysH.Load()
			if h == nil {
				http.Error(w, "this connector waits for the tenant's keyring (connector keys join)", http.StatusServiceUnavailable)
				return
			}
			(*h).ServeHTTP(w, r)
		})
		mux.Handle(KeysPrefix+"/", enforce(a.cfg.Policy, only(OpKeys), http.StripPrefix(KeysPrefix, keys)))
		// Key sharing needs a share file and the tenant (from the
		// identity file); without them the route does not exist and the
		// cloud's relay skips this connector.
		if a.cfg.Keys.shareFile() != "" && a.identity.Tenant != "" {
			ks, err := a.keyShareHandler()
			if err != nil {
				return nil, fmt.Errorf("connector: keys: %w", err)
			}
			mux.Handle("POST "+KeySharePath, enforce(a.cfg.Policy, only(OpKeys), ks))
		}
	}
	return mux, nil
}

// StatusResponse is the JSON body of StatusPath: what this connector
// offers. When SealedPasswords is true, a credential check must seal its
// password to CredentialsKey (X25519, 32 bytes) with
// directoryhttp.WithConnectorKey, and reach this connector (ConnectorID:
// tunnel.Gateway.RoundTripperFor), since each connector has its own key.
type StatusResponse struct {
	ConnectorID     string      `json:"connector_id"`
	Directory       bool        `json:"directory"`
	Keys            bool        `json:"keys"`
	Allow           []Operation `json:"allow"`
	SealedPasswords bool        `json:"sealed_passwords"`
	CredentialsKey  []byte      `json:"credentials_key,omitempty"`
}

func (a *Agent) serveStatus(w http.ResponseWriter, r *http.Request) {
	st := StatusResponse{
		ConnectorID: a.identity.ConnectorID,
		Directory:   a.dir != nil,
		Keys:        a.Keyring() != nil,
		Allow:       a.cfg.Policy.Allow,
	}
	if a.credKey != nil {
		st.SealedPasswords, st.CredentialsKey = true, a.credKey.PublicKey().Bytes()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

// Run keeps the tunnel to the cloud up, reconnecting with backoff, and serves
// the cloud's requests until ctx ends or Close is called. It returns
// ctx's error, ErrClosed, or tunnel.ErrRevoked when the cloud revoked this
// connector (not retried).
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return ErrClosed
	}
	a.wg.Add(1)
	a.mu.Unlock()
	defer a.wg.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-a.done:
			cancel()
		case <-ctx.Done():
		}
	}()

	c := a.cfg.Cloud
	tc, err := tunnel.NewConnector(tunnel.ConnectorConfig{
		URL:          c.tunnelURL(),
		ConnectorID:  c.ConnectorID,
		CloudKey:     c.CloudKey,
		Key:          c.Key,
		Handler:      a.handler,
		ExtraRootCAs: c.CAPEM,
		ProxyURL:     c.ProxyURL,
		BackoffBase:  c.BackoffBase,
		BackoffMax:   c.BackoffMax,
		OnStatus:     a.onStatus,
		Logger:       a.baseLog, // tunnel logs the connector ID itself
	})
	if err != nil {
		return fmt.Errorf("%w: tunnel: %w", ErrConfig, err)
	}
	a.log.Info("connector starting", slog.String("tunnel_url", c.tunnelURL()),
		slog.Bool("directory", a.dir != nil), slog.Bool("keys", a.Keyring() != nil))
	a.attachTunnel(tc) // health.go
	defer a.attachTunnel(nil)
	err = tc.Run(ctx)
	_ = tc.Close()
	if a.isClosed() && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return ErrClosed
	}
	return err
}

func (a *Agent) isClosed() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

func (a *Agent) onStatus(s tunnel.Status) {
	s.Err = withFix(s.Err) // connerr.go: name the setting that fixes it
	a.mu.Lock()
	a.status = s
	switch s.State {
	case tunnel.StateConnected:
		a.failures = 0
	case tunnel.StateDisconnected:
		a.failures++
	}
	failures := a.failures
	a.mu.Unlock()
	attrs := []any{slog.String("state", s.State.String())}
	if s.NodeID != "" {
		attrs = append(attrs, slog.String("node", s.NodeID))
	}
	if s.Err != nil {
		attrs = append(attrs, slog.String("err", s.Err.Error()))
	}
	if s.RetryIn > 0 {
		attrs = append(attrs, slog.Duration("retry_in", s.RetryIn.Round(time.Millisecond)))
	}
	// Failed connects: WARN for the first ones, then ERROR while it keeps
	// retrying.
	switch {
	case s.State != tunnel.StateDisconnected || s.Err == nil:
		a.log.Info("tunnel status", attrs...)
	case failures <= warnFailures:
		a.log.Warn("tunnel status", append(attrs, slog.Int("failures", failures))...)
	default:
		a.log.Error("tunnel status", append(attrs, slog.Int("failures", failures))...)
	}
	if a.cfg.OnStatus != nil {
		a.cfg.OnStatus(s)
	}
}

// Close stops Run, waits for it to return and closes the directory
// connections. It is idempotent.
func (a *Agent) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	close(a.done)
	a.mu.Unlock()
	a.wg.Wait()
	var errs []error
	if a.audit != nil {
		errs = append(errs, a.audit.Close()) // the closing checkpoint
	}
	if a.dir != nil {
		errs = append(errs, a.dir.Close())
	}
	return errors.Join(errs...)
}
