package keyhttp

import (
	"os/exec"
	"strings"
	"testing"
)

// keyhttp imports keyenvelope and the standard library only (keyenvelope
// brings golang.org/x/crypto); in particular never the tunnel.
func TestDependencies(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found: cannot list dependencies")
	}
	out, err := exec.Command("go", "list", "-f", "{{join .Imports \"\\n\"}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, ".") && p != "github.com/liaisonhq/liaison/keyenvelope" {
			t.Errorf("keyhttp imports %s", p)
		}
	}
	out, err = exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/liaisonhq/liaison/") && !strings.HasPrefix(p, "github.com/liaisonhq/liaison/keyenvelope") {
			t.Errorf("keyhttp depends on %s", p)
		}
	}
}
