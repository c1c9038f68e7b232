package cloudapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/directory/importer/importersql"
	"github.com/liaisonhq/liaison/directory/loginguard"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/keyenvelope/keyrelease"
	"github.com/liaisonhq/liaison/tunnel"
)

// Errors of the admin operations, matched with errors.Is.
var (
	// ErrInvalid: a parameter is missing or malformed.
	ErrInvalid = errors.New("cloudapp: invalid request")
	// ErrNotFound: no such mapping, connector, user or token in the tenant.
	ErrNotFound = errors.New("cloudapp: not found")
	// ErrBusy: an import of the same mapping is already running.
	ErrBusy = errors.New("cloudapp: import already running")
	// ErrLoginFailed: a web login was refused. It says nothing about why,
	// to the caller; the log and LoginError.Reason do.
	ErrLoginFailed = errors.New("cloudapp: login failed")
	// ErrLoginThrottled: too many failed logins of this account (however
	// spelled), of this unknown name, or from this source recently; the
	// directory was not asked, so it cannot lock the account.
	ErrLoginThrottled = errors.New("cloudapp: too many failed logins, try later")
	// ErrUserDisabled: a backup key release was asked for a user disabled
	// in the cloud or in the directory. Restores (RestoreKey) stay
	// possible. The API answers 403.
	ErrUserDisabled = errors.New("cloudapp: user disabled, backup key release refused")
)

// Alert kinds raised by the cloud besides the monitor's own.
const (
	KindImportThreshold alerts.Kind = "import_threshold" // a plan was refused by the removal threshold
	KindImportSkipped   alerts.Kind = "import_skipped"   // a scheduled import found no connector
)

// IssueEnrollmentToken creates a one-time token a connector of tenant
// enrolls with, valid for ttl (default 24h). The tenant is created if new,
// and from then on expected to have a connector (Not Connected is raised
// after the grace period otherwise).
func (s *Server) IssueEnrollmentToken(ctx context.Context, tenant string, ttl time.Duration) (string, error) {
	if !validName(tenant) {
		return "", fmt.Errorf("%w: tenant", ErrInvalid)
	}
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	if err := s.addTenant(ctx, tenant); err != nil {
		return "", err
	}
	return s.gw.IssueEnrollmentToken(ctx, tenant, ttl)
}

func (s *Server) addTenant(ctx context.Context, tenant string) error {
	if err := s.users.AddTenant(ctx, tenant); err != nil {
		return err
	}
	s.monitor.Register(tenant)
	return nil
}

// ConnectorInfo is a connector as the admin sees it.
type ConnectorInfo struct {
	ID       string    `json:"id"`
	Tenant   string    `json:"tenant"`
	Enrolled time.Time `json:"enrolled"`
	Revoked  bool      `json:"revoked"`
	// Connected reports a live session on some node: this one, or (in a
	// cluster) another.
	Connected bool `json:"connected"`
	// Sessions is the number of live tunnel sessions on this node.
	Sessions int `json:"sessions"`
	// Sealed reports that its newest session on this node seals every
	// message because something between it and the cloud ends TLS (a
	// TLS-inspecting proxy, a load balancer): tunnel.LiveConnector.Sealed.
	Sealed bool `json:"sealed,omitempty"`
	// LastChange is when it last connected or disconnected (this process).
	LastChange time.Time `json:"last_change,omitzero"`
	// Health is what it last published about itself (connhealth.go); nil
	// before it did.
	Health *ConnectorHealth `json:"health,omitempty"`
}

