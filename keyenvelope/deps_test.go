package keyenvelope

import (
	"os/exec"
	"strings"
	"testing"
)

// keyenvelope depends on the standard library and golang.org/x/crypto (and
// what x/crypto itself needs, golang.org/x/sys) and nothing else.
func TestDependencies(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found: cannot list dependencies")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case p == "github.com/liaisonhq/liaison/keyenvelope",
			strings.HasPrefix(p, "golang.org/x/crypto/"),
			strings.HasPrefix(p, "golang.org/x/sys/"):
		default:
			t.Errorf("keyenvelope depends on %s", p)
		}
	}
}
