package loginguard_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/loginguard"
)

// exampleDir stands for a *directory.Client: one account, known by its
// login and its mail.
type exampleDir struct{ binds int }

func (d *exampleDir) Lookup(_ context.Context, _ directory.Mapping, name string) (directory.User, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "alice", "alice@example.com":
		return directory.User{ID: "5f1c…", Login: "alice"}, nil
	}
	return directory.User{}, directory.ErrNotFound
}

func (d *exampleDir) CheckCredentials(ctx context.Context, m directory.Mapping, name, password string) (directory.User, error) {
	u, err := d.Lookup(ctx, m, name)
	if err != nil {
		return u, err
	}
	d.binds++
	if password != "s3cret" {
		return directory.User{}, &directory.CredentialError{Reason: directory.ReasonBadPassword}
	}
	return u, nil
}

func Example() {
	// The directory locks an account at 5 failures within 30 minutes:
	// stay below, over at least as long.
	g, err := loginguard.New(loginguard.Config{MaxFailures: 3, Window: 30 * time.Minute})
	if err != nil {
		panic(err)
	}
	d := &exampleDir{} // in production: a *directory.Client
	for _, name := range []string{"alice", "ALICE@example.com", " Alice ", "alice@example.com", "alice"} {
		_, err := g.Login(context.Background(), d, loginguard.Attempt{Realm: "acme", Name: name, Password: "guess", Source: "192.0.2.7"})
		var te *loginguard.ThrottledError
		switch {
		case errors.As(err, &te):
			fmt.Printf("%q: too many failed logins, retry in %s\n", name, te.RetryAfter)
		case errors.Is(err, loginguard.ErrFailed):
			fmt.Printf("%q: login failed (log: %s)\n", name, directory.ReasonOf(err))
		}
	}
	fmt.Println("binds that reached the directory:", d.binds)
	// Output:
	// "alice": login failed (log: bad_password)
	// "ALICE@example.com": login failed (log: bad_password)
	// " Alice ": login failed (log: bad_password)
	// "alice@example.com": too many failed logins, retry in 30m0s
	// "alice": too many failed logins, retry in 30m0s
	// binds that reached the directory: 3
}

func ExampleNewMemoryStore() {
	// One node: counters in memory, at most 10 000 of them.
	store := loginguard.NewMemoryStore(loginguard.MemoryConfig{MaxKeys: 10_000})
	g, err := loginguard.New(loginguard.Config{Store: store})
	if err != nil {
		panic(err)
	}
	_ = g
}
