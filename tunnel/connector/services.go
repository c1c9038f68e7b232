package connector

import (
	"net/http"

	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/keyenvelope/keyhttp"
)

// directoryHandler serves the directory service (below DirectoryPrefix):
// package directoryhttp over the directory client.
func (a *Agent) directoryHandler() http.Handler {
	opts := []directoryhttp.HandlerOption{directoryhttp.WithObserver(a.observeDirectory)} // health.go
	if a.credKey != nil {
		opts = append(opts, directoryhttp.WithPrivateKey(a.credKey))
	}
	return directoryhttp.NewHandler(a.dir, opts...)
}

// keysHandler serves the key service (below KeysPrefix): package keyhttp
// over the keyring, with the releaser for ticketed releases.
func (a *Agent) keysHandler() (http.Handler, error) {
	return keyhttp.NewHandler(keyhttp.Config{Keyring: a.keyring, Releaser: a.releaser})
}
