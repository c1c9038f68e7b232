package liaison_test

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A vendor builds its own cloud endpoint from public packages only:
// testdata/embedcloud is a separate module (its go.mod replaces this module
// with the checkout) wiring gateway, registry, imports, activation, web
// login and key releases into its own http.ServeMux. It must build, and
// import nothing under examples/ or internal/ (which another module could
// not import anyway).
func TestEmbedCloudBuilds(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found: cannot build the embedding module")
	}
	dir := filepath.Join("testdata", "embedcloud")
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(dir, "main.go"), nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if strings.HasPrefix(p, modulePath+"/examples") || strings.Contains(p, "/internal") {
			t.Errorf("the embedding program imports %s", p)
		}
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(t.TempDir(), "vendorcloud"), ".")
	cmd.Dir = dir
	// Offline: every dependency is this module's, already in the module cache.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOSUMDB=off", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build in %s: %v\n%s", dir, err, out)
	}
}
