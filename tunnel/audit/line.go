package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// Kinds of line.
const (
	// KindStart is the first line of every file: it names the file before
	// it and that file's last hash (zeros for the first file of a log).
	KindStart = "start"
	// KindEntry records one request.
	KindEntry = "entry"
	// KindCheckpoint is signed with the connector's key; it covers every
	// line before it through the chain.
	KindCheckpoint = "checkpoint"
)

// Checkpoint reasons.
const (
	ReasonInterval = "interval" // Config.CheckpointInterval elapsed
	ReasonRotate   = "rotate"   // last line of a file that was rotated
	ReasonClose    = "close"    // last line written by Log.Close
)

// Line is one parsed line of an audit file. Which fields are set depends on
// Kind.
type Line struct {
	Version int    `json:"v"`
	Seq     uint64 `json:"seq"` // rises by one from line to line, across files
	Kind    string `json:"kind"`
	// Time is when an entry's request arrived (so concurrent requests may
	// appear slightly out of time order; Seq is the order of recording), or
	// when a start or checkpoint line was written. UTC.
	Time   time.Time `json:"time"`
	Tenant string    `json:"tenant,omitempty"`

	// Entry fields.
	Op       string `json:"op,omitempty"`
	Subject  string `json:"subject,omitempty"`
	Outcome  string `json:"outcome,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Status   int    `json:"status,omitempty"`
	Duration int64  `json:"dur_us,omitempty"` // microseconds

	// Start fields: PrevFile is the name of the file before this one;
	// Unclean says the log did not end with a closing checkpoint when this
	// file was opened (a crash, or lines or files removed from or added to
	// its end while the connector was stopped).
	PrevFile string `json:"prev_file,omitempty"`
	Unclean  bool   `json:"unclean,omitempty"`

	// Checkpoint fields: Why is one of the Reason constants, KeyID names
	// the signing key (see KeyID).
	Why   string `json:"why,omitempty"`
	KeyID string `json:"key_id,omitempty"`

	// Prev is the hash of the line before (hex SHA-256), Hash this line's.
	Prev string `json:"prev"`
	Hash string `json:"-"`
	// Sig is a checkpoint's Ed25519 signature of its hash.
	Sig []byte `json:"-"`
}

// Entry is what the middleware (or Log.Record) writes for one request. It
// must never hold a secret: no password, sealed blob, ekey or ticket.
type Entry struct {
	Time     time.Time     // zero: Config.Now()
	Op       string        // e.g. "credentials", or "POST /lookup"
	Subject  string        // the DN or login the request touched
	Outcome  string        // "ok" or an error code
	Reason   string        // detail of Outcome, e.g. "bad_password"
	Status   int           // HTTP status
	Duration time.Duration // time to serve
}

const (
	version   = 1
	hashSize  = sha256.Size
	hashHex   = 2 * hashSize
	sigB64    = 88 // base64 std of 64 bytes
	maxLine   = 16 << 10
	maxField  = 512 // longest op, subject, outcome or reason kept
	hashLabel = "liaison audit line v1\n"
	sigLabel  = "liaison audit checkpoint v1\n"
)

var (
	hashMarker = []byte(`,"hash":"`)
	zeroHash   = hex.EncodeToString(make([]byte, hashSize))
)

// KeyID is the short name of an Ed25519 public key written in checkpoints:
// the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// lineHash is the hash of a line's body (everything before ,"hash":).
func lineHash(body []byte) [hashSize]byte {
	h := sha256.New()
	io.WriteString(h, hashLabel)
	h.Write(body)
	var out [hashSize]byte
	h.Sum(out[:0])
	return out
}

func sigMessage(hash string) []byte { return []byte(sigLabel + hash) }

// appendBody appends l without its hash and signature and without the
// closing brace: the bytes that are hashed. It writes what json.Marshal
// would (field order, omitempty, escaping), without reflection: it runs
// once per request.
func appendBody(b []byte, l *Line) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(l.Version), 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, l.Seq, 10)
	b = appendField(b, "kind", l.Kind, false)
	b = append(b, `,"time":"`...)
	b = l.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "tenant", l.Tenant, true)
	b = appendField(b, "op", l.Op, true)
	b = appendField(b, "subject", l.Subject, true)
	b = appendField(b, "outcome", l.Outcome, true)
	b = appendField(b, "reason", l.Reason, true)
	if l.Status != 0 {
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(l.Status), 10)
	}
	if l.Duration != 0 {
		b = append(b, `,"dur_us":`...)
		b = strconv.AppendInt(b, l.Duration, 10)
	}
	b = appendField(b, "prev_file", l.PrevFile, true)
	if l.Unclean {
		b = append(b, `,"unclean":true`...)
	}
	b = appendField(b, "why", l.Why, true)
	b = appendField(b, "key_id", l.KeyID, true)
	return appendField(b, "prev", l.Prev, false)
}

