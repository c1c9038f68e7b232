package sqlstoretest_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/liaisonhq/liaison/internal/sqlstore"
	"github.com/liaisonhq/liaison/internal/sqlstore/sqlstoretest"
)

// TestPostgresRequiredUnderCI: without LIAISON_TEST_POSTGRES_URL the
// PostgreSQL tests skip, except under CI=true, where they fail (a CI run
// must not pass by skipping half of the store tests).
func TestPostgresRequiredUnderCI(t *testing.T) {
	if os.Getenv("SQLSTORETEST_CHILD") == "1" {
		sqlstoretest.Open(t, sqlstore.Postgres)
		return
	}
	run := func(ci string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPostgresRequiredUnderCI$", "-test.v")
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "CI=") && !strings.HasPrefix(kv, sqlstoretest.EnvPostgres+"=") {
				env = append(env, kv)
			}
		}
		cmd.Env = append(env, "SQLSTORETEST_CHILD=1", "CI="+ci)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("")
	if err != nil || !strings.Contains(out, "--- SKIP") {
		t.Fatalf("without CI: want a skip, got err %v:\n%s", err, out)
	}
	out, err = run("true")
	if err == nil || !strings.Contains(out, "--- FAIL") || !strings.Contains(out, "CI=true") {
		t.Fatalf("under CI=true: want a failure naming CI=true, got err %v:\n%s", err, out)
	}
}
