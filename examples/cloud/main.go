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
// Rotating the job-ticket signing key: POST /v1/admin/scheduler-keys/next,
// add the returned key to every connector's keys.extra_scheduler_public_keys,
// restart the cloud once with --promote-scheduler-key, then pin the new key
// on every connector and DELETE /v1/admin/scheduler-keys/previous. See
// examples/internal/cloudapp, "Rotating the ticket signing key".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/internal/httpguard"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "cloud:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("cloud", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8443", "address to serve HTTPS on")
	publicURL := fs.String("public-url", "", "https URL connectors and devices use (default https://<listen>)")
	dbPath := fs.String("db", "liaison-cloud.db", "SQLite database file (created 0600)")
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
	interval := fs.Duration("import-interval", 0, "time between scheduled imports of a tenant (default 24h)")
	noSched := fs.Bool("no-scheduler", false, "run imports only when asked")
	importConc := fs.Int("import-concurrency", 0, "tenants imported at once by the scheduler (default 4)")
	importTimeout := fs.Duration("import-timeout", 0, "longest import run; a hung connector's run is cut and recorded as failed (default 1h)")
	requestTimeout := fs.Duration("request-timeout", 0, "longest wait for a connector's answer to any other request (default 30s)")
	tokenRate := fs.Float64("activation-token-rate", 0, "activations per second per deployment token (default 50)")
	tokenBurst := fs.Int("activation-token-burst", 0, "activation burst per deployment token (default 1000)")
	sourceRate := fs.Float64("activation-source-rate", 0, "activations per second per source address (default 5)")
	sourceBurst := fs.Int("activation-source-burst", 0, "activation burst per source address (default 100)")
	webhookURL := fs.String("webhook-url", "", "POST alert notifications here, signed with HMAC (https, or http on loopback)")
	webhookSecretFile := fs.String("webhook-secret-file", "", "file holding the webhook HMAC secret (at least 16 bytes)")
	verbose := fs.Bool("v", false, "debug logs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*certFile == "") != (*keyFile == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
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
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

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

	srv, err := cloudapp.New(cloudapp.Config{
		Notifier: notifier,
		DBPath:   *dbPath, MasterKeyFile: *masterKeyFile, PromoteSchedulerKey: *promote,
		HTTP: httpguard.Limits{MaxConns: *maxConns, ReadTimeout: *readTimeout, IdleTimeout: *idleTimeout},
		Addr: *listen, PublicURL: *publicURL,
		CertFile: *certFile, KeyFile: *keyFile, CAOut: *caOut,
		AdminToken: token, Grace: *grace,
		ImportInterval: *interval, DisableScheduler: *noSched,
		ImportConcurrency: *importConc, ImportTimeout: *importTimeout, RequestTimeout: *requestTimeout,
		ActivationTokenRate: *tokenRate, ActivationTokenBurst: *tokenBurst,
		ActivationSourceRate: *sourceRate, ActivationSourceBurst: *sourceBurst,
		Logger: logger,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	logger.Info("cloud endpoint", "url", srv.URL(), "tunnel", srv.TunnelURL(), "db", *dbPath)
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
