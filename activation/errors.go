package activation

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Token errors. [Service.Activate] returns exactly one of them (wrapped) for
// a token it refuses, so that callers can log and count the reason; devices
// only ever see the uniform message of [PublicError].
var (
	ErrTokenMalformed   = errors.New("activation: malformed token")
	ErrTokenUnknown     = errors.New("activation: unknown token")
	ErrTokenExpired     = errors.New("activation: token expired")
	ErrTokenRevoked     = errors.New("activation: token revoked")
	ErrTokenWrongTenant = errors.New("activation: token belongs to another tenant")
)

// Directory errors. A [Directory] implementation returns an error wrapping
// one of these so that the service can classify the outcome.
var (
	// ErrUserNotFound: the directory has no such login in that domain.
	ErrUserNotFound = errors.New("activation: user not found in directory")
	// ErrOutOfScope: the user exists but is outside the token's mapping.
	ErrOutOfScope = errors.New("activation: user outside the token's mapping")
	// ErrDirectoryUnavailable: no connector of the tenant is connected, or
	// it could not reach the directory. Retryable; nothing was created.
	ErrDirectoryUnavailable = errors.New("activation: directory unavailable")
	// ErrUserDisabled: the user is disabled, locked or expired in the
	// directory, or disabled in the cloud. The *DisabledError that
	// carries it says which; devices see the same answer as for a user
	// not found.
	ErrUserDisabled = errors.New("activation: user disabled")
)

// DisabledError is the refusal of a user who may not activate devices. It
// matches ErrUserDisabled; Where and Reason go to the audit event and the
// log, never to the device.
type DisabledError struct {
	Where  string // "directory" or "cloud"
	Reason string // "disabled", "locked" or "expired"
}

func (e *DisabledError) Error() string {
	return "activation: user " + e.Reason + " in the " + e.Where
}

// Is reports whether target is ErrUserDisabled.
func (e *DisabledError) Is(target error) bool { return target == ErrUserDisabled }

// Other refusals.
var (
	// ErrInvalidRequest: a required field is missing or malformed.
	ErrInvalidRequest = errors.New("activation: invalid request")
	// ErrBadProof: the request's signature does not verify under the
	// device public key it carries, or a credential does not verify.
	ErrBadProof = errors.New("activation: bad proof of possession")
	// ErrDeviceConflict: the device ID is already activated with another
	// public key or for another user.
	ErrDeviceConflict = errors.New("activation: device already activated differently")
	// ErrRateLimited: too many attempts from one source or with one token.
	ErrRateLimited = errors.New("activation: rate limited")
	// ErrNotFound is returned by stores for a missing record.
	ErrNotFound = errors.New("activation: not found")
)

// RetryError marks a refusal the device should retry later, unchanged:
// the directory is unavailable (no connector connected) or a rate limit was
// hit. Nothing was created. It wraps [ErrDirectoryUnavailable] or
// [ErrRateLimited]; match it with errors.As.
type RetryError struct {
	Err        error
	RetryAfter time.Duration
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("%v (retry after %v)", e.Err, e.RetryAfter)
}

func (e *RetryError) Unwrap() error { return e.Err }

// PublicError turns an error from [Service.Activate] into the HTTP status
// and message a device may see. Every token refusal (malformed, unknown,
// expired, revoked, wrong tenant) gets the same message, and so do "not in
// the directory", "out of scope" and "disabled", so the endpoint is no
// oracle for which tokens or users exist or what state an account is in.
func PublicError(err error) (status int, message string) {
	switch {
	case err == nil:
		return http.StatusOK, ""
	case errors.Is(err, ErrRateLimited):
		return http.StatusTooManyRequests, "too many activation attempts, retry later"
	case errors.Is(err, ErrTokenMalformed), errors.Is(err, ErrTokenUnknown),
		errors.Is(err, ErrTokenExpired), errors.Is(err, ErrTokenRevoked),
		errors.Is(err, ErrTokenWrongTenant):
		return http.StatusForbidden, "activation token invalid or expired"
	case errors.Is(err, ErrUserNotFound), errors.Is(err, ErrOutOfScope), errors.Is(err, ErrUserDisabled):
		return http.StatusForbidden, "user cannot be activated with this token"
	case errors.Is(err, ErrDirectoryUnavailable):
		return http.StatusServiceUnavailable, "directory temporarily unavailable, retry later"
	case errors.Is(err, ErrBadProof):
		return http.StatusUnauthorized, "device proof of possession failed"
	case errors.Is(err, ErrDeviceConflict):
		return http.StatusConflict, "device already activated"
	case errors.Is(err, ErrInvalidRequest):
		return http.StatusBadRequest, "invalid activation request"
	default:
		return http.StatusInternalServerError, "internal error"
	}
}
