package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/examples/internal/cli"
)

type options struct {
	cloud, caFile, tenant, token string
	login, domain, hostname      string
	deviceID, stateDir           string
	maxRetries                   int
	simulate, workers            int
	loginCount                   int
	jsonOut                      bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "version" || args[0] == "-version" || args[0] == "--version") {
		fmt.Fprintln(stdout, cli.Version("activate"))
		return exitOK
	}
	fs := flag.NewFlagSet("activate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.cloud, "cloud", "", "cloud endpoint base URL, https://host[:port] (required)")
	fs.StringVar(&o.caFile, "ca-file", "", "PEM bundle trusted in addition to the system roots")
	fs.StringVar(&o.tenant, "tenant", "", "tenant the deployment token belongs to (required)")
	fs.StringVar(&o.token, "token", "", "mass-deployment token (lmd_...; - reads it from stdin; default $LIAISON_ACTIVATION_TOKEN)")
	fs.StringVar(&o.login, "login", "", "user's login (default: the logged-on user); with --simulate, a fmt pattern such as user%06d gets the device number")
	fs.StringVar(&o.domain, "domain", "", "user's domain (default: $USERDNSDOMAIN or $USERDOMAIN on Windows)")
	fs.StringVar(&o.hostname, "hostname", "", "device host name (default: this machine's)")
	fs.StringVar(&o.deviceID, "device-id", "", "device ID (default: the stored one, else a new random ID)")
	fs.StringVar(&o.stateDir, "state-dir", "", "where the device key and credential are kept (default: the user config dir + /liaison)")
	fs.IntVar(&o.maxRetries, "max-retries", 5, "retries when the cloud says to retry later (rate limit, no connector) or the network fails")
	fs.IntVar(&o.simulate, "simulate", 0, "load generator: activate N simulated devices")
	fs.IntVar(&o.workers, "workers", 16, "with --simulate: concurrent workers")
	fs.IntVar(&o.loginCount, "login-count", 0, "with --simulate and a %d login pattern: logins 1..K, round robin (default N)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "activate: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if o.token == "" {
		o.token = os.Getenv("LIAISON_ACTIVATION_TOKEN")
	} else if o.token == "-" {
		b, _ := io.ReadAll(io.LimitReader(os.Stdin, 4096))
		o.token = strings.TrimSpace(string(b))
	}
	if err := o.defaults(); err != nil {
		fmt.Fprintf(stderr, "activate: %v\n", cli.Message(err))
		return exitUsage
	}
	var caPEM []byte
	if o.caFile != "" {
		var err error
		if caPEM, err = os.ReadFile(o.caFile); err != nil {
			fmt.Fprintf(stderr, "activate: %v\n", cli.Message(err))
			return exitUsage
		}
	}
	c, err := newClient(o.cloud, caPEM, max(o.workers, 2))
	if err != nil {
		fmt.Fprintln(stderr, "activate:", cli.Message(err))
		return exitUsage
	}
	if o.simulate > 0 {
		return simulate(ctx, c, o, stdout, stderr)
	}
	return activateDevice(ctx, c, o, stdout, stderr)
}

// defaults fills what the flags left out and checks what is required.
func (o *options) defaults() error {
	var missing []string
	for name, v := range map[string]string{"--cloud": o.cloud, "--tenant": o.tenant, "--token": o.token} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s required", strings.Join(slices.Sorted(slices.Values(missing)), ", "))
	}
	if !strings.HasPrefix(o.cloud, "https://") {
		return fmt.Errorf("--cloud %q: want an https:// URL", o.cloud)
	}
	if o.simulate < 0 || o.workers < 1 || o.maxRetries < 0 || o.loginCount < 0 {
		return errors.New("--simulate, --workers, --max-retries and --login-count must be positive")
	}
	if o.login == "" {
		if o.simulate > 0 {
			return errors.New("--simulate needs --login (a pattern such as user%06d, or one login)")
		}
		u, err := user.Current()
		if err != nil {
			return errors.New("--login is required (the logged-on user is unknown)")
		}
		o.login = u.Username
		if i := strings.LastIndexByte(o.login, '\\'); i >= 0 { // DOMAIN\user on Windows
			o.login = o.login[i+1:]
		}
	}
	if o.domain == "" {
		o.domain = firstEnv("USERDNSDOMAIN", "USERDOMAIN")
		if o.domain == "" {
			return errors.New("--domain is required")
		}
	}
	if o.hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return errors.New("--hostname is required")
		}
		o.hostname = h
	}
	if o.stateDir == "" && o.simulate == 0 {
		dir, err := os.UserConfigDir()
		if err != nil {
			return errors.New("--state-dir is required (no user config directory)")
		}
		o.stateDir = filepath.Join(dir, "liaison")
	}
	if o.loginCount == 0 {
		o.loginCount = o.simulate
	}
	return nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// activateWithRetry posts req until it gets a final answer, waiting as the
