// Command activate is the device client for mass deployment: pushed by IT to
// many machines with a deployment token, it activates the device for the
// logged-on user against the cloud endpoint (never the connector), and
// stores the device key and credential.
//
//	activate --cloud URL --tenant T --token T [--login L --domain D --hostname H --device-id ID]
//
// The same binary is a load generator: --simulate N --workers M activates N
// simulated devices (each with its own key) from M concurrent workers and
// prints activations/s, p50/p99 latency and counts per outcome.
//
//	activate --cloud URL --tenant T --token T --simulate 10000 --workers 64 --login user%06d --login-count 2000 --domain liaison.test
//
// activate version (or --version) prints the build's module version, Go
// version and OS/architecture.
//
// Exit codes: 0 activated; 1 refused by the cloud; 2 usage error;
// 5 any other failure (network, TLS, server error after retries). With
// --simulate: 0 when every device was activated, 1 otherwise.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

const (
	exitOK      = 0
	exitRefused = 1
	exitUsage   = 2
	exitFailure = 5
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
