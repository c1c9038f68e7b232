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
//
// With --demo-ldap FILE it runs only the demo directory, for trying the
// cloud and connector programs by hand (the README's walkthrough): it writes
// how to reach it to FILE (JSON: URL, CA file, bind DN, bind password file,
// the demo users' password) and serves until interrupted.
//
//	go run ./examples/quickstart --demo-ldap demo-ldap.json
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	verbose := flag.Bool("v", false, "write the cloud's and the connector's logs to stderr")
	demoLDAP := flag.String("demo-ldap", "", "run only the demo directory and write how to reach it to this JSON file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *demoLDAP != "" {
		if err := serveDemoLDAP(ctx, *demoLDAP, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "quickstart:", err)
			os.Exit(1)
		}
		return
	}
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
