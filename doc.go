// Package liaison is the root of the Liaison SDK: an on-premises directory
// and key connector, and the cloud endpoint it talks to, for backup and SaaS
// products. This package holds no code; it is a map of the module.
//
// A connector runs inside a customer's network, dials out to the vendor's
// cloud over one WebSocket, and answers the cloud's requests: directory
// browsing and user import, credential checks, and release of per-user data
// keys. The cloud side accepts those connections, routes calls to a live
// connector of a tenant, activates devices by mass deployment and raises
// alerts when a tenant has no live connector.
//
// # Which package to use
//
//   - [github.com/liaisonhq/liaison/directory]: Active Directory and LDAP.
//     Browse naming contexts, OUs and groups, search users of a mapping
//     (paged and streamed), look a user up, check a credential, track
//     changes. Used by the connector. Its subpackage
//     [github.com/liaisonhq/liaison/directory/loginguard] fronts a web login
//     so that it can never lock a directory account.
//   - [github.com/liaisonhq/liaison/keyenvelope]: digital envelope
//     encryption. Wrap per-user data keys (ekeys) under a connector-held
//     key-encryption key, seal releases to backup workers with HPKE, rotate
//     keys. Used by the connector; the cloud only handles ciphertext.
//   - [github.com/liaisonhq/liaison/tunnel]: HTTP over one outbound
//     WebSocket. The connector serves an [net/http.Handler]; the cloud gets
//     an [net/http.RoundTripper] that reaches a live connector of a tenant.
//   - [github.com/liaisonhq/liaison/activation]: mass-deployment tokens and
//     device activation, on the cloud side.
//   - [github.com/liaisonhq/liaison/alerts]: presence-fed "Not Connected"
//     alerts and other alert kinds, with notifiers, on the cloud side.
//
// The five packages do not import each other. They meet through standard
// library types and small interfaces declared by the package that consumes
// them; the programs under examples/ compose them into a connector, a cloud
// endpoint, a device client and a one-process quickstart. Adapter
// subpackages join them on the cloud side: tunnel/tunnelsql (the connector
// registry in SQL), directory/importer/importersql (users, mappings and
// imports in SQL), keyenvelope/keyrelease (job tickets and ekey releases),
// alerts/alertstunnel (presence to alerts); masterkey seals a server's own
// secrets under a key file; httpguard hardens an internet-facing HTTP
// server and can serve it from a self-signed CA kept sealed.
package liaison
