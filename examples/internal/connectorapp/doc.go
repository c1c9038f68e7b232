// Package connectorapp is a forwarding shim: the connector moved to the
// public package tunnel/connector (issue 10). It keeps the names the example
// cloud (examples/internal/cloudapp) still uses until that package moves
// too; delete it once nothing imports it. New code imports tunnel/connector.
package connectorapp

import (
	"context"
	"log/slog"

	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// Aliases of the moved types.
type (
	Config         = connector.Config
	Cloud          = connector.Cloud
	Directory      = connector.Directory
	Keys           = connector.Keys
	Audit          = connector.Audit
	Policy         = connector.Policy
	Operation      = connector.Operation
	Agent          = connector.Agent
	StatusResponse = connector.StatusResponse
	ShareRequest   = connector.ShareRequest
	SharePeer      = connector.SharePeer
	KeyShareSync   = connector.KeyShareSync
	KeyShareReply  = connector.KeyShareReply
)

// Moved constants.
const (
	OpBrowse        = connector.OpBrowse
	OpImport        = connector.OpImport
	OpLookup        = connector.OpLookup
	OpCredentials   = connector.OpCredentials
	OpKeys          = connector.OpKeys
	StatusPath      = connector.StatusPath
	DirectoryPrefix = connector.DirectoryPrefix
	KeysPrefix      = connector.KeysPrefix
	KeySharePath    = connector.KeySharePath
	TunnelPath      = connector.TunnelPath
	EnrollPath      = connector.EnrollPath
	CodeForbidden   = connector.CodeForbidden
)

// Moved sentinels.
var (
	ErrConfig         = connector.ErrConfig
	ErrClosed         = connector.ErrClosed
	ErrVersionMissing = connector.ErrVersionMissing
	ErrNoShareRequest = connector.ErrNoShareRequest
	ErrNoMember       = connector.ErrNoMember
)

// New is connector.New.
func New(cfg Config, logger *slog.Logger) (*Agent, error) {
	cfg.Logger = logger
	return connector.New(cfg)
}

// Enroll is connector.Enroll.
func Enroll(ctx context.Context, c Cloud, token string) (tunnel.Identity, error) {
	return connector.Enroll(ctx, c, token)
}

// LoadConfig is connector.LoadConfig.
func LoadConfig(path string) (Config, error) { return connector.LoadConfig(path) }

// ShareFingerprint is connector.ShareFingerprint.
func ShareFingerprint(cfg Config) (string, error) { return connector.ShareFingerprint(cfg) }

// ShareRequests is connector.ShareRequests.
func ShareRequests(cfg Config) ([]ShareRequest, error) { return connector.ShareRequests(cfg) }

// ShareMembers is connector.ShareMembers.
func ShareMembers(cfg Config) ([]ShareRequest, error) { return connector.ShareMembers(cfg) }

// ApproveShare is connector.ApproveShare.
func ApproveShare(cfg Config, fp string) (ShareRequest, error) {
	return connector.ApproveShare(cfg, fp)
}

// RevokeShare is connector.RevokeShare.
func RevokeShare(cfg Config, fp string) (ShareRequest, error) { return connector.RevokeShare(cfg, fp) }

// JoinShare is connector.JoinShare.
func JoinShare(cfg Config, fp string) error { return connector.JoinShare(cfg, fp) }

// CheckPromote is connector.CheckPromote.
func CheckPromote(cfg Config, version uint32) error { return connector.CheckPromote(cfg, version) }

// LoadShareIdentity is connector.LoadShareIdentity.
func LoadShareIdentity(cfg Config) (keyenvelope.ShareIdentity, error) {
	return connector.LoadShareIdentity(cfg)
}
