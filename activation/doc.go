// Package activation activates devices by mass deployment, on the cloud
// side: an admin issues a token, IT pushes the device client with it to
// many machines, and each client, once its user has logged on, sends the
// token, the user's login and domain, and its own public key. The service
// verifies the token, looks the user up in the directory (through a
// connector) within the token's mapping, creates the cloud user if needed,
// activates the device and returns a device credential that authenticates
// the device later without any connector.
//
// Use [New] with a [Config] naming a [Directory], a [Store] and a
// [TokenStore]; mount [Service.Handler] for devices; call
// [Service.IssueToken] and [Service.RevokeToken] from the admin side, and
// [Service.AuthenticateDevice] where devices come back for backups.
//
// It does not check the user's password (the device client runs in the
// logged-on user's session), talk to a directory itself, or manage device
// revocation or credential key rotation; those belong to the caller.
//
// # Tokens
//
// A token reads "lmd_" followed by 70 base64url characters encoding a
// 128-bit public ID, a 256-bit secret and a CRC-32C checksum. [ParseToken]
// is strict and rejects typos before any store lookup. Stores keep the ID
// and the SHA-256 of the secret only. A fast unsalted hash is enough here,
// unlike for passwords: the secret is 256 bits of uniform randomness, so
// there is no dictionary to try and a stolen table of hashes cannot be
// brute-forced; a slow hash would only make every activation slower. The
// ID selects the record and the hash is compared in constant time, so
// neither timing nor "unknown versus wrong secret" reveals anything.
// Tokens are bound to a tenant and a mapping, expire, may be revoked, and
// any number may be valid at once.
//
// # Users and devices
//
// Users are keyed by (tenant, the directory's stable ID), never by login:
// the same login in another domain, OU or mapping resolves to another
// stable ID and therefore to another user. [Store.Activate] creates the
// user and activates the device in one transaction, and creates a user
// once however many activations race for it.
//
// # Disabled users
//
// Disabled means disabled. A user whom the [Directory] reports disabled,
// locked out or expired ([DirectoryUser].Disabled, Locked, Expired), or
// whom the [Store] holds disabled ([User].Disabled, checked inside the
// activation transaction), activates no device and gets no credential,
// not even the credential of a device activated before (a retry). The
// device gets the same 403 as for a user not found, so the endpoint tells
// nobody which accounts are disabled; the [Auditor]'s [Event].Err is a
// [*DisabledError] naming where (directory or cloud) and why. Credentials
// issued before a user was disabled are not revoked, but when the [Store]
// is also a [UserStatusStore] (MemoryStore is), [Service.AuthenticateDevice]
// refuses every device of a user the store holds disabled or no longer
// holds: an import that disables a user who left the directory or the
// mapping cuts their devices off at the next authentication. A Store
// without it leaves that to the caller.
//
// # Device credentials and retries
//
// The device signs the request ([Request.Sign]) with its Ed25519 key; the
// service verifies that proof of possession before activating. The
// credential it returns is an HMAC-SHA256, under [Config.CredentialKey],
// of (tenant, device ID, user ID, device public key, activation time), all
// of which are stored: it is recomputed, not stored, so a retry after a
// timeout gets the same device and byte-for-byte the same credential, and
// there is no credential table to leak. Alone it is useless: to
// authenticate, the device must also sign a caller-chosen message with its
// private key ([Service.AuthenticateDevice]), and the device must still be
// in the store with that key.
//
// # Errors
//
// Activate returns errors wrapping one sentinel each: [ErrTokenMalformed],
// [ErrTokenUnknown], [ErrTokenExpired], [ErrTokenRevoked],
// [ErrTokenWrongTenant], [ErrUserNotFound], [ErrOutOfScope],
// [ErrUserDisabled] (as a [*DisabledError]), [ErrBadProof],
// [ErrDeviceConflict], [ErrInvalidRequest]; and a
// [*RetryError] wrapping [ErrDirectoryUnavailable] or [ErrRateLimited] when
// the device should retry (nothing was created). Devices see only
// [PublicError]'s uniform messages. Every decision is reported to the
// [Auditor].
//
// # Abuse
//
// Token buckets limit attempts per source address (before any work) and
// per token (after the token verifies, so unknown tokens cannot fill the
// table). Signatures are verified only for valid tokens.
//
// # Stores
//
// [MemoryStore] for tests and single processes; [SQLStore] over
// database/sql for SQLite (tested with modernc.org/sqlite) and, with the
// [Postgres] dialect, PostgreSQL. The package imports no driver. Both
// also offer ListTokens for admin listings. MemoryStore disables users
// with SetUserDisabled; SQLStore keeps no disabled state, so an
// application whose own user table can disable users checks it in the
// transaction it passes to [SQLStore.ActivateTx] (prepared beforehand with
// [SQLStore.PrepareTx], so that an activation holds one connection of the
// pool at a time). On PostgreSQL, a device of a user already stored is
// activated by one statement with no transaction
// ([SQLStore.ActivateExisting]): what a storm costs there is round trips,
// one commit each, not the fsync of the commit.
package activation