// Connectors lists the connectors of tenant ("" for every tenant) with
// their presence.
func (s *Server) Connectors(ctx context.Context, tenant string) ([]ConnectorInfo, error) {
	recs, err := s.tunnels.Connectors(ctx, tenant)
	if err != nil {
		return nil, err
	}
	sessions := map[string]int{}
	sealed := map[string]bool{}
	for _, lc := range s.gw.Live(tenant) {
		sessions[lc.ConnectorID] = lc.Sessions
		sealed[lc.ConnectorID] = lc.Sealed
	}
	elsewhere := map[string]bool{} // live on another node (cluster.go)
	if s.cl != nil {
		elsewhere = s.cl.LiveIDs()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ConnectorInfo, len(recs))
	for i, r := range recs {
		out[i] = ConnectorInfo{ID: r.ID, Tenant: r.Tenant, Enrolled: r.Enrolled.UTC(), Revoked: r.Revoked,
			Connected: sessions[r.ID] > 0 || elsewhere[r.ID], Sessions: sessions[r.ID], Sealed: sealed[r.ID], LastChange: s.lastSeen[r.ID], Health: s.connectorHealth(r.ID)}
	}
	return out, nil
}

// RevokeConnector revokes a connector of tenant and closes its sessions.
func (s *Server) RevokeConnector(ctx context.Context, tenant, id string) error {
	rec, err := s.tunnels.Connector(ctx, id)
	if errors.Is(err, tunnel.ErrUnknownConnector) || (err == nil && rec.Tenant != tenant) {
		return fmt.Errorf("%w: connector %q", ErrNotFound, id)
	}
	if err != nil {
		return err
	}
	if err := s.revoke(ctx, id); err != nil { // cluster.go: every node
		return err
	}
	s.monitor.DirectoryOK(tenant, id) // a revoked connector's directory alert would never resolve
	return nil
}

// PutMapping creates or replaces a mapping of tenant. A changed mapping's
// next import is a full one.
func (s *Server) PutMapping(ctx context.Context, tenant, id string, m directory.Mapping) error {
	return s.PutMappingPolicy(ctx, tenant, id, m, "")
}

// PutMappingPolicy is PutMapping with the mapping's removal policy: what
// imports do to users who left the directory or the mapping
// (importer.RemoveDisable, the default, or importer.RemoveDelete).
func (s *Server) PutMappingPolicy(ctx context.Context, tenant, id string, m directory.Mapping, removal importer.RemovalPolicy) error {
	if !validName(tenant) || !validName(id) {
		return fmt.Errorf("%w: tenant and mapping ID", ErrInvalid)
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := removal.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := s.addTenant(ctx, tenant); err != nil {
		return err
	}
	// A changed mapping or policy loses its cursor and its half-applied plan.
	return s.users.PutMapping(ctx, Mapping{Tenant: tenant, ID: id, Mapping: m, Removal: removal})
}

// Mappings lists the mappings of tenant.
func (s *Server) Mappings(ctx context.Context, tenant string) ([]Mapping, error) {
	return s.users.Mappings(ctx, tenant)
}

func (s *Server) mapping(ctx context.Context, tenant, id string) (Mapping, error) {
	m, err := s.users.Mapping(ctx, tenant, id)
	if errors.Is(err, importersql.ErrNotFound) {
		return Mapping{}, fmt.Errorf("%w: mapping %q", ErrNotFound, id)
	}
	return m, err
}

func (s *Server) directory(tenant string) (Directory, error) {
	d := s.cfg.NewDirectory(tenant, s.tunnelTo(tenant))
	if s.cfg.WrapDirectory != nil {
		d = s.cfg.WrapDirectory(tenant, d)
	}
	return d, nil
}

// OUs browses the organizational units of tenant's directory under base
// ("" = the default naming context), through a connector.
func (s *Server) OUs(ctx context.Context, tenant, base string) ([]directory.OU, error) {
	d, err := s.directory(tenant)
	if err != nil {
		return nil, err
	}
	return d.OUs(ctx, base)
}

// Groups browses the groups of tenant's directory under base.
func (s *Server) Groups(ctx context.Context, tenant, base string) ([]directory.Group, error) {
	d, err := s.directory(tenant)
	if err != nil {
		return nil, err
	}
	return d.Groups(ctx, base)
}

// Users lists the cloud users of tenant.
func (s *Server) Users(ctx context.Context, tenant string) ([]User, error) {
	return s.users.ListUsers(ctx, tenant)
}

// IssueDeploymentToken creates a mass-deployment token for a mapping of
// tenant, valid for ttl (default 30 days). The token text is shown once.
func (s *Server) IssueDeploymentToken(ctx context.Context, tenant, mappingID string, ttl time.Duration) (string, DeploymentToken, error) {
	if _, err := s.mapping(ctx, tenant, mappingID); err != nil {
		return "", DeploymentToken{}, err
	}
	if ttl <= 0 {
		ttl = 30 * 24 * time.Hour
	}
	tok, rec, err := s.activator.IssueToken(ctx, tenant, mappingID, ttl)
	if err != nil {
		return "", DeploymentToken{}, err
	}
	return tok, DeploymentToken{ID: rec.ID, Tenant: rec.Tenant, MappingID: rec.MappingID,
		CreatedAt: rec.CreatedAt.UTC(), ExpiresAt: rec.ExpiresAt.UTC()}, nil
}

// DeploymentTokens lists the mass-deployment tokens of tenant (never their
// secrets).
func (s *Server) DeploymentTokens(ctx context.Context, tenant string) ([]DeploymentToken, error) {
	recs, err := s.actStore.ListTokens(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]DeploymentToken, len(recs))
	for i, r := range recs {
		out[i] = DeploymentToken{ID: r.ID, Tenant: r.Tenant, MappingID: r.MappingID, CreatedAt: r.CreatedAt.UTC(),
			ExpiresAt: r.ExpiresAt.UTC(), Revoked: !r.RevokedAt.IsZero()}
	}
	return out, nil
}

