// Package demoldap is an in-process LDAP server with a small demo
// directory, for the quickstart and for tests that need a directory
// without installing one.
//
// It looks like OpenLDAP to a client: an OpenLDAProotDSE, entryUUID and
// entryCSN on every entry, contextCSN on the naming context, users as
// inetOrgPerson with uid and mail, groups as groupOfNames (nested), the
// memberOf attribute of the memberof overlay, accounts disabled with the
// ppolicy pwdAccountLockedTime value 000001010000Z, and the paged results
// control (RFC 2696). Package directory talks to it exactly as it talks to
// slapd.
//
// # The demo data
//
// Under dc=acme,dc=example: ou=People with one OU per department
// (Engineering, Sales, Finance, Support) holding 20 users whose password is
// [Password]; ivan.petrov is disabled. ou=Groups holds platform (nested in
// engineering), engineering, sales, finance, support, staff (all four
// departments), backup-users (engineering, finance and julia.rossi) and
// admins. The connector's service account is [ServiceDN].
//
// # Security
//
// Start makes a CA and a certificate for 127.0.0.1 and localhost; the CA's
// key is discarded at once. The ldap:// listener refuses binds until the
// client has done StartTLS; the ldaps:// listener is TLS from the first
// byte. Anonymous clients may read the RootDSE only. Passwords are never
// returned nor matched by filters.
//
// # What it won't do
//
// It serves on loopback only, keeps everything in memory, accepts no LDAP
// writes (change entries with the Server's methods: [Server.AddUser],
// [Server.SetAttribute], [Server.SetDisabled], [Server.DeleteUser]),
// supports simple binds only and evaluates extensible-match filters (such
// as Active Directory's in-chain rule) as matching nothing, like slapd.
package demoldap
