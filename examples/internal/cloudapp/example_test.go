package cloudapp_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
)

// Start the cloud in-process, as the quickstart does, and drive it with Go
// calls instead of the HTTP API.
func ExampleNew() {
	srv, err := cloudapp.New(cloudapp.Config{
		DBPath:     "cloud.db",
		Addr:       "127.0.0.1:0",
		AdminToken: "a-long-random-admin-token",
		Grace:      5 * time.Second,
		NewDirectory: func(tenant string, rt http.RoundTripper) cloudapp.Directory {
			// A remote directory client over rt, such as directoryhttp's.
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Run(ctx) }()

	// Give the token to the connector: connector.Enroll with
	// srv.URL() and srv.CAPEM().
	token, err := srv.IssueEnrollmentToken(ctx, "acme", time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	_ = token
	if err := srv.PutMapping(ctx, "acme", "staff", directory.Mapping{OUs: []string{"ou=Staff,dc=acme,dc=test"}}); err != nil {
		log.Fatal(err)
	}
	// Once the connector is up:
	res, err := srv.RunImport(ctx, "acme", "staff", cloudapp.ImportOptions{})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("imported: %+v", res.Summary)
}

func ExampleServer_Login() {
	var srv *cloudapp.Server // from cloudapp.New
	res, err := srv.Login(context.Background(), "acme", "staff", "alice", "password from the login form")
	if err != nil {
		// cloudapp.ErrLoginFailed or cloudapp.ErrLoginThrottled: show one
		// message for both.
		log.Print(err)
		return
	}
	log.Printf("welcome %s", res.User.DisplayName)
}

func ExampleServer_ReleaseKey() {
	var srv *cloudapp.Server // from cloudapp.New
	// The backup worker made a one-time X25519 key pair for this job and
	// sent its public key; only it can open the release.
	var workerPublicKey []byte
	rel, err := srv.ReleaseKey(context.Background(), "acme", "cloud-user-id", "job-0001", workerPublicKey, time.Hour)
	if err != nil {
		log.Fatal(err) // wraps tunnel.ErrNotConnected when no connector is up (an alert is raised)
	}
	// Hand rel.Ticket and rel.Release to the worker: keyenvelope.OpenRelease.
	_ = rel
}

func ExampleServer_PreviewImport() {
	var srv *cloudapp.Server // from cloudapp.New
	plan, err := srv.PreviewImport(context.Background(), "acme", "staff")
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("would create %d, update %d, disable %d, delete %d",
		plan.Summary.Creates, plan.Summary.Updates, plan.Summary.Disables, plan.Summary.Deletes)
}

func ExampleServer_Handler() {
	var srv *cloudapp.Server // from cloudapp.New
	// Run serves the handler over TLS itself; a product embedding the cloud
	// in its own server can mount it instead.
	mux := http.NewServeMux()
	mux.Handle("/", srv.Handler())
	_ = mux
}
