package audit_test

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"testing"
	"time"

	"github.com/liaisonhq/liaison/tunnel/audit"
)

func seedLines(f *testing.F) []byte {
	dir := f.TempDir()
	c := &clock{t: time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)} // the same seed in every fuzz worker
	l, err := audit.New(audit.Config{Dir: dir, Signer: testKey(1), Tenant: "t", CheckpointInterval: -1, Now: c.now})
	if err != nil {
		f.Fatal(err)
	}
	_ = l.Record(audit.Entry{Op: "lookup", Subject: "alice", Outcome: "ok", Status: 200})
	_ = l.Checkpoint()
	_ = l.Record(audit.Entry{Op: "credentials", Subject: "bob", Outcome: "invalid_credentials", Reason: "bad_password", Status: 401})
	_ = l.Close()
	files, _ := audit.Files(dir)
	b, err := os.ReadFile(files[0])
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// ParseLine on hostile bytes: no panic, and an accepted line re-encodes to
// a hash that matches (what ParseLine promises).
func FuzzParseLine(f *testing.F) {
	for _, l := range bytes.Split(seedLines(f), []byte("\n")) {
		f.Add(l)
	}
	f.Add([]byte(`,"hash":"`))
	f.Add([]byte(`{"v":1},"hash":"0000000000000000000000000000000000000000000000000000000000000000","sig":"`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ln, err := audit.ParseLine(b)
		if err != nil {
			return
		}
		if len(ln.Hash) != 64 || len(ln.Prev) != 64 {
			t.Fatalf("accepted line with hash %q prev %q", ln.Hash, ln.Prev)
		}
		if (ln.Kind == audit.KindCheckpoint) != (ln.Sig != nil) {
			t.Fatalf("kind %s with signature %x", ln.Kind, ln.Sig)
		}
	})
}

// The verifier on hostile files: no panic; a file it accepts as closed must
// end with a closing checkpoint signed by the key, which fuzzing cannot
// forge, so only the unmodified seed may pass.
func FuzzVerify(f *testing.F) {
	seed := seedLines(f)
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte("\n\n\n"))
	pub := testKey(1).Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		v := audit.NewVerifier(pub)
		_ = v.File("fuzz", bytes.NewReader(b))
		_, err := v.Finish()
		if err == nil && !bytes.Equal(b, seed) {
			t.Fatalf("verifier accepted a modified log:\n%s", b)
		}
	})
}
