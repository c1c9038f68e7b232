package keyenvelope

import (
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

// The package docs carry the format specification and the runbook; keep
// them in doc.go with these headings.
func TestPackageDocs(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	if f.Doc == nil {
		t.Fatal("doc.go has no package comment")
	}
	doc := f.Doc.Text()
	for _, h := range []string{"# Kind 1: symmetric wrap", "# Kind 5: KEK file", "# Rotation runbook", "# Zeroing", "# Errors"} {
		if !strings.Contains(doc, h) {
			t.Errorf("package docs lack %q", h)
		}
	}
}
