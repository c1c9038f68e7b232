package liaison_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The connector side links only what an on-premises agent needs: the
// directory (go-ldap and what it brings), the keys (x/crypto, age), the
// tunnel (coder/websocket), x/sys and x/term. Never NATS, PostgreSQL,
// SQLite, Prometheus or any other cloud-only package, and the public
// packages never an example. An allow-list, so a new dependency is a
// decision, not an accident.
func TestConnectorDependencies(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found: cannot list dependencies")
	}
	allowed := []string{
		"github.com/go-ldap/ldap/v3", "github.com/go-asn1-ber/asn1-ber", "github.com/Azure/go-ntlmssp",
		"github.com/google/uuid", "golang.org/x/crypto/", "golang.org/x/sys/", "golang.org/x/term",
		"filippo.io/age", "filippo.io/hpke", "github.com/coder/websocket",
	}
	for _, pkg := range []string{"./tunnel/connector", "./keyenvelope/keyshare", "./examples/connector"} {
		t.Run(pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", pkg, err)
			}
			deps := strings.Fields(string(out))
			if len(deps) == 0 {
				t.Fatalf("go list -deps %s listed nothing", pkg)
			}
			for _, p := range deps {
				if strings.HasPrefix(p, modulePath+"/") {
					rel := strings.TrimPrefix(p, modulePath+"/")
					if strings.HasPrefix(rel, "examples/") && !strings.HasPrefix(pkg, "./examples/") {
						t.Errorf("%s (public) depends on the example %s", pkg, p)
					}
					if strings.HasPrefix(rel, "examples/internal/cloudapp") {
						t.Errorf("%s depends on the cloud %s", pkg, p)
					}
					continue
				}
				ok := false
				for _, a := range allowed {
					if p == a || strings.HasPrefix(p, strings.TrimSuffix(a, "/")+"/") {
						ok = true
						break
					}
				}
				if !ok {
					t.Errorf("%s depends on %s, which a connector must not link (allowed: %s)", pkg, p, strings.Join(allowed, ", "))
				}
			}
		})
	}
}
