package audit_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/liaisonhq/liaison/tunnel/audit"
)

// BenchmarkRecord is one entry appended (encode, hash, one write) beside
// the write(2) of a line of the same size to a file in the same directory:
// what appending costs beyond the system call it cannot avoid.
func BenchmarkRecord(b *testing.B) {
	dir := b.TempDir()
	e := audit.Entry{Op: "credentials", Subject: "user000001 (uid=user000001,ou=Staff,ou=Corp,dc=liaison,dc=test)",
		Outcome: "invalid_credentials", Reason: "bad_password", Status: 401}
	b.Run("baseline=write-syscall", func(b *testing.B) {
		f, err := os.OpenFile(filepath.Join(dir, "raw"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		line := []byte(strings.Repeat("x", 420) + "\n")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.Write(line); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("liaison=Record", func(b *testing.B) {
		l, err := audit.New(audit.Config{Dir: filepath.Join(dir, "log"), Signer: testKey(1), Tenant: "acme"})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		b.ReportAllocs()
		for b.Loop() {
			if err := l.Record(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
