// Package connector is the on-premises connector agent as a library: the
// directory and key services behind the connector's own capability policy,
// served over the tunnel to the cloud, every request recorded in a local
// audit log, configured from a JSON file or in code. Use it to build your
// own agent (a backup or SaaS vendor's on-premises service): it composes
// package tunnel's Connector, directoryhttp's handler over a
// directory.Client, keyhttp's handler over a keyenvelope.Keyring, keyshare's
// rounds and tunnel/audit's log, so that the rules those pieces must obey
// together (policy before any service, sealed passwords only, nothing served
// unrecorded) are not yours to re-implement. The examples/connector command
// is a thin main around it (flags, exit codes, the service manager); the
// quickstart and the end-to-end tests run it in process.
//
// Use LoadConfig (or build a Config in code: every file field has an
// in-memory twin), New, then Agent.Run until the context ends, and
// Agent.Close. Enroll registers a new connector with a one-time token and
// stores its identity (identity file and private key, 0600, written
// atomically).
//
// It won't open a listening socket (the cloud reaches it through the
// tunnel only), accept secrets inside the config file (passwords and
// passphrases come from files or environment variables), let the cloud
// widen its policy, or install itself as a service (your program does).
//
// # Config file
//
//	{
//	  "cloud": {
//	    "url": "https://cloud.example.com",
//	    "proxy_url": "http://proxy.corp:3128",
//	    "ca_file": "/etc/liaison/proxy-ca.pem",
//	    "identity_file": "/var/lib/liaison/identity.json"
//	  },
//	  "directory": {
//	    "urls": ["ldaps://dc1.corp.example", "ldaps://dc2.corp.example"],
//	    "bind_dn": "CN=liaison-svc,OU=Service,DC=corp,DC=example",
//	    "bind_password_env": "LIAISON_BIND_PASSWORD",
//	    "ca_file": "/etc/liaison/ad-ca.pem",
//	    "profile": "auto"
//	  },
//	  "keys": {
//	    "kek_file": "/var/lib/liaison/kek.kenv",
//	    "passphrase_file": "/etc/liaison/kek-passphrase"
//	  },
//	  "policy": {"allow": ["browse", "import", "lookup", "credentials", "keys"]},
//	  "audit": {"dir": "/var/lib/liaison/audit", "checkpoint_interval": "1m"}
//	}
//
// cloud.proxy_url is the proxy to the cloud, used by enrollment and the
// tunnel alike: an HTTP proxy (http:// or https://, Basic credentials as
// user:pass@) or a SOCKS5 proxy (socks5://user:pass@socks.corp:1080, RFC
// 1929 credentials; socks5h:// lets the proxy resolve the cloud's name, for
// networks where only the proxy can). Other schemes are refused; errors
// never print the password. Without it, HTTPS_PROXY / NO_PROXY apply.
//
// The directory and keys sections are each optional (a key-only connector
// has no directory section), but not both. Unknown fields are errors.
// keys.scheduler_public_key (base64 Ed25519) pins the key that signs release
// tickets; without it the connector uses the key Enroll fetched from the
// cloud over verified TLS and kept in the identity file.
// keys.extra_scheduler_public_keys lists further keys accepted during a
// rotation of the cloud's signing key (old and new both valid while the
// cloud switches); empty otherwise.
//
// # Connect failures
//
// A failed connect that something on the path causes is reported in the
// Status (Agent.Status, Config.OnStatus) as a *ConnectError naming the
// setting that fixes it: a proxy's 407 names the proxy and cloud.proxy_url,
// a certificate from an unknown CA names its issuer and cloud.ca_file (a
// TLS-inspecting proxy's CA), and any answer but 101 to the WebSocket
// upgrade says a proxy or firewall removed it and what to allow. Failed
// connects are logged at WARN for the first three in a row, then at ERROR
// while the connector keeps retrying.
//
// # Sealed passwords
//
// Credential checks must carry the password sealed with HPKE to the
// connector's X25519 key (package directoryhttp), a second layer inside the
// tunnel's end-to-end encryption (package tunnel, protocol v2). The key is
// kept beside the identity file and published in StatusResponse, which the
// cloud reads through the authenticated tunnel session; the cloud seals to
// it with directoryhttp.WithConnectorKey and sends the check to that
// connector (tunnel.Gateway.RoundTripperFor). Plain passwords are always
// refused; there is no opt-out.
//
// # Policy
//
// Policy.Allow names the operations the cloud may ask for: browse (info,
// OUs, groups), import (users of a mapping, changes since a cursor), lookup
// (one user), credentials (password checks) and keys (generate, release,
// rewrap). The connector enforces it on every request before any service
// sees it and answers anything else with 403 and a JSON PolicyError; a
// request it cannot classify is refused too.
//
// # Audit log
//
// Every request the cloud makes, refused ones included, is appended to a
// hash-chained local audit log (package tunnel/audit): time, operation
// ("lookup", "browse/ous", "keys/v1/release"), tenant, the login or base DN
// it touched (and the DN a lookup or credential check answered with; for a
// key release the user, job and ekey ID of its ticket once the ticket's
// signature checks), the outcome and status (for an import stream, the
// number of users sent, or the error that ended it after its 200), never a
// password, sealed blob, ekey or ticket. The log
// is on by default in "audit" beside the identity file (directory 0700,
// files 0600); audit.dir moves it, audit.disabled turns it off, and
// audit.checkpoint_interval ("1m" by default), audit.max_file_size and
// audit.max_file_age set how often the connector signs a checkpoint with its
// identity key and when files rotate. Agent.Close writes the closing
// checkpoint. When the log cannot be written, requests are refused (503)
// rather than served unrecorded. One process owns a log: "connector check"
// does not open it. "connector audit tail" shows it and "connector audit
// verify" checks it; the package documentation of tunnel/audit says what
// verification can and cannot detect.
//
// # Sharing the keyring
//
// The connectors of a tenant share one keyring without the vendor being
// able to read it (package keyenvelope, "Keyring sharing"; the rounds and
// the approvals are package keyshare's, which this package wires to the
// KEK file and the identity files). The cloud's
// key-share relay (cloudapp.Server.SyncKeyShares) posts a KeyShareSync to
// KeySharePath on every live connector of the tenant each round: the
// tenant's pending keyring requests, the sealed shares addressed to that
// connector, and the live, non-revoked connectors with the KEK version
// numbers each reported. The connector answers with its own request (while
// it has no keyring) or its keyring ID and version numbers, and with shares
// it sealed: to every member it approved or learnt from a trusted share,
// that is not revoked, that the cloud lists as live and that lacks a
// version or has a lower primary. Keys to seal to come from the
// connector's own member list, never from the cloud. Shares are signed with the connector's tunnel identity key
// and sealed to the recipient's X25519 share key (cloud.identity_file +
// ".share.x25519", created on first use). What a person approved is kept
// in keys.share_file (default keys.kek_file + ".share.json", 0600); a lock
// file beside it serialises the agent and the CLI.
//
// Runbook for a new connector of a tenant that has a keyring:
//
//  1. On the new connector: connector enroll, then connector keys
//     fingerprint (note it), and connector keys join FP where FP is what
//     connector keys fingerprint prints on an existing connector. Do not
//     run keys init: the KEK file must not exist. Start the connector.
//  2. On that existing connector (the one whose fingerprint was typed at
//     keys join), after the next round: connector keys
//     requests lists the new connector's ID and fingerprint. Compare it
//     with what the new connector showed (in person, by phone: not through
//     the vendor) and run connector keys approve FP.
//  3. Within two rounds the new connector receives the keyring, writes the
//     KEK file under its own configured passphrase and serves keys.
//
// Rotation: connector keys rotate on any connector; the running agent
// reads the new version from its KEK file at the next round and shares it
// with every approved connector; connector keys promote refuses (naming
// them) while a connector the last round listed as live lacks the version,
// unless --force; the other connectors adopt the higher primary when it
// reaches them. Revocation: revoke the connector in the cloud (the relay
// stops listing it, so nobody seals to it, and drops its requests and
// shares) and with connector keys revoke FP on a connector (the revocation
// travels in its shares; revoked members are never trusted or sealed to
// again); then rotate, promote, rewrap and retire the old version, since it
// keeps what it had. What authenticates a share is the fingerprint a person
// compared: a cloud that enrolls a connector of its own gets nothing
// without an approval, and a keyring it seals to a joining connector is
// refused because it is not signed by the approver the person named at
// keys join. Disabling and destroying a version stay per connector: run
// them on each (connector keys disable/destroy with its config).
//
// # Routes
//
// Over the tunnel the connector serves StatusPath (always allowed), the
// directory service below DirectoryPrefix (package directoryhttp: the cloud
// uses directoryhttp.NewClient("http://connector/directory", rt)) and the
// key service below KeysPrefix (package keyhttp, "http://connector/keys").
// A policy refusal reaches those clients as their *Error with Code
// CodeForbidden. The cloud endpoint's tunnel is at Cloud.URL + TunnelPath and
// its enrollment endpoint at Cloud.URL + EnrollPath.
package connector
