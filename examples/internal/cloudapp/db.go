package cloudapp

import (
	"strings"
	"time"

	"github.com/liaisonhq/liaison/directory/importer/importersql"
)

// writeGate is held around every write of the cloud's stores (the public
// stores' Config.Writes). SQLite has one writer at a time, and its busy
// handler polls with growing sleeps: under a storm of concurrent writers a
// waiting writer can lose the lock to newcomers again and again until its
// busy timeout expires (SQLITE_BUSY, a 500 to the device). Behind one
// in-process gate whose waiters Go serves in order, SQLite's busy handler
// is left with writes from other processes. Reads do not take it (WAL
// readers never wait for the writer).
type writeGate chan struct{}

func (g writeGate) Lock()   { g <- struct{}{} }
func (g writeGate) Unlock() { <-g }

// Types of the admin API, kept in importersql.
type (
	// User is a cloud user, as the admin API lists it.
	User = importersql.User
	// Mapping is a stored mapping of a tenant, with the cursor of its
	// last successful import.
	Mapping = importersql.Mapping
	// ImportRun is one finished (or refused) import.
	ImportRun = importersql.Run
)

// DeploymentToken is a mass-deployment token as the admin sees it, without
// its secret or hash.
type DeploymentToken struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	MappingID string    `json:"mapping_id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Revoked   bool      `json:"revoked"`
}

func validName(s string) bool {
	return s != "" && len(s) <= 128 && !strings.ContainsAny(s, "/\\ \t\r\n")
}
