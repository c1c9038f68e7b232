package connector

import (
	"net/http"

	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/keyenvelope/keyhttp"
)

// directoryHandler serves the directory service (below DirectoryPrefix):
// package directoryhttp over the directory client.
func (a *Agent) directoryHandler() http.Handler {
	if a.credKey != nil {
		return directoryhttp.NewHandler(a.dir, directoryhttp.WithPrivateKey(a.credKey))
	}
	return directoryhttp.NewHandler(a.dir)
}

// keysHandler serves the key service (below KeysPrefix): package keyhttp
// over the keyring, with the releaser for ticketed releases.
func (a *Agent) keysHandler() (http.Handler, error) {
	return keyhttp.NewHandler(keyhttp.Config{Keyring: a.keyring, Releaser: a.releaser})
}
