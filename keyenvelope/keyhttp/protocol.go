package keyhttp

import (
	"errors"
	"net/http"

	"github.com/liaisonhq/liaison/keyenvelope"
)

// Service is the name of the key service in what a connector publishes
// about itself (tunnel.ConnectorInfo.Services).
const Service = "keys"

// Paths, relative to where the handler is mounted.
const (
	PathGenerate  = "/v1/generate"
	PathRewrap    = "/v1/rewrap"
	PathRelease   = "/v1/release"
	PathPublicKey = "/v1/public-key"
)

// maxBody caps request and response bodies.
const maxBody = 64 << 10

// Errors of this package, matched with errors.Is on the client side.
var (
	// ErrBadRequest: the request was not valid JSON of the right shape, or
	// used the wrong method.
	ErrBadRequest = errors.New("keyhttp: bad request")
	// ErrNotFound: no such operation on this handler.
	ErrNotFound = errors.New("keyhttp: no such operation")
	// ErrUnsupported: the handler is not configured for this operation (no
	// Releaser).
	ErrUnsupported = errors.New("keyhttp: operation not supported by this connector")
)

type contextJSON struct {
	Tenant  string `json:"tenant"`
	User    string `json:"user"`
	Purpose string `json:"purpose"`
}

func (c contextJSON) context() keyenvelope.Context {
	return keyenvelope.Context{Tenant: c.Tenant, User: c.User, Purpose: c.Purpose}
}

type generateRequest struct {
	contextJSON
}

type generateResponse struct {
	Wrapped string `json:"wrapped"`
	EkeyID  string `json:"ekey_id"`
}

type rewrapRequest struct {
	contextJSON
	Wrapped string `json:"wrapped"`
}

type wrappedResponse struct {
	Wrapped string `json:"wrapped"`
}

type releaseRequest struct {
	Ticket  string `json:"ticket"`
	Wrapped string `json:"wrapped"`
}

type releaseResponse struct {
	Release string `json:"release"`
}

type publicKeyResponse struct {
	PublicKey string `json:"public_key"`
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// wireError maps an error to its wire code and HTTP status. The order
// matters only for errors wrapping several sentinels.
func wireError(err error) (code string, status int, sentinel error) {
	switch {
	case errors.Is(err, keyenvelope.ErrUnwrap):
		return "unwrap_failed", http.StatusUnprocessableEntity, keyenvelope.ErrUnwrap
	case errors.Is(err, keyenvelope.ErrTicketExpired):
		return "ticket_expired", http.StatusForbidden, keyenvelope.ErrTicketExpired
	case errors.Is(err, keyenvelope.ErrInvalidTicket):
		return "invalid_ticket", http.StatusForbidden, keyenvelope.ErrInvalidTicket
	case errors.Is(err, keyenvelope.ErrInvalidContext):
		return "invalid_context", http.StatusBadRequest, keyenvelope.ErrInvalidContext
	case errors.Is(err, keyenvelope.ErrMalformed):
		return "malformed", http.StatusBadRequest, keyenvelope.ErrMalformed
	case errors.Is(err, ErrBadRequest):
		return "bad_request", http.StatusBadRequest, ErrBadRequest
	case errors.Is(err, ErrNotFound):
		return "not_found", http.StatusNotFound, ErrNotFound
	case errors.Is(err, errMethod):
		return "method_not_allowed", http.StatusMethodNotAllowed, ErrBadRequest
	case errors.Is(err, ErrUnsupported):
		return "unsupported", http.StatusNotImplemented, ErrUnsupported
	}
	return "internal", http.StatusInternalServerError, nil
}

// sentinelFor is the client side of wireError.
func sentinelFor(code string) error {
	switch code {
	case "unwrap_failed":
		return keyenvelope.ErrUnwrap
	case "ticket_expired":
		return keyenvelope.ErrTicketExpired
	case "invalid_ticket":
		return keyenvelope.ErrInvalidTicket
	case "invalid_context":
		return keyenvelope.ErrInvalidContext
	case "malformed":
		return keyenvelope.ErrMalformed
	case "bad_request", "method_not_allowed":
		return ErrBadRequest
	case "not_found":
		return ErrNotFound
	case "unsupported":
		return ErrUnsupported
	}
	return nil
}

// errMethod is the server-side cause of "method_not_allowed".
var errMethod = errors.New("keyhttp: method not allowed")

func parseSuite(s string) (keyenvelope.Suite, bool) {
	switch s {
	case "", "x25519":
		return keyenvelope.SuiteX25519, true
	case "x-wing":
		return keyenvelope.SuiteXWing, true
	}
	return 0, false
}

func suiteName(s keyenvelope.Suite) string {
	if s == keyenvelope.SuiteXWing {
		return "x-wing"
	}
	return "x25519"
}
