package connectorapp_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"

	"github.com/liaisonhq/liaison/examples/internal/connectorapp"
	"github.com/liaisonhq/liaison/tunnel"
)

// A connector from its config file, run until interrupted. Compile-only:
// it needs an enrolled identity and a cloud.
func ExampleNew() {
	cfg, err := connectorapp.LoadConfig("/etc/liaison/connector.json")
	if err != nil {
		log.Fatal(err)
	}
	agent, err := connectorapp.New(cfg, slog.Default())
	if err != nil {
		log.Fatal(err)
	}
	defer agent.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := agent.Run(ctx); errors.Is(err, tunnel.ErrRevoked) {
		log.Fatal("revoked: enroll again")
	}
}

// Enrollment with a one-time token; the identity file and the key beside it
// are written with mode 0600. Compile-only: it needs a cloud.
func ExampleEnroll() {
	id, err := connectorapp.Enroll(context.Background(), connectorapp.Cloud{
		URL:          "https://cloud.example.com",
		IdentityFile: "/var/lib/liaison/identity.json",
	}, "the-one-time-token")
	if errors.Is(err, tunnel.ErrUnauthorized) {
		log.Fatal("token unknown, used or expired")
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("enrolled as", id.ConnectorID, "in tenant", id.Tenant)
}

// Config errors name every offending field at once.
func ExampleParseConfig() {
	_, err := connectorapp.ParseConfig([]byte(`{
		"cloud": {"url": "http://cloud.example.com", "identity_file": "/var/lib/liaison/identity.json"},
		"keys": {"kek_file": "/var/lib/liaison/kek", "passphrase_env": "KEK_PASS",
		         "scheduler_public_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
		"policy": {"allow": ["keys", "browse"]}
	}`))
	fmt.Println(errors.Is(err, connectorapp.ErrConfig))
	fmt.Println(err)
	// Output:
	// true
	// connectorapp: invalid config: cloud.url: "http://cloud.example.com": want a https:// URL (TLS is required)
	// connectorapp: invalid config: policy.allow: "browse" needs a directory section
}

// The cloud side can tell a policy refusal from any other failure.
func ExampleDecodePolicyError() {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"error":{"code":"forbidden_by_connector_policy","operation":"credentials","message":"connector policy does not allow credentials"}}`)
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/directory/credentials", nil))
	if pe := connectorapp.DecodePolicyError(rec.Body.Bytes()); pe != nil {
		fmt.Println(pe.Operation, "refused by the connector")
	}
	// Output: credentials refused by the connector
}
