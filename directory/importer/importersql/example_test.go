package importersql_test

import (
	"context"
	"database/sql"
	"log"
	"sync"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/directory/importer/importersql"
)

// The users table of a cloud endpoint: imports write it, activations join
// it, the scheduler reads its tenants and next runs.
func Example() {
	ctx := context.Background()
	var db *sql.DB // opened by the caller: SQLite or PostgreSQL
	writes := new(sync.Mutex)
	users, err := importersql.New(importersql.Config{DB: db, Dialect: importersql.SQLite, Writes: writes})
	if err != nil {
		log.Fatal(err)
	}
	if err := users.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	var source importer.Source // a directoryhttp.Client through the tunnel
	im, err := importer.New(importer.Config{Source: source, Store: users, Checkpoints: users})
	if err != nil {
		log.Fatal(err)
	}
	_ = im
	acts := activation.NewSQLStore(db, activation.SQLite)
	_ = importersql.ActivationStore{Users: users, Activations: acts} // activation.Config.Store
}
