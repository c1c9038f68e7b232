// Command vendorcloud is a vendor's own cloud endpoint built from Liaison's
// public packages only (nothing under examples/): its own http.ServeMux,
// its own admin authentication and its own database. The repository's
// TestEmbedCloudBuilds builds it as a separate module.
package main

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"log"
	"log/slog"
	"net/http"
	"os"
	"sync"

	_ "modernc.org/sqlite" // the vendor's choice of driver

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/alerts/alertstunnel"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/directory/importer/importersql"
	"github.com/liaisonhq/liaison/directory/loginguard"
	"github.com/liaisonhq/liaison/keyenvelope/keyhttp"
	"github.com/liaisonhq/liaison/keyenvelope/keyrelease"
	"github.com/liaisonhq/liaison/masterkey"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/tunnelsql"
)

// Where the vendor's connector agent serves its services through the tunnel.
const (
	directoryURL = "http://connector/directory"
	keysURL      = "http://connector/keys"
	statusURL    = "http://connector/status"
)

func main() {
	if err := run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	db, err := sql.Open("sqlite", "file:vendor.db?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return err
	}
	defer db.Close()
	writes := new(sync.Mutex) // SQLite: one writer at a time, queued in process

	// Secrets sealed under a master key file kept apart from the database.
	secrets, _, _, err := masterkey.LoadSecrets(ctx, masterkey.SecretsConfig{DB: db, Writes: writes}, "vendor.db.key")
	if err != nil {
		return err
	}

	// Connector registry and the gateway, its identity kept across restarts.
	registry, err := tunnelsql.New(tunnelsql.Config{DB: db, Writes: writes})
	if err != nil {
		return err
	}
	if err := registry.Migrate(ctx); err != nil {
		return err
	}
	seed, err := secrets.Secret(ctx, "tunnel_identity_seed", tunnel.SeedSize)
	if err != nil {
		return err
	}
	identity, err := tunnel.NewGatewayIdentity(seed)
	if err != nil {
		return err
	}
	alertStore := alerts.NewSQLStore(db, alerts.SQLite)
	if err := alertStore.Migrate(ctx); err != nil {
		return err
	}
	monitor, err := alerts.New(alerts.Config{Store: alertStore, Notifier: alerts.NewLogNotifier(logger)})
	if err != nil {
		return err
	}
	gw, err := tunnel.NewGateway(tunnel.GatewayConfig{
		Identity: identity, Audience: "wss://cloud.vendor.example/liaison/tunnel", Store: registry,
		OnPresence: alertstunnel.OnPresence(monitor, nil), Logger: logger,
	})
	if err != nil {
		return err
	}

	// Users, mappings and imports.
	users, err := importersql.New(importersql.Config{DB: db, Writes: writes})
	if err != nil {
		return err
	}
	if err := users.Migrate(ctx); err != nil {
		return err
	}
	checker, err := directoryhttp.NewSealedChecker(directoryhttp.SealedCheckerConfig{
		DirectoryURL: directoryURL, StatusURL: statusURL,
		Live: func(tenant string) []string {
			var ids []string
			for _, lc := range gw.Live(tenant) {
				ids = append(ids, lc.ConnectorID)
			}
			return ids
		},
		Via:         gw.RoundTripperFor,
		IsGone:      func(err error) bool { return errors.Is(err, tunnel.ErrNotConnected) },
		Unavailable: tunnel.ErrNotConnected,
	})
	if err != nil {
		return err
	}
	dirOf := func(tenant string) *remoteDirectory {
		c, err := directoryhttp.NewClient(directoryURL, gw.RoundTripper(tenant))
		if err != nil {
			panic(err) // a constant URL
		}
		return &remoteDirectory{Client: c, checker: checker, tenant: tenant}
	}
	sched, err := importer.NewScheduler(importer.SchedulerConfig{
		Tenants: users.Tenants,
		State:   users,
		Run: func(ctx context.Context, tenant string, kind importer.RunKind) error {
			ms, err := users.Mappings(ctx, tenant)
			if err != nil {
				return err
			}
			im, err := importer.New(importer.Config{Source: dirOf(tenant), Store: users, Checkpoints: users})
			if err != nil {
				return err
			}
			for _, m := range ms {
				// The mapping's removal policy, the run history and the
				// cursor (advanced only on success) are Store.Import's.
				if _, _, _, err := users.Import(ctx, im, m, importersql.ImportOptions{Full: kind == importer.RunFull}, nil); err != nil {
					return err
				}
			}
			return nil
		},
		IsUnavailable: func(err error) bool { return errors.Is(err, tunnel.ErrNotConnected) },
	})
	if err != nil {
		return err
	}

	// Device activation, joined to the same users.
	actStore := activation.NewSQLStore(db, activation.SQLite)
	if err := actStore.Migrate(ctx); err != nil {
		return err
	}
	credKey, err := secrets.Secret(ctx, "activation_credential_key", 32)
	if err != nil {
		return err
	}
	activator, err := activation.New(activation.Config{
		Directory:     importersql.ActivationDirectory{Mappings: users, Directory: func(t string) importersql.Resolver { return dirOf(t) }},
		Store:         importersql.ActivationStore{Users: users, Activations: actStore},
		Tokens:        actStore,
		CredentialKey: credKey,
	})
	if err != nil {
		return err
	}

	// Web login behind the guard that cannot lock an account.
	guard, err := loginguard.New(loginguard.Config{})
	if err != nil {
		return err
	}

	// Key releases to backup workers.
	tickets, err := keyrelease.LoadScheduler(ctx, keyrelease.SchedulerConfig{Secrets: secrets})
	if err != nil {
		return err
	}
	ekeys, err := keyrelease.NewSQLEkeys(keyrelease.SQLEkeysConfig{DB: db, Writes: writes})
	if err != nil {
		return err
	}
	if err := ekeys.Migrate(ctx); err != nil {
		return err
	}
	releaser, err := keyrelease.New(keyrelease.Config{Scheduler: tickets, Ekeys: ekeys})
	if err != nil {
		return err
	}

	// The vendor's own mux and admin authentication.
	mux := http.NewServeMux()
	mux.Handle("/liaison/tunnel", gw)
	mux.Handle("/liaison/enroll", gw.EnrollHandler())
	mux.Handle("POST /liaison/activate", activator.Handler())
	mux.Handle("POST /liaison/devices/authenticate", activator.DeviceAuthHandler())
	mux.Handle("POST /admin/login", vendorAdmin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, mappingID := r.FormValue("tenant"), r.FormValue("mapping")
		m, err := users.Mapping(r.Context(), tenant, mappingID)
		if err != nil {
			http.Error(w, "unknown mapping", http.StatusNotFound)
			return
		}
		u, err := guard.Login(r.Context(), dirOf(tenant), loginguard.Attempt{Realm: tenant, Mapping: m.Mapping,
			Name: r.FormValue("login"), Password: r.FormValue("password"), Source: r.RemoteAddr})
		if err != nil {
			http.Error(w, "login failed", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(u.ID))
	})))
	mux.Handle("POST /admin/release", vendorAdmin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant := r.FormValue("tenant")
		keys, err := keyhttp.NewClient(keysURL, gw.RoundTripper(tenant))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		rel, err := releaser.Release(r.Context(), keys, keyrelease.Request{Tenant: tenant, UserID: r.FormValue("user"),
			JobID: r.FormValue("job"), WorkerKey: []byte(r.FormValue("worker_key"))})
		if err != nil {
			http.Error(w, "release failed", http.StatusBadGateway)
			return
		}
		_, _ = w.Write(rel.Release)
	})))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = monitor.Run(ctx) }()
	go func() { _ = sched.Run(ctx) }()
	srv := &http.Server{Addr: ":8443", Handler: mux, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS13}}
	return srv.ListenAndServeTLS("cert.pem", "key.pem")
}

// vendorAdmin stands for the vendor's own authentication.
func vendorAdmin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Vendor-Session") == "" {
			http.Error(w, "sign in", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// remoteDirectory is a tenant's directory through the tunnel; password
// checks go sealed to one connector.
type remoteDirectory struct {
	*directoryhttp.Client
	checker *directoryhttp.SealedChecker
	tenant  string
}

func (d *remoteDirectory) CheckCredentials(ctx context.Context, m directory.Mapping, name, password string) (directory.User, error) {
	return d.checker.CheckAccount(ctx, d.tenant, m, name, "", password)
}

func (d *remoteDirectory) CheckAccount(ctx context.Context, m directory.Mapping, name, id, password string) (directory.User, error) {
	return d.checker.CheckAccount(ctx, d.tenant, m, name, id, password)
}