// cloud says (Retry-After) or with jittered exponential backoff. onAttempt,
// if set, sees every attempt and its latency.
func activateWithRetry(ctx context.Context, c *client, req activation.Request, key ed25519.PrivateKey,
	maxRetries int, onAttempt func(attempt, time.Duration)) (attempt, int) {
	backoff := 500 * time.Millisecond
	for try := 0; ; try++ {
		start := time.Now()
		a := c.activate(ctx, req, key)
		if onAttempt != nil {
			onAttempt(a, time.Since(start))
		}
		if !a.outcome.retryable() || try >= maxRetries || ctx.Err() != nil {
			return a, try
		}
		wait := a.retryAfter
		if wait <= 0 {
			wait = backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, 30*time.Second)
		}
		wait = min(wait, 60*time.Second)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return a, try
		case <-t.C:
		}
	}
}

// activateDevice activates this device and stores its key and credential.
func activateDevice(ctx context.Context, c *client, o options, stdout, stderr io.Writer) int {
	keyPath := filepath.Join(o.stateDir, "device.key")
	statePath := filepath.Join(o.stateDir, "device.json")
	key, err := loadOrCreateKey(keyPath)
	if err != nil {
		fmt.Fprintln(stderr, "activate:", cli.Message(err))
		return exitFailure
	}
	st, err := readState(statePath)
	if err != nil {
		fmt.Fprintln(stderr, "activate:", cli.Message(err))
		return exitFailure
	}
	switch {
	case o.deviceID != "":
	case st.DeviceID != "":
		o.deviceID = st.DeviceID
	default:
		o.deviceID = newDeviceID()
	}
	// Keep the device ID before trying, so a retry after a crash or a
	// timeout reuses it and the cloud answers with the same device.
	if st.DeviceID != o.deviceID {
		st = deviceState{Cloud: o.cloud, Tenant: o.tenant, DeviceID: o.deviceID}
		if err := writeState(statePath, st); err != nil {
			fmt.Fprintf(stderr, "activate: writing device state: %v\n", cli.Message(err))
			return exitFailure
		}
	}
	req := activation.Request{
		Tenant: o.tenant, Token: o.token, Login: o.login, Domain: o.domain,
		Hostname: o.hostname, DeviceID: o.deviceID,
	}
	a, _ := activateWithRetry(ctx, c, req, key, o.maxRetries, func(a attempt, d time.Duration) {
		if a.outcome.retryable() {
			fmt.Fprintf(stderr, "activate: %s (%s), retrying\n", a.outcome, describe(a))
		}
	})
	if !a.outcome.activated() {
		fmt.Fprintf(stderr, "activate: %s: %s\n", a.outcome, describe(a))
		if a.outcome.retryable() || a.outcome == outServerError {
			return exitFailure
		}
		return exitRefused
	}
	st.UserID, st.Credential, st.ActivatedAt = a.resp.UserID, a.resp.Credential, time.Now().UTC().Truncate(time.Second)
	if err := writeState(statePath, st); err != nil {
		fmt.Fprintf(stderr, "activate: activated, but writing the credential failed: %v\n", cli.Message(err))
		return exitFailure
	}
	if o.jsonOut {
		fmt.Fprintf(stdout, `{"outcome":%q,"device_id":%q,"user_id":%q,"user_created":%t,"state_file":%q}`+"\n",
			a.outcome, a.resp.DeviceID, a.resp.UserID, a.resp.UserCreated, statePath)
		return exitOK
	}
	fmt.Fprintf(stdout, "%s: device %s of user %s (%s@%s); credential stored in %s\n",
		a.outcome, a.resp.DeviceID, a.resp.UserID, o.login, o.domain, statePath)
	return exitOK
}

func describe(a attempt) string {
	if a.err != nil {
		return cli.Message(a.err)
	}
	return a.message
}
