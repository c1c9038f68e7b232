package cloudapp

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/alerts/alertstunnel"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/directory/importer/importersql"
	"github.com/liaisonhq/liaison/directory/loginguard"
	"github.com/liaisonhq/liaison/keyenvelope/keyhttp"
	"github.com/liaisonhq/liaison/keyenvelope/keyrelease"
	"github.com/liaisonhq/liaison/keyenvelope/keyshare"
	"github.com/liaisonhq/liaison/masterkey"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/tunnelnats"
	"github.com/liaisonhq/liaison/tunnel/tunnelsql"
)

// Paths of the public endpoints, under the Server's URL.
const (
	PathTunnel       = "/v1/tunnel"               // connectors' WebSocket upgrade
	PathEnroll       = "/v1/enroll"               // connectors' enrollment
	PathActivate     = "/v1/activate"             // devices' mass-deployment activation
	PathLogin        = "/v1/login"                // web login (credential check)
	PathDeviceAuth   = "/v1/devices/authenticate" // an activated device before a backup (no connector needed)
	PathSchedulerKey = "/v1/scheduler-key"        // the Ed25519 key that signs job tickets

	// SchedulerKeyStatement is the tunnel.GatewayIdentity.SignStatement
	// purpose of the scheduler key's signature at PathSchedulerKey.
	SchedulerKeyStatement = "scheduler-key"
)

// Where the connector (tunnel/connector) serves its services,
// as seen through the tunnel; the host is ignored by the tunnel.
const (
	ConnectorDirectoryURL = "http://connector/directory"
	ConnectorKeysURL      = "http://connector/keys"
)

// Server is the cloud endpoint: tunnel gateway, admin API, device activation,
// web login, key release, alerts and import scheduler over one TLS listener.
type Server struct {
	cfg       Config
	log       *slog.Logger
	db        *sql.DB
	writes    writeGate
	ownDB     bool
	ln        net.Listener
	url       string
	caPEM     []byte
	adminHash [32]byte
	tickets   *keyrelease.Scheduler
	releaser  *keyrelease.Releaser

	tunnels   *tunnelsql.Store
	users     *importersql.Store
	secrets   *masterkey.Secrets
	gw        *tunnel.Gateway
	monitor   *alerts.Monitor
	alertDB   *alerts.SQLStore
	notifier  alerts.Notifier
	activator *activation.Service
	actStore  *activation.SQLStore
	sched     *importer.Scheduler
	logins    *loginguard.Guard // per account, per unknown name, per source
	http      *http.Server
	metrics   *metrics
	checker   *directoryhttp.SealedChecker
	cl        *tunnelnats.Node // cluster.go; nil on a single node

	mu        sync.Mutex
	lastSeen  map[string]time.Time
	infos     map[string]tunnel.InfoEvent // connector ID -> its latest published info (connhealth.go), of every node in a cluster
	clInfos   *tunnelnats.Infos           // in a cluster: the infos shared with the other nodes (cluster.go)
	importing map[importer.Scope]bool
	imports   *importer.Tracker // every import run, for the API and the status page (imports_async.go)
	bg        sync.WaitGroup    // background imports (StartImport)

	relay    *keyshare.Relay // the key-share relay (keyshare.go)
	stopping atomic.Bool     // Run is shutting down: PathReadyz answers 503

	runOnce   sync.Once
	closeOnce sync.Once
	closed    chan struct{}
	done      chan struct{} // closed when Run returned
	running   bool
}

