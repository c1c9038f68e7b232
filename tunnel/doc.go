// Package tunnel carries HTTP over one outbound WebSocket, so a cloud can
// call a connector inside a customer network that only allows outbound 443,
// often through an HTTP or SOCKS5 proxy.
//
// Use it when a service must be reached "as if it were a local HTTP
// service" but can only dial out. The connector serves an ordinary
// [net/http.Handler]; the cloud gets an [net/http.RoundTripper] bound to a
// tenant (or one connector), so http.Client{Transport: rt} just works. It
// won't carry anything but HTTP (no trailers, 1xx responses, upgrades or
// hijacking), expose raw streams, open requests from the connector to the
// cloud, or route across cloud nodes by itself: a [Forwarder]
// (tunnel/tunnelnats on NATS) does that.
//
// # Cloud side
//
// [NewGateway] returns a [Gateway]: mount it as the upgrade endpoint (it is
// an http.Handler) and its [Gateway.EnrollHandler] for enrollment (GET and
// POST), behind a TLS 1.3 server. It needs the cloud's [GatewayIdentity],
// loaded with [NewGatewayIdentity] from one persisted 32-byte secret seed
// (0600, the same on every node and every start: connectors pin its public
// key, [CloudKey]). [Gateway.IssueEnrollmentToken] makes one-time tokens;
// [Gateway.RoundTripper] and [Gateway.RoundTripperFor] reach connectors;
// [Gateway.Revoke] revokes a connector and closes its sessions;
// [Gateway.Shutdown] drains the node with GOAWAY (see "Reconnect waves").
// Presence events ([PresenceEvent]) arrive in order on one goroutine, with
// the connectors' published info ([InfoEvent], GatewayConfig.OnInfo); the
// latest is also at [Gateway.ConnectorInfo] and [Session.Info].
//
// # Connector side
//
// A connector makes its key with a [KeyStore] ([FileKeyStore]), calls
// [Enroll] once with an enrollment token, persists the returned [Identity]
// (connector ID, tenant and the pinned cloud key), then runs a [Connector]
// with them. [Connector.Run] keeps one session up, reconnecting
// with full-jitter exponential backoff, and reports [Status] changes in
// order on one goroutine. [Connector.SetInfo] publishes a [ConnectorInfo]
// (version, host, services and the outcome of their last real operation)
// to the gateway, after each HELLO and on every change: health reported
// from real work, without probing anything on a timer.
//
// # Reconnect waves
//
// When a cloud restarts, every connector reconnects. So that the fleet
// does not come back in the same second (each connect costs the gateway
// a TLS handshake, a signature check and a signed key exchange):
//
//   - A gateway admits connects at GatewayConfig.AcceptRate (default
//     [DefaultAcceptRate], 500 per second) with at most MaxHandshakes
//     (default [DefaultMaxHandshakes], 256) in progress, and answers the
//     rest 503 with a Retry-After before doing any work past TLS; the
//     shed connectors get consecutive slots at the rate the node admits.
//     The connector waits the Retry-After plus up to a second
//     ([ErrGatewayBusy] in its status).
//   - Each connect is told a reconnect window, max(ExpectedFleet, live
//     sessions) over four fifths of the rate the node admits (AcceptRate,
//     or less when its connects are slow): after an abrupt loss the
//     connector's first retry is uniform over it (at least over
//     BackoffBase), and no later retry over less; then the usual backoff
//     (1 s base, 30 s cap, full jitter, reset after a stable minute).
//     Without a window (a gateway of an earlier version) the backoff is
//     unchanged.
//   - [Gateway.Shutdown] sends each session a GOAWAY with a reconnect
//     delay, spread evenly over that window; the connector keeps serving
//     on the old session and dials its replacement after the delay.
//
// Hints that arrive outside the sealed channel (the 503, the window) could
// be forged by a relay, so the connector clamps them: it waits at least a
// second after a 503 and at most [MaxReconnectDelay] (5 minutes) for any
// hint. Set GatewayConfig.ExpectedFleet to the number of connectors a node
// serves, so that a restarted node, which starts with no sessions,
// announces the right window. TestReconnectWave runs 5 000 connectors
// through a restart in one process (BENCHMARKS.md).
//
// # Deployment
//
// Serve the Gateway behind a TLS 1.3 http.Server (HTTP/1.1 upgrades must
// reach it; a load balancer in front must pass WebSocket upgrades). The
// gateway clears the server's read and write deadlines on upgraded
// connections, so server timeouts do not end sessions. Several gateway
// nodes share one [Store], one [ReplayCache] and a [Forwarder]
// (tunnel/tunnelnats); a connector's sessions then serve calls made on any
// node. Drain a node with [Gateway.Shutdown]
// before stopping it: connectors move to other nodes without a failed
// call.
//
// A connector reaches the gateway through HTTPS_PROXY / NO_PROXY, or an
// explicit ConnectorConfig.ProxyURL: an HTTP proxy (http:// or https://,
// Basic credentials) or a SOCKS5 proxy (socks5://, or socks5h:// to let the
// proxy resolve the gateway's name; RFC 1929 user name and password). A
// SOCKS5 proxy that refuses the credentials or the destination gives
// [ErrProxyRefused]. Extra CA certificates (a TLS-inspecting proxy's) go in
// ConnectorConfig.ExtraRootCAs.
// Identity does not depend on TLS client certificates, so inspection does
// not break it. TLSConfig.InsecureSkipVerify is refused unless
// ConnectorConfig.DangerousAcceptAnyServerCertificate is set, and then
// every connect logs a warning.
//
// # Security
//
// TLS protects the tunnel against the internet, not against a proxy that
// inspects it. So the tunnel protects itself end to end (SPEC.md, "Threat
// model"): enrollment sends the token sealed with HPKE to the cloud key
// whose fingerprint the token carries, and pins that key; every session
// starts with an X25519 exchange signed by the cloud key and by the
// connector's enrolled key, bound to that connection's connect token; every
// later message is sealed with AES-256-GCM under per-direction keys and
// counter nonces. Sealing is skipped only on a TLS-bound session: both
// signed HELLOs carry the same TLS 1.3 exporter value, so connector and
// gateway are the two ends of one TLS connection and nothing between them
// ends TLS (the connector logs "connected" with sealed=false; through an
// inspecting proxy or a load balancer that ends TLS, sealed=true; the
// gateway reports the same in [LiveConnector].Sealed and
// [PresenceEvent].Sealed; [GatewayConfig].SealAlways seals always). A
// relay can deny service and see sizes and timing; it
// cannot read or alter requests or responses, pose as either end, or use a
// token it copied. A failed check is [ErrHandshake], [ErrCloudKeyMismatch]
// or a closed session; none is retried silently into success. Composition
// above the tunnel should still seal what matters most (passwords) to the
// connector's own key as a second layer.
//
// # Limits and costs
//
// A stream buffers at most one window (1 MiB by default) in each
// direction; a session carries at most MaxStreams concurrent streams (128).
// Sealing costs one AES-GCM pass per message at each end, into a pooled
// buffer and without allocation: little on a small round trip, about a
// third of bulk throughput (raw TLS with the same sealing added and
// nothing else runs at about two thirds of raw TLS on a 2-core machine). A
// TLS-bound session does not pay it (BENCHMARKS.md).
// Each end writes a message as one WebSocket frame in one TLS Write,
// masked in place on the connector: a 64 KiB message is five TLS records,
// four of them full, not the seventeen that the WebSocket library's 4 KiB
// buffer made. Each end also reads its frames itself, straight into the
// pooled buffer the message is opened in; the WebSocket library does the
// opening handshake only. An idle gateway session costs about 21 KB and one
// goroutine, and no timer of its own: one timer per gateway checks every
// session for silence, ten times per ping interval. Its heartbeat is one
// PING read every 5 s and one PING write every 10 s (see BENCHMARKS.md
// for its CPU beside plain TLS connections echoing a ping).
//
// # Latency
//
// A round trip alone on its session involves no goroutine hand-off: the
// caller reads its own response (the gateway's read role passes to it,
// and back to the session's reader lazily, within a millisecond once the
// callers are gone), and the connector serves a request that arrives
// alone on its reading goroutine, handing reading on after 200 µs or as
// soon as the handler waits for its peer. On an otherwise idle machine a
// hand-off wakes a second thread, which costs about a third of a raw TCP
// round trip (BENCHMARKS.md). Under concurrency the session's reader
// dispatches responses and handler goroutines serve requests, as before.
//
// Under concurrency frames that become ready together leave together: a
// goroutine about to write while other streams are open queues its frame
// and yields the processor once, and the frames written meanwhile (other
// callers woken by the same message, other handlers) go out with it as one
// sealed message, one TLS record and one system call. With 64 callers on
// one session that is about ten frames per message instead of one, and
// the session's throughput about nine tenths of 64 raw TCP connections'
// (BENCHMARKS.md). A frame waits while its processor runs the goroutines
// queued on it, never for a timer; a lone stream's frames are written at
// once.
//
// # Protocol
//
// The wire format is specified in SPEC.md: sealed WebSocket binary messages
// carrying frames (type, flags, stream ID, payload), subprotocol
// "liaison.tunnel.v2", a signed HELLO exchange, per-stream credit, pings
// both ways (rate-limited) and GOAWAY.
//
// # Errors
//
// A RoundTripper returns [ErrNotConnected] at once when no session is live,
// errors wrapping [ErrSessionLost] when a session died under a request that
// could not be retried, and [ErrAborted] when the handler failed
// mid-response. GET, HEAD, OPTIONS and requests with the header
// "Liaison-Idempotent: true" ([IdempotentHeader]) are retried once on
// another live session if the first dies before the response head.
//
// The caller's context bounds every wait of a round trip (a stream slot,
// room in the write batch, the response): it returns the context's error
// at once and the connector's handler is cancelled. Two exceptions: a
// caller whose goroutine is itself writing to a peer that reads nothing
// returns when the keepalive declares the session dead, three ping
// intervals after that write started (on a gateway, within a tenth of an
// interval more: [ErrPeerSilent]); and a caller
// alone on its session reads its own response (no hand-off from the
// session's reader: see "Latency" below), so if its context ends while a
// message is arriving it returns once that message is read, or when the
// keepalive declares a stalled peer dead.
// [Connector.Run] returns [ErrRevoked] when the connector was revoked; its
// status reports [ErrGatewayBusy] (a [*BusyError]) for a connect the
// gateway shed, [ErrHandshake] (with [ErrCloudKeyMismatch] when the
// gateway did not prove the pinned key) and it retries. [NewConnector]
// returns [ErrCloudKeyMissing] for an identity enrolled before protocol v2.
//
// Failed connects that something on the path causes are reported in
// [Status].Err as a [*ConnectError] that names the fix, and Run retries
// them: [ErrProxyAuth] (the proxy answered 407; the message names the
// proxy), [ErrUntrustedCertificate] (the certificate shown for the cloud
// comes from an unknown CA; the message names its issuer, usually a
// TLS-inspecting proxy's CA to add to ExtraRootCAs) and [ErrUpgradeRefused]
// (the upgrade was answered with anything but 101 and is not the
// gateway's own 401 or 403: a proxy or firewall removed the WebSocket
// upgrade).
package tunnel
