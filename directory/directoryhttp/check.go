package directoryhttp

import (
	"fmt"

	"github.com/liaisonhq/liaison/directory"
)

// Service is the name of the directory service in what a connector
// publishes about itself (tunnel.ConnectorInfo.Services).
const Service = "directory"

// CheckPath is where a connector runs a connection test of its directory
// for the cloud: POST a CheckRequest, read a JSON array of CheckResult
// (bind, base search, lookup), failures with the fix.
const CheckPath = "/check"

// CheckRequest asks for a connection test of the directory.
type CheckRequest struct {
	// Base is the entry the base search reads; empty means the default
	// naming context.
	Base string `json:"base,omitempty"`
	// Name is looked up in Mapping when not empty.
	Name    string            `json:"name,omitempty"`
	Mapping directory.Mapping `json:"mapping,omitzero"`
}

// CheckResult is one step of a connection test: what was tried, whether
// it passed, and when not, the error and what to change.
type CheckResult struct {
	Step   string `json:"step"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
	Fix    string `json:"fix,omitempty"`
}

// String is the line a person reads: "PASS step: detail" or
// "FAIL step: error" followed by the fix.
func (r CheckResult) String() string {
	if r.OK {
		return fmt.Sprintf("PASS %-11s %s", r.Step+":", r.Detail)
	}
	s := fmt.Sprintf("FAIL %-11s %s", r.Step+":", r.Error)
	if r.Fix != "" {
		s += "\n     fix: " + r.Fix
	}
	return s
}