// New validates cfg, opens the database, creates the schema and binds the
// listener (so URL is known at once); call Run to serve.
func New(cfg Config) (*Server, error) {
	if len(cfg.AdminToken) < 16 {
		return nil, fmt.Errorf("%w: AdminToken of at least 16 characters is required", errConfig)
	}
	if cfg.DB == nil && cfg.DBPath == "" {
		return nil, fmt.Errorf("%w: DB or DBPath is required", errConfig)
	}
	if cfg.MasterKeyFile == "" {
		if cfg.DBPath == "" {
			return nil, fmt.Errorf("%w: MasterKeyFile is required with DB and no DBPath", errConfig)
		}
		cfg.MasterKeyFile = cfg.DBPath + ".key"
	}
	if cfg.AdminTimeout == 0 {
		cfg.AdminTimeout = time.Hour
	}
	if cfg.LoginMaxFailures == 0 {
		cfg.LoginMaxFailures = 3
	}
	if cfg.LoginSourceMaxFailures == 0 {
		cfg.LoginSourceMaxFailures = 50
	}
	if cfg.LoginWindow == 0 {
		cfg.LoginWindow = 30 * time.Minute
	}
	if cfg.Grace == 0 {
		cfg.Grace = alerts.DefaultGrace
	}
	if cfg.ImportConcurrency < 0 || cfg.ImportTimeout < 0 || cfg.RequestTimeout < 0 {
		return nil, fmt.Errorf("%w: ImportConcurrency, ImportTimeout and RequestTimeout must not be negative", errConfig)
	}
	if cfg.ImportTimeout == 0 {
		cfg.ImportTimeout = time.Hour
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.NewKeys == nil {
		cfg.NewKeys = func(_ string, rt http.RoundTripper) Keys {
			c, err := keyhttp.NewClient(ConnectorKeysURL, rt)
			if err != nil {
				panic(err) // a constant URL
			}
			return c
		}
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8443"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg: cfg, log: log, adminHash: sha256.Sum256([]byte(cfg.AdminToken)),
		lastSeen: map[string]time.Time{}, infos: map[string]tunnel.InfoEvent{},
		importing: map[importer.Scope]bool{},
		closed:    make(chan struct{}), done: make(chan struct{}), writes: make(writeGate, 1),
	}
	if s.cfg.NewDirectory == nil {
		s.cfg.NewDirectory = s.defaultDirectory
	}
	if s.cfg.MetricsTenantLabels == 0 {
		s.cfg.MetricsTenantLabels = DefaultMetricsTenantLabels
	}
	s.metrics = newMetrics(s)
	checker, cerr := s.newSealedChecker()
	if cerr != nil {
		return nil, cerr
	}
	s.checker = checker
	relay, rerr := s.newRelay() // keyshare.go
	if rerr != nil {
		return nil, rerr
	}
	s.relay = relay
	logins, lerr := loginguard.New(loginguard.Config{MaxFailures: cfg.LoginMaxFailures, Window: cfg.LoginWindow, MaxSourceFailures: cfg.LoginSourceMaxFailures})
	if lerr != nil {
		return nil, fmt.Errorf("%w: LoginMaxFailures, LoginWindow: %w", errConfig, lerr)
	}
	s.logins = logins
	ok := false
	defer func() {
		if !ok {
			s.closeResources()
		}
	}()
	ctx := context.Background()

	sqldb := cfg.DB
	if sqldb == nil {
		if err := s.privateDBFiles(); err != nil {
			return nil, err
		}
		var err error
		sqldb, err = sql.Open("sqlite", sqliteDSN(cfg.DBPath))
		if err != nil {
			return nil, fmt.Errorf("cloudapp: open database: %w", err)
		}
		s.ownDB = true
		// database/sql keeps 2 idle connections by default: with more
		// concurrent requests every query would open a connection (pragmas,
		// schema parse) and close it again.
		sqldb.SetMaxIdleConns(32)
	}
	s.db = sqldb
	if err := s.openSecrets(ctx, sqldb); err != nil {
		return nil, err
	}
	act := activation.NewSQLStore(sqldb, cfg.Dialect)
	s.actStore = act
	if err := act.Migrate(ctx); err != nil {
		return nil, err
	}
	var err error
	s.alertDB = alerts.NewSQLStore(sqldb, cfg.Dialect)
	if err := s.alertDB.Migrate(ctx); err != nil {
		return nil, err
	}
	if s.tunnels, err = tunnelsql.New(tunnelsql.Config{DB: sqldb, Dialect: cfg.Dialect, Writes: s.writeLock()}); err != nil {
		return nil, err
	}
	if err := s.tunnels.Migrate(ctx); err != nil {
		return nil, err
	}
	if s.users, err = importersql.New(importersql.Config{DB: sqldb, Dialect: cfg.Dialect, Writes: s.writeLock()}); err != nil {
		return nil, err
	}
	if err := s.users.Migrate(ctx); err != nil {
		return nil, err
	}
	// Runs are kept in the database, so every node follows every run.
	s.imports = importer.NewTracker(importer.TrackerConfig{Store: s.users})
	s.tickets, err = keyrelease.LoadScheduler(ctx, keyrelease.SchedulerConfig{Secrets: s.secrets, Promote: cfg.PromoteSchedulerKey})
	if errors.Is(err, keyrelease.ErrNothingToPromote) {
		return nil, fmt.Errorf("%w: PromoteSchedulerKey (--promote-scheduler-key) is set but no next key was prepared (POST /v1/admin/scheduler-keys/next): remove it", errConfig)
	}
	if err != nil {
		return nil, err
	}
	if cfg.PromoteSchedulerKey {
		log.Warn("cloudapp: job tickets are now signed with the prepared scheduler key; retire the previous one once every connector pins the new one")
	}
	ekeys, err := keyrelease.NewSQLEkeys(keyrelease.SQLEkeysConfig{DB: sqldb, Dialect: cfg.Dialect, Writes: s.writeLock()})
	if err != nil {
		return nil, err
	}
	if err := ekeys.Migrate(ctx); err != nil {
		return nil, err
	}
	if s.releaser, err = keyrelease.New(keyrelease.Config{Scheduler: s.tickets, Ekeys: ekeys}); err != nil {
		return nil, err
	}
	credKey, err := s.secrets.Secret(ctx, "activation_credential_key", 32)
	if err != nil {
		return nil, err
	}
	tunnelSeed, err := s.secrets.Secret(ctx, "tunnel_identity_seed", tunnel.SeedSize)
	if err != nil {
		return nil, err
	}
	tunnelID, err := tunnel.NewGatewayIdentity(tunnelSeed)
	if err != nil {
		return nil, err
	}
	if err := s.startCluster(ctx, tunnelSeed); err != nil {
		return nil, err
	}

	// Listener and URL.
	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return nil, fmt.Errorf("cloudapp: listen: %w", err)
		}
	}
	s.ln = cfg.HTTP.Listener(ln)
	s.url = cfg.PublicURL
	if s.url == "" {
		s.url = "https://" + s.ln.Addr().String()
		if wildcard(s.ln.Addr()) {
			log.Warn("cloudapp: listening on a wildcard address without a public URL: connectors and devices are handed a URL that reaches nothing elsewhere; set PublicURL (--public-url) to the https URL they use", "url", s.url)
		}
	}
	u, err := url.Parse(s.url)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%w: PublicURL must be an https URL", errConfig)
	}
	getCert, caPEM, err := s.certificate(ctx, u.Hostname())
	if err != nil {
		return nil, err
	}
	s.caPEM = caPEM
	if caPEM != nil && cfg.CAOut != "" {
		if err := os.WriteFile(cfg.CAOut, caPEM, 0o644); err != nil {
			return nil, fmt.Errorf("cloudapp: write CA: %w", err)
		}
	}

	// Alerts.
	s.notifier = cfg.Notifier
	if s.notifier == nil {
		s.notifier = alerts.NewLogNotifier(log)
	}
	if s.monitor, err = alerts.New(alerts.Config{Store: s.alertStore(), Notifier: s.notifier, Grace: cfg.Grace, Logger: log}); err != nil {
		return nil, err
	}

	if err := s.startPresence(ctx); err != nil {
		return nil, err
	}

	// Tunnel.
	if s.gw, err = s.newGateway(tunnel.GatewayConfig{
		Identity:     tunnelID,
		Audience:     s.TunnelURL(),
		Store:        s.tunnels,
		PingInterval: cfg.PingInterval,
		OnPresence:   alertstunnel.OnPresence(s.monitor, s.onPresence),
		OnInfo:       s.onInfo, // connhealth.go
		Logger:       log,
	}); err != nil {
		return nil, err
	}

	// Activation.
	if s.activator, err = activation.New(activation.Config{
		Directory: importersql.ActivationDirectory{Mappings: s.users, Directory: func(tenant string) importersql.Resolver {
			d, _ := s.directory(tenant) // never fails
			return d
		}},
		Store:         importersql.ActivationStore{Users: s.users, Activations: act},
		Tokens:        act,
		Audit:         activationAudit{log: log, m: s.metrics},
		CredentialKey: credKey,
		TokenRate:     cfg.ActivationTokenRate,
		TokenBurst:    cfg.ActivationTokenBurst,
		SourceRate:    cfg.ActivationSourceRate,
		SourceBurst:   cfg.ActivationSourceBurst,
		Logger:        log,
	}); err != nil {
		return nil, err
	}

	// Imports.
	if !cfg.DisableScheduler {
		if s.sched, err = importer.NewScheduler(importer.SchedulerConfig{
			Tenants:       s.scheduledTenants,
			Run:           s.importTenant,
			State:         s.users,
			Interval:      cfg.ImportInterval,
			Jitter:        cfg.ImportJitter,
			Poll:          cfg.ImportPoll,
			Concurrency:   cfg.ImportConcurrency,
			RunTimeout:    cfg.ImportTimeout,
			IsUnavailable: func(err error) bool { return errors.Is(err, tunnel.ErrNotConnected) },
			OnSkip:        s.onImportSkipped,
			Logger:        log,

			// Full imports every Interval, incremental ones between (issue 15).
			IncrementalInterval: cfg.ImportIncrementalInterval,
		}); err != nil {
			return nil, err
		}
	}

	s.http = &http.Server{
		Handler:   s.Handler(),
		ErrorLog:  slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: getCert},
	}
	cfg.HTTP.Apply(s.http)
	ok = true
	return s, nil
}

