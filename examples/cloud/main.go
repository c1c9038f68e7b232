// Command cloud runs the Liaison example cloud endpoint: the tunnel gateway
// connectors dial, the admin API, device activation, web login, key release,
// alerts and the import scheduler, over one TLS listener, with its state in a
// SQLite file.
//
//	cloud --listen 127.0.0.1:8443 --db cloud.db --admin-token-file admin.token \
//	      --self-signed-ca-out ca.pem
//
// With --tls-cert and --tls-key it serves that certificate; otherwise it
// makes a CA on first start, keeps it in the database (its key sealed under
// the master key), serves certificates it issues and renews, and writes the
// CA to --self-signed-ca-out for connectors and devices to trust: restarts
// keep it, so connectors reconnect with no action. The admin token
// comes from --admin-token-file or LIAISON_ADMIN_TOKEN. See package
// examples/internal/cloudapp for the API.
//
// Files: the database (--db) and its -wal and -shm files, and the master
// key file (--master-key-file, default <db>.key) are created 0600, and
// tightened to 0600 at start when found wider. The secrets the cloud makes
// (the job-ticket signing key, the activation credential key) are sealed in
// the database under the master key: back up both files, and keep the
// copies apart, since either alone is useless and both together are every
// secret. --self-signed-ca-out is a public certificate (0644).
//
// Several nodes: --db postgres://... (the same database on every node) with
// --master-key-file (the same file, copied, on every node), --node-id, and
// either --cluster-listen HOST:PORT with --cluster-peers HOST:PORT,... (each
// node runs an embedded NATS server; they cluster, their routes
// authenticated by a secret derived from the gateway identity in the
// database; JetStream's files go to --nats-dir) or --nats URL (an existing
// NATS cluster with JetStream). Put the nodes behind one TCP load balancer
// and give them its URL as --public-url. See the README, "Deployment
// modes", and examples/internal/cloudapp.ClusterConfig.
//
// Logs go to stderr as text, or as JSON lines with --log-format json. Listening
// on a wildcard address (--listen :8443, 0.0.0.0, [::]) without --public-url
// logs a warning: connectors would be handed https://[::]:8443.
//
// cloud version (or --version) prints the build's module version, Go version
// and OS/architecture. Exit codes: 0 success, -h and version; 1 failure;
// 2 usage error.
//
// Rotating the job-ticket signing key: POST /v1/admin/scheduler-keys/next,
// add the returned key to every connector's keys.extra_scheduler_public_keys,
// restart the cloud once with --promote-scheduler-key, then pin the new key
// on every connector and DELETE /v1/admin/scheduler-keys/previous. See
// examples/internal/cloudapp, "Rotating the ticket signing key".
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/examples/internal/cli"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/httpguard"
	"github.com/liaisonhq/liaison/tunnel/tunnelsql"

	_ "github.com/jackc/pgx/v5/stdlib" // the database/sql driver "pgx"
)

