package activation

import (
	"context"
	"crypto/ed25519"
	"time"
)

// Lookup is what the service asks a [Directory]: one login, in one domain,
// within the mapping a token is bound to.
type Lookup struct {
	Tenant    string
	MappingID string // from the token; opaque to this package
	Login     string
	Domain    string
}

// DirectoryUser is a directory entry as the service needs it. StableID is
// the directory's immutable identifier (AD objectGUID, OpenLDAP entryUUID);
// it, not the login, identifies the user.
type DirectoryUser struct {
	StableID    string
	Login       string
	Domain      string
	UPN         string
	Email       string
	DisplayName string
	// The account's state in the directory. A user who is disabled (AD
	// userAccountControl ACCOUNTDISABLE, an OpenLDAP administrative lock),
	// locked out or expired is refused with a *DisabledError.
	Disabled, Locked, Expired bool
}

// Directory looks a login up within a mapping, usually through a connector.
// It returns an error wrapping [ErrUserNotFound], [ErrOutOfScope] or
// [ErrDirectoryUnavailable] (for "no connector connected"); any other error
// is treated as the directory being unavailable.
type Directory interface {
	LookupUser(ctx context.Context, q Lookup) (DirectoryUser, error)
}

// User is a cloud user, keyed by (Tenant, DirectoryID), never by login.
// Disabled is the cloud's own switch (an import saw the user disabled, or an
// admin disabled them): a Store refuses to activate devices for such a user.
type User struct {
	Tenant      string
	ID          string // cloud user ID, assigned at creation
	DirectoryID string // the directory's stable ID
	Login       string
	Domain      string
	UPN         string
	Email       string
	DisplayName string
	CreatedAt   time.Time
	Disabled    bool
}

// Device is an activated device, keyed by (Tenant, ID).
type Device struct {
	Tenant      string
	ID          string
	UserID      string
	Hostname    string
	PublicKey   ed25519.PublicKey
	ActivatedAt time.Time
}

// Activation is what [Store.Activate] did.
type Activation struct {
	User          User
	Device        Device
	UserCreated   bool
	DeviceCreated bool
}

// Store keeps users and devices.
//
// Activate finds the user by (u.Tenant, u.DirectoryID) or creates u; then
// finds the device by (d.Tenant, d.ID) or creates d for that user, all in
// one transaction. An existing device with the same public key and user is
// returned unchanged (a retry); any other existing device is
// [ErrDeviceConflict] and nothing is written. When the user exists and is
// disabled in the store, Activate returns a *DisabledError (Where "cloud")
// and writes nothing, even for a device activated before. Concurrent calls
// for the same user must create it once.
//
// Device returns the device or an error wrapping [ErrNotFound].
type Store interface {
	Activate(ctx context.Context, u User, d Device) (Activation, error)
	Device(ctx context.Context, tenant, id string) (Device, error)
}

// UserStatusStore is an optional capability of a [Store]: whether a cloud
// user may still use their devices. With it, [Service.AuthenticateDevice]
// refuses the devices of a user the store holds disabled (an import saw
// the user disabled in the directory, or gone from it or from the mapping)
// or no longer holds, so devices stop working as soon as the cloud knows.
// UserDisabled returns an error wrapping [ErrNotFound] for an unknown user.
type UserStatusStore interface {
	UserDisabled(ctx context.Context, tenant, userID string) (bool, error)
}

// TokenStore keeps token records. Token returns an error wrapping
// [ErrNotFound] for an unknown ID; RevokeToken likewise for an ID unknown in
// that tenant.
type TokenStore interface {
	CreateToken(ctx context.Context, rec TokenRecord) error
	Token(ctx context.Context, id string) (TokenRecord, error)
	RevokeToken(ctx context.Context, tenant, id string, at time.Time) error
}

// Decision is the outcome recorded in an audit [Event].
type Decision string

const (
	DecisionUserCreated Decision = "user_created" // new user created, device activated
	DecisionActivated   Decision = "activated"    // existing user, new device activated
	DecisionRepeated    Decision = "repeated"     // retry: device was already activated
	DecisionRefused     Decision = "refused"      // see Event.Err
	DecisionRetry       Decision = "retry"        // directory unavailable or rate limited
	DecisionTokenIssued Decision = "token_issued"
	DecisionTokenRevoke Decision = "token_revoked"
)

// Event is one audited decision. It never holds a token's secret.
type Event struct {
	Time     time.Time
	Decision Decision
	Tenant   string
	TokenID  string
	Source   string
	Login    string
	Domain   string
	DeviceID string
	UserID   string
	Err      error // the typed reason for refusals and retries
}

// Auditor receives an [Event] for every decision, synchronously; it must not
// block for long.
type Auditor interface {
	Audit(ctx context.Context, e Event)
}
