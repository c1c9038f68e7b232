package tunnelsql_test

import (
	"context"
	"database/sql"
	"log"
	"sync"

	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/tunnelsql"
)

// A gateway whose enrolled connectors survive restarts: db is opened by the
// caller (here PostgreSQL, with the driver of its choice).
func Example() {
	ctx := context.Background()
	var db *sql.DB // sql.Open("pgx", url)
	st, err := tunnelsql.New(tunnelsql.Config{DB: db, Dialect: tunnelsql.Postgres, Writes: new(sync.Mutex)})
	if err != nil {
		log.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	gw, err := tunnel.NewGateway(tunnel.GatewayConfig{Store: st /* Identity, Audience, ... */})
	if err != nil {
		log.Fatal(err)
	}
	_ = gw
}
