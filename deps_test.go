package liaison_test

import (
	"encoding/json"
	"io"
	"os"
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

// No build output is ever tracked: a compiled test binary or program
// committed by mistake (it happened: directory/importer/importer.test) makes
// the repository heavier forever and hides what the sources build.
func TestNoTrackedBinaries(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not found: cannot list tracked files")
	}
	out, err := exec.Command("git", "ls-files", "-z").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): nothing to check", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		if strings.HasSuffix(name, ".test") || strings.HasSuffix(name, ".exe") || strings.HasSuffix(name, ".prof") {
			t.Errorf("%s is a build output and must not be tracked (git rm --cached it)", name)
			continue
		}
		if isExecutableBinary(t, name) {
			t.Errorf("%s is a compiled binary and must not be tracked (git rm --cached it)", name)
		}
	}
}

// isExecutableBinary reports whether the file starts with an ELF, PE or
// Mach-O magic number.
func isExecutableBinary(t *testing.T, name string) bool {
	f, err := os.Open(name)
	if err != nil {
		return false // deleted in the work tree
	}
	defer f.Close()
	var head [4]byte
	n, _ := io.ReadFull(f, head[:])
	if n < 4 {
		return false
	}
	switch {
	case string(head[:]) == "\x7fELF",
		string(head[:2]) == "MZ",
		head == [4]byte{0xcf, 0xfa, 0xed, 0xfe}, head == [4]byte{0xce, 0xfa, 0xed, 0xfe}:
		return true
	}
	return false
}

// Metrics are the cloud's (examples/internal/cloudapp): the SDK packages
// and the connector program carry no Prometheus code.
func TestNoPrometheusOutsideTheCloud(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found: cannot list dependencies")
	}
	pkgs := []string{"./examples/connector", "./examples/internal/connectorapp"}
	for _, p := range topLevel {
		pkgs = append(pkgs, "./"+p+"/...")
	}
	for _, pkg := range pkgs {
		t.Run(pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-json=ImportPath", pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", pkg, err)
			}
			dec := json.NewDecoder(strings.NewReader(string(out)))
			n := 0
			for dec.More() {
				var p struct{ ImportPath string }
				if err := dec.Decode(&p); err != nil {
					t.Fatalf("decode go list output: %v", err)
				}
				n++
				if strings.HasPrefix(p.ImportPath, "github.com/prometheus/") {
					t.Errorf("%s depends on %s", pkg, p.ImportPath)
				}
			}
			if n == 0 {
				t.Fatalf("go list -deps %s listed nothing", pkg)
			}
		})
	}
}

// NATS is the cloud's multi-node transport: only the multi-node
// subpackages import it, and neither the connector nor any of the five
// top-level packages depends on it, directly or not.
var natsPackages = map[string]bool{
	modulePath + "/tunnel/tunnelnats":                   true,
	modulePath + "/directory/loginguard/loginguardnats": true,
}

func TestNATSOnlyInMultiNodePackages(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found: cannot list dependencies")
	}
	pkgs := []string{"./examples/connector", "./examples/internal/connectorapp"}
	for _, p := range topLevel {
		pkgs = append(pkgs, "./"+p)
	}
	for _, pkg := range pkgs {
		t.Run(pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-json=ImportPath", pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", pkg, err)
			}
			dec := json.NewDecoder(strings.NewReader(string(out)))
			for dec.More() {
				var p struct{ ImportPath string }
				if err := dec.Decode(&p); err != nil {
					t.Fatalf("decode go list output: %v", err)
				}
				if strings.HasPrefix(p.ImportPath, "github.com/nats-io/") {
					t.Errorf("%s depends on %s", pkg, p.ImportPath)
				}
			}
		})
	}
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "./...").Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, "github.com/nats-io/") && !natsPackages[p.ImportPath] {
				t.Errorf("%s imports %s: NATS belongs in the multi-node subpackages only", p.ImportPath, imp)
			}
		}
	}
}
