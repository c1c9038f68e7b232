package keyenvelope

import (
	"os/exec"
	"strings"
	"testing"
)

// keyenvelope depends on the standard library and golang.org/x/crypto (and
// what x/crypto itself needs, golang.org/x/sys), plus filippo.io/age (and its
// filippo.io/hpke) for the escrow format, and nothing else.
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
			strings.HasPrefix(p, "golang.org/x/sys/"),
			p == "filippo.io/age", strings.HasPrefix(p, "filippo.io/age/"),
			p == "filippo.io/hpke", strings.HasPrefix(p, "filippo.io/hpke/"):
		default:
			t.Errorf("keyenvelope depends on %s", p)
		}
	}
}
