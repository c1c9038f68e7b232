// Package cli holds the conventions the example programs (cloud, connector,
// activate) share: the text of their version subcommand and the one-prefix
// form of the errors they print.
//
// It is for those programs' main packages only; it parses no flags and
// prints nothing itself.
package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version returns the line a program's version subcommand prints: the
// program's name, the module version it was built from ("(devel)" for a
// build inside the repository), the VCS revision when the build recorded
// one, the Go version and the OS/architecture.
func Version(program string) string {
	version, revision := "(unknown)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		} else {
			version = "(devel)" // test binaries record no main module version
		}
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if len(revision) > 12 {
			revision = revision[:12]
		}
		if revision != "" && modified {
			revision += "+dirty"
		}
	}
	out := program + " " + version
	if revision != "" {
		out += " " + revision
	}
	return fmt.Sprintf("%s %s %s/%s", out, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// isPackage reports whether p is the prefix one of this module's packages
// (or programs) puts on its errors. Message drops them: the program prints its own single
// prefix.
func isPackage(p string) bool {
	switch p {
	case "activate", "cloud", "connector", // the programs' own prefixes
		"activation", "alerts", "cloudapp", "connectorapp", "directory", "directoryhttp",
		"importer", "importersql", "keyenvelope", "keyhttp", "keyrelease", "keyshare", "loginguard", "masterkey",
		"tunnel", "tunnelsql":
		return true
	}
	return false
}

// Message returns err's text without this module's package prefixes and
// without a step repeated by two layers, for a program to print after its
// own prefix: "connectorapp: enroll: tunnel: enroll: Post ..." becomes
// "enroll: Post ...". Only the text changes; callers still branch on err
// with errors.Is.
func Message(err error) string {
	if err == nil {
		return ""
	}
	parts := strings.Split(err.Error(), ": ")
	out := make([]string, 0, len(parts))
	for i, p := range parts {
		// The last part is the innermost message: kept whatever it says.
		if i < len(parts)-1 && isPackage(p) {
			continue
		}
		if len(out) > 0 && out[len(out)-1] == p {
			continue
		}
		out = append(out, p)
	}
	return strings.Join(out, ": ")
}
