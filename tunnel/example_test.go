package tunnel_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/liaisonhq/liaison/tunnel"
)

// The cloud side: a gateway mounted on a TLS server, and a tenant-bound
// http.Client.
func ExampleNewGateway() {
	// The seed is the cloud's one long-term secret: load the same 32 bytes
	// on every start and every node (connectors pin its public key).
	seed, err := os.ReadFile("/etc/liaison/tunnel-identity.seed")
	if err != nil {
		log.Fatal(err)
	}
	id, err := tunnel.NewGatewayIdentity(seed)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("cloud key %s", id.Fingerprint())
	gw, err := tunnel.NewGateway(tunnel.GatewayConfig{
		Identity: id,
		Audience: "wss://cloud.example.com/connect",
		NodeID:   "node-1",
		OnPresence: func(ev tunnel.PresenceEvent) {
			log.Printf("%s %s tenant=%s sessions=%d", ev.ConnectorID, ev.Kind, ev.Tenant, ev.Sessions)
		},
		Logger: slog.Default(),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer gw.Close()
	mux := http.NewServeMux()
	mux.Handle("/connect", gw)
	mux.Handle("/enroll", gw.EnrollHandler())
	srv := &http.Server{Addr: ":443", Handler: mux}
	go func() { _ = srv.ListenAndServeTLS("cert.pem", "key.pem") }()

	client := &http.Client{Transport: gw.RoundTripper("tenant-42")}
	resp, err := client.Get("http://connector/directory/users")
	if errors.Is(err, tunnel.ErrNotConnected) {
		log.Print("tenant-42 has no live connector")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
}

// A RoundTripper fails at once when the tenant has no live session.
func ExampleGateway_RoundTripper() {
	gw, _ := tunnel.NewGateway(tunnel.GatewayConfig{Identity: identity(), Audience: "wss://cloud.example.com/connect"})
	defer gw.Close()
	client := &http.Client{Transport: gw.RoundTripper("tenant-without-connector")}
	_, err := client.Get("http://connector/ping")
	fmt.Println(errors.Is(err, tunnel.ErrNotConnected))
	// Output: true
}

// RoundTripperFor pins calls to one connector of a tenant.
func ExampleGateway_RoundTripperFor() {
	gw, _ := tunnel.NewGateway(tunnel.GatewayConfig{Identity: identity(), Audience: "wss://cloud.example.com/connect"})
	defer gw.Close()
	client := &http.Client{Transport: gw.RoundTripperFor("tenant-42", "conn_abc")}
	_, err := client.Get("http://connector/ping")
	fmt.Println(err != nil)
	// Output: true
}

func ExampleGateway_IssueEnrollmentToken() {
	gw, _ := tunnel.NewGateway(tunnel.GatewayConfig{Identity: identity(), Audience: "wss://cloud.example.com/connect"})
	defer gw.Close()
	tok, err := gw.IssueEnrollmentToken(context.Background(), "tenant-42", 24*time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(tok) > 40)
	// Output: true
}

func ExampleGateway_Revoke() {
	var gw *tunnel.Gateway // from NewGateway
	if err := gw.Revoke(context.Background(), "conn_abc"); err != nil {
		log.Print(err)
	}
}

// Shutdown drains a node before a deploy: connectors move to other nodes
// without failing a request.
func ExampleGateway_Shutdown() {
	var gw *tunnel.Gateway // from NewGateway
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := gw.Shutdown(ctx); err != nil {
		log.Print(err)
	}
	_ = gw.Close()
}

// The connector side: make a key once, enroll once, then run.
func ExampleEnroll() {
	key, err := (&tunnel.FileKeyStore{Path: "/var/lib/liaison/connector.key"}).LoadOrCreate()
	if err != nil {
		log.Fatal(err)
	}
	id, err := tunnel.Enroll(context.Background(), nil, "https://cloud.example.com/enroll", "lenr2_…", key)
	if errors.Is(err, tunnel.ErrUnauthorized) {
		log.Fatal("the enrollment token is invalid, used or expired")
	}
	if errors.Is(err, tunnel.ErrCloudKeyMismatch) {
		log.Fatal("the enrollment endpoint is not the cloud that issued the token (interception?)")
	}
	if err != nil {
		log.Fatal(err)
	}
	// Persist id (connector ID, tenant and the pinned cloud key).
	log.Printf("enrolled as %s in %s, cloud key %s", id.ConnectorID, id.Tenant, id.CloudKey.Fingerprint())
}

func ExampleFileKeyStore() {
	ks := &tunnel.FileKeyStore{Path: "/var/lib/liaison/connector.key"} // written 0600, atomically
	key, err := ks.LoadOrCreate()
	if err != nil {
		log.Fatal(err)
	}
	_ = key
}

func ExampleNewConnector() {
	key, _ := (&tunnel.FileKeyStore{Path: "connector.key"}).LoadOrCreate()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "pong") })
	var id tunnel.Identity // from Enroll, persisted
	c, err := tunnel.NewConnector(tunnel.ConnectorConfig{
		URL:         "wss://cloud.example.com/connect",
		ConnectorID: id.ConnectorID,
		CloudKey:    id.CloudKey,
		Key:         key,
		Handler:     mux,
		ProxyURL:    "http://user:pass@proxy.corp:3128", // or HTTPS_PROXY
		OnStatus:    func(s tunnel.Status) { log.Printf("tunnel %s %v", s.State, s.Err) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	_ = c
}

func ExampleConnector_Run() {
	var c *tunnel.Connector // from NewConnector
	err := c.Run(context.Background())
	if errors.Is(err, tunnel.ErrRevoked) {
		log.Fatal("this connector was revoked; enroll again")
	}
}

// Several gateway nodes in one process can share a router; a cross-node
// Router implements the same three methods.
func ExampleNewMemoryRouter() {
	router := tunnel.NewMemoryRouter()
	store := tunnel.NewMemoryStore()
	a, _ := tunnel.NewGateway(tunnel.GatewayConfig{Identity: identity(), Audience: "wss://x/connect", NodeID: "a", Router: router, Store: store})
	b, _ := tunnel.NewGateway(tunnel.GatewayConfig{Identity: identity(), Audience: "wss://x/connect", NodeID: "b", Router: router, Store: store})
	defer a.Close()
	defer b.Close()
	_, err := router.Pick("tenant-42", "", nil)
	fmt.Println(err)
	// Output: tunnel: not connected
}

// A product can keep connectors and enrollment tokens in its database by
// implementing the four-method Store; MemoryStore is the in-process one.
func ExampleNewMemoryStore() {
	store := tunnel.NewMemoryStore()
	gw, _ := tunnel.NewGateway(tunnel.GatewayConfig{Identity: identity(), Audience: "wss://x/connect", Store: store})
	defer gw.Close()
	_, err := store.Connector(context.Background(), "conn_unknown")
	fmt.Println(errors.Is(err, tunnel.ErrUnknownConnector))
	// Output: true
}

// The gateway is the upgrade endpoint; EnrollHandler serves enrollment.
func ExampleGateway_ServeHTTP() {
	gw, _ := tunnel.NewGateway(tunnel.GatewayConfig{Identity: identity(), Audience: "wss://cloud.example.com/connect"})
	defer gw.Close()
	http.Handle("/connect", gw)
	http.Handle("/enroll", gw.EnrollHandler())
}

func ExampleGateway_EnrollHandler() {
	gw, _ := tunnel.NewGateway(tunnel.GatewayConfig{Identity: identity(), Audience: "wss://cloud.example.com/connect"})
	defer gw.Close()
	mux := http.NewServeMux()
	mux.Handle("POST /enroll", gw.EnrollHandler())
}

// Close stops Run and waits for every goroutine of the connector.
func ExampleConnector_Close() {
	var c *tunnel.Connector // from NewConnector
	go func() { _ = c.Run(context.Background()) }()
	// ... on shutdown:
	_ = c.Close()
}

func identity() *tunnel.GatewayIdentity {
	id, err := tunnel.GenerateGatewayIdentity(nil)
	if err != nil {
		log.Fatal(err)
	}
	return id
}

func ExampleNewGatewayIdentity() {
	seed := make([]byte, tunnel.SeedSize) // persisted, 0600; here all zero
	id, err := tunnel.NewGatewayIdentity(seed)
	if err != nil {
		log.Fatal(err)
	}
	again, _ := tunnel.NewGatewayIdentity(seed)
	fmt.Println(id.Fingerprint() == again.Fingerprint(), len(id.Public()))
	// Output: true 64
}

func ExampleGenerateGatewayIdentity() {
	id, err := tunnel.GenerateGatewayIdentity(nil)
	if err != nil {
		log.Fatal(err)
	}
	// Persist the seed once (0600) and load it with NewGatewayIdentity on
	// every start and every node.
	if err := os.WriteFile("/etc/liaison/tunnel-identity.seed", id.Seed(), 0o600); err != nil {
		log.Fatal(err)
	}
	log.Printf("cloud key %s", id.Fingerprint())
}

// The cloud signs public data a connector receives over an untrusted path;
// the connector checks it with the key it pinned at enrollment.
func ExampleCloudKey_VerifyStatement() {
	id, _ := tunnel.NewGatewayIdentity(make([]byte, tunnel.SeedSize))
	ticketKey := []byte("the job-ticket public key")
	sig := id.SignStatement("scheduler-key", ticketKey)

	var pinned tunnel.CloudKey = id.Public() // tunnel.Identity.CloudKey on the connector
	fmt.Println(pinned.VerifyStatement("scheduler-key", ticketKey, sig))
	fmt.Println(pinned.VerifyStatement("scheduler-key", []byte("a relay's key"), sig))
	// Output:
	// true
	// false
}

// Show the cloud key's fingerprint beside enrollment tokens; the token
// carries it too, and Enroll checks it.
func ExampleGateway_CloudKey() {
	gw, _ := tunnel.NewGateway(tunnel.GatewayConfig{Identity: identity(), Audience: "wss://cloud.example.com/connect"})
	defer gw.Close()
	tok, _ := gw.IssueEnrollmentToken(context.Background(), "tenant-42", time.Hour)
	fmt.Println(len(tok) > 0, gw.CloudKey().Fingerprint()[:7])
	// Output: true SHA256:
}
