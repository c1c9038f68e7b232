package keyshare

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/liaisonhq/liaison/internal/atomicfile"
	"github.com/liaisonhq/liaison/keyenvelope"
)

// Errors of the state file operations, for errors.Is.
var (
	// ErrNoRequest: Approve was given a fingerprint no pending request has.
	ErrNoRequest = errors.New("keyshare: no pending keyring request with that fingerprint (run: connector keys requests; requests appear after the cloud's next key-share round)")
	// ErrVersionMissing: CheckPromote found live connectors without the
	// version.
	ErrVersionMissing = errors.New("keyshare: kek version not yet on every live connector")
	// ErrNoMember: Revoke was given a fingerprint no member has.
	ErrNoMember = errors.New("keyshare: no approved connector with that fingerprint (run: connector keys members)")
)

// StateFileError is returned when the state file cannot be read, parsed or
// written: Op is "read", "parse" or "write".
type StateFileError struct {
	Path string
	Op   string
	Err  error
}

func (e *StateFileError) Error() string {
	if e.Op == "parse" {
		return fmt.Sprintf("keyshare: state file %s is corrupt: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("keyshare: %s state file %s: %v", e.Op, e.Path, e.Err)
}

func (e *StateFileError) Unwrap() error { return e.Err }

// state is the state file (0600): what a person approved or typed and what
// the last round reported.
type state struct {
	// JoinApprover is the approver's fingerprint typed at Join; cleared
	// once the keyring arrived.
	JoinApprover string    `json:"join_approver,omitempty"`
	Members      []Request `json:"members,omitempty"`
	Requests     []Request `json:"requests,omitempty"`
	Peers        []Peer    `json:"peers,omitempty"`
	Synced       time.Time `json:"synced,omitzero"`
}

func (s *state) members() []keyenvelope.Member {
	out := make([]keyenvelope.Member, len(s.Members))
	for i, m := range s.Members {
		out[i] = m.Member()
	}
	return out
}

func (s *state) setMembers(ms []keyenvelope.Member) {
	s.Members = s.Members[:0]
	for _, m := range ms {
		s.Members = append(s.Members, RequestOf(m))
	}
}

// trusts: a non-revoked member with the same ID and keys.
func (s *state) trusts(m keyenvelope.Member) bool {
	fp := m.Fingerprint()
	for _, x := range s.members() {
		if !x.Revoked && x.ConnectorID == m.ConnectorID && x.MatchFingerprint(fp) {
			return true
		}
	}
	return false
}

func readState(path string) (*state, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &state{}, nil
	}
	if err != nil {
		return nil, &StateFileError{Path: path, Op: "read", Err: err}
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, &StateFileError{Path: path, Op: "parse", Err: err}
	}
	return &s, nil
}

func writeState(path string, s *state) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(b, '\n')); err != nil {
		return &StateFileError{Path: path, Op: "write", Err: err}
	}
	return nil
}

