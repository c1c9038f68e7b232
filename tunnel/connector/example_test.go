package connector_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"

	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// A connector from its config file, run until interrupted. Compile-only:
// it needs an enrolled identity and a cloud.
func ExampleNew() {
	cfg, err := connector.LoadConfig("/etc/liaison/connector.json")
	if err != nil {
		log.Fatal(err)
	}
	cfg.Logger = slog.Default()
	agent, err := connector.New(cfg)
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
	id, err := connector.Enroll(context.Background(), connector.Cloud{
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
	_, err := connector.ParseConfig([]byte(`{
		"cloud": {"url": "http://cloud.example.com", "identity_file": "/var/lib/liaison/identity.json"},
		"keys": {"kek_file": "/var/lib/liaison/kek", "passphrase_env": "KEK_PASS",
		         "scheduler_public_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
		"policy": {"allow": ["keys", "browse"]}
	}`))
	fmt.Println(errors.Is(err, connector.ErrConfig))
	fmt.Println(err)
	// Output:
	// true
	// connector: invalid config: cloud.url: "http://cloud.example.com": want a https:// URL (TLS is required)
	// connector: invalid config: policy.allow: "browse" needs a directory section
}

// The cloud side can tell a policy refusal from any other failure.
func ExampleDecodePolicyError() {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"error":{"code":"forbidden_by_connector_policy","operation":"credentials","message":"connector policy does not allow credentials"}}`)
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/directory/credentials", nil))
	if pe := connector.DecodePolicyError(rec.Body.Bytes()); pe != nil {
		fmt.Println(pe.Operation, "refused by the connector")
	}
	// Output: credentials refused by the connector
}

// A connector configured in code, with no file at all, serving its handler
// locally (as the tunnel would) to show the policy at work.
func ExampleAgent_Handler() {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	kr, _ := keyenvelope.NewKeyring(nil)
	sched, _, _ := ed25519.GenerateKey(rand.Reader)
	agent, err := connector.New(connector.Config{
		Cloud:  connector.Cloud{URL: "https://cloud.example.com", ConnectorID: "conn_1", Key: key},
		Keys:   &connector.Keys{Keyring: kr, SchedulerKey: sched},
		Policy: connector.Policy{Allow: []connector.Operation{connector.OpKeys}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer agent.Close()
	srv := httptest.NewServer(agent.Handler())
	defer srv.Close()
	for _, path := range []string{connector.StatusPath, "/keys/v1/public-key?suite=x25519", "/directory/users"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode)
	}
	// Output:
	// /status 200
	// /keys/v1/public-key?suite=x25519 200
	// /directory/users 404
}

func ExampleLoadConfig() {
	cfg, err := connector.LoadConfig("/etc/liaison/connector.json")
	if err != nil {
		log.Fatal(err) // names the file and every bad field
	}
	fmt.Println(cfg.Policy.Allow)
}

func ExamplePolicy_Allows() {
	p := connector.Policy{Allow: []connector.Operation{connector.OpBrowse, connector.OpLookup}}
	fmt.Println(p.Allows(connector.OpLookup), p.Allows(connector.OpCredentials))
	// Output: true false
}

// The HTTP client a product would use to reach the cloud like the connector
// does (proxy, extra CA, TLS 1.3).
func ExampleCloud_HTTPClient() {
	c, err := connector.Cloud{URL: "https://cloud.example.com", ProxyURL: "http://proxy.corp:3128"}.HTTPClient()
	if err != nil {
		log.Fatal(err)
	}
	_ = c
}

// A vendor's own agent embeds the connector: its settings come from the
// vendor's own configuration (here literals), secrets from the environment,
// logs go to the vendor's logger. Enroll runs once with a one-time token;
// New and Run serve the cloud until the context ends. Compile-only: it needs
// a cloud and a directory. README, "Embedding".
func Example_embedding() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cloud := connector.Cloud{
		URL:          "https://backup.vendor.example",
		IdentityFile: "/var/lib/vendoragent/identity.json", // key beside it, 0600
	}
	if _, err := os.Stat(cloud.IdentityFile); errors.Is(err, os.ErrNotExist) {
		if _, err := connector.Enroll(ctx, cloud, os.Getenv("VENDOR_ENROLL_TOKEN")); err != nil {
			log.Fatal(err)
		}
	}
	agent, err := connector.New(connector.Config{
		Cloud: cloud,
		Directory: &connector.Directory{
			URLs:            []string{"ldaps://dc1.corp.example", "ldaps://dc2.corp.example"},
			BindDN:          "CN=vendor-svc,OU=Service,DC=corp,DC=example",
			BindPasswordEnv: "VENDOR_LDAP_PASSWORD",
		},
		Keys: &connector.Keys{KEKFile: "/var/lib/vendoragent/kek.kenv", PassphraseEnv: "VENDOR_KEK_PASSPHRASE"},
		Policy: connector.Policy{Allow: []connector.Operation{
			connector.OpBrowse, connector.OpImport, connector.OpLookup, connector.OpCredentials, connector.OpKeys,
		}},
		OnStatus: func(s tunnel.Status) { fmt.Println("tunnel:", s.State) },
		Logger:   slog.Default(),
	})
	if err != nil {
		log.Fatal(err) // wraps connector.ErrConfig and names the setting
	}
	defer agent.Close() // writes the audit log's closing checkpoint
	if err := agent.Run(ctx); errors.Is(err, tunnel.ErrRevoked) {
		log.Fatal("revoked by the cloud: enroll again")
	}
}
