package activation_test

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	_ "modernc.org/sqlite"

	"github.com/liaisonhq/liaison/activation"
)

// exampleDirectory stands in for a directory reached through a connector.
type exampleDirectory struct{ connected bool }

func (d *exampleDirectory) LookupUser(_ context.Context, q activation.Lookup) (activation.DirectoryUser, error) {
	if !d.connected {
		return activation.DirectoryUser{}, fmt.Errorf("example: %w", activation.ErrDirectoryUnavailable)
	}
	if q.Login != "alice" || q.Domain != "corp.example" {
		return activation.DirectoryUser{}, activation.ErrUserNotFound
	}
	return activation.DirectoryUser{StableID: "5b1f0c2e-guid", Login: "alice", Domain: "corp.example", Email: "alice@corp.example"}, nil
}

func newExampleService(dir activation.Directory) *activation.Service {
	store := activation.NewMemoryStore()
	svc, err := activation.New(activation.Config{
		Directory:     dir,
		Store:         store,
		Tokens:        store,
		CredentialKey: []byte("use 32 or more random bytes here"),
	})
	if err != nil {
		log.Fatal(err)
	}
	return svc
}

func ExampleService_Activate() {
	ctx := context.Background()
	dir := &exampleDirectory{connected: true}
	svc := newExampleService(dir)

	// Admin side: a token for the mapping "sales-ou", valid for a week.
	token, _, err := svc.IssueToken(ctx, "tenant-1", "sales-ou", 7*24*time.Hour)
	if err != nil {
		log.Fatal(err)
	}

	// Device side: a key pair, and a signed request.
	_, devKey, _ := ed25519.GenerateKey(nil)
	req := activation.Request{Tenant: "tenant-1", Token: token, Login: "alice", Domain: "corp.example",
		Hostname: "laptop-17", DeviceID: "laptop-17-serial", Source: "203.0.113.9"}
	req.Sign(devKey)

	res, err := svc.Activate(ctx, req)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("user created:", res.UserCreated, "device created:", res.DeviceCreated)

	// A retry after a timeout gets the same credential.
	again, _ := svc.Activate(ctx, req)
	fmt.Println("same credential:", again.Credential == res.Credential)

	// With no connector, activation is refused as retryable...
	dir.connected = false
	req.DeviceID = "another-device"
	req.Sign(devKey)
	_, err = svc.Activate(ctx, req)
	var retry *activation.RetryError
	fmt.Println("retry:", errors.As(err, &retry), errors.Is(err, activation.ErrDirectoryUnavailable))

	// ...but the activated device still authenticates.
	challenge := []byte("nonce from the backup endpoint")
	dev, err := svc.AuthenticateDevice(ctx, "tenant-1", res.Credential, challenge, ed25519.Sign(devKey, challenge))
	fmt.Println("authenticated:", dev.ID, err)
	// Output:
	// user created: true device created: true
	// same credential: true
	// retry: true true
	// authenticated: laptop-17-serial <nil>
}

func ExampleService_AuthenticateDevice() {
	ctx := context.Background()
	svc := newExampleService(&exampleDirectory{connected: true})
	token, _, _ := svc.IssueToken(ctx, "tenant-1", "all", time.Hour)
	_, devKey, _ := ed25519.GenerateKey(nil)
	req := activation.Request{Tenant: "tenant-1", Token: token, Login: "alice", Domain: "corp.example", DeviceID: "d1"}
	req.Sign(devKey)
	res, _ := svc.Activate(ctx, req)

	msg := []byte("backup session 2026-11-25T12:00:00Z")
	_, err := svc.AuthenticateDevice(ctx, "tenant-1", res.Credential, msg, []byte("not a signature"))
	fmt.Println(errors.Is(err, activation.ErrBadProof))
	// Output: true
}