// Lock takes the lock a [Handler] holds while a round reads and writes the
// state file and the KEK file, so that a change a person makes at the same
// time (a KEK file rotated, a member approved) is not lost to a concurrent
// round. It is a lock file beside stateFile (stateFile + ".lock"), so it
// serialises processes, not only goroutines; one older than a minute is
// taken to be left by a crash. It waits up to ten seconds. Call the
// returned function to release it.
func Lock(stateFile string) (unlock func(), err error) {
	lock := stateFile + ".lock"
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			f.Close()
			return func() { os.Remove(lock) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("keyshare: lock %s: %w", lock, err)
		}
		if fi, serr := os.Stat(lock); serr == nil && time.Since(fi.ModTime()) > time.Minute {
			os.Remove(lock)
			continue
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("keyshare: %s is held by another process (delete it if none runs)", lock)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// update runs fn on the locked state and writes it back.
func update(path string, fn func(*state) error) error {
	unlock, err := Lock(path)
	if err != nil {
		return err
	}
	defer unlock()
	s, err := readState(path)
	if err != nil {
		return err
	}
	if err := fn(s); err != nil {
		return err
	}
	return writeState(path, s)
}

// Requests lists the pending keyring requests the last round brought, each
// with its fingerprint recomputed from its keys.
func Requests(stateFile string) ([]Request, error) {
	s, err := readState(stateFile)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(s.Requests)
	for i := range out {
		out[i].Fingerprint = out[i].Member().Fingerprint()
	}
	return out, nil
}

// Members lists the connectors approved here or learnt from a trusted
// share, revoked ones included (Revoked set).
func Members(stateFile string) ([]Request, error) {
	s, err := readState(stateFile)
	if err != nil {
		return nil, err
	}
	return s.Members, nil
}

// Approve approves the pending request whose fingerprint a person compared
// with the one the new connector shows: it becomes a member, and the
// running [Handler] seals the keyring to it in the next round. It returns
// the member; [ErrNoRequest] when no pending request matches. A member
// revoked here is never approved again.
func Approve(stateFile, fingerprint string) (Request, error) {
	var got Request
	err := update(stateFile, func(s *state) error {
		i := slices.IndexFunc(s.Requests, func(r Request) bool { return r.Member().MatchFingerprint(fingerprint) })
		if i < 0 {
			return fmt.Errorf("%w: %s", ErrNoRequest, fingerprint)
		}
		req := s.Requests[i]
		req.Revoked = false
		m := req.Member()
		for _, x := range s.members() {
			if x.Revoked && x.MatchFingerprint(m.Fingerprint()) {
				return fmt.Errorf("keyshare: %s (%s) was revoked here; a revoked connector is never approved again: enroll it anew", m.ConnectorID, m.Fingerprint())
			}
		}
		s.setMembers(keyenvelope.MergeMembers(s.members(), []keyenvelope.Member{m}))
		s.Requests = slices.Delete(s.Requests, i, i+1)
		got = RequestOf(m)
		return nil
	})
	return got, err
}

// Revoke marks an approved connector revoked here: no later version is
// sealed to it or accepted from it, and the revocation travels with this
// connector's next shares. [ErrNoMember] when no member matches. Revoke it
// at the relay too, so that it stops being listed.
func Revoke(stateFile, fingerprint string) (Request, error) {
	var got Request
	err := update(stateFile, func(s *state) error {
		i := slices.IndexFunc(s.Members, func(r Request) bool { return r.Member().MatchFingerprint(fingerprint) })
		if i < 0 {
			return fmt.Errorf("%w: %s", ErrNoMember, fingerprint)
		}
		s.Members[i].Revoked = true
		got = s.Members[i]
		return nil
	})
	return got, err
}

// Join prepares a connector without a keyring to receive the tenant's: it
// accepts the first keyring only from the connector whose fingerprint a
// person typed (read on the approving connector). The caller makes sure the
// connector has no keyring of its own.
func Join(stateFile, approverFingerprint string) error {
	fp := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(approverFingerprint))
	if len(fp) != 32 || strings.Trim(fp, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
		return fmt.Errorf("keyshare: %q is not a fingerprint (eight groups of four letters and digits, from connector keys fingerprint on the approving connector)", approverFingerprint)
	}
	return update(stateFile, func(s *state) error {
		s.JoinApprover = approverFingerprint
		return nil
	})
}

// Joining reports whether Join ran and the keyring has not arrived yet:
// the connector starts without a keyring and receives it in a round.
func Joining(stateFile string) (bool, error) {
	s, err := readState(stateFile)
	if err != nil {
		return false, err
	}
	return s.JoinApprover != "", nil
}

// CheckPromote reports whether every live connector of the tenant, as the
// last round listed them, holds version (self, this connector's ID, is
// skipped): nil, or an error wrapping [ErrVersionMissing] that names the
// connectors without it.
func CheckPromote(stateFile, self string, version uint32) error {
	s, err := readState(stateFile)
	if err != nil {
		return err
	}
	if s.Synced.IsZero() && len(s.Members) > 1 {
		return fmt.Errorf("%w: no key-share round has run on this connector yet (is it running and connected?); wait for one or pass --force", ErrVersionMissing)
	}
	var missing []string
	for _, peer := range s.Peers {
		if peer.ConnectorID != self && !slices.Contains(peer.Versions, version) {
			missing = append(missing, peer.ConnectorID)
		}
	}
	if len(missing) > 0 {
		when := "never"
		if !s.Synced.IsZero() {
			when = s.Synced.UTC().Format(time.RFC3339)
		}
		return fmt.Errorf("%w: version %d is missing on %s (last key-share round: %s); wait for the next round or pass --force", ErrVersionMissing, version, strings.Join(missing, ", "), when)
	}
	return nil
}
