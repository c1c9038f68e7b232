package connectorapp

import (
	"net/http"
)

// directoryHandler serves the directory service (below DirectoryPrefix).
func (a *Agent) directoryHandler() http.Handler {
	return notBuilt("directory")
}

// keysHandler serves the key service (below KeysPrefix).
func (a *Agent) keysHandler() http.Handler {
	return notBuilt("keys")
}

func notBuilt(what string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "connectorapp: "+what+" service adapter not available in this build", http.StatusNotImplemented)
	})
}