func ExampleService_RevokeToken() {
	ctx := context.Background()
	svc := newExampleService(&exampleDirectory{connected: true})
	token, rec, _ := svc.IssueToken(ctx, "tenant-1", "all", time.Hour)
	if err := svc.RevokeToken(ctx, "tenant-1", rec.ID); err != nil {
		log.Fatal(err)
	}
	_, devKey, _ := ed25519.GenerateKey(nil)
	req := activation.Request{Tenant: "tenant-1", Token: token, Login: "alice", Domain: "corp.example", DeviceID: "d1"}
	req.Sign(devKey)
	_, err := svc.Activate(ctx, req)
	fmt.Println(errors.Is(err, activation.ErrTokenRevoked))
	_, msg := activation.PublicError(err)
	fmt.Println(msg)
	// Output:
	// true
	// activation token invalid or expired
}

func ExampleService_Handler() {
	svc := newExampleService(&exampleDirectory{connected: true})
	mux := http.NewServeMux()
	mux.Handle("POST /v1/activate", svc.Handler())
	_ = &http.Server{Addr: "127.0.0.1:8443", Handler: mux} // serve with TLS in production
}

func ExampleParseToken() {
	_, err := activation.ParseToken("lmd_not-a-real-token")
	fmt.Println(err)
	// Output: activation: malformed token: bad prefix or length
}

func ExamplePublicError() {
	status, msg := activation.PublicError(fmt.Errorf("lookup: %w", activation.ErrOutOfScope))
	fmt.Println(status, msg)
	// Output: 403 user cannot be activated with this token
}

func ExampleNewSQLStore() {
	db, err := sql.Open("sqlite", "file:example?mode=memory&cache=shared&_pragma=busy_timeout(5000)")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store := activation.NewSQLStore(db, activation.SQLite)
	if err := store.Migrate(context.Background()); err != nil {
		log.Fatal(err)
	}
	_, err = store.Device(context.Background(), "tenant-1", "nope")
	fmt.Println(errors.Is(err, activation.ErrNotFound))
	// Output: true
}