// privateDBFiles creates the database file with mode 0600 before SQLite
// opens it (SQLite gives its WAL and shared-memory files the database's
// mode), and tightens the files of an existing database that are readable
// by others, saying so in the log.
func (s *Server) privateDBFiles() error {
	if err := masterkey.CreatePrivate(s.cfg.DBPath); err != nil {
		return fmt.Errorf("cloudapp: database file (DBPath): %w", err)
	}
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		p := s.cfg.DBPath + suffix
		tightened, err := masterkey.Restrict(p)
		if err != nil {
			return fmt.Errorf("cloudapp: database file (DBPath): %w", err)
		}
		if tightened {
			s.log.Warn("cloudapp: database file was readable by other users; set to mode 0600", "path", p)
		}
	}
	return nil
}

// openSecrets loads (or creates) the master key file and moves secrets an
// older version kept in the clear in the database under it.
func (s *Server) openSecrets(ctx context.Context, sqldb *sql.DB) error {
	path := s.cfg.MasterKeyFile
	sec, created, tightened, err := masterkey.LoadSecrets(ctx, masterkey.SecretsConfig{DB: sqldb, Dialect: s.cfg.Dialect, Writes: s.writeLock()}, path)
	if errors.Is(err, masterkey.ErrKeyFileMissing) {
		return fmt.Errorf("%w: master key file %s (MasterKeyFile, --master-key-file) is missing but the database holds secrets sealed under it: restore it from the backup taken with the database", errConfig, path)
	}
	if err != nil {
		return fmt.Errorf("cloudapp: master key file (MasterKeyFile, --master-key-file): %w", err)
	}
	if created {
		s.log.Info("cloudapp: master key file created; back it up with the database, apart from it", "path", path)
	}
	if tightened {
		s.log.Warn("cloudapp: master key file was readable by other users; set to mode 0600", "path", path)
	}
	s.secrets = sec
	moved, err := sec.SealClearSettings(ctx)
	if len(moved) > 0 {
		s.log.Warn("cloudapp: secrets kept in the clear by an older version moved under the master key; old backups of the database still hold them", "names", moved)
	}
	return err
}

