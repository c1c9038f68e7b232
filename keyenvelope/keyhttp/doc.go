// Package keyhttp serves a [keyenvelope.Keyring] as HTTP+JSON on the
// connector and calls it from the cloud over any [net/http.RoundTripper],
// for example the tunnel's: the cloud asks a connector to generate a wrapped
// ekey, rewrap one under the primary KEK version, release one to a backup
// worker against a signed ticket, or give the keyring's public key for the
// offline path. No operation returns an ekey: the HTTP surface cannot unwrap.
//
// Use [NewHandler] on the connector (mount it under a prefix with
// [net/http.StripPrefix]) and [NewClient] in the cloud.
//
// What it won't do: authenticate the caller (the tunnel does: only the
// cloud reaches a connector), decide which operations the cloud may use
// (wrap the handler to enforce the connector's capability policy), retry,
// or log.
//
// # Protocol
//
// Every binary object (wrapped ekey, ticket, release, public key) travels
// in keyenvelope's text form ("kenv1." + base64url). Requests and responses
// are JSON objects; unknown request fields are refused. Bodies are capped
// at 64 KiB.
//
//	POST /v1/generate    {"tenant","user","purpose"}            -> {"wrapped","ekey_id"}
//	POST /v1/rewrap      {"tenant","user","purpose","wrapped"}  -> {"wrapped"}
//	POST /v1/release     {"ticket","wrapped"}                   -> {"release"}
//	GET  /v1/public-key?suite=x25519|x-wing                     -> {"public_key"}
//
// # Errors
//
// A failed call answers with a non-2xx status and
// {"error":{"code":...,"message":...}}. The [Client] turns it into an
// [*Error] whose Unwrap returns the matching sentinel, so errors.Is works
// across the wire:
//
//	code               status  sentinel
//	unwrap_failed      422     keyenvelope.ErrUnwrap
//	invalid_ticket     403     keyenvelope.ErrInvalidTicket
//	ticket_expired     403     keyenvelope.ErrTicketExpired
//	invalid_context    400     keyenvelope.ErrInvalidContext
//	malformed          400     keyenvelope.ErrMalformed
//	bad_request        400     ErrBadRequest
//	not_found          404     ErrNotFound
//	method_not_allowed 405     ErrBadRequest
//	unsupported        501     ErrUnsupported
//	internal           500     (none)
//
// Messages carry nothing beyond the sentinel's text: unwrap failures stay
// opaque. Transport failures (the RoundTripper's errors, such as the
// tunnel's "not connected") are returned wrapped with %w, so errors.Is
// matches them too.
//
// # Retries
//
// Rewrap, release and public-key are safe to retry: they change nothing on
// the connector. Generate makes a new ekey on every call, so a retry after
// a lost response leaves an unused wrapped ekey behind, which is harmless.
//
// # Trust
//
// The public key returned by [Client.PublicKey] is only as authentic as the
// channel it came over; keyenvelope public keys carry no signature. Fetch
// it through the tunnel, which authenticates the connector.
package keyhttp
