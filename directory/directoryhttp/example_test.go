package directoryhttp_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"log"
	"net/http"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
)

// On the connector: serve a directory client below /directory.
func ExampleNewHandler() {
	c, err := directory.Open(directory.Config{
		URLs:   []string{"ldaps://dc1.corp.example"},
		BindDN: "CN=liaison-svc,OU=Service,DC=corp,DC=example", BindPassword: "from a file",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	mux := http.NewServeMux()
	mux.Handle("/directory/", http.StripPrefix("/directory", directoryhttp.NewHandler(c)))
	_ = mux // serve it over the tunnel: tunnel.ConnectorConfig.Handler
}

// In the cloud: the same calls, through a RoundTripper that reaches the
// tenant's connector (the tunnel gateway's).
func ExampleNewClient() {
	var rt http.RoundTripper = http.DefaultTransport // gateway.RoundTripper("tenant") in a cloud
	c, err := directoryhttp.NewClient("http://connector/directory", rt)
	if err != nil {
		log.Fatal(err)
	}
	n := 0
	cursor, err := c.Users(context.Background(), directory.Mapping{OUs: []string{"OU=Staff,DC=corp,DC=example"}},
		func(u directory.User) error { n++; return nil })
	if err != nil {
		log.Print(err) // errors.Is(err, directory.ErrUnavailable), tunnel.ErrNotConnected, ...
		return
	}
	fmt.Println(n, cursor != "")
}

// Seal credential-check passwords to the connector's key: the connector
// keeps the private key, the cloud is configured with the public one.
func ExampleWithConnectorKey() {
	connectorKey, err := ecdh.X25519().GenerateKey(rand.Reader) // stored by the connector
	if err != nil {
		log.Fatal(err)
	}
	var d directoryhttp.Directory // a *directory.Client on the connector
	h := directoryhttp.NewHandler(d, directoryhttp.WithPrivateKey(connectorKey))
	_ = h // served over the tunnel

	// In the cloud, with the public key registered at enrollment:
	c, err := directoryhttp.NewClient("http://connector/directory", http.DefaultTransport,
		directoryhttp.WithConnectorKey(connectorKey.PublicKey()))
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.CheckCredentials(context.Background(), directory.Mapping{}, "jdoe", "from the login form")
	fmt.Println(err != nil)
}

func ExampleWithPrivateKey() {
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	var d directoryhttp.Directory // a *directory.Client
	mux := http.NewServeMux()
	mux.Handle("/directory/", http.StripPrefix("/directory", directoryhttp.NewHandler(d, directoryhttp.WithPrivateKey(key))))
	_ = mux
}

// A connector learns its directory's health from the operations the cloud
// asks for, not from probes of its own.
func ExampleWithObserver() {
	var d directoryhttp.Directory // a *directory.Client
	h := directoryhttp.NewHandler(d, directoryhttp.WithObserver(func(op string, err error) {
		if directory.Unavailable(err) {
			log.Printf("directory unavailable during %s: %v", op, err)
		}
	}))
	_ = h // served below /directory over the tunnel
}
