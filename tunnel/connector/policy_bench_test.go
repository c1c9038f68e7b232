package connector

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkPolicy measures what the policy middleware (classify the path,
// check the allow list) adds to a request, against the same handler bare.
func BenchmarkPolicy(b *testing.B) {
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	p := Policy{Allow: []Operation{OpBrowse, OpImport, OpLookup}}
	run := func(b *testing.B, h http.Handler, path string) {
		req := httptest.NewRequest("GET", path, nil)
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
	}
	b.Run("baseline=bare-handler", func(b *testing.B) { run(b, bare, "/directory/lookup") })
	b.Run("liaison=policy-allowed", func(b *testing.B) { run(b, enforce(p, classifyDirectory, bare), "/directory/lookup") })
	b.Run("liaison=policy-refused", func(b *testing.B) { run(b, enforce(p, classifyDirectory, bare), "/directory/credentials") })
}
