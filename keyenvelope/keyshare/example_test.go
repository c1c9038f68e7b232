package keyshare_test

import (
	"fmt"
	"net/http"

	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/keyenvelope/keyshare"
)

// A connector serves the rounds beside its key service; kr is the keyring
// it serves (nil while it waits for the tenant's), id its share identity.
func ExampleNew() {
	var (
		kr *keyenvelope.Keyring
		id keyenvelope.ShareIdentity
	)
	store := &keyshare.KEKFile{
		Path:       "/var/lib/liaison/kek.kenv",
		Passphrase: func() ([]byte, error) { return []byte("from a file or a secret store"), nil },
	}
	h, err := keyshare.New(keyshare.Config{
		StateFile: "/var/lib/liaison/kek.kenv.share.json",
		Identity:  func() (keyenvelope.ShareIdentity, error) { return id, nil },
		Keyring:   func() *keyenvelope.Keyring { return kr },
		Install:   func(got *keyenvelope.Keyring) error { kr = got; return nil },
		Store:     store,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+keyshare.Path, h) // behind the tunnel, never on a listening socket
	fmt.Println("serving", keyshare.Path)
	// Output: serving /keyshare/sync
}

// A person approves, on a connector that holds the keyring, the request
// whose fingerprint the new connector showed them.
func ExampleApprove() {
	m, err := keyshare.Approve("/var/lib/liaison/kek.kenv.share.json", "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567")
	if err != nil {
		fmt.Println("not approved:", err)
		return
	}
	fmt.Println("approved", m.ConnectorID)
}