// An application that keeps its own user table writes its row in the same
// transaction as the activation: a refused activation leaves neither.
func ExampleSQLStore_ActivateTx() {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:activatetx?mode=memory&cache=shared&_pragma=busy_timeout(5000)")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store := activation.NewSQLStore(db, activation.SQLite)
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE app_users (directory_id TEXT PRIMARY KEY)`); err != nil {
		log.Fatal(err)
	}
	activate := func(u activation.User, d activation.Device) error {
		// Before BEGIN, so the transaction needs no second connection.
		if err := store.PrepareTx(ctx); err != nil {
			return err
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() // after Commit, a no-op
		if _, err := tx.ExecContext(ctx, `INSERT INTO app_users (directory_id) VALUES (?) ON CONFLICT DO NOTHING`, u.DirectoryID); err != nil {
			return err
		}
		if _, err := store.ActivateTx(ctx, tx, u, d); err != nil {
			return err
		}
		return tx.Commit()
	}
	key := make(ed25519.PublicKey, ed25519.PublicKeySize)
	dev := activation.Device{Tenant: "t", ID: "laptop-17", Hostname: "laptop-17", PublicKey: key, ActivatedAt: time.Now()}
	fmt.Println(activate(activation.User{Tenant: "t", ID: "u1", DirectoryID: "guid-alice", Login: "alice"}, dev))
	// The same device for another user is a conflict: bob's row is rolled back.
	err = activate(activation.User{Tenant: "t", ID: "u2", DirectoryID: "guid-bob", Login: "bob"}, dev)
	fmt.Println(errors.Is(err, activation.ErrDeviceConflict))
	var n int
	_ = db.QueryRowContext(ctx, `SELECT count(*) FROM app_users`).Scan(&n)
	fmt.Println(n)
	// Output:
	// <nil>
	// true
	// 1
}

// On PostgreSQL, an application that checks its own user record first
// activates the devices of known users without a transaction, and takes
// one only for a first activation.
func ExampleSQLStore_ActivateExisting() {
	ctx := context.Background()
	db, err := sql.Open("pgx", "postgres://liaison@db.example/liaison") // any driver; pgx here
	if err != nil {
		log.Fatal(err)
	}
	store := activation.NewSQLStore(db, activation.Postgres)
	activate := func(u activation.User, d activation.Device) (activation.Activation, error) {
		// ... refuse u here if the application's own record disables it ...
		if a, ok, err := store.ActivateExisting(ctx, u, d); ok || err != nil {
			return a, err // the device of a known user: one statement
		}
		// A first activation: the application's row and activation's in one
		// transaction, as in the ActivateTx example.
		if err := store.PrepareTx(ctx); err != nil {
			return activation.Activation{}, err
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return activation.Activation{}, err
		}
		defer tx.Rollback() // after Commit, a no-op
		a, err := store.ActivateTx(ctx, tx, u, d)
		if err != nil {
			return activation.Activation{}, err
		}
		return a, tx.Commit()
	}
	_ = activate
}

func ExampleNewMemoryStore() {
	store := activation.NewMemoryStore()
	_, err := store.Token(context.Background(), "unknown")
	fmt.Println(errors.Is(err, activation.ErrNotFound))
	// Output: true
}

func ExampleRequest_Sign() {
	_, devKey, _ := ed25519.GenerateKey(nil)
	req := activation.Request{Tenant: "tenant-1", Token: "lmd_...", Login: "alice", DeviceID: "d1"}
	req.Sign(devKey)
	fmt.Println(ed25519.Verify(req.DevicePublicKey, req.SignedMessage(), req.Signature))
	// Output: true
}

func ExampleNew() {
	store := activation.NewMemoryStore()
	_, err := activation.New(activation.Config{Store: store, Tokens: store})
	fmt.Println(err)
	// Output: activation: config: Directory is required
}

func ExampleMemoryStore_ListTokens() {
	ctx := context.Background()
	store := activation.NewMemoryStore()
	svc, _ := activation.New(activation.Config{Directory: &exampleDirectory{}, Store: store, Tokens: store,
		CredentialKey: []byte("use 32 or more random bytes here")})
	_, rec, _ := svc.IssueToken(ctx, "tenant-1", "sales-ou", time.Hour)
	_ = svc.RevokeToken(ctx, "tenant-1", rec.ID)
	list, _ := store.ListTokens(ctx, "tenant-1")
	for _, t := range list {
		fmt.Println(t.ID == rec.ID, t.MappingID, !t.RevokedAt.IsZero())
	}
	// Output: true sales-ou true
}

// A Store that is a UserStatusStore (MemoryStore is) cuts a disabled user's
// devices off: an import that disables a user who left the directory makes
// the next authentication fail.
func ExampleUserStatusStore() {
	ctx := context.Background()
	store := activation.NewMemoryStore()
	svc, err := activation.New(activation.Config{Directory: &exampleDirectory{connected: true}, Store: store,
		Tokens: store, CredentialKey: []byte("use 32 or more random bytes here")})
	if err != nil {
		log.Fatal(err)
	}
	token, _, _ := svc.IssueToken(ctx, "tenant-1", "all", time.Hour)
	_, devKey, _ := ed25519.GenerateKey(nil)
	req := activation.Request{Tenant: "tenant-1", Token: token, Login: "alice", Domain: "corp.example", DeviceID: "d1"}
	req.Sign(devKey)
	res, err := svc.Activate(ctx, req)
	if err != nil {
		log.Fatal(err)
	}
	msg := []byte("backup session 2026-12-02T07:00:00Z")
	auth := func() error {
		_, err := svc.AuthenticateDevice(ctx, "tenant-1", res.Credential, msg, ed25519.Sign(devKey, msg))
		return err
	}
	fmt.Println(auth())
	_ = store.SetUserDisabled(ctx, "tenant-1", "5b1f0c2e-guid", true) // the import saw alice leave
	err = auth()
	fmt.Println(errors.Is(err, activation.ErrBadProof), errors.Is(err, activation.ErrUserDisabled))
	// Output:
	// <nil>
	// true true
}