// Exit codes: 0 success (and -h, --version); 1 failure; 2 usage error.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(command(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is an error in the command line (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// command runs the program and returns its exit code, printing errors with
// one "cloud: " prefix.
func command(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "version" || args[0] == "--version" || args[0] == "-version") {
		fmt.Fprintln(stdout, cli.Version("cloud"))
		return exitOK
	}
	err := run(args, stdout, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintln(stderr, "cloud:", cli.Message(err))
		return exitUsage
	}
	fmt.Fprintln(stderr, "cloud:", cli.Message(err))
	return exitFailure
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cloud", flag.ContinueOnError)
	// Parse errors are returned (command prints them); -h prints the
	// usage to stdout below.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	listen := fs.String("listen", "127.0.0.1:8443", "address to serve HTTPS on")
	publicURL := fs.String("public-url", "", "https URL connectors and devices use (default https://<listen>)")
	dbPath := fs.String("db", "liaison-cloud.db", "SQLite database file (created 0600), or a postgres:// URL (every node of a cluster uses the same)")
	natsURL := fs.String("nats", "", "join this NATS cluster (JetStream enabled; comma-separated URLs) as one node of several; needs a postgres:// --db")
	clusterListen := fs.String("cluster-listen", "", "HOST:PORT: run an embedded NATS server whose routes listen here and cluster with --cluster-peers; needs a postgres:// --db")
	clusterPeers := fs.String("cluster-peers", "", "comma-separated route URLs (HOST:PORT or nats-route://HOST:PORT) of the other nodes' --cluster-listen")
	nodeID := fs.String("node-id", "", "this node's name, unique in the cluster (default the host name)")
	natsDir := fs.String("nats-dir", "", "with --cluster-listen: directory of the embedded server's JetStream files, local to this node (default <master key file>.nats-<node-id>)")
	dbMaxConns := fs.Int("db-max-conns", 16, "with a postgres:// --db: connections this node opens at most, all opened at start (the nodes together must stay under the server's max_connections, 100 by default)")
	masterKeyFile := fs.String("master-key-file", "", "file of the key the cloud's secrets are sealed under in the database (default <db>.key, created 0600; back it up with the database)")
	promote := fs.Bool("promote-scheduler-key", false, "sign job tickets with the key prepared by POST /v1/admin/scheduler-keys/next from this start on (once, during a rotation)")
	maxConns := fs.Int("max-conns", 0, "open connections at most, tunnel sessions included (default 4096)")
	readTimeout := fs.Duration("read-timeout", 0, "time to read a request, body included (default 30s)")
	idleTimeout := fs.Duration("idle-timeout", 0, "keep-alive connections idle longer are closed (default 60s)")
	certFile := fs.String("tls-cert", "", "PEM certificate chain of the listener")
	keyFile := fs.String("tls-key", "", "PEM private key of the listener")
	caOut := fs.String("self-signed-ca-out", "", "without --tls-cert: write the generated CA here")
	tokenFile := fs.String("admin-token-file", "", "file holding the admin token (else $LIAISON_ADMIN_TOKEN)")
	grace := fs.Duration("grace", 0, "time without connector before Not Connected is raised (default 60s)")
	interval := fs.Duration("import-interval", 0, "every tenant gets a full import (the one that removes users who left) at least this often (default 24h)")
	incInterval := fs.Duration("import-incremental-interval", 0, "also run incremental imports this often between the full ones (default off)")
	noSched := fs.Bool("no-scheduler", false, "run imports only when asked")
	importConc := fs.Int("import-concurrency", 0, "tenants imported at once by the scheduler (default 4)")
	importTimeout := fs.Duration("import-timeout", 0, "longest import run; a hung connector's run is cut and recorded as failed (default 1h)")
	requestTimeout := fs.Duration("request-timeout", 0, "longest wait for a connector's answer to any other request (default 30s)")
	tokenRate := fs.Float64("activation-token-rate", 0, "activations per second per deployment token, on this node (default 50; in a cluster each node counts its own)")
	tokenBurst := fs.Int("activation-token-burst", 0, "activation burst per deployment token (default 1000)")
	sourceRate := fs.Float64("activation-source-rate", 0, "activations per second per source address, on this node (default 5; in a cluster each node counts its own)")
	sourceBurst := fs.Int("activation-source-burst", 0, "activation burst per source address (default 100)")
	webhookURL := fs.String("webhook-url", "", "POST alert notifications here, signed with HMAC (https, or http on loopback)")
	webhookSecretFile := fs.String("webhook-secret-file", "", "file holding the webhook HMAC secret (at least 16 bytes)")
	metricsPublic := fs.Bool("metrics-public", false, "serve /metrics without authentication (default: the admin token, Bearer or as the basic-auth password)")
	metricsTenants := fs.Int("metrics-tenant-labels", 0, "per-tenant series on /metrics only while at most this many tenants have a live connector (default 100; negative: never)")
	verbose := fs.Bool("v", false, "debug logs")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprint(stdout, "usage: cloud [flags]\n       cloud version\n\nflags:\n")
			fs.PrintDefaults()
			return err
		}
		return usageError{fmt.Errorf("%w (cloud -h lists the flags)", err)}
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Errorf("unexpected argument %q (cloud -h lists the flags)", fs.Arg(0))}
	}
	pg := strings.HasPrefix(*dbPath, "postgres://") || strings.HasPrefix(*dbPath, "postgresql://")
	clustered := *natsURL != "" || *clusterListen != ""
	switch {
	case *natsURL != "" && *clusterListen != "":
		return usageError{errors.New("--nats and --cluster-listen exclude each other: join a NATS cluster or run an embedded one")}
	case *clusterPeers != "" && *clusterListen == "":
		return usageError{errors.New("--cluster-peers needs --cluster-listen")}
	case clustered && !pg:
		return usageError{errors.New("--nats and --cluster-listen need a postgres:// --db that every node shares")}
	case pg && *masterKeyFile == "":
		return usageError{errors.New("a postgres:// --db needs --master-key-file: the same file on every node")}
	case pg && *dbMaxConns < 1:
		return usageError{fmt.Errorf("--db-max-conns %d: give at least 1", *dbMaxConns)}
	}
	if (*certFile == "") != (*keyFile == "") {
		return usageError{errors.New("--tls-cert and --tls-key go together")}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	var handler slog.Handler
	switch *logFormat {
	case "text":
		handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	case "json":
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	default:
		return usageError{fmt.Errorf("unknown --log-format %q: want text or json", *logFormat)}
	}
	logger := slog.New(handler)
	token := os.Getenv("LIAISON_ADMIN_TOKEN")
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return err
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return errors.New("an admin token is required: --admin-token-file or LIAISON_ADMIN_TOKEN")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var notifier alerts.Notifier
	if *webhookURL != "" {
		secret, err := os.ReadFile(*webhookSecretFile)
		if err != nil {
			return fmt.Errorf("webhook secret: %w", err)
		}
		wh, err := alerts.NewWebhook(alerts.WebhookConfig{URL: *webhookURL, Secret: []byte(strings.TrimSpace(string(secret))), Logger: logger})
		if err != nil {
			return err
		}
		defer wh.Close()
		go func() { _ = wh.Run(ctx) }() // returns when ctx ends or Close is called
		notifier = alerts.Notifiers{alerts.NewLogNotifier(logger), wh}
	}

	dbCfg := cloudapp.Config{DBPath: *dbPath}
	if pg {
		db, err := sql.Open("pgx", *dbPath)
		if err != nil {
			return fmt.Errorf("--db: %w", err)
		}
		defer db.Close()
		db.SetMaxOpenConns(*dbMaxConns)
		db.SetMaxIdleConns(*dbMaxConns)
		if err := warmPool(ctx, db, *dbMaxConns); err != nil {
			return fmt.Errorf("--db: %w", err)
		}
		dbCfg = cloudapp.Config{DB: db, Dialect: tunnelsql.Postgres}
	}
	var cluster *cloudapp.ClusterConfig
	if clustered {
		id := *nodeID
		if id == "" {
			var err error
			if id, err = os.Hostname(); err != nil {
				return fmt.Errorf("--node-id: %w", err)
			}
		}
		dir := *natsDir
		if dir == "" {
			dir = *masterKeyFile + ".nats-" + id
		}
		var peers []string
		if *clusterPeers != "" {
			peers = strings.Split(*clusterPeers, ",")
		}
		cluster = &cloudapp.ClusterConfig{NodeID: id, NATSURL: *natsURL, Listen: *clusterListen, Peers: peers, StoreDir: dir}
	}

	srv, err := cloudapp.New(cloudapp.Config{
		Notifier: notifier,
		DB:       dbCfg.DB, Dialect: dbCfg.Dialect, Cluster: cluster,
		DBPath: dbCfg.DBPath, MasterKeyFile: *masterKeyFile, PromoteSchedulerKey: *promote,
		HTTP: httpguard.Limits{MaxConns: *maxConns, ReadTimeout: *readTimeout, IdleTimeout: *idleTimeout},
		Addr: *listen, PublicURL: *publicURL,
		CertFile: *certFile, KeyFile: *keyFile, CAOut: *caOut,
		AdminToken: token, Grace: *grace,
		ImportInterval: *interval, ImportIncrementalInterval: *incInterval, DisableScheduler: *noSched,
		ImportConcurrency: *importConc, ImportTimeout: *importTimeout, RequestTimeout: *requestTimeout,
		ActivationTokenRate: *tokenRate, ActivationTokenBurst: *tokenBurst,
		ActivationSourceRate: *sourceRate, ActivationSourceBurst: *sourceBurst,
		MetricsPublic: *metricsPublic, MetricsTenantLabels: *metricsTenants,
		Logger: logger,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	logger.Info("cloud endpoint", "url", srv.URL(), "tunnel", srv.TunnelURL(), "db", dbName(*dbPath), "cluster", clustered)
	if *caOut != "" && srv.CAPEM() != nil {
		logger.Info("generated CA written", "path", *caOut)
	}
	err = srv.Run(ctx)
	if errors.Is(err, context.Canceled) {
		logger.Info("stopped")
		return nil
	}
	return err
}

// dbName is --db as it may be logged: a postgres:// URL without its
// password.
func dbName(db string) string {
	u, err := url.Parse(db)
	if err != nil || u.Scheme == "" {
		return db
	}
	return u.Redacted()
}

// warmPool opens n connections of db at start and leaves them idle in the
// pool. A cold pool made the first requests of a storm open their
// connections together (8.5 ms each alone, tens of ms when 32 open at
// once, plus a new backend's slow first queries): the p99 of a 3 000-
// activation storm was those first requests (BENCHMARKS.md).
func warmPool(ctx context.Context, db *sql.DB, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conns := make([]*sql.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close() // back to the idle pool
		}
	}()
	for range n {
		c, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		if err := c.PingContext(ctx); err != nil {
			return err
		}
	}
	return nil
}
