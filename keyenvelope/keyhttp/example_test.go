package keyhttp_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/keyenvelope/keyhttp"
)

func ExampleNewHandler() {
	// Connector side.
	k, err := keyenvelope.NewKeyring(nil)
	if err != nil {
		log.Fatal(err)
	}
	h, err := keyhttp.NewHandler(keyhttp.Config{Keyring: k})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/keys/", http.StripPrefix("/keys", h))
	srv := httptest.NewServer(mux) // in production: served over the tunnel
	defer srv.Close()

	// Cloud side.
	c, err := keyhttp.NewClient(srv.URL+"/keys", srv.Client().Transport)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	user := keyenvelope.Context{Tenant: "acme", User: "alice", Purpose: "backup"}
	wrapped, _, err := c.GenerateWrapped(ctx, user)
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Rewrap(ctx, keyenvelope.Context{Tenant: "acme", User: "bob", Purpose: "backup"}, wrapped)
	fmt.Println(errors.Is(err, keyenvelope.ErrUnwrap))
	// Output: true
}

func ExampleClient_Release() {
	k, _ := keyenvelope.NewKeyring(nil)
	schedPub, schedPriv, _ := ed25519.GenerateKey(nil)
	r, err := keyenvelope.NewReleaser(keyenvelope.ReleaserConfig{
		Keyring: k, Policy: keyenvelope.TicketPolicy{SchedulerKey: schedPub},
	})
	if err != nil {
		log.Fatal(err)
	}
	h, err := keyhttp.NewHandler(keyhttp.Config{Keyring: k, Releaser: r})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := keyhttp.NewClient(srv.URL, srv.Client().Transport)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	user := keyenvelope.Context{Tenant: "acme", User: "alice", Purpose: "backup"}
	wrapped, id, err := c.GenerateWrapped(ctx, user)
	if err != nil {
		log.Fatal(err)
	}

	worker, _ := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	now := time.Now()
	ticket, err := keyenvelope.IssueTicket(schedPriv, &keyenvelope.Ticket{
		JobID: "job-7", Tenant: user.Tenant, User: user.User, Purpose: user.Purpose, JobPurpose: keyenvelope.JobBackup,
		EkeyID: id, IssuedAt: now, Expires: now.Add(5 * time.Minute), WorkerKey: worker.PublicKey(),
	})
	if err != nil {
		log.Fatal(err)
	}
	release, err := c.Release(ctx, ticket, wrapped)
	if err != nil {
		log.Fatal(err)
	}
	e, err := keyenvelope.OpenRelease(worker, ticket, release)
	if err != nil {
		log.Fatal(err)
	}
	defer e.Zero()
	fmt.Println(e.ID == id)
	// Output: true
}

func ExampleClient_PublicKey() {
	k, _ := keyenvelope.NewKeyring(nil)
	h, _ := keyhttp.NewHandler(keyhttp.Config{Keyring: k})
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, _ := keyhttp.NewClient(srv.URL, srv.Client().Transport)
	pub, err := c.PublicKey(context.Background(), keyenvelope.SuiteX25519)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(pub.Suite, pub.Version)
	// Output: hpke-x25519-hkdf-sha256-aes-256-gcm 1
}

func ExampleNewClient() {
	// Any RoundTripper works: the tunnel's in production. A transport that
	// cannot reach a connector surfaces its own error, wrapped.
	errOffline := errors.New("tunnel: not connected")
	c, err := keyhttp.NewClient("http://connector/keys", roundTripperFunc(func(*http.Request) (*http.Response, error) {
		return nil, errOffline
	}))
	if err != nil {
		log.Fatal(err)
	}
	_, _, err = c.GenerateWrapped(context.Background(), keyenvelope.Context{Tenant: "acme", User: "alice"})
	fmt.Println(errors.Is(err, errOffline))
	// Output: true
}
