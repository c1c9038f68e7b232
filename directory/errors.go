package directory

import (
	"errors"
	"fmt"
)

// Sentinel errors. Functions document which ones they return; match them with
// [errors.Is]. Errors from the LDAP library (*ldap.Error) stay reachable
// through [errors.As] on every error this package returns.
var (
	// ErrNotFound: a lookup matched no user in the mapping's scope.
	ErrNotFound = errors.New("directory: user not found")
	// ErrAmbiguous: a lookup matched more than one user; the package never
	// picks the first hit.
	ErrAmbiguous = errors.New("directory: more than one user matches")
	// ErrInvalidCredentials: a credential check failed. The *CredentialError
	// that carries it says why.
	ErrInvalidCredentials = errors.New("directory: invalid credentials")
	// ErrEmptyPassword: a credential check was given an empty password. It
	// is refused before any bind is sent (an empty-password simple bind is an
	// anonymous bind that Active Directory reports as a success). The
	// *CredentialError that carries it also matches ErrInvalidCredentials.
	ErrEmptyPassword = errors.New("directory: empty password")
	// ErrAccountChanged: [Client.CheckAccount] found that the name no
	// longer resolves to the account it was asked to check (renamed, moved,
	// or replaced since the caller resolved it). No bind was sent.
	ErrAccountChanged = errors.New("directory: name resolves to another account")
	// ErrSizeLimit: the server stopped a search at its size limit. A search
	// never ends silently on a limit.
	ErrSizeLimit = errors.New("directory: size limit exceeded")
	// ErrTimeLimit: the server stopped a search at its time limit.
	ErrTimeLimit = errors.New("directory: time limit exceeded")
	// ErrUnavailable: no configured server could be reached. It wraps every
	// server's error.
	ErrUnavailable = errors.New("directory: no server available")
	// ErrServiceBind: a reachable server refused the service account's
	// bind (a wrong bind DN or password, a locked or expired service
	// account). Like ErrUnavailable, no operation that needs the service
	// account can run until it is fixed; unlike it, failing over does not
	// help.
	ErrServiceBind = errors.New("directory: service account bind refused")
	// ErrCursorInvalid: a change cursor is malformed, from another version,
	// another server (a different domain controller) or another mapping.
	// The caller must run a full scan.
	ErrCursorInvalid = errors.New("directory: cursor invalid, full scan required")
	// ErrDeparturesUnseen: [Client.Departures] cannot tell which users
	// were deleted since a cursor (OpenLDAP, or an AD service account
	// without read access to the Deleted Objects container). The caller
	// must run a full scan to find them.
	ErrDeparturesUnseen = errors.New("directory: deletions since the cursor not visible, full scan required")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("directory: client closed")
	// ErrInvalidMapping: a Mapping does not validate (bad DN or filter).
	ErrInvalidMapping = errors.New("directory: invalid mapping")
)

// Reason says why a credential check failed.
type Reason int

// Reasons a credential check fails. Active Directory sub-codes in brackets.
const (
	ReasonUnknown         Reason = iota // refused for a reason the server did not tell
	ReasonBadPassword                   // wrong password (52e)
	ReasonLocked                        // account locked out (775; OpenLDAP ppolicy accountLocked)
	ReasonDisabled                      // account disabled (533; OpenLDAP pwdAccountLockedTime 000001010000Z)
	ReasonPasswordExpired               // password expired (532; ppolicy passwordExpired)
	ReasonAccountExpired                // account expired (701)
	ReasonMustChange                    // password must be changed before logon (773; ppolicy changeAfterReset)
	ReasonEmptyPassword                 // empty password, refused before any bind
)

var reasonNames = [...]string{
	ReasonUnknown:         "unknown",
	ReasonBadPassword:     "bad_password",
	ReasonLocked:          "locked",
	ReasonDisabled:        "disabled",
	ReasonPasswordExpired: "password_expired",
	ReasonAccountExpired:  "account_expired",
	ReasonMustChange:      "must_change_password",
	ReasonEmptyPassword:   "empty_password",
}

// String returns a stable snake_case name, suitable for JSON and logs.
func (r Reason) String() string {
	if r < 0 || int(r) >= len(reasonNames) {
		return "unknown"
	}
	return reasonNames[r]
}

// ParseReason is the inverse of [Reason.String]; unknown names give
// ReasonUnknown.
func ParseReason(s string) Reason {
	for i, n := range reasonNames {
		if n == s {
			return Reason(i)
		}
	}
	return ReasonUnknown
}

// CredentialError is returned by [Client.CheckCredentials] when the directory
// refuses the credentials. It matches [ErrInvalidCredentials] (and
// [ErrEmptyPassword] for ReasonEmptyPassword) with errors.Is; Err, when set,
// is the server's *ldap.Error.
type CredentialError struct {
	Reason Reason
	Err    error
}

func (e *CredentialError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("directory: invalid credentials: %s: %v", e.Reason, e.Err)
	}
	return "directory: invalid credentials: " + e.Reason.String()
}

// Unwrap returns the server's error, if any.
func (e *CredentialError) Unwrap() error { return e.Err }

// Is reports whether target is ErrInvalidCredentials, or ErrEmptyPassword for
// an empty-password refusal.
func (e *CredentialError) Is(target error) bool {
	switch target {
	case ErrInvalidCredentials:
		return true
	case ErrEmptyPassword:
		return e.Reason == ReasonEmptyPassword
	}
	return false
}

// ReasonOf returns the Reason of the *CredentialError in err's chain, or
// ReasonUnknown when there is none.
func ReasonOf(err error) Reason {
	var ce *CredentialError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return ReasonUnknown
}

// Unavailable reports whether err means the directory could not be used
// at all: no server reachable ([ErrUnavailable]) or the service account's
// bind refused ([ErrServiceBind]). Answers such as [ErrNotFound] or
// [ErrInvalidCredentials] are not: the directory was reached and answered.
func Unavailable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrServiceBind)
}
