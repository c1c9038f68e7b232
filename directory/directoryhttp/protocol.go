package directoryhttp

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/liaisonhq/liaison/directory"
)

// Errors of this package, besides the directory package's.
var (
	// ErrBadRequest: the handler could not parse a request.
	ErrBadRequest = errors.New("directoryhttp: bad request")
	// ErrRemote: the handler failed for a reason it did not classify.
	ErrRemote = errors.New("directoryhttp: remote directory error")
	// ErrIncomplete: a user stream ended before its final line.
	ErrIncomplete = errors.New("directoryhttp: user stream incomplete")
)

// maxBody caps request bodies and single response objects.
const maxBody = 1 << 20

// Error codes on the wire.
const (
	codeNotFound         = "not_found"
	codeAmbiguous        = "ambiguous"
	codeAccountChanged   = "account_changed"
	codeInvalidCreds     = "invalid_credentials"
	codeCursorInvalid    = "cursor_invalid"
	codeDeparturesUnseen = "departures_unseen"
	codeInvalidMapping   = "invalid_mapping"
	codeSizeLimit        = "size_limit"
	codeTimeLimit        = "time_limit"
	codeUnavailable      = "unavailable"
	codeServiceBind      = "service_bind"
	codeBadRequest       = "bad_request"
	codeInternal         = "internal"
)

// wireError is the JSON error object.
type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Reason is a directory.Reason name, for invalid_credentials.
	Reason string `json:"reason,omitempty"`
}

type errorBody struct {
	Error *wireError `json:"error"`
}

// Request bodies.
type (
	usersRequest struct {
		Mapping directory.Mapping `json:"mapping"`
	}
	changesRequest struct {
		Mapping directory.Mapping `json:"mapping"`
		Since   directory.Cursor  `json:"since"`
	}
	lookupRequest struct {
		Mapping directory.Mapping `json:"mapping"`
		Name    string            `json:"name"`
		// NoGroups asks for the user without its groups (Resolve).
		NoGroups bool `json:"no_groups,omitempty"`
	}
	credentialsRequest struct {
		Mapping  directory.Mapping `json:"mapping"`
		Name     string            `json:"name"`
		Password string            `json:"password,omitempty"`
		// SealedPassword is the password sealed to the connector's key
		// (see seal.go), base64url without padding.
		SealedPassword string `json:"sealed_password,omitempty"`
		// ExpectID, when set, binds the check to the account with that
		// stable ID: the handler refuses with account_changed, before any
		// bind, if Name resolves to another one.
		ExpectID string `json:"expect_id,omitempty"`
	}
)

// streamLine is one line of a user stream: exactly one field is set.
type streamLine struct {
	User   *directory.User   `json:"user,omitempty"`
	Cursor *directory.Cursor `json:"cursor,omitempty"`
	Error  *wireError        `json:"error,omitempty"`
}

// wireCode ties an error code on the wire to the sentinel it stands for and
// the HTTP status that carries it. encodeError and decodeError both read
// wireCodes, so a code cannot be sent without being understood.
type wireCode struct {
	code   string
	status int
	err    error
}

// wireCodes lists the classified errors, most specific first. Invalid
// credentials are handled apart: they carry a reason.
func wireCodes() []wireCode {
	return []wireCode{
		{codeNotFound, http.StatusNotFound, directory.ErrNotFound},
		{codeAmbiguous, http.StatusConflict, directory.ErrAmbiguous},
		{codeAccountChanged, http.StatusConflict, directory.ErrAccountChanged},
		{codeCursorInvalid, http.StatusConflict, directory.ErrCursorInvalid},
		{codeDeparturesUnseen, http.StatusConflict, directory.ErrDeparturesUnseen},
		{codeInvalidMapping, http.StatusBadRequest, directory.ErrInvalidMapping},
		{codeSizeLimit, http.StatusBadGateway, directory.ErrSizeLimit},
		{codeTimeLimit, http.StatusBadGateway, directory.ErrTimeLimit},
		{codeUnavailable, http.StatusServiceUnavailable, directory.ErrUnavailable},
		{codeServiceBind, http.StatusServiceUnavailable, directory.ErrServiceBind},
		{codeBadRequest, http.StatusBadRequest, ErrBadRequest},
	}
}

// encodeError classifies err for the wire. Messages of unclassified errors
// are kept short and never carry request data.
func encodeError(err error) (int, *wireError) {
	var ce *directory.CredentialError
	if errors.As(err, &ce) {
		return http.StatusUnauthorized, &wireError{Code: codeInvalidCreds, Message: "invalid credentials", Reason: ce.Reason.String()}
	}
	for _, w := range wireCodes() {
		if errors.Is(err, w.err) {
			return w.status, &wireError{Code: w.code, Message: err.Error()}
		}
	}
	return http.StatusInternalServerError, &wireError{Code: codeInternal, Message: err.Error()}
}

// decodeError turns a wire error back into the error the directory package
// would have returned.
func decodeError(e *wireError) error {
	if e == nil {
		return fmt.Errorf("%w: empty error", ErrRemote)
	}
	if e.Code == codeInvalidCreds {
		return &directory.CredentialError{Reason: directory.ParseReason(e.Reason)}
	}
	base := ErrRemote
	for _, w := range wireCodes() {
		if w.code == e.Code {
			base = w.err
			break
		}
	}
	return &Error{Code: e.Code, Message: e.Message, err: base}
}

// Error is an error reported by the remote handler. It matches the
// directory package's sentinel for its code with errors.Is.
type Error struct {
	Code    string
	Message string
	err     error
	status  int // the HTTP status of the answer
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "directoryhttp: remote: " + e.Code
	}
	return "directoryhttp: remote: " + e.Message
}

// Unwrap returns the sentinel matching Code.
func (e *Error) Unwrap() error { return e.err }
