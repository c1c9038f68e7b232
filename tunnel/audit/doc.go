// Package audit keeps a tamper-evident local record of every request a
// connector served through the tunnel: one JSON line per request, each
// line's hash covering the line before it, with checkpoints signed by the
// connector's Ed25519 identity key.
//
// Use it on the connector side, around the [net/http.Handler] the tunnel
// serves: [New] opens a [Log] in a directory, [Log.Middleware] wraps the
// handler, [Log.Close] writes the closing checkpoint. Handlers (or a thin
// wrapper the composing program writes) name what a request touched with
// [SetOperation] and [SetSubject]; [PeekJSON] reads a login name from a
// request body without keeping anything else of it. [VerifyFiles] (or a
// [Verifier]) checks files; [ParseLine] reads one line, for display.
//
// It won't keep secrets (the middleware records no body, header or query;
// what SetSubject receives is the caller's responsibility), ship the log
// anywhere, delete old files, or stop someone who holds the connector's key
// from writing a new, consistent history: see the threat model below.
//
// # Format
//
// Files are named audit-<first sequence number, 20 digits>.jsonl, mode
// 0600, in a directory of mode 0700. Each line is a JSON object whose last
// member is "hash" (and "sig" for a checkpoint):
//
//	{"v":1,"seq":7,"kind":"entry","time":"2026-12-02T04:15:00.1Z","tenant":"t1","op":"credentials","subject":"alice","outcome":"invalid_credentials","reason":"bad_password","status":401,"dur_us":1830,"prev":"<hex>","hash":"<hex>"}
//
// hash is hex SHA-256 of "liaison audit line v1\n" followed by the line's
// bytes up to (not including) `,"hash":`; those bytes hold prev, the hash
// of the line before, so every line covers all lines before it. Sequence
// numbers rise by one across files. A checkpoint line (kind "checkpoint",
// why "interval", "rotate" or "close", key_id naming the key, see [KeyID])
// adds "sig": the standard base64 Ed25519 signature of
// "liaison audit checkpoint v1\n" followed by its hex hash. The first line of
// every file is a start line: its prev is the last hash of the file before
// (named in prev_file), or all zeros when a log begins; unclean says the
// log did not end with the closing checkpoint when it was reopened.
//
// A Log always starts a new file when it is opened, continuing the chain of
// the newest file in the directory. It rotates when the file passes
// Config.MaxFileSize or Config.MaxFileAge, ending the old file with a
// "rotate" checkpoint. [Log.Close] ends the log with a "close" checkpoint.
//
// # Durability
//
// Each entry is one write(2) to a file opened with O_APPEND, made before
// the middleware returns, so the entry is in the kernel when the response
// leaves and survives a crash of the connector process. Files are fsynced
// only at checkpoints (every Config.CheckpointInterval when something was
// written, at rotation and at Close): an fsync per request costs
// milliseconds on ordinary disks, more than the 5 % of a credential check
// this log may add. A power loss can therefore lose the entries after the
// last checkpoint, which are exactly the entries no signature protects yet.
// If a write fails, the log stops (Log.Err) and the middleware answers 503
// to every later request rather than serve it unrecorded.
//
// # What verification detects
//
// The threat is someone who can write the audit directory but does not hold
// the connector's private key. [Verifier] names the first bad line (file and
// line number) for:
//
//   - any changed, added or removed byte inside a line (hash mismatch, or a
//     line that no longer parses);
//   - a deleted, inserted (even with a correct hash), duplicated or moved
//     line: sequence number or prev hash mismatch at the first line after
//     the change;
//   - a missing, truncated or reordered file when the files around it are
//     given (the start line names the previous file's last hash);
//   - a rewritten history with recomputed hashes: the next checkpoint's
//     signature no longer verifies, and forging one needs the key;
//   - a checkpoint signed by another key (key_id, then the signature).
//
// # Truncation
//
// Lines removed from the end of the log are the hard case, because a log
// that is still being written legitimately ends with lines no checkpoint
// covers yet. Precisely:
//
//   - Cut in the middle of a line: always detected (the last line has no
//     newline), until the connector restarts, which cuts the partial line
//     and marks its restart unclean (see below).
//   - Cut at a line boundary in the log of a connector that stopped cleanly:
//     detected, whatever was cut, even back to an earlier interval
//     checkpoint. The last line is then not the closing checkpoint, which
//     cannot be forged: Verifier.Finish returns [ErrOpenTail] naming the new
//     last line.
//   - Cut at a line boundary while the connector runs: detected as soon as
//     it writes its next line (the next request, interval checkpoint or the
//     closing checkpoint), since that line chains to the hash of the last
//     line it wrote, which is gone.
//   - Cut at a line boundary in the log of a connector that crashed or was
//     killed (or in a copy taken while it ran, before it wrote again): NOT
//     detectable from the files alone, and not only for the lines after the
//     last checkpoint ([Report.Unsigned]): a checkpoint proves the lines
//     before it, nothing proves that lines after the last surviving one
//     existed, so the log can be cut back to any earlier line. [ErrOpenTail]
//     is what such a log looks like anyway. What detects it is a record
//     kept outside: each checkpoint's sequence number and hash go to
//     Config.Logger (journald, a log shipper), [Log.Head] gives the current
//     ones, and [Verifier.Expect] fails when the log no longer holds a
//     recorded line. With checkpoints every Config.CheckpointInterval (one
//     minute by default) and their log records out of the attacker's reach,
//     at most the requests since the last recorded checkpoint can vanish
//     without trace.
//   - Cut while the connector is stopped, then the connector restarted: the
//     new file's start line is marked unclean and [Report.Notes] says so;
//     the chain itself is consistent (the next checkpoints cover what the
//     file held at restart), so this is a note, not an error. A crash looks
//     the same. The same note shows lines appended to a stopped
//     connector's log (forged lines chained to the last real one), an
//     emptied newest file, and the newest files removed back to a "rotate"
//     checkpoint.
//
// It also cannot detect, from the files alone:
//
//   - removal of the newest files of a stopped connector back to the end of
//     an earlier run (a file ending with the closing checkpoint): the next
//     run continues from there, cleanly. An outside record
//     ([Verifier.Expect]) detects it;
//   - removal of whole files from the beginning, or of every file: the first
//     file given is trusted as the start ([Report.FirstPrev] is not zero and
//     a note says so when the log's real beginning is missing);
//   - anything done by someone holding the connector's private key: they
//     can write a whole new, consistent, signed history. Only a hash
//     recorded outside ([Verifier.Expect]) shows the rewrite.
package audit
