package tunnel

import (
	"errors"
	"fmt"
)

var (
	// ErrNotConnected is returned at once by a gateway RoundTripper when the
	// tenant (or connector) has no live session.
	ErrNotConnected = errors.New("tunnel: not connected")
	// ErrSessionLost is wrapped by errors of calls whose session died. A
	// request that fails with it may or may not have reached the connector,
	// unless it was idempotent and retried.
	ErrSessionLost = errors.New("tunnel: session lost")
	// ErrStreamRefused is returned when the connector refused a stream
	// (concurrency cap or shutdown). The request was not handled.
	ErrStreamRefused = errors.New("tunnel: stream refused")
	// ErrAborted is returned when the connector's handler aborted the
	// response (panic or http.ErrAbortHandler).
	ErrAborted = errors.New("tunnel: response aborted by connector")
	// ErrPeerSilent closes a session that received nothing for three ping
	// intervals (a connector waits four for a gateway that answers PINGs
	// sparsely, SPEC.md "Liveness and draining"), or whose one write took
	// three.
	ErrPeerSilent = errors.New("tunnel: peer silent for too many ping intervals")
	// ErrClosed is returned by operations on a closed Gateway, Connector or
	// session.
	ErrClosed = errors.New("tunnel: closed")
	// ErrUnauthorized is returned by Connector.Run and Enroll when the
	// gateway refused the credentials (HTTP 401).
	ErrUnauthorized = errors.New("tunnel: unauthorized")
	// ErrRevoked is returned by Connector.Run when the gateway says the
	// connector is revoked (HTTP 403). Run does not retry it.
	ErrRevoked = errors.New("tunnel: connector revoked")
	// ErrUnknownConnector is returned by a Store for an unknown connector ID.
	ErrUnknownConnector = errors.New("tunnel: unknown connector")
	// ErrBadEnrollmentToken is returned for an unknown, used or expired
	// enrollment token. It does not say which, on purpose.
	ErrBadEnrollmentToken = errors.New("tunnel: invalid enrollment token")
	// ErrHandshake is wrapped by errors of a session handshake that failed
	// its cryptographic checks: a HELLO signature that does not verify, a
	// bad key share, or a gateway that refused the connector's HELLO. On
	// the connector it usually means something between it and the cloud
	// rewrote the connection (a TLS-inspecting proxy) or the connector's
	// enrolled key is not the one the cloud has: re-enroll if it persists.
	ErrHandshake = errors.New("tunnel: handshake failed")
	// ErrCloudKeyMismatch is returned (wrapping ErrHandshake during a
	// connect) when the cloud does not prove the key the connector pinned
	// at enrollment, or during enrollment when the cloud's key does not
	// match the fingerprint in the enrollment token or its answer is not
	// signed by it. Either something intercepts the connection, or the
	// cloud's identity seed changed: then re-enroll with a new token.
	ErrCloudKeyMismatch = errors.New("tunnel: cloud key does not match the pinned key (interception, or the cloud identity changed: re-enroll with a new enrollment token)")
	// ErrCloudKeyMissing is returned by NewConnector when
	// ConnectorConfig.CloudKey is empty, as for an identity saved before
	// protocol v2: re-enroll with a new enrollment token.
	ErrCloudKeyMissing = errors.New("tunnel: no pinned cloud key (identity enrolled before protocol v2): re-enroll the connector with a new enrollment token")
	// ErrHeadTooLarge is returned for a request or response head that does
	// not fit in one frame.
	ErrHeadTooLarge = errors.New("tunnel: head too large for one frame")
)

// errNotSent marks a failure that happened before any byte of the request
// was written, so any request may be retried elsewhere.
var errNotSent = errors.New("tunnel: request not sent")

// RemoteError is a session-level error the peer sent before closing.
type RemoteError struct {
	Code    uint64
	Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("tunnel: peer closed session: %s (code %d)", e.Message, e.Code)
}

// Is lets a revocation notice match ErrRevoked.
func (e *RemoteError) Is(target error) bool {
	return target == ErrRevoked && e.Code == codeRevoked
}

const codeRevoked = 16

// errHandedOff ends a read loop whose goroutine lost the read role while
// it served a request inline (serve.go); the session stays up.
var errHandedOff = errors.New("tunnel: read role handed off")

// errStreamDone fails writes on a stream the peer has finished with.
var errStreamDone = errors.New("tunnel: stream closed")

var errBodyClosed = errors.New("tunnel: read on closed response body")

// errHelloKey is the gateway's reason for refusing a connector HELLO that
// the enrolled key did not sign. Only that refusal tells the connector to
// re-enroll: a gateway that timed out or failed otherwise (a loaded node,
// a bad frame) closes with closeHandshakeFailed, and the connector retries.
var errHelloKey = errors.New("connector hello not signed by the enrolled key")

// WebSocket close reasons of a refused handshake (status 1008).
const (
	closeHelloKey        = "hello not signed by the enrolled key"
	closeHandshakeFailed = "handshake failed"
)
