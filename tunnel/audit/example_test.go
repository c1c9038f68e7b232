package audit_test

import (
	"crypto/ed25519"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"

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
