package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/liaisonhq/liaison/examples/internal/cli"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// runEnroll: connector enroll --cloud URL --token T [--config FILE | --identity FILE].
func runEnroll(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("connector enroll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cloudURL := fs.String("cloud", "", "cloud endpoint base URL, https://host[:port] (default: the config's cloud.url)")
	token := fs.String("token", "", "one-time enrollment token (or - to read it from stdin)")
	configFile := fs.String("config", "", "config file: its cloud section gives the identity file, CA and proxy")
	identity := fs.String("identity", "", "identity file to write (the key goes to FILE.key)")
	caFile := fs.String("ca-file", "", "PEM bundle trusted in addition to the system roots")
	proxy := fs.String("proxy", "", "proxy URL: http://, https://, socks5:// or socks5h://[user:pass@]host:port (default: HTTPS_PROXY)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "connector enroll: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	var c connector.Cloud
	if *configFile != "" {
		// The config may not validate yet (no identity to run with); only
		// its cloud section matters here.
		cfg, err := connector.LoadConfig(*configFile)
		if err != nil {
			fmt.Fprintln(stderr, "connector:", cli.Message(err))
			return exitUsage
		}
		c = cfg.Cloud
	}
	for _, kv := range []struct {
		dst *string
		v   string
	}{{&c.URL, *cloudURL}, {&c.IdentityFile, *identity}, {&c.CAFile, *caFile}, {&c.ProxyURL, *proxy}} {
		if kv.v != "" {
			*kv.dst = kv.v
		}
	}
	switch {
	case c.URL == "":
		fmt.Fprintln(stderr, "connector enroll: --cloud is required")
		return exitUsage
	case c.IdentityFile == "":
		fmt.Fprintln(stderr, "connector enroll: --identity or --config is required")
		return exitUsage
	case *token == "":
		fmt.Fprintln(stderr, "connector enroll: --token is required")
		return exitUsage
	}
	tok := *token
	if tok == "-" {
		var err error
		if tok, err = readPassword(os.Stdin); err != nil || tok == "" {
			fmt.Fprintln(stderr, "connector enroll: no token on stdin")
			return exitUsage
		}
	}
	id, err := connector.Enroll(ctx, c, tok)
	switch {
	case errors.Is(err, tunnel.ErrUnauthorized):
		fmt.Fprintln(stderr, "connector: enrollment refused: the token is unknown, used or expired; ask for a new one")
		return exitFailure
	case errors.Is(err, tunnel.ErrCloudKeyMismatch):
		fmt.Fprintf(stderr, "connector: enrollment stopped: the cloud key does not match the fingerprint in the token; something between this host and the cloud (a TLS-inspecting proxy?) is posing as the cloud, or the token is for another cloud (%v)\n", cli.Message(err))
		return exitFailure
	case err != nil:
		fmt.Fprintln(stderr, "connector:", cli.Message(err))
		return exitFailure
	}
	fmt.Fprintf(stdout, "enrolled: connector %s of tenant %s; cloud key %s pinned; identity in %s\n", id.ConnectorID, id.Tenant, id.CloudKey.Fingerprint(), c.IdentityFile)
	return exitOK
}

// runAgent: connector run --config FILE. Logs go to stderr as text, or
// JSON with --log-format json (for journald or a log shipper).
func runAgent(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("connector run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "config file (JSON); required")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logFile := fs.String("log-file", "", "append logs to FILE instead of stderr")
	verbose := fs.Bool("v", false, "debug logs")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *configFile == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: connector run --config FILE")
		return exitUsage
	}
	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			fmt.Fprintln(stderr, "connector run:", cli.Message(err))
			return exitFailure
		}
		defer f.Close()
		stderr = f
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	var h slog.Handler
	switch *logFormat {
	case "text":
		h = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	case "json":
		h = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	default:
		fmt.Fprintf(stderr, "connector run: unknown --log-format %q\n", *logFormat)
		return exitUsage
	}
	logger := slog.New(h)
	cfg, err := connector.LoadConfig(*configFile)
	if err != nil {
		fmt.Fprintln(stderr, "connector:", cli.Message(err))
		return exitFailure
	}
	cfg.Logger = logger
	agent, err := connector.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "connector:", cli.Message(err))
		return exitFailure
	}
	err = agent.Run(ctx)
	_ = agent.Close()
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, connector.ErrClosed):
		logger.Info("connector stopped")
		return exitOK
	case errors.Is(err, tunnel.ErrRevoked):
		logger.Error("connector revoked by the cloud: enroll again with a new token")
	default:
		logger.Error("connector failed", slog.String("err", cli.Message(err)))
	}
	return exitFailure
}

// runCheck: connector check --config FILE [--lookup NAME] [--base DN]
// [--offline]. It loads the config as run would (identity, key, passwords,
// KEK file), prints what the connector would serve, then tests each path
// it depends on, one line per step with PASS or FAIL and the fix: the
// cloud through the configured proxy (unless --offline), and the
// directory (bind, base search, and a lookup of NAME).
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("connector check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "config file (JSON); required")
	lookup := fs.String("lookup", "", "a user name to look up in the directory (login, UPN or e-mail)")
	base := fs.String("base", "", "the entry the base search reads (default: the directory's default naming context)")
	offline := fs.Bool("offline", false, "do not connect to the cloud")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *configFile == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: connector check --config FILE [--lookup NAME] [--base DN] [--offline]")
		return exitUsage
	}
	cfg, err := connector.LoadConfig(*configFile)
	if err != nil {
		fmt.Fprintln(stderr, "connector:", cli.Message(err))
		return exitFailure
	}
	auditDir := cfg.AuditDir()
	cfg.Audit.Disabled = true // a running connector owns the audit log: do not fork its chain
	agent, err := connector.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "connector:", cli.Message(err))
		return exitFailure
	}
	defer agent.Close()
	id := agent.Identity()
	fmt.Fprintf(stdout, "config:    %s: valid\n", *configFile)
	fmt.Fprintf(stdout, "identity:  connector %s, tenant %s, cloud key %s\n", id.ConnectorID, id.Tenant, id.CloudKey.Fingerprint())
	fmt.Fprintf(stdout, "policy:    %v\n", cfg.Policy.Allow)
	if auditDir != "" {
		fmt.Fprintf(stdout, "audit:     %s\n", auditDir)
	} else {
		fmt.Fprintln(stdout, "audit:     off")
	}
	if kr := agent.Keyring(); kr != nil {
		fmt.Fprintf(stdout, "keys:      KEK file opened, %d version(s), primary %d\n", len(kr.Versions()), kr.Primary())
	} else if cfg.Keys != nil {
		fmt.Fprintln(stdout, "keys:      waiting for the tenant's keyring (keys join; approve this connector's fingerprint on an existing one)")
	}
	if cfg.Keys != nil && id.Tenant != "" {
		if fp, err := connector.ShareFingerprint(cfg); err == nil {
			fmt.Fprintf(stdout, "key share: fingerprint %s\n", fp)
		}
	}
	var steps []connector.CheckResult
	if !*offline {
		steps = append(steps, agent.CheckCloud(ctx))
	}
	steps = append(steps, agent.CheckDirectory(ctx, connector.CheckRequest{Base: *base, Name: *lookup})...)
	code := exitOK
	for _, st := range steps {
		fmt.Fprintln(stdout, st)
		if !st.OK {
			code = exitFailure
		}
	}
	return code
}