// RevokeDeploymentToken revokes a mass-deployment token of tenant.
func (s *Server) RevokeDeploymentToken(ctx context.Context, tenant, id string) error {
	err := s.activator.RevokeToken(ctx, tenant, id)
	if errors.Is(err, activation.ErrNotFound) {
		return fmt.Errorf("%w: token %q", ErrNotFound, id)
	}
	return err
}

// ActivationService returns the device activation service (mounted at
// PathActivate), for AuthenticateDevice.
func (s *Server) ActivationService() *activation.Service { return s.activator }

// Alerts lists alerts, most recent first.
func (s *Server) Alerts(ctx context.Context, f alerts.Filter) ([]alerts.Alert, error) {
	return s.alertDB.List(ctx, f)
}

// LoginResult is a successful web login.
type LoginResult struct {
	User directory.User `json:"user"`
	// CloudUserID is the cloud user's ID, when the user was imported or
	// activated already.
	CloudUserID string `json:"cloud_user_id,omitempty"`
}

// LoginError is the error of a refused login: it matches ErrLoginFailed or
// ErrLoginThrottled, and carries the directory's reason for the logs.
type LoginError struct {
	Err    error            // ErrLoginFailed or ErrLoginThrottled
	Reason directory.Reason // why the directory refused, when it did
	Cause  error
}

func (e *LoginError) Error() string {
	if e.Reason != directory.ReasonUnknown {
		return e.Err.Error() + ": " + e.Reason.String()
	}
	return e.Err.Error()
}
func (e *LoginError) Unwrap() []error { return []error{e.Err, e.Cause} }

// Login checks a user's password against tenant's directory, within a
// mapping, through a connector, behind the login guard
// (directory/loginguard): failed attempts are counted per account as the
// directory resolves it (every spelling of one name shares a count), and
// after Config.LoginMaxFailures within Config.LoginWindow further attempts
// are refused with ErrLoginThrottled without reaching the directory, so the
// cloud can never push an account over the domain's lockout threshold.
// Concurrent attempts count as failures until they finish.
func (s *Server) Login(ctx context.Context, tenant, mappingID, login, password string) (LoginResult, error) {
	return s.login(ctx, tenant, mappingID, login, password, "")
}

