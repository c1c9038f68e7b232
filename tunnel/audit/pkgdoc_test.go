package audit

import (
	"go/parser"
	"go/token"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The package documentation lives in doc.go and states the format, the
// durability given and the limits of verification.
func TestPackageDoc(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	require.NoError(t, err)
	require.NotNil(t, f.Doc)
	doc := f.Doc.Text()
	assert.True(t, strings.HasPrefix(doc, "Package audit "))
	for _, h := range []string{"# Format", "# Durability", "# What verification detects", "# Truncation", "cannot detect, from the files alone", "[Verifier.Expect]"} {
		assert.Contains(t, doc, h)
	}
	// The documented labels are the ones the code uses.
	assert.Contains(t, doc, `"`+strings.TrimSuffix(hashLabel, "\n")+`\n"`)
	assert.Contains(t, doc, `"`+strings.TrimSuffix(sigLabel, "\n")+`\n"`)
}
