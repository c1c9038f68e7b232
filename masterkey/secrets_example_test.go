package masterkey_test

import (
	"context"
	"database/sql"
	"log"

	"github.com/liaisonhq/liaison/masterkey"
)

// A server's own secrets, made on first start, kept sealed in its database
// under a key file kept apart.
func ExampleLoadSecrets() {
	ctx := context.Background()
	var db *sql.DB // opened by the caller
	secrets, created, _, err := masterkey.LoadSecrets(ctx, masterkey.SecretsConfig{DB: db, Dialect: masterkey.Postgres}, "/var/lib/cloud/master.key")
	if err != nil {
		log.Fatal(err) // masterkey.ErrKeyFileMissing: restore the key file
	}
	if created {
		log.Print("master key created: back it up, apart from the database")
	}
	seed, err := secrets.Secret(ctx, "tunnel_identity_seed", 32)
	if err != nil {
		log.Fatal(err)
	}
	_ = seed
}
