// Package directoryhttp serves a directory client as HTTP+JSON on the
// connector and calls it from the cloud over any [net/http.RoundTripper],
// for example the tunnel's: browse (server info, naming contexts, OUs,
// groups), the users of a mapping streamed as JSON lines, the changes since
// a cursor, one lookup and a credential check.
//
// Use [NewHandler] on the connector (mount it under a prefix with
// [net/http.StripPrefix]) over a *directory.Client, and [NewClient] in the
// cloud: the Client has the same methods as *directory.Client, so code
// written against one works with the other.
//
// # Protocol
//
// Requests and responses are JSON; unknown request fields are refused and
// request bodies are capped at 1 MiB.
//
//	GET  /info                                    -> directory.Info
//	GET  /naming-contexts                         -> ["dc=..."]
//	GET  /ous?base=                               -> [directory.OU]
//	GET  /groups?base=                            -> [directory.Group]
//	POST /users       {"mapping"}                 -> JSON lines, see below
//	POST /changes     {"mapping","since"}         -> JSON lines
//	POST /departures  {"mapping","since"}         -> {"departures":[directory.Departure]}
//	POST /whereabouts {"mapping","ids"}           -> {"departures":[directory.Departure]}
//	POST /changed-groups {"mapping","since"}      -> {"groups":["cn=..."]}
//	POST /lookup      {"mapping","name"}          -> directory.User
//	POST /credentials {"mapping","name","password"} -> directory.User
//
// A user stream is one JSON object per line: {"user":{...}} for each user,
// then exactly one last line, {"cursor":"..."} when the scan completed or
// {"error":{...}} when it failed. A stream that ends without that last line
// (the connector died, the tunnel broke) is an error wrapping
// [ErrIncomplete]: a caller never mistakes half a scan for a whole one.
//
// # Errors
//
// A failed call answers with a non-2xx status and
// {"error":{"code":...,"message":...,"reason":...}}. The Client turns it into
// the directory package's errors, so errors.Is works across the wire:
//
//	code                 status  error
//	not_found            404     directory.ErrNotFound
//	ambiguous            409     directory.ErrAmbiguous
//	invalid_credentials  401     *directory.CredentialError (reason kept)
//	cursor_invalid       409     directory.ErrCursorInvalid
//	departures_unseen    409     directory.ErrDeparturesUnseen
//	invalid_mapping      400     directory.ErrInvalidMapping
//	size_limit           502     directory.ErrSizeLimit
//	time_limit           502     directory.ErrTimeLimit
//	unavailable          503     directory.ErrUnavailable
//	service_bind         503     directory.ErrServiceBind
//	bad_request          400     ErrBadRequest
//	internal             500     ErrRemote
//
// Transport errors (tunnel.ErrNotConnected, for one) are returned wrapped,
// unchanged. A connector that answers /departures with 404 or 403 (older,
// or its policy refuses it) reads as directory.ErrDeparturesUnseen: the
// importer falls back to a full scan.
//
// [WithObserver] reports each operation's outcome to the connector, which
// can so publish its directory's health from real work.
//
// # What it won't do
//
// It does not authenticate the caller (the tunnel does: only the cloud
// reaches a connector), enforce which operations the cloud may use (wrap the
// handler with the connector's policy), retry, or log. Passwords are never
// echoed in responses or errors.
//
// # Sealed passwords
//
// Corporate proxies may inspect TLS, so a credential check's password can
// travel sealed to the connector's X25519 key with HPKE (RFC 9180,
// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305): give the
// handler the private key with [WithPrivateKey] (it then refuses plain
// passwords) and the cloud's client the public key with
// [WithConnectorKey]. The sealed payload binds the login name and the time
// of sealing; the handler refuses it for another name or after
// [SealMaxAge], with one opaque [ErrBadRequest].
package directoryhttp
