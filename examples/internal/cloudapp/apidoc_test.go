package cloudapp_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// routesSource is the file that registers the cloud's HTTP routes, relative
// to this package's directory. Change it (only it) if the routing moves;
// the string constants its patterns use (Path*) are looked up in its
// directory and in this one.
const routesSource = "api.go"

// apiDoc is the reference page that must list every route.
const apiDoc = "../../../docs/admin-api.md"

// TestAdminAPIDocListsEveryRoute keeps docs/admin-api.md honest: every
// pattern registered with Handle or HandleFunc in routesSource has a
// "### `METHOD /path`" heading there, and every such heading is a
// registered route.
func TestAdminAPIDocListsEveryRoute(t *testing.T) {
	registered := registeredRoutes(t)
	if len(registered) < 20 {
		t.Fatalf("found only %d routes in %s: the parser no longer understands it: %v", len(registered), routesSource, registered)
	}
	documented := documentedRoutes(t)
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %q is registered in %s but not documented in docs/admin-api.md (add a \"### `%s`\" section)", r, routesSource, r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(registered, r) {
			t.Errorf("docs/admin-api.md documents %q, which %s no longer registers", r, routesSource)
		}
	}
}

// documentedRoutes returns the routes of the "### `METHOD /path`" headings.
func documentedRoutes(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(apiDoc)
	if err != nil {
		t.Fatal(err)
	}
	heading := regexp.MustCompile("(?m)^### `((?:[A-Z]+ )?/[^`]*)`")
	var out []string
	for _, m := range heading.FindAllSubmatch(b, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// registeredRoutes parses routesSource and returns the pattern of every
// Handle and HandleFunc call, with string constants and local string
// variables resolved. The "/v1/admin/" mount of the admin mux is not a
// route of its own; "GET /{$}" is written "GET /".
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	consts := map[string]string{}
	for _, dir := range []string{".", filepath.Dir(routesSource)} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			collectStrings(f, consts)
		}
	}
	f, err := parser.ParseFile(fset, routesSource, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool { // local `t := "/v1/admin/tenants/{tenant}"`
		if as, ok := n.(*ast.AssignStmt); ok && as.Tok == token.DEFINE && len(as.Lhs) == 1 && len(as.Rhs) == 1 {
			if id, ok := as.Lhs[0].(*ast.Ident); ok {
				if v, ok := eval(as.Rhs[0], consts, nil); ok {
					vars[id.Name] = v
				}
			}
		}
		return true
	})
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) != 2 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
			return true
		}
		p, ok := eval(call.Args[0], consts, vars)
		if !ok {
			t.Errorf("%s: cannot resolve the pattern of this %s call", fset.Position(call.Pos()), sel.Sel.Name)
			return true
		}
		if p == "/v1/admin/" {
			return true
		}
		p = strings.TrimSuffix(p, "{$}")
		if !slices.Contains(out, p) { // /metrics is registered in two branches
			out = append(out, p)
		}
		return true
	})
	return out
}

// collectStrings adds f's top-level string constants to m.
func collectStrings(f *ast.File, m map[string]string) {
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i < len(vs.Values) {
					if v, ok := eval(vs.Values[i], m, nil); ok {
						m[name.Name] = v
					}
				}
			}
		}
	}
}

// eval evaluates a string expression of literals, constants (plain or
// package-qualified: cloudapp.PathTunnel) and local variables joined by +.
func eval(e ast.Expr, consts, vars map[string]string) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.Ident:
		if v, ok := vars[e.Name]; ok {
			return v, true
		}
		v, ok := consts[e.Name]
		return v, ok
	case *ast.SelectorExpr:
		v, ok := consts[e.Sel.Name]
		return v, ok
	case *ast.ParenExpr:
		return eval(e.X, consts, vars)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		x, ok := eval(e.X, consts, vars)
		if !ok {
			return "", false
		}
		y, ok := eval(e.Y, consts, vars)
		return x + y, ok
	}
	return "", false
}
