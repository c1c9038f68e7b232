// Package keyenvelope is the key custody half of a Liaison connector:
// digital envelope encryption of per-user data keys ("ekeys") under a
// key-encryption key (KEK) that lives only on the customer's connectors,
// HPKE-sealed release of ekeys to backup workers against scheduler-signed
// job tickets, and KEK rotation. The vendor's cloud stores wrapped ekeys and
// never holds the key that unwraps them.
//
// For most uses:
//
//   - On the connector, load the keyring with [ReadKEKFile] and serve
//     [Keyring.GenerateWrapped], [Keyring.Rewrap] and [Releaser.Release]
//     (the keyhttp subpackage does this over HTTP).
//   - In the cloud's scheduler, sign a [Ticket] with [IssueTicket].
//   - In the backup worker, make a one-time HPKE key, put its public half in
//     the ticket, and open the release with [OpenRelease].
//   - For the offline path, seal a new ekey to [Keyring.PublicKey] with
//     [SealToKeyring].
//
// What it won't do: encrypt backup data (use the ekey with an AEAD of your
// choice), store wrapped ekeys, talk to the network, or hold a global
// keyring. It has no configuration files other than the KEK file, and it
// logs nothing.
//
// # Objects and the text form
//
// Every object starts with the same 8-byte prefix; all integers are
// big-endian:
//
//	offset size field
//	0      4    magic "KENV"
//	4      1    format version, 1
//	5      1    kind: 1 wrap, 2 sealed, 3 release, 4 public key,
//	            5 KEK file, 6 keyring (escrow payload), 7 ticket without
//	            a job purpose (parsed, no longer accepted), 8 job ticket
//	6      2    suite: 0x0001 wrap (HKDF-SHA256, AES-256-GCM, commitment),
//	            0x0010 HPKE X25519, 0x0011 HPKE ML-KEM-768+X25519
//
// Envelopes (kinds 1 to 4) continue the header with:
//
//	8      16   key ID: the keyring's random KEK ID (kind 3: the ticket ID,
//	            the first 16 bytes of SHA-256 of the ticket)
//	24     4    key version: the KEK version (kind 3: 0)
//
// The text form of any object is "kenv1." followed by the unpadded
// base64url encoding (RFC 4648 §5) of the binary form. [DecodeText] refuses
// padding, whitespace (including the CR and LF that Go's decoder would
// skip), other alphabets, non-zero trailing bits and inputs over 8 KiB: one
// object has exactly one text form.
//
// Parsing is strict everywhere: an unknown version, kind or suite, a length
// other than the exact one for the kind and suite, and trailing bytes are
// refused. A new format is a new version number, never a reinterpretation.
//
// # Kind 1: symmetric wrap
//
//	0   28  header (kind 1, suite 0x0001, KEK ID, KEK version >= 1)
//	28  16  ekey ID
//	44  32  salt, random per wrap
//	76  32  key commitment
//	108 48  AES-256-GCM ciphertext of the 32-byte ekey, and the tag
//	        (156 bytes in all)
//
// Key schedule, with secret the KEK version's 32-byte secret:
//
//	okm    = HKDF-SHA256(ikm = secret, salt = salt,
//	                     info = "liaison/keyenvelope/v1 wrap" || 0x00 || header, L = 64)
//	key    = okm[0:32]   (AES-256-GCM key, used once; the nonce is 12 zero bytes)
//	commit = okm[32:64]
//
// The associated data is the header followed by the context, each field a
// uint16 length then its bytes, in this order:
//
//	aad = header || len(tenant) || tenant || len(user) || user ||
//	      len(ekey ID) (= 16) || ekey ID || len(purpose) || purpose
//
// Unwrap derives okm, compares commit to the stored commitment in constant
// time, and only then opens the ciphertext. The commitment makes the
// construction key-committing: AES-GCM alone is not, so without it a
// malicious cloud could craft one blob that opens under many candidate KEKs
// and use success or failure as a partitioning oracle (Len, Grubbs and
// Ristenpart, USENIX Security 2021), which matters for passphrase-derived
// keys. A fresh 256-bit salt makes every wrap use a fresh AES key, so the
// fixed nonce is never reused and no wrap count limit applies.
//
// # Kind 2: sealed to a keyring's public key (offline path)
//
//	0   28  header (kind 2, suite 0x0010 or 0x0011, KEK ID, KEK version)
//	28  16  ekey ID
//	44  Nenc HPKE encapsulated key (32 bytes for X25519, 1120 for the hybrid)
//	..  48  HPKE ciphertext of the ekey
//
// HPKE (RFC 9180) base mode with KDF HKDF-SHA256 (0x0001) and AEAD
// AES-256-GCM (0x0002); KEM DHKEM(X25519, HKDF-SHA256) (0x0020) for suite
// 0x0010, or ML-KEM-768+X25519 "X-Wing" (0x647a, draft-ietf-hpke-pq) for
// suite 0x0011. info = "liaison/keyenvelope/v1 sealed" || 0x00 || header ||
// ekey ID; the AAD of the single Seal is the same header-and-context
// encoding as kind 1.
//
// Each KEK version has one HPKE key pair per suite, derived from its secret
// so that the KEK file stores nothing more:
//
//	ikm     = HKDF-SHA256(ikm = secret, salt = "",
//	                      info = "liaison/keyenvelope/v1 hpke-keypair" || 0x00 ||
//	                             suite (2) || KEK ID (16) || version (4), L = 32)
//	keypair = KEM.DeriveKeyPair(ikm)   (RFC 9180 §7.1.3)
//
// Kind 4, a public key, is the header (kind 4) followed by the KEM's
// serialized public key (32 or 1216 bytes). It carries no signature: the
// cloud must receive it over an authenticated channel (the connector's
// tunnel), or whoever substitutes it learns every ekey sealed to it.
//
// # Kind 3: release to a backup worker
//
//	0   28  header (kind 3, suite from the worker key, ticket ID, version 0)
//	28  Nenc HPKE encapsulated key
//	..  48  HPKE ciphertext of the ekey
//
// Same HPKE suites, with info = "liaison/keyenvelope/v1 release" || 0x00 ||
// header and AAD = SHA-256(ticket), the hash of the complete ticket bytes.
// The worker's recipient key is the one named in the ticket, so another
// worker cannot open it, and the hash ties the release to one ticket. The
// interop tests open Liaison's releases with the npm package @hpke/core and
// open @hpke/core's with Liaison.
//
// # Kind 8: job ticket
//
//	0   8   prefix (kind 8, suite of the worker key: 0x0010 or 0x0011)
//	8   ..  job ID, tenant, user, purpose, job purpose: each uint16 length
//	        then bytes (job ID, tenant and user non-empty; each at most
//	        1024 bytes; job purpose exactly "backup" or "restore")
//	..  16  ekey ID
//	..  8   issued at, Unix seconds (int64)
//	..  8   expires, Unix seconds (int64), after issued at
//	..  Npk worker's HPKE public key (32 or 1216 bytes)
//	..  64  Ed25519 signature over "liaison/keyenvelope/v1 ticket" || 0x00 ||
//	        every preceding byte
//
// purpose is the ekey's own (the [Context].Purpose it was wrapped with);
// job purpose is what the job does with it ([JobBackup], [JobRestore]).
// The connector checks the signature against a pinned scheduler key (or,
// during a rotation of the scheduler's key, one of
// [TicketPolicy].ExtraSchedulerKeys: old and new are both valid while the
// cloud switches), that
// the job purpose is a known one listed in [TicketPolicy].JobPurposes
// (default both), that the lifetime is at most MaxLifetime (default 1
// hour), that it was not issued more than ClockSkew (default 1 minute) in
// the future, and that it has not expired. It then unwraps the ekey with
// the context the ticket names (tenant, user, purpose, and the ekey ID must
// equal the envelope's), so a ticket for user A cannot release user B's
// ekey: the AEAD fails. crypto/ed25519 rejects non-canonical signatures, so
// a ticket has one hash. testdata/ticket-kind8.json is a ticket built from
// this layout by testdata/ticket-kind8.py (Python and the openssl command);
// the tests check that [IssueTicket] writes exactly those bytes.
//
// Kind 7, written by earlier versions, is kind 8 without the job purpose
// field. It still parses ([OpenRelease] opens releases made for one, and
// the v1 golden file holds one) but [TicketPolicy.VerifyTicket] refuses
// it: a connector releases nothing for a job that does not say what it is.
// Upgrade the cloud's scheduler and the connectors together; in between,
// releases fail with [ErrInvalidTicket] and nothing leaks.
//
// # Job purposes
//
// The scheduler that signs tickets enforces who may have which: the cloud
// refuses a backup ticket for a user disabled in the cloud or in the
// directory (a disabled user's device must not keep encrypting new data
// under a live key), and still issues restore tickets to an administrator
// (recovering a departed user's data is the usual reason to restore). The
// connector does not look the user up again: the ticket's user is the
// cloud's user ID, which the connector cannot map to a directory entry,
// and a scheduler able to sign can already release any ekey. It checks
// that the job purpose is a known value, and a tenant can narrow
// [TicketPolicy].JobPurposes (for example to backups only, so that
// restores need another connector).
//
// A ticket may be presented more than once before it expires. Every
// release it yields is sealed to the same worker key, so a replay gives
// nobody anything the worker did not already get; keep lifetimes short.
// Whoever holds the scheduler's signing key can release any ekey of any
// tenant whose connectors pin it: keep it in an HSM or KMS, and pin one
// key per tenant if the cloud can.
//
// # Kind 5: KEK file
//
//	0   8   prefix (kind 5, suite 0x0001)
//	8   16  KEK ID
//	24  4   Argon2id time (passes)
//	28  4   Argon2id memory, KiB
//	32  1   Argon2id threads
//	33  32  salt, random per write
//	65  32  key commitment
//	97  ..  AES-256-GCM ciphertext of the keyring body, and the tag
//
// The key schedule is kind 1's with a stretched passphrase as the secret:
// stretched = Argon2id(passphrase, salt, time, memory, threads, 32); okm =
// HKDF-SHA256(stretched, salt, "liaison/keyenvelope/v1 kek-file" || 0x00 ||
// bytes 0..65, 64); AAD = bytes 0..65. The keyring body is:
//
//	primary version (4) || minimum decryption version (4) || count (2) ||
//	count × { version (4, strictly increasing) || state (1: 1 enabled,
//	          2 disabled, 3 destroyed) || secret (32, absent if destroyed) }
//
// The parameters are read and checked against floors and caps before any
// work, so a hostile file cannot make a connector spend minutes or
// gigabytes, and the file size is capped before reading:
//
//	         time  memory    threads
//	default  3     64 MiB    4
//	floor    2     19 MiB    1        (OWASP's Argon2id minimum)
//	cap      8     256 MiB   16
//
// [Keyring.WriteKEKFile] writes atomically: a temporary file in the same
// directory created with mode 0600, written, fsynced, renamed over the
// target, then the directory fsynced (not on Windows, where the rename is
// the last step). Changing the passphrase is [ReadKEKFile] then
// [Keyring.WriteKEKFile] with the new one: only this file changes. Every
// failure to open a KEK file, including out-of-range parameters, is
// [ErrUnwrap]; I/O errors are returned wrapped.
//
// # Escrow
//
// [Keyring.ExportAge] writes the keyring (kind 6: prefix, KEK ID, body, in
// text form) encrypted in the age v1 format to an X25519 age recipient, so
// the standard age tool opens it without Liaison; the tests check this with
// Debian's age. [RestoreKeyring] reads the decrypted line back. The file is
// written by filippo.io/age, the reference implementation of the format,
// rather than by an encoder of this package's own.
//
// # Errors
//
// Every failure to unwrap, open a release or open a KEK file returns
// exactly [ErrUnwrap] (compare with ==, or errors.Is): wrong context, wrong
// keyring, unknown, disabled, destroyed or too-old KEK version, any
// tampered or truncated byte, a degenerate X25519 share, a wrong
// passphrase. Functions that only parse public structure ([Inspect],
// [DecodeText], [ParsePublicKey], [RestoreKeyring]) return [ErrMalformed].
// Tickets fail with [ErrInvalidTicket] or [ErrTicketExpired], which reveal
// nothing secret. Keyring administration returns [ErrNoSuchVersion] and
// [ErrKeyState]; bad contexts [ErrInvalidContext]. Misuse that only a
// programming error can cause (a TicketPolicy without a key) panics.
//
// The error is uniform; the time it takes is not. An unwrap stops at the
// first failing stage: parsing, key lookup by the header's KEK ID and
// version, the commitment check, the AEAD tag. Everything the first two
// depend on is public. Telling a commitment failure from a tag failure
// reveals only whether the header, salt and commitment come from a genuine
// wrap under this KEK version, which the cloud storing the blobs knows
// anyway; without the KEK nobody can make a blob that passes the
// commitment, so no partitioning oracle follows.
//
// # Keyring sharing
//
// A tenant's connectors share one keyring. [SealKeyring] seals it to one
// connector (a [Member]: connector ID, Ed25519 identity key, X25519 key)
// and signs it with the sender's Ed25519 key; [OpenKeyringShare] checks and
// opens it; [Keyring.Merge] and [MergeMembers] fold it into what the
// receiver has. A relay (the vendor's cloud) carries the bytes and reads
// only the public header ([ParseShareHeader]).
//
// Trust comes from people, not from the relay. A [Member.Fingerprint]
// (SHA-256 over label, Ed25519 key and X25519 key, first 160 bits, base32
// in groups of four) is compared by a person on both connectors: on the
// existing connector before sealing to the new one (so the relay cannot
// substitute the new connector's keys), and on the new connector, which
// accepts its first keyring only from a signer with the fingerprint it was
// given (so the relay cannot substitute a keyring of its own, signed by a
// connector of its own). Afterwards a connector accepts shares only from
// non-revoked members of its member list, which arrives inside shares from
// trusted members. What this does not stop: a connector a person approved
// (or the holder of its keys) shares with anyone; a revoked connector keeps
// the versions it already had (rotate, promote, rewrap and destroy the old
// version after revoking).
//
// A share is not a "KENV" object: it has its own magic, and no text form.
// Format (all integers big-endian; the signature covers every byte before
// it, prefixed by the label "liaison/keyenvelope/v1 keyring-share-signature"
// and a zero byte):
//
//	"KSHR", format version 1
//	tenant, sender connector ID       (u8 length, 1..255 bytes each)
//	sender Ed25519 key (32), sender X25519 key (32)
//	recipient connector ID            (u8 length, 1..255 bytes)
//	recipient fingerprint hash (32)   (the full SHA-256)
//	keyring ID (16), primary (u32), count (u16, 1..1024), versions (u32 each, ascending)
//	sealed length (u32), HPKE sealed body: enc || ciphertext
//	Ed25519 signature (64)
//
// The body is sealed with HPKE base mode, DHKEM(X25519, HKDF-SHA256),
// HKDF-SHA256, AES-256-GCM, to the recipient's X25519 key, with info =
// "liaison/keyenvelope/v1 keyring-share" || 0 || header (every byte up to
// the sealed length), so the ciphertext is bound to the tenant, both
// connectors and their keys, the keyring ID and the versions. The body:
// u32 length and the keyring body of the KEK file (primary, minimum
// decryption version, versions with state and secret), then u16 member
// count and per member: u8-length ID, Ed25519 key, X25519 key, revoked
// flag (0 or 1). The keyring in the body must match the header's ID,
// primary and versions. The recipient checks, in this order: structure,
// the signer is trusted (else [ErrUntrustedSigner]), the signature, its own
// tenant, ID and fingerprint hash, the HPKE tag, the body; any other
// failure is [ErrShare].
//
// [Keyring.Merge] only adds: versions the receiver lacks (with their state
// and secret), a higher primary it has enabled, a higher minimum decryption
// version. It never changes a version the receiver has, so a replayed old
// share cannot re-enable or restore a version; disabling and destroying
// stay per connector. [MergeMembers] never un-revokes a member.
//
// # Rotation runbook
//
// Rotation never touches backup data: data is encrypted under ekeys, and
// rotation only changes which KEK version wraps them.
//
//  1. Add: [Keyring.AddVersion] creates version N+1, enabled, not primary.
//     Write the KEK file.
//  2. Distribute: seal the keyring to every approved connector of the
//     tenant ([SealKeyring]; each merges it with [Keyring.Merge]), or copy
//     the KEK file to each and reload. Until every connector has it, none
//     may wrap under it.
//  3. Promote: [Keyring.Promote](N+1). New wraps use it; old versions still
//     unwrap. Distribute again (a merge adopts a higher primary).
//  4. Rewrap in the background: list wrapped ekeys whose [Inspect] header
//     names an older version and call [Keyring.Rewrap] on each. The ekey
//     never leaves the connector. Idempotent; safe to interrupt and resume.
//  5. Disable: [Keyring.Disable](old) (or raise
//     [Keyring.SetMinDecryptionVersion]). Watch for unwrap failures for a
//     while; [Keyring.Enable] undoes it.
//  6. Destroy: [Keyring.Destroy](old) erases the secret. Anything still
//     wrapped under it is gone for good, so take an escrow export first if
//     policy demands it.
//
// # Zeroing
//
// What the package owns is overwritten after use: derived AES keys and
// commitments (the HKDF output), the Argon2id output, decrypted plaintext
// buffers, the keyring body after writing a KEK file, the escrow text
// (built and parsed as bytes, never as a string), and a destroyed version's
// secret. [Ekey.Zero] clears an ekey the caller holds. Go cannot
// promise more, and the package does not pretend to: the garbage collector
// may have copied any value before it was cleared, AES key schedules and
// HPKE contexts live inside crypto/aes and crypto/hpke where they cannot be
// cleared, strings (contexts, the text form) are immutable, and nothing is
// locked against swapping. Passphrases are taken as []byte so callers can
// clear them. Run connectors with swap encrypted or off, and treat a memory
// dump of a connector as a KEK compromise.
//
// # Randomness
//
// [NewKeyring] and [NewEkey] take an io.Reader (nil means crypto/rand) for
// keyring IDs, secrets, salts and ekeys, so tests are reproducible.
// crypto/hpke always draws its ephemeral keys from crypto/rand.
//
// # Test vectors
//
// testdata/ holds RFC 5869 (HKDF), RFC 7748 (X25519), RFC 8439
// (ChaCha20-Poly1305, used by the escrow) and RFC 9180 vectors; the HPKE
// ones are checked from the recipient side (appendix A.1.1 ciphertexts and
// exports, and exporter outputs of the exact suites used, including X-Wing),
// because crypto/hpke cannot take a fixed ephemeral key. Argon2id is checked
// against the reference argon2 command. testdata/golden-v1.json pins format
// version 1 and is decoded by the tests forever.
package keyenvelope
