package tunnel

import (
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The package documentation lives in doc.go and has sections.
func TestPackageDoc(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	require.NoError(t, err)
	require.NotNil(t, f.Doc, "doc.go has no package comment")
	doc := f.Doc.Text()
	assert.True(t, strings.HasPrefix(doc, "Package tunnel "))
	for _, h := range []string{"# Cloud side", "# Connector side", "# Protocol", "# Errors"} {
		assert.Contains(t, doc, h)
	}
	_, err = os.Stat("SPEC.md")
	assert.NoError(t, err, "the wire protocol is specified in SPEC.md")
}
