// Command quickstart runs the whole Liaison story in one process, with
// nothing installed: an in-process LDAP directory with demo data, the cloud
// endpoint, and a connector enrolled against it that reaches the cloud
// through the tunnel over TLS (every certificate comes from a CA made at
// start-up and is verified).
//
// It browses the directory's OUs through the connector, imports users, picks
// up a change, activates devices by mass deployment, logs a user in on the
// web, releases a backup ekey to a worker, then stops the connector to show
// the Not Connected alert raised after the grace period and resolved when the
// connector is back. It checks every step and exits 0 only if all did what
// they should; otherwise it names the failed step and exits 1.
//
//	go run ./examples/quickstart      # the story, step by step
//	go run ./examples/quickstart -v   # and the cloud's and connector's logs on stderr
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"
)

func main() {
	verbose := flag.Bool("v", false, "write the cloud's and the connector's logs to stderr")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var logger *slog.Logger
	if *verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if err := runWith(ctx, os.Stdout, logger); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}
