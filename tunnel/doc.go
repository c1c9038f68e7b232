// Package tunnel carries HTTP over one outbound WebSocket, so a cloud can
// call a connector inside a customer network that only allows outbound 443,
// often through an HTTP proxy.
//
// Use it when a service must be reached "as if it were a local HTTP
// service" but can only dial out. The connector serves an ordinary
// [net/http.Handler]; the cloud gets an [net/http.RoundTripper] bound to a
// tenant (or one connector), so http.Client{Transport: rt} just works. It
// won't carry anything but HTTP (no trailers, 1xx responses, upgrades or
// hijacking), expose raw streams, open requests from the connector to the
// cloud, or route across cloud nodes by itself: a [Router] shared by the
// nodes does that.
//
// # Cloud side
//
// [NewGateway] returns a [Gateway]: mount it as the upgrade endpoint (it is
// an http.Handler) and its [Gateway.EnrollHandler] for enrollment, behind a
// TLS 1.3 server. [Gateway.IssueEnrollmentToken] makes one-time tokens;
// [Gateway.RoundTripper] and [Gateway.RoundTripperFor] reach connectors;
// [Gateway.Revoke] revokes a connector and closes its sessions;
// [Gateway.Shutdown] drains the node with GOAWAY. Presence events
// ([PresenceEvent]) arrive in order on one goroutine.
//
// # Connector side
//
// A connector makes its key with a [KeyStore] ([FileKeyStore]), calls
// [Enroll] once with an enrollment token, then runs a [Connector] with the
// returned connector ID. [Connector.Run] keeps one session up, reconnecting
// with full-jitter exponential backoff, and reports [Status] changes in
// order on one goroutine.
//
// # Deployment
//
// Serve the Gateway behind a TLS 1.3 http.Server (HTTP/1.1 upgrades must
// reach it; a load balancer in front must pass WebSocket upgrades). The
// gateway clears the server's read and write deadlines on upgraded
// connections, so server timeouts do not end sessions. Several gateway
// nodes can share one [Router] and one [Store]; a connector's sessions
// then serve calls made on any node. Drain a node with [Gateway.Shutdown]
// before stopping it: connectors move to other nodes without a failed
// call.
//
// A connector reaches the gateway through HTTPS_PROXY / NO_PROXY, or an
// explicit ConnectorConfig.ProxyURL with basic credentials; extra CA
// certificates (a TLS-inspecting proxy's) go in ConnectorConfig.ExtraRootCAs.
// Identity does not depend on TLS client certificates, so inspection does
// not break it.
//
// # Limits and costs
//
// A stream buffers at most one window (1 MiB by default) in each
// direction; a session carries at most MaxStreams concurrent streams (128).
// An idle gateway session costs about 26 KB and one goroutine; its
// heartbeat is one PING read and one PING write every 5 s, about 10 % more
// CPU than plain TLS connections echoing a ping (see BENCHMARKS.md).
//
// # Protocol
//
// The wire format is specified in SPEC.md: one WebSocket binary message per
// frame (type, flags, stream ID, payload), subprotocol "liaison.tunnel.v1",
// a HELLO exchange, per-stream credit, pings both ways and GOAWAY.
//
// # Errors
//
// A RoundTripper returns [ErrNotConnected] at once when no session is live,
// errors wrapping [ErrSessionLost] when a session died under a request that
// could not be retried, and [ErrAborted] when the handler failed
// mid-response. GET, HEAD, OPTIONS and requests with the header
// "Liaison-Idempotent: true" ([IdempotentHeader]) are retried once on
// another live session if the first dies before the response head.
// [Connector.Run] returns [ErrRevoked] when the connector was revoked.
package tunnel
