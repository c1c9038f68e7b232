package alerts

import "time"

// DirectoryFailed records that a real directory operation by subject (a
// connector ID) of tenant failed because the directory could not be used:
// no server reachable, or the service account's bind refused. It raises
// [KindDirectoryUnavailable] at once (critical: logins and imports through
// that connector fail); further failures repeat it. message says what
// failed; it is shown to the admin, so it must hold no secret.
//
// Failures that are answers (user not found, bad password) are not
// reported here: the directory was reached.
func (m *Monitor) DirectoryFailed(tenant, subject, message string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.tenant(tenant).dirDown[subject] = true
	m.queue(change{raise: true, at: time.Now(), alert: Alert{
		Tenant: tenant, Kind: KindDirectoryUnavailable, Subject: subject, Severity: SeverityCritical,
		Message: "directory unavailable: " + message,
	}})
}

// DirectoryOK records a successful real directory operation by subject
// of tenant. It resolves an open [KindDirectoryUnavailable] of subject,
// and does nothing otherwise. Call it too when subject goes away for good
// (a revoked connector), so its alert does not stay open forever.
func (m *Monitor) DirectoryOK(tenant, subject string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.tenants[tenant]
	if m.closed || !ok || !s.dirDown[subject] {
		return
	}
	delete(s.dirDown, subject)
	m.queue(change{at: time.Now(), alert: Alert{Tenant: tenant, Kind: KindDirectoryUnavailable, Subject: subject}})
}