func appendField(b []byte, name, v string, omitEmpty bool) []byte {
	if omitEmpty && v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

// appendString appends s as a JSON string the way encoding/json does:
// invalid UTF-8 becomes U+FFFD; quotes, backslashes, control characters,
// <, >, &, U+2028 and U+2029 are escaped.
func appendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] >= 0x20 && s[j] < utf8.RuneSelf && s[j] != '"' && s[j] != '\\' && s[j] != '<' && s[j] != '>' && s[j] != '&' {
			j++
		}
		b = append(b, s[i:j]...)
		if i = j; i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// finish appends the hash (and signature) and the newline to body.
func finish(body []byte, hash string, sig []byte) []byte {
	b := append(body, hashMarker...)
	b = append(b, hash...)
	b = append(b, '"')
	if sig != nil {
		b = append(b, `,"sig":"`...)
		b = base64.StdEncoding.AppendEncode(b, sig)
		b = append(b, '"')
	}
	return append(b, '}', '\n')
}

// ParseLine parses one line (without its newline) and checks that its hash
// matches its content. It does not check the chain or signatures: that is
// the Verifier's job. Every error wraps ErrTampered.
func ParseLine(b []byte) (Line, error) {
	if len(b) > maxLine {
		return Line{}, bad("line longer than %d bytes", maxLine)
	}
	i := bytes.LastIndex(b, hashMarker)
	if i < 0 {
		return Line{}, bad("no hash")
	}
	body, tail := b[:i], b[i+len(hashMarker):]
	if len(tail) < hashHex+2 || tail[hashHex] != '"' {
		return Line{}, bad("malformed hash")
	}
	hash := string(tail[:hashHex])
	var sum [hashSize]byte
	if n, err := hex.Decode(sum[:], tail[:hashHex]); err != nil || n != hashSize || hex.EncodeToString(sum[:]) != hash {
		return Line{}, bad("malformed hash")
	}
	tail = tail[hashHex+1:]
	var sig []byte
	switch {
	case string(tail) == "}":
	case len(tail) == len(`,"sig":"`)+sigB64+2 && string(tail[:8]) == `,"sig":"` && string(tail[len(tail)-2:]) == `"}`:
		s, err := base64.StdEncoding.DecodeString(string(tail[8 : 8+sigB64]))
		if err != nil || len(s) != ed25519.SignatureSize {
			return Line{}, bad("malformed signature")
		}
		sig = s
	default:
		return Line{}, bad("unexpected data after the hash")
	}
	if got := lineHash(body); got != sum {
		return Line{}, bad("hash does not match the line's content (line altered)")
	}
	var l Line
	dec := json.NewDecoder(bytes.NewReader(append(body[:len(body):len(body)], '}')))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return Line{}, bad("not a JSON audit line: %v", err)
	}
	if dec.More() {
		return Line{}, bad("trailing data")
	}
	if l.Version != version {
		return Line{}, bad("version %d, want %d", l.Version, version)
	}
	switch l.Kind {
	case KindStart, KindEntry:
		if sig != nil {
			return Line{}, bad("signature on a %s line", l.Kind)
		}
	case KindCheckpoint:
		if sig == nil {
			return Line{}, bad("checkpoint without a signature")
		}
	default:
		return Line{}, bad("unknown kind %q", l.Kind)
	}
	if len(l.Prev) != hashHex {
		return Line{}, bad("malformed prev")
	}
	if _, err := hex.DecodeString(l.Prev); err != nil || hex.EncodeToString(mustHex(l.Prev)) != l.Prev {
		return Line{}, bad("malformed prev")
	}
	l.Hash, l.Sig = hash, sig
	return l, nil
}

func mustHex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}

// clip caps a recorded string so a hostile request cannot grow a line past
// what the verifier accepts.
func clip(s string) string {
	if len(s) <= maxField {
		return s
	}
	s = s[:maxField]
	for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 { // do not split a rune
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] >= 0xC0 {
		s = s[:len(s)-1]
	}
	return s + "…"
}
