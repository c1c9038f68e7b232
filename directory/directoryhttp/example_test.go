package directoryhttp_test

import (
	"context"
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
