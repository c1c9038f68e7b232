package audit_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/liaisonhq/liaison/tunnel/audit"
)

func Example() {
	dir, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(dir)
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)) // the connector's identity key

	log, err := audit.New(audit.Config{Dir: dir, Signer: key, Tenant: "tenant-1"})
	if err != nil {
		panic(err)
	}
	served := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		audit.SetOperation(r.Context(), "lookup")
		audit.SetSubject(r.Context(), "alice")
	})
	h := log.Middleware(served) // what the tunnel serves
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/directory/lookup", nil))
	log.Close()

	files, _ := audit.Files(dir)
	rep, err := audit.VerifyFiles(key.Public().(ed25519.PublicKey), files...)
	fmt.Println(rep.Entries, rep.Closed, err)
	// Output: 1 true <nil>
}

func ExampleVerifier() {
	dir, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(dir)
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	log, _ := audit.New(audit.Config{Dir: dir, Signer: key})
	log.Record(audit.Entry{Op: "lookup", Subject: "alice", Outcome: "ok", Status: 200})
	log.Close()

	files, _ := audit.Files(dir)
	b, _ := os.ReadFile(files[0])
	b[bytes.Index(b, []byte("alice"))] ^= 1 // one changed byte: "alice" -> "`lice"

	v := audit.NewVerifier(key.Public().(ed25519.PublicKey))
	v.File("audit.jsonl", bytes.NewReader(b))
	_, err := v.Finish()
	var le *audit.LineError
	if errors.As(err, &le) {
		fmt.Println("line", le.Line, errors.Is(err, audit.ErrTampered))
	}
	// Output: line 2 true
}

func ExamplePeekJSON() {
	r := httptest.NewRequest("POST", "/credentials", strings.NewReader(`{"name":"alice","password":"hunter2"}`))
	var who struct {
		Name string `json:"name"` // only what may be recorded
	}
	if err := audit.PeekJSON(r, 1<<20, &who); err == nil {
		fmt.Println(who.Name)
	}
	rest, _ := io.ReadAll(r.Body) // the handler still reads the whole body
	fmt.Println(len(rest))
	// Output:
	// alice
	// 37
}