// sqliteDSN opens path in WAL mode with a busy timeout (a writer from
// elsewhere waits instead of failing; this package's writers queue on the
// db write gate), transactions that take the write lock at BEGIN (a
// transaction that read first cannot fail to upgrade with SQLITE_BUSY) and
// synchronous=NORMAL: in WAL mode that cannot corrupt the database, and a
// power cut loses at most the last transactions instead of paying an fsync
// per commit.
func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

// wildcard reports whether a is an unspecified address (0.0.0.0, ::, or no
// host), which is no address to hand to a client.
func wildcard(a net.Addr) bool {
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// URL returns the Server's public https URL.
func (s *Server) URL() string { return s.url }

// TunnelURL returns the wss:// URL connectors dial (their Audience too).
func (s *Server) TunnelURL() string { return "wss" + s.url[len("https"):] + PathTunnel }

// EnrollURL returns the URL connectors enroll at.
func (s *Server) EnrollURL() string { return s.url + PathEnroll }

// CAPEM returns the PEM of the CA generated at start-up, or nil when the
// certificate came from the Config.
func (s *Server) CAPEM() []byte { return s.caPEM }

// SchedulerPublicKey returns the Ed25519 key job tickets are signed with:
// connectors pin it (keyenvelope.TicketPolicy.SchedulerKey). It is also
// served at PathSchedulerKey.
func (s *Server) SchedulerPublicKey() ed25519.PublicKey {
	return s.tickets.PublicKey()
}

// Gateway returns the tunnel gateway, for callers that need a RoundTripper
// of their own.
func (s *Server) Gateway() *tunnel.Gateway { return s.gw }

// Run serves until ctx ends or Close is called, then shuts down and returns
// nil (after Close) or ctx's error. It may be called once.
func (s *Server) Run(ctx context.Context) error {
	first := false
	s.runOnce.Do(func() { first = true })
	if !first {
		return errors.New("cloudapp: Run called twice")
	}
	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		return nil // closed before it ran
	default:
	}
	s.running = true
	s.mu.Unlock()
	defer close(s.done)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()

	// Not ctx: a Close racing with start-up is a clean stop, not an error.
	tenants, err := s.users.Tenants(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	for _, t := range tenants {
		s.monitor.Register(t)
	}
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Go(func() {
		if err := s.monitor.Run(ctx); err != nil && ctx.Err() == nil {
			errc <- err
		}
	})
	if s.sched != nil {
		wg.Go(func() { _ = s.sched.Run(ctx) }) // returns ctx's error only
	}
	if s.cfg.KeyShareInterval >= 0 {
		wg.Go(func() { s.runKeyShares(ctx) })
	}
	if s.cl != nil {
		wg.Go(func() { s.convergeRevocations(ctx) }) // cluster.go
		wg.Go(func() { s.watchInfos(ctx) })
	}
	wg.Go(func() { s.syncImports(ctx) }) // imports_async.go
	wg.Go(func() {
		if err := s.http.ServeTLS(s.ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("cloudapp: serve: %w", err)
			cancel()
		}
	})
	s.log.Info("cloud endpoint serving", "url", s.url)
	<-ctx.Done()
	s.stopping.Store(true)

	// One node: there is no other gateway to drain connectors to, so the
	// sessions are closed at once (connectors reconnect when it is back).
	shutCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	_ = s.gw.Close()
	_ = s.http.Shutdown(shutCtx)
	_ = s.http.Close()
	_ = s.monitor.Close()
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	select {
	case <-s.closed:
		return nil
	default:
		return context.Cause(ctx)
	}
}

// Close stops Run, waits for it, and releases the listener, the gateway and
// the database (when New opened it). It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		close(s.closed)
		running := s.running
		s.mu.Unlock()
		if running {
			<-s.done
		}
		s.closeResources()
	})
	return nil
}

