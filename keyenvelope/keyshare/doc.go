// Package keyshare shares a tenant's keyring among its connectors through
// the vendor's relay, without the relay being able to read it (package
// keyenvelope, "Keyring sharing", does the cryptography). Use it on a
// connector that holds a keyring, or waits for one, beside its key
// service; use [Relay] (or its wire types: [Sync], [Reply], [Request],
// [Peer]) in the cloud that calls the connectors.
//
// A round: the relay POSTs a [Sync] to [Path] on every live connector of
// the tenant (the tenant's pending requests, the shares addressed to that
// connector, the live connectors with the KEK version numbers each
// reported). The connector's [Handler] answers with its own [Request]
// while it has no keyring, else its keyring ID and versions, and with the
// shares it sealed: to every member it approved or learnt from a trusted
// share, that is not revoked, that the relay lists as live and that lacks a
// version or has a lower primary. Keys to seal to come from the
// connector's own member list, never from the relay.
//
// What a person decides is kept in a state file (0600) through the
// functions of this package, which a CLI calls: [Approve] a request whose
// fingerprint was compared out of band (in person, by phone: not through
// the vendor), [Revoke] a member, [Join] naming the approver on a new
// connector, [CheckPromote] before promoting a version. [Lock] serialises
// them with a running Handler across processes. What authenticates a
// share is the fingerprint a person compared: a relay that enrolls a
// connector of its own gets nothing without an approval, and a keyring it
// seals to a joining connector is refused because it is not signed by the
// approver named at Join.
//
// It won't authenticate the relay (the tunnel does), decide who may join
// (a person does), revoke a connector at the relay, or rotate versions
// (keyenvelope.Keyring does; the next round spreads them). A revoked member
// keeps what it had: rotate, promote, rewrap and retire the old version.
package keyshare