// login is Login with the client's address, for the per-source limit.
func (s *Server) login(ctx context.Context, tenant, mappingID, login, password, source string) (_ LoginResult, err error) {
	defer func() { s.metrics.logins.WithLabelValues(loginOutcome(err)).Inc() }()
	if login == "" || password == "" {
		return LoginResult{}, &LoginError{Err: ErrLoginFailed, Reason: directory.ReasonEmptyPassword}
	}
	m, err := s.mapping(ctx, tenant, mappingID)
	if err != nil {
		return LoginResult{}, err
	}
	d, err := s.directory(tenant)
	if err != nil {
		return LoginResult{}, err
	}
	u, err := s.logins.Login(ctx, d, loginguard.Attempt{Realm: tenant, Mapping: m.Mapping, Name: login, Password: password, Source: source})
	switch {
	case err == nil:
	case errors.Is(err, loginguard.ErrThrottled):
		return LoginResult{}, &LoginError{Err: ErrLoginThrottled, Cause: err}
	case errors.Is(err, loginguard.ErrFailed):
		return LoginResult{}, &LoginError{Err: ErrLoginFailed, Reason: directory.ReasonOf(err), Cause: err}
	default:
		return LoginResult{}, err
	}
	res := LoginResult{User: u}
	res.CloudUserID, _ = s.users.CloudUserID(ctx, tenant, u.ID) // not imported or activated yet: none
	return res, nil
}

// Keys is what the cloud asks a tenant's connector about keys: the
// operations of a keyenvelope.Keyring and Releaser it needs, usually through
// a remote client over the tunnel.
type Keys interface {
	GenerateWrapped(ctx context.Context, c keyenvelope.Context) ([]byte, keyenvelope.EkeyID, error)
	Release(ctx context.Context, ticket, wrapped []byte) ([]byte, error)
}

// Release is an ekey released to a backup worker.
type Release = keyrelease.Release

// ReleaseKey releases the backup ekey of a cloud user to a worker's X25519
// public key for one backup job: it signs a job ticket (job purpose
// keyenvelope.JobBackup, valid for ttl, default and at most 1h) naming the
// worker key, creates the user's wrapped ekey through a connector on first
// use, and asks a connector to release it. A user disabled in the cloud
// (by an import) or in the directory (asked live, through the connector)
// is refused with an error wrapping ErrUserDisabled: a disabled user's
// devices must not keep encrypting new data. Without a connected connector
// it raises a key-release alert and returns an error wrapping
// tunnel.ErrNotConnected.
func (s *Server) ReleaseKey(ctx context.Context, tenant, userID, jobID string, workerKey []byte, ttl time.Duration) (Release, error) {
	return s.releaseKey(ctx, tenant, userID, jobID, keyenvelope.JobBackup, workerKey, ttl)
}

// RestoreKey releases a cloud user's backup ekey for a restore job (job
// purpose keyenvelope.JobRestore), as ReleaseKey does but also for a
// disabled user, or one an import deleted: recovering a departed user's
// data is what restores are for. It is reached only through the admin API.
// It never creates an ekey: a user who was never backed up has nothing to
// restore (ErrNotFound).
func (s *Server) RestoreKey(ctx context.Context, tenant, userID, jobID string, workerKey []byte, ttl time.Duration) (Release, error) {
	return s.releaseKey(ctx, tenant, userID, jobID, keyenvelope.JobRestore, workerKey, ttl)
}