func (s *Server) closeResources() {
	s.bg.Wait() // background imports stop when s.closed closes
	if s.gw != nil {
		_ = s.gw.Close()
	}
	s.closeCluster()
	if s.monitor != nil {
		_ = s.monitor.Close()
	}
	if s.ln != nil {
		_ = s.ln.Close()
	}
	if s.ownDB && s.db != nil {
		_ = s.db.Close()
	}
}

// onPresence keeps what the status page shows of presence; alertstunnel
// fed the monitor first.
func (s *Server) onPresence(ev tunnel.PresenceEvent) {
	s.mu.Lock()
	s.lastSeen[ev.ConnectorID] = time.Now()
	s.mu.Unlock()
	if ev.Kind == tunnel.Disconnected {
		s.checker.Forget(ev.ConnectorID) // its next session may publish another key
	}
}

// raise opens (or repeats) an alert the monitor has no method for.
func (s *Server) raise(ctx context.Context, a alerts.Alert) {
	if err := alerts.Raise(ctx, s.alertDB, s.notifier, a, time.Now()); err != nil {
		s.log.Warn("cloudapp: raise alert", "kind", a.Kind, "tenant", a.Tenant, "err", err)
	}
}

func (s *Server) resolve(ctx context.Context, tenant string, kind alerts.Kind, subject string) {
	if err := alerts.Resolve(ctx, s.alertDB, s.notifier, tenant, kind, subject, time.Now()); err != nil {
		s.log.Warn("cloudapp: resolve alert", "kind", kind, "tenant", tenant, "err", err)
	}
}
