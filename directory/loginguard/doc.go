// Package loginguard puts a web login in front of a directory so that no
// number of wrong passwords, in any spelling of a name, from any number of
// parallel requests, can lock the account in the directory.
//
// Use it when a service checks end users' directory passwords on their
// behalf (a web login, an activation form) and must never be the reason an
// account is locked out. Make one [Guard] with [New] and call [Guard.Login]
// for every attempt, with the directory ([*directory.Client], or a remote
// client reaching one) that should answer it.
//
// # How it counts
//
// A directory resolves several names to one account: sAMAccountName or
// uid, userPrincipalName, mail, in any letter case, with or without
// surrounding spaces, in whatever Unicode form its matching rules accept.
// Counting failures per typed string would let every spelling spend the
// account's lockout budget again. So, for each attempt, the guard:
//
//  1. resolves the typed name to the account's stable ID ([directory.User].ID:
//     objectGUID or entryUUID) with a search, before any bind;
//  2. reserves an attempt on the counter of that ID: attempts in flight
//     count as failures until they end, so a parallel burst cannot exceed
//     the limit either;
//  3. checks the password bound to that same ID: with [AccountChecker]
//     (which [*directory.Client] implements) the directory refuses before
//     binding if the name now resolves to another account; with a plain
//     [Checker] an answer about another account fails closed;
//  4. records the outcome: a success resets the account's count (as Active
//     Directory resets badPwdCount), a failure adds to it, and an outcome
//     the guard cannot know (a timeout, a lost connection after the request
//     left) counts as a failure, since the bind may have reached the
//     directory; [directory.ErrUnavailable] (no server could be dialled)
//     does not.
//
// Names that resolve to nothing (or to more than one account) never reach a
// bind; they count per realm and typed string, case-folded, trimmed, with
// inner runs of spaces collapsed, so probing a name that does not exist is
// throttled after as many attempts as an existing one, and the answers look
// alike. Every failure also counts per source (the client address, IPv6 by
// its /64), against sprays over many names.
//
// Counters live behind the two-method [Store]: [MemoryStore] for one node
// (bounded: see [MemoryConfig].MaxKeys); a shared store lets several nodes
// share the counters (directory/loginguard/loginguardnats keeps them in a
// NATS KV bucket).
//
// # The rule the embedder must follow
//
// The guard never locks an account only if, for every directory it
// fronts:
//
//   - Config.MaxFailures is strictly below the directory's lockout
//     threshold (Active Directory "Account lockout threshold", or the
//     fine-grained policy's msDS-LockoutThreshold; OpenLDAP ppolicy
//     pwdMaxFailure), counting the failures other clients of the directory
//     may add: leave them room;
//   - Config.Window is at least the directory's observation window
//     ("Reset account lockout counter after", msDS-LockoutObservationWindow;
//     pwdFailureCountInterval, and when that is 0 the guard cannot help);
//   - every path of this service that binds as the user goes through the
//     same Guard, and every node of the service shares one Store: N nodes
//     with a MemoryStore each grant N times MaxFailures;
//   - the counters outlive the window: a MemoryStore forgets everything on
//     restart, so a restart within the window grants a fresh MaxFailures
//     (with MaxFailures 3 under a threshold of 10, two restarts within the
//     window still cannot lock; under a threshold of 5, one can). Use a
//     persistent or shared Store where restarts are frequent;
//   - the directory resets its count on a successful bind, as Active
//     Directory (badPwdCount) and OpenLDAP ppolicy (pwdFailureTime) do,
//     since the guard resets its own.
//
// # Errors
//
// [Guard.Login] returns the user on success. A refusal matches [ErrFailed]
// (wrong password, unknown or ambiguous name, disabled, locked; the cause
// stays reachable for logs, for example with [directory.ReasonOf]) or
// [ErrThrottled] (a [*ThrottledError] with RetryAfter). Show users only
// those two answers, never the cause. Any other error means the directory
// could not be asked (unreachable, not connected) and is returned as is.
//
// # What it won't do
//
// It does not stop other clients of the directory from locking accounts,
// and it cannot undo a lockout. It trusts the answers of the Directory it is
// given: when those cross a relay that could alter them (a remote directory
// behind a TLS-inspecting proxy), the resolved ID, the expected ID of the
// check and the verdict must be authenticated end to end, or a forged
// success (which resets the count) or a forged ID (a fresh count) would
// let binds through. It does not normalise Unicode forms of names
// that resolve to nothing (NFC and NFD spellings of an unknown name count
// apart; no account is at risk, no bind is sent, and the per-source limit
// still applies). It does not equalise response times between unknown names
// and wrong passwords. It keeps no audit log: log the errors it returns.
package loginguard
