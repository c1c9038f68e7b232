package cloudapp

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/httpguard"
	"github.com/liaisonhq/liaison/internal/sqlstore"
)

// Directory is what the cloud asks a tenant's connector about its directory:
// the operations of *directory.Client it uses, also implemented by a remote
// client that reaches the connector through the tunnel.
type Directory interface {
	importer.Source
	Lookup(ctx context.Context, m directory.Mapping, name string) (directory.User, error)
	CheckCredentials(ctx context.Context, m directory.Mapping, name, password string) (directory.User, error)
	OUs(ctx context.Context, base string) ([]directory.OU, error)
	Groups(ctx context.Context, base string) ([]directory.Group, error)
}

var _ Directory = (*directory.Client)(nil)

// Config configures a Server. AdminToken and a database (DB or DBPath) are
// required; every other zero field takes the documented default. New does not
// modify the caller's copy.
type Config struct {
	// DB is the state database (SQLite through modernc.org/sqlite, opened
	// with a busy timeout). Nil opens DBPath, creating its files with mode
	// 0600 and tightening existing ones readable by others (logged); the
	// Server then closes it. A caller's DB is the caller's to protect.
	DB     *sql.DB
	DBPath string
	// MasterKeyFile holds the key the cloud's own secrets (the ticket
	// signing seed, the activation credential key, ...) are sealed under
	// in the database, so that the database file alone reveals none of
	// them. Default: DBPath + ".key"; required when DBPath is empty. Created (mode 0600)
	// on first start; back it up with the database, but apart from it:
	// neither is usable without the other.
	MasterKeyFile string

	// Listener accepts the HTTPS connections; nil listens on Addr
	// (default "127.0.0.1:8443"). The Server wraps it in TLS.
	Listener net.Listener
	Addr     string
	// HTTP bounds what one client may hold of the listener: header, read,
	// write and idle timeouts, header size and the number of open
	// connections (tunnel sessions included). Zero fields take
	// httpguard's defaults (10s, 30s, 2m, 60s, 64 KiB, 4096). Tunnel
	// sessions clear their deadlines once their connect token is verified.
	HTTP httpguard.Limits
	// AdminTimeout replaces HTTP.WriteTimeout for admin requests once
	// their token is verified: a synchronous import of 100 000 users takes
	// minutes. Default 1h.
	AdminTimeout time.Duration
	// TLS: Certificate, else CertFile and KeyFile, else a self-signed
	// CA kept in the database (its key sealed under the master key like
	// the other secrets, made on first start, valid 10 years) and a server
	// certificate (127.0.0.1, ::1, localhost and PublicURL's host) it
	// issues at every start and renews, while serving, once less than a
	// third of its 90 days remains. Connectors and devices trust the CA,
	// so restarts and renewals leave them connected. CAOut, when set,
	// receives that CA's PEM. TLS 1.3 only.
	Certificate       *tls.Certificate
	CertFile, KeyFile string
	CAOut             string
	// PublicURL is the https:// URL connectors and devices use; default
	// https://<listener address>, with a warning in the log when that
	// address is a wildcard (0.0.0.0, ::).
	PublicURL string

	// AdminToken authenticates the admin API and status page. Requests
	// that change state (POST, PUT, DELETE) need it as a Bearer token;
	// reads (GET, the status page) also take it as the password of HTTP
	// basic auth, for a browser. Only its SHA-256 is kept; at least 16
	// characters.
	AdminToken string

	// PromoteSchedulerKey makes the ticket-signing key prepared by
	// Server.PrepareSchedulerKey the one in use, from this start on; the
	// replaced key is kept as the previous one until
	// Server.RetireSchedulerKey. New fails when no key was prepared, so the
	// setting cannot stay on by mistake and promote a key connectors never
	// saw. See the package doc, "Rotating the ticket signing key".
	PromoteSchedulerKey bool

	// Grace is how long a tenant may have no connector before Not
	// Connected is raised; default alerts.DefaultGrace.
	Grace time.Duration
	// Notifier receives alert notifications; nil logs them to Logger.
	Notifier alerts.Notifier

	// ImportInterval, ImportJitter and ImportPoll shape the import
	// scheduler (defaults 24h, 1h, 1m); DisableScheduler turns it off
	// (imports then run only when asked).
	ImportInterval, ImportJitter, ImportPoll time.Duration
	DisableScheduler                         bool
	// ImportIncrementalInterval, when set (below ImportInterval), adds
	// incremental imports every so often between the full ones: every
	// ImportInterval each mapping still gets a full scan, the import that
	// removes users who left the directory or the mapping.
	ImportIncrementalInterval time.Duration
	// ImportConcurrency is how many tenants' scheduled imports run at once
	// (default 4); the mappings of one tenant run one after another.
	// ImportTimeout bounds one import run, scheduled or asked for without
	// a deadline (default 1h): a connector that accepts an import and
	// never answers holds only its own tenant's run, until then, and the
	// run is recorded as failed.
	ImportConcurrency int
	ImportTimeout     time.Duration
	// RequestTimeout bounds every other request sent to a connector
	// (lookups, credential checks, browses, key releases, status) whose
	// caller set no earlier deadline; default 30s.
	RequestTimeout time.Duration

	// MetricsPublic serves PathMetrics without authentication (for a
	// scraper on a trusted network). False (the default): PathMetrics
	// needs the admin token, as the other admin reads do.
	MetricsPublic bool
	// MetricsTenantLabels caps the per-tenant series: while at most this
	// many tenants have a live connector, liaison_tenant_connectors_live
	// is served per tenant; above it, only the total. Zero means
	// DefaultMetricsTenantLabels (100); negative, never per tenant.
	MetricsTenantLabels int
	// KeyShareInterval is how often the key-share relay runs a round for
	// every tenant (Server.SyncKeyShares; default 30s); negative turns the
	// periodic rounds off (rounds then run only when asked).
	KeyShareInterval time.Duration
	// Threshold limits the users one import may disable or delete.
	Threshold importer.Threshold

	// LoginMaxFailures is how many failed web logins of one account within
	// LoginWindow the cloud sends to the directory before refusing further
	// attempts itself (defaults 3 and 30m). The cloud cannot lock an
	// account when LoginMaxFailures is below the domain's lockout threshold
	// and LoginWindow is at least its "reset lockout counter after" period
	// (AD's observation window; 30 minutes is the usual value). Leave room
	// for the failures users make elsewhere: 3 against AD's common 5 or 10.
	LoginMaxFailures int
	LoginWindow      time.Duration
	// LoginSourceMaxFailures is how many failed logins from one source
	// address within LoginWindow the login endpoint accepts before refusing
	// that address (default 50), against password sprays over many
	// accounts. Behind a proxy every client shares its address.
	LoginSourceMaxFailures int

	// Activation rate limits, per mass-deployment token and per source
	// address: refill rate per second and burst. Zero means activation's
	// defaults (50/s burst 1000 per token, 5/s burst 100 per source), which
	// a load test from one address must raise.
	ActivationTokenRate   float64
	ActivationTokenBurst  int
	ActivationSourceRate  float64
	ActivationSourceBurst int

	// NewDirectory builds the directory client of a tenant from a
	// RoundTripper reaching its connectors; nil means a directoryhttp
	// client of ConnectorDirectoryURL.
	NewDirectory func(tenant string, rt http.RoundTripper) Directory
	// WrapDirectory, if set, wraps every tenant's Directory (the default
	// one or NewDirectory's), for counting or fault injection in tests
	// without losing the default's sealed credential checks.
	WrapDirectory func(tenant string, d Directory) Directory
	// NewKeys builds the key client of a tenant from a RoundTripper
	// reaching its connectors; nil means a keyhttp client of
	// ConnectorKeysURL.
	NewKeys func(tenant string, rt http.RoundTripper) Keys

	// Dialect is the SQL flavour of DB: SQLite (the zero value) or
	// Postgres (tunnelsql.Postgres; every store migrates itself). DBPath
	// is always SQLite.
	Dialect sqlstore.Dialect
	// Cluster, when set, makes this Server one node of several sharing a
	// PostgreSQL DB over NATS (see ClusterConfig); nil runs one node.
	Cluster *ClusterConfig

	// PingInterval is the tunnel's ping interval (default 5s).
	PingInterval time.Duration
	// Logger receives operational logs; nil discards. Secrets are never
	// logged.
	Logger *slog.Logger
}

var errConfig = errors.New("cloudapp: invalid config")
