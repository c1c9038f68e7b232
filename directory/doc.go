// Package directory reads users from Active Directory and OpenLDAP for an
// on-premises connector: browse the tree to build a mapping, stream the
// users in a mapping's scope, follow changes since a cursor, look one user
// up and check a password.
//
// For most uses, [Open] a [Client] from a [Config] (server URLs, a service
// account, the CA that signed the servers' certificates), describe which
// users matter with a [Mapping], then call [Client.Users],
// [Client.Lookup] or [Client.CheckCredentials]. Close the client when done.
//
// # Connections
//
// Nothing is dialled until a call needs the server. "ldaps://" URLs speak
// TLS from the first byte; "ldap://" URLs are upgraded with StartTLS before
// any bind, and certificates are always verified (against Config.CAPEM,
// Config.TLSConfig or the system pool). Servers are tried in order; after a
// failure the client sticks to the server that answered. Service-account
// searches share a small pool whose idle connections are closed after
// Config.IdleTimeout, since a connector talks to the directory only when
// asked. Credential checks use a separate pool whose connections only ever
// carry binds and are reset to anonymous after each successful one, so no
// connection stays bound as an end user and no search ever runs as one.
//
// go-ldap takes no context; every call here does, and honours it by closing
// the connection when ctx ends: cancelling a running search stops it.
//
// # Profiles
//
// The RootDSE tells Active Directory (and Samba AD) from anything else,
// which is treated as OpenLDAP; Config.Profile overrides. Both map to one
// [User]:
//
//	            Active Directory              OpenLDAP
//	ID          objectGUID (GUID string)      entryUUID
//	Login       sAMAccountName                uid
//	UPN         userPrincipalName             -
//	Email       mail                          mail
//	Disabled    userAccountControl & 0x2      pwdAccountLockedTime = 000001010000Z (ppolicy)
//	Locked      msDS-User-Account-Control-    any other pwdAccountLockedTime (ppolicy)
//	            Computed & 0x10 (UF_LOCKOUT;
//	            lookups only, not scans)
//	Expired     accountExpires in the past    - (no account expiry)
//	Groups      member of (objectClass=group) member/uniqueMember of groupOfNames/groupOfUniqueNames
//
// Groups always holds nested memberships. On AD a single user's groups come
// from the in-chain matching rule (1.2.840.113556.1.4.1941); elsewhere that
// rule silently matches nothing, so groups are expanded breadth first with
// cycle detection, at most Config.MaxGroupDepth levels (Config.NoInChain
// does the same on AD, for servers such as Samba that evaluate the rule
// slowly). Full scans load the group graph once instead of querying per
// user. Large AD groups are read with range retrieval
// ("member;range=0-1499", ...).
//
// # Searching
//
// Searches are paged (RFC 2696) and streamed to a callback; a size or time
// limit is [ErrSizeLimit] or [ErrTimeLimit], never a silent end of data.
// The pages of a full scan are read on their own connection by a small BER
// reader (one buffer per message, values sliced from it) that keeps a
// 100 000-user scan faster than ldapsearch with a flat heap; everything else
// goes through go-ldap.
// Referrals (Samba returns one to CN=Configuration from the domain root) are
// ignored, never chased. [Client.Lookup] returns [ErrNotFound] for no match
// and [ErrAmbiguous] for several: it never takes the first hit.
//
// # Credential checks
//
// An empty password is refused before anything is sent ([ErrEmptyPassword]):
// an empty simple bind is an anonymous bind, which AD reports as success.
// User input enters filters once, escaped (RFC 4515), where the filter is
// built; DNs are compared parsed and normalised ([SameDN]), never as strings.
// Refusals are a *[CredentialError] whose [Reason] comes from AD's bind
// sub-codes (52e, 775, 533, 532, 701, 773) or OpenLDAP's password-policy
// response control. Passwords are never logged.
//
// A service that checks passwords on users' behalf must not lock their
// accounts: put package directory/loginguard in front. It resolves the name
// with [Client.Resolve] (a lookup without groups) and checks with
// [Client.CheckAccount], which refuses with [ErrAccountChanged], before any
// bind, when the name no longer resolves to the account it counted.
//
// # Change tracking
//
// Every full scan returns a [Cursor]; [Client.Changes] returns the users
// changed since. On AD the cursor holds the domain controller's
// highestCommittedUSN and invocation ID, and a different DC makes it
// invalid ([ErrCursorInvalid]: run a full scan). On OpenLDAP it holds the
// naming context's contextCSN (the newest entryCSN, finer than
// modifyTimestamp's whole seconds) and its entryUUID. Changes reports the
// users in scope that changed; [Client.Departures] reports, since the same
// cursor, the users who left: deleted (AD: the Show Deleted control,
// isDeleted and lastKnownParent; OpenLDAP: the syncprov overlay's session
// log, RFC 4533) or changed out of scope (moved to another OU, no longer
// matching the filter or, when the user entry changed, no longer in the
// groups). A membership removal touches only the group entry (AD's memberOf
// is a back link; OpenLDAP's memberof overlay does not move the member's
// entryCSN): [Client.ChangedGroups] names the mapping's groups changed
// since the cursor, and a caller that remembers each user's groups asks
// Whereabouts about their former members. When the server cannot tell
// deletions since a cursor, Departures returns [ErrDeparturesUnseen] and the
// caller runs a full scan.
// [Client.Whereabouts] says why given IDs are missing from a mapping (the
// removals of a full scan): deleted, out of scope, or left the groups.
//
// What the servers need for incremental deletions:
//
//   - Active Directory: the service account must read the children of the
//     Deleted Objects container, which only administrators may by default.
//     As a domain admin: dsacls "CN=Deleted Objects,DC=example,DC=com"
//     /takeownership, then dsacls "CN=Deleted Objects,DC=example,DC=com"
//     /G EXAMPLE\svc-liaison:LCRP (List Contents and Read Property,
//     inherited by the tombstones). Without it, Departures sees the
//     container but no tombstone and returns ErrDeparturesUnseen: every
//     run is then a full scan (cheap, see BENCHMARKS.md), never a run that
//     misses deletions. (Samba: scripts/testbed/samba-grant-deleted.py.)
//   - OpenLDAP: the syncprov overlay with a session log (olcSpSessionlog,
//     for example 100000 operations) on the database. Without it, or once
//     more operations happened since the cursor than the log keeps,
//     syncprov answers with its present phase, which names what is there
//     and not what went: ErrDeparturesUnseen.
//
// # What it won't do
//
// It writes nothing to the directory, chases no referrals, supports no SASL
// or Kerberos binds (simple binds over TLS only), and reads no posixGroup
// memberUid lists.
package directory
