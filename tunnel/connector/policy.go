package connector

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Operation is a kind of request the cloud may send a connector. The policy
// names the operations allowed; everything else is refused with 403.
type Operation string

// Operations.
const (
	// OpBrowse: server info, naming contexts, OUs and groups, to build a
	// mapping.
	OpBrowse Operation = "browse"
	// OpImport: the users of a mapping, full or changed since a cursor.
	OpImport Operation = "import"
	// OpLookup: one user by login, UPN or email (device activation).
	OpLookup Operation = "lookup"
	// OpCredentials: a password check (web login).
	OpCredentials Operation = "credentials"
	// OpKeys: generate wrapped ekeys, release them to backup workers,
	// rewrap under a new KEK version.
	OpKeys Operation = "keys"
)

func operations() []Operation {
	return []Operation{OpBrowse, OpImport, OpLookup, OpCredentials, OpKeys}
}

func opNames() []string {
	var s []string
	for _, op := range operations() {
		s = append(s, string(op))
	}
	return s
}

func (op Operation) needsDirectory() bool { return op != OpKeys }

// Policy is the connector's own list of allowed operations.
type Policy struct {
	Allow []Operation `json:"allow"`
}

// Allows reports whether op is allowed.
func (p Policy) Allows(op Operation) bool { return slices.Contains(p.Allow, op) }

// PolicyError is the JSON body of a 403 from the connector's policy:
//
//	{"error":{"code":"forbidden_by_connector_policy","operation":"keys","message":"..."}}
//
// Code is "forbidden_by_connector_policy" for an operation the policy does
// not allow, "unknown_operation" for a request the connector cannot
// classify (refused too: the policy fails closed).
type PolicyError struct {
	Code      string    `json:"code"`
	Operation Operation `json:"operation,omitempty"`
	Message   string    `json:"message"`
}

// Policy error codes.
const (
	CodeForbidden        = "forbidden_by_connector_policy"
	CodeUnknownOperation = "unknown_operation"
)

func (e *PolicyError) Error() string { return "connector: " + e.Message }

// policyBody is the envelope PolicyError travels in.
type policyBody struct {
	Error PolicyError `json:"error"`
}

// DecodePolicyError parses a 403 body written by the policy middleware;
// it returns nil when the body is not one.
func DecodePolicyError(body []byte) *PolicyError {
	var b policyBody
	if json.Unmarshal(body, &b) != nil || (b.Error.Code != CodeForbidden && b.Error.Code != CodeUnknownOperation) {
		return nil
	}
	return &b.Error
}

func writePolicyError(w http.ResponseWriter, e PolicyError) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusForbidden)
	_ = json.NewEncoder(w).Encode(policyBody{Error: e})
}

// enforce wraps next: classify names the operation of a request (false: the
// request is not one the connector knows, and is refused).
func enforce(p Policy, classify func(*http.Request) (Operation, bool), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op, ok := classify(r)
		if !ok {
			writePolicyError(w, PolicyError{Code: CodeUnknownOperation,
				Message: fmt.Sprintf("unknown operation %s %s", r.Method, r.URL.Path)})
			return
		}
		if !p.Allows(op) {
			writePolicyError(w, PolicyError{Code: CodeForbidden, Operation: op,
				Message: fmt.Sprintf("connector policy does not allow %s", op)})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// only classifies every request as op.
func only(op Operation) func(*http.Request) (Operation, bool) {
	return func(*http.Request) (Operation, bool) { return op, true }
}

// classifyDirectory maps a directory service path (below DirectoryPrefix,
// package directoryhttp's routes) to its operation.
func classifyDirectory(r *http.Request) (Operation, bool) {
	p := strings.TrimPrefix(r.URL.Path, DirectoryPrefix)
	p = strings.Trim(p, "/")
	if i := strings.IndexByte(p, '/'); i >= 0 {
		p = p[:i]
	}
	switch p {
	case "info", "naming-contexts", "ous", "groups":
		return OpBrowse, true
	case "users", "changes", "departures", "whereabouts", "changed-groups":
		return OpImport, true
	case "lookup":
		return OpLookup, true
	case "credentials", "credentials-key": // the key passwords are sealed to
		return OpCredentials, true
	}
	return "", false
}
