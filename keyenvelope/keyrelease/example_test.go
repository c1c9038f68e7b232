package keyrelease_test

import (
	"context"
	"database/sql"
	"log"

	"github.com/liaisonhq/liaison/keyenvelope/keyrelease"
	"github.com/liaisonhq/liaison/masterkey"
)

// Releasing a user's ekey to a backup worker from a cloud endpoint.
func Example() {
	ctx := context.Background()
	var db *sql.DB                 // opened by the caller
	var secrets *masterkey.Secrets // masterkey.LoadSecrets
	var keys keyrelease.Keys       // a keyhttp.Client through the tunnel
	sched, err := keyrelease.LoadScheduler(ctx, keyrelease.SchedulerConfig{Secrets: secrets})
	if err != nil {
		log.Fatal(err)
	}
	ekeys, err := keyrelease.NewSQLEkeys(keyrelease.SQLEkeysConfig{DB: db, Dialect: keyrelease.Postgres})
	if err != nil {
		log.Fatal(err)
	}
	if err := ekeys.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	r, err := keyrelease.New(keyrelease.Config{Scheduler: sched, Ekeys: ekeys})
	if err != nil {
		log.Fatal(err)
	}
	rel, err := r.Release(ctx, keys, keyrelease.Request{Tenant: "acme", UserID: "u-1", JobID: "job-42", WorkerKey: make([]byte, 32)})
	if err != nil {
		log.Fatal(err)
	}
	_ = rel // the worker opens rel.Release with its private key and rel.Ticket
}