func (s *Server) releaseKey(ctx context.Context, tenant, userID, jobID string, job keyenvelope.JobPurpose, workerKey []byte, ttl time.Duration) (_ Release, err error) {
	defer func() { s.metrics.keyReleases.WithLabelValues(releasePurpose(job), releaseOutcome(err)).Inc() }()
	u, err := s.users.UserByID(ctx, tenant, userID)
	// A user deleted by an import (gone from the directory) may still be
	// restored: that is what leavers' backups are kept for.
	if errors.Is(err, importersql.ErrNotFound) || (err == nil && u.Deleted && job != keyenvelope.JobRestore) {
		return Release{}, fmt.Errorf("%w: user %q", ErrNotFound, userID)
	}
	if err != nil {
		return Release{}, err
	}
	keys := s.cfg.NewKeys(tenant, s.tunnelTo(tenant))
	rel, err := s.releaser.Release(ctx, keys, keyrelease.Request{Tenant: tenant, UserID: userID, JobID: jobID, Job: job, WorkerKey: workerKey, TTL: ttl,
		Check: func(ctx context.Context) error {
			if u.Disabled {
				return fmt.Errorf("%w: user %q is disabled in the cloud", ErrUserDisabled, userID)
			}
			return s.checkDirectoryEnabled(ctx, tenant, userID, u.MappingID, u.DirectoryID, u.Login)
		}})
	switch {
	case err == nil:
		return rel, nil
	case errors.Is(err, keyrelease.ErrInvalid):
		return Release{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	case errors.Is(err, keyrelease.ErrNoEkey):
		return Release{}, fmt.Errorf("%w: user %q has no ekey to restore with", ErrNotFound, userID)
	case errors.Is(err, ErrUserDisabled):
		return Release{}, err
	case errors.Is(err, tunnel.ErrNotConnected):
		s.monitor.KeyReleaseFailed(tenant, "user:"+userID)
	}
	return Release{}, fmt.Errorf("cloudapp: release key: %w", err)
}

// checkDirectoryEnabled asks the directory, through a connector, whether
// the user is disabled or expired there now (the cloud's row may be up to a
// day old).
// Only a positive answer about the same entry (same stable ID) refuses; a
// user the lookup does not find by the stored login (renamed since the
// last import) is judged by the cloud's row. A directory that cannot be
// reached fails the release.
func (s *Server) checkDirectoryEnabled(ctx context.Context, tenant, userID, mappingID, directoryID, login string) error {
	var m directory.Mapping
	if mappingID != "" {
		if mp, err := s.mapping(ctx, tenant, mappingID); err == nil {
			m = mp.Mapping
		}
	}
	d, err := s.directory(tenant)
	if err != nil {
		return err
	}
	du, err := d.Lookup(ctx, m, login)
	switch {
	case errors.Is(err, directory.ErrNotFound), errors.Is(err, directory.ErrAmbiguous):
		return nil
	case err != nil:
		return err
	case du.ID == directoryID && du.Disabled:
		return fmt.Errorf("%w: user %q is disabled in the directory", ErrUserDisabled, userID)
	case du.ID == directoryID && du.Expired:
		return fmt.Errorf("%w: user %q has expired in the directory", ErrUserDisabled, userID)
	}
	// A lockout (too many bad passwords) is temporary and says nothing
	// about the user's right to keep their data backed up: not refused.
	return nil
}

// activationAudit logs activation's refusals and retries with their
// specific reason (a disabled user, an unknown token), which the device
// never sees. Successful activations are logged at debug level.
type activationAudit struct {
	log *slog.Logger
	m   *metrics // liaison_activations_total
}

func (a activationAudit) Audit(ctx context.Context, e activation.Event) {
	a.m.activations.WithLabelValues(activationDecision(e.Decision)).Inc()
	level := slog.LevelDebug
	if e.Err != nil {
		level = slog.LevelInfo
	}
	attrs := []any{"decision", e.Decision, "tenant", e.Tenant, "token_id", e.TokenID, "source", e.Source,
		"login", e.Login, "domain", e.Domain, "device_id", e.DeviceID, "user_id", e.UserID}
	if e.Err != nil {
		attrs = append(attrs, "reason", e.Err.Error())
	}
	a.log.Log(ctx, level, "activation", attrs...)
}
