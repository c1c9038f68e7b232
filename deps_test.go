package liaison_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// The five top-level packages are independent: none may import another,
// directly or through a dependency. Adapters that join two of them live in
// subpackages or in examples/.
var topLevel = []string{"directory", "keyenvelope", "tunnel", "activation", "alerts"}

const modulePath = "github.com/liaisonhq/liaison"

func TestTopLevelPackagesAreIndependent(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found: cannot list dependencies")
	}
	for _, pkg := range topLevel {
		t.Run(pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-json=ImportPath", "./"+pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps ./%s: %v", pkg, err)
			}
			dec := json.NewDecoder(strings.NewReader(string(out)))
			for dec.More() {
				var p struct{ ImportPath string }
				if err := dec.Decode(&p); err != nil {
					t.Fatalf("decode go list output: %v", err)
				}
				for _, other := range topLevel {
					if other == pkg {
						continue
					}
					bad := modulePath + "/" + other
					if p.ImportPath == bad || strings.HasPrefix(p.ImportPath, bad+"/") {
						t.Errorf("%s depends on %s", pkg, p.ImportPath)
					}
				}
			}
		})
	}
}

// Every package in the module says what it is for: a package comment is the
// first thing a user of an SDK reads.
func TestEveryPackageHasDoc(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found: cannot list packages")
	}
	out, err := exec.Command("go", "list", "-json=ImportPath,Doc,Name", "./...").Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct{ ImportPath, Doc, Name string }
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment", p.ImportPath)
		}
	}
}
