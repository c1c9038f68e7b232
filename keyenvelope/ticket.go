package keyenvelope

import (
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Ticket errors.
var (
	// ErrInvalidTicket is returned for a ticket that does not parse, does
	// not verify against the pinned scheduler key, has impossible times,
	// names no job purpose (kind 7) or one the policy does not accept.
	ErrInvalidTicket = errors.New("keyenvelope: invalid ticket")
	// ErrTicketExpired is returned for a well-signed ticket past its expiry.
	ErrTicketExpired = errors.New("keyenvelope: ticket expired")
)

const (
	maxTicketField = 1024
	maxTicketSize  = 8192
)

// JobPurpose is what a job ticket releases an ekey for. The scheduler that
// signs tickets decides who may have which (see the package docs, "Job
// purposes"); the connector accepts only the known values.
type JobPurpose string

// Job purposes, exactly these strings on the wire.
const (
	// JobBackup: a backup worker encrypts a user's new data. A cloud
	// refuses it for a user disabled in the cloud or in the directory.
	JobBackup JobPurpose = "backup"
	// JobRestore: a worker decrypts existing backups, for example for an
	// administrator recovering a departed user's data. It stays possible
	// for disabled users.
	JobRestore JobPurpose = "restore"
)

func (p JobPurpose) known() bool { return p == JobBackup || p == JobRestore }

// Ticket is a job's authorization to receive one ekey: the cloud's
// scheduler signs it (Ed25519) and the connector releases the ekey only to
// the worker key it names, only for the tenant, user and ekey it names, only
// for a known job purpose, and only before it expires.
type Ticket struct {
	JobID  string
	Tenant string
	User   string
	// Purpose is the ekey's own purpose: it must match the Context.Purpose
	// the ekey was wrapped with (for example "backup" for a user's backup
	// data key, released for backups and restores alike).
	Purpose string
	// JobPurpose is what this job does with the ekey: JobBackup or
	// JobRestore. Required.
	JobPurpose JobPurpose
	EkeyID     EkeyID
	IssuedAt   time.Time // whole seconds
	Expires    time.Time // whole seconds
	WorkerKey  hpke.PublicKey
}

// IssueTicket signs t with the scheduler's key and returns the ticket's
// binary form. Times are truncated to whole seconds.
func IssueTicket(scheduler ed25519.PrivateKey, t *Ticket) ([]byte, error) {
	if t.JobID == "" || t.Tenant == "" || t.User == "" {
		return nil, fmt.Errorf("%w: job id, tenant and user are required", ErrInvalidTicket)
	}
	if !t.JobPurpose.known() {
		return nil, fmt.Errorf("%w: job purpose %q is neither %q nor %q", ErrInvalidTicket, t.JobPurpose, JobBackup, JobRestore)
	}
	for _, f := range []string{t.JobID, t.Tenant, t.User, t.Purpose} {
		if len(f) > maxTicketField {
			return nil, fmt.Errorf("%w: field longer than %d bytes", ErrInvalidTicket, maxTicketField)
		}
	}
	if t.WorkerKey == nil {
		return nil, fmt.Errorf("%w: worker key is required", ErrInvalidTicket)
	}
	suite, ok := suiteForKEM(t.WorkerKey.KEM().ID())
	if !ok {
		return nil, fmt.Errorf("%w: unsupported worker key kem 0x%04x", ErrInvalidTicket, t.WorkerKey.KEM().ID())
	}
	if !t.Expires.After(t.IssuedAt) {
		return nil, fmt.Errorf("%w: expiry not after issue time", ErrInvalidTicket)
	}
	if t.IssuedAt.Unix() < 0 {
		return nil, fmt.Errorf("%w: issue time before 1970", ErrInvalidTicket)
	}
	b := appendTicketBody(nil, suite, t)
	sig := ed25519.Sign(scheduler, labeled(labelTicket, b))
	return append(b, sig...), nil
}

// appendTicketBody appends the signed part of a ticket: kind 8 with its job
// purpose, or kind 7 for a ticket without one (the format parseTicket reads
// back from older schedulers; IssueTicket never writes it).
func appendTicketBody(b []byte, suite Suite, t *Ticket) []byte {
	kind, fields := kindJobTicket, []string{t.JobID, t.Tenant, t.User, t.Purpose, string(t.JobPurpose)}
	if t.JobPurpose == "" {
		kind, fields = kindTicket, fields[:4]
	}
	b = append(b, magic...)
	b = append(b, formatVersion, byte(kind))
	b = binary.BigEndian.AppendUint16(b, uint16(suite))
	for _, f := range fields {
		b = appendField(b, []byte(f))
	}
	b = append(b, t.EkeyID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(t.IssuedAt.Unix()))
	b = binary.BigEndian.AppendUint64(b, uint64(t.Expires.Unix()))
	return append(b, t.WorkerKey.Bytes()...)
}

// parseTicket parses the binary form strictly without checking the
// signature; it returns the ticket, the signed part and the signature. A
// kind 7 ticket parses with an empty JobPurpose; a kind 8 ticket's job
// purpose must be a known one.
func parseTicket(b []byte) (*Ticket, []byte, []byte, bool) {
	if len(b) > maxTicketSize {
		return nil, nil, nil, false
	}
	kind, suite, ok := parsePrefix(b)
	if !ok || (kind != kindTicket && kind != kindJobTicket) {
		return nil, nil, nil, false
	}
	kem, _, pkSize, ok := suite.hpkeKEM()
	if !ok {
		return nil, nil, nil, false
	}
	rest := b[prefixSize:]
	fields := make([]string, 4, 5)
	if kind == kindJobTicket {
		fields = fields[:5]
	}
	for i := range fields {
		if len(rest) < 2 {
			return nil, nil, nil, false
		}
		n := int(binary.BigEndian.Uint16(rest))
		if n > maxTicketField || len(rest) < 2+n {
			return nil, nil, nil, false
		}
		fields[i] = string(rest[2 : 2+n])
		rest = rest[2+n:]
	}
	if fields[0] == "" || fields[1] == "" || fields[2] == "" {
		return nil, nil, nil, false
	}
	if len(rest) != 16+8+8+pkSize+ed25519.SignatureSize {
		return nil, nil, nil, false
	}
	t := &Ticket{JobID: fields[0], Tenant: fields[1], User: fields[2], Purpose: fields[3]}
	if kind == kindJobTicket {
		if t.JobPurpose = JobPurpose(fields[4]); !t.JobPurpose.known() {
			return nil, nil, nil, false
		}
	}
	copy(t.EkeyID[:], rest[:16])
	issued := int64(binary.BigEndian.Uint64(rest[16:24]))
	expires := int64(binary.BigEndian.Uint64(rest[24:32]))
	if issued < 0 || expires <= issued {
		return nil, nil, nil, false
	}
	t.IssuedAt, t.Expires = time.Unix(issued, 0).UTC(), time.Unix(expires, 0).UTC()
	pk, err := kem.NewPublicKey(rest[32 : 32+pkSize])
	if err != nil {
		return nil, nil, nil, false
	}
	t.WorkerKey = pk
	signed := b[:len(b)-ed25519.SignatureSize]
	return t, signed, b[len(signed):], true
}

// ticketHash is SHA-256 over the whole ticket, signature included. Ed25519
// signatures as verified by crypto/ed25519 are not malleable, so one
// authorization has one hash.
func ticketHash(b []byte) [32]byte { return sha256.Sum256(b) }

// TicketPolicy is how a connector checks tickets.
type TicketPolicy struct {
	// SchedulerKey is the pinned public key of the cloud's scheduler.
	// Required.
	SchedulerKey ed25519.PublicKey
	// ExtraSchedulerKeys are further scheduler keys whose tickets are
	// accepted, for the overlap of a key rotation: the cloud's next key
	// before it switches to it, or its previous key until the switch is
	// done. Tickets carry no key ID; each key is tried in turn. Empty
	// outside rotations.
	ExtraSchedulerKeys []ed25519.PublicKey
	// MaxLifetime refuses tickets whose expiry is further than this after
	// their issue time. Zero means 1 hour.
	MaxLifetime time.Duration
	// ClockSkew tolerates tickets issued up to this far in the future.
	// Zero means 1 minute.
	ClockSkew time.Duration
	// JobPurposes lists the job purposes this connector releases ekeys
	// for; nil means both JobBackup and JobRestore. A tenant that wants
	// restores to go through another connector (or none) lists only
	// JobBackup.
	JobPurposes []JobPurpose
}

// VerifyTicket parses a ticket strictly and checks its signature against
// p.SchedulerKey (or one of p.ExtraSchedulerKeys), its job purpose against
// p.JobPurposes, its lifetime and its expiry at now. A kind 7 ticket, which
// names no job purpose, is refused. It returns [ErrTicketExpired] or
// [ErrInvalidTicket].
func (p TicketPolicy) VerifyTicket(b []byte, now time.Time) (*Ticket, error) {
	if len(p.SchedulerKey) != ed25519.PublicKeySize {
		panic("keyenvelope: TicketPolicy.SchedulerKey is not an Ed25519 public key")
	}
	t, signed, sig, ok := parseTicket(b)
	if !ok || !p.verifySignature(labeled(labelTicket, signed), sig) {
		return nil, ErrInvalidTicket
	}
	if t.JobPurpose == "" || (p.JobPurposes != nil && !slices.Contains(p.JobPurposes, t.JobPurpose)) {
		return nil, ErrInvalidTicket
	}
	maxLife, skew := p.MaxLifetime, p.ClockSkew
	if maxLife == 0 {
		maxLife = time.Hour
	}
	if skew == 0 {
		skew = time.Minute
	}
	if t.Expires.Sub(t.IssuedAt) > maxLife || t.IssuedAt.After(now.Add(skew)) {
		return nil, ErrInvalidTicket
	}
	if !now.Before(t.Expires) {
		return nil, ErrTicketExpired
	}
	return t, nil
}

// verifySignature reports whether sig over msg verifies with one of the
// policy's scheduler keys.
func (p TicketPolicy) verifySignature(msg, sig []byte) bool {
	if ed25519.Verify(p.SchedulerKey, msg, sig) {
		return true
	}
	for _, k := range p.ExtraSchedulerKeys {
		if len(k) != ed25519.PublicKeySize {
			panic("keyenvelope: TicketPolicy.ExtraSchedulerKeys holds a key that is not an Ed25519 public key")
		}
		if ed25519.Verify(k, msg, sig) {
			return true
		}
	}
	return false
}
