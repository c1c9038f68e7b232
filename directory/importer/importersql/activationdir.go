package importersql

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/directory"
)

// Resolver looks a user up in a tenant's directory (*directory.Client and
// directoryhttp.Client are ones).
type Resolver interface {
	Lookup(ctx context.Context, m directory.Mapping, name string) (directory.User, error)
}

// ActivationDirectory is an [activation.Directory] over the Store's
// mappings and a tenant's directory: a device's user is looked up only
// within the token's mapping (a mapping deleted since refuses with
// activation.ErrOutOfScope), and with a domain given, only a user of that
// domain (its DN's dc= components, or its UPN suffix) matches, so the same
// login in another domain is never conflated. Ambiguous names are not
// found. Every account state (disabled, locked, expired) is passed on for
// activation to refuse.
type ActivationDirectory struct {
	Mappings *Store
	// Directory returns the directory of a tenant (through its connector).
	Directory func(tenant string) Resolver
}

var _ activation.Directory = ActivationDirectory{}

// LookupUser implements [activation.Directory].
func (a ActivationDirectory) LookupUser(ctx context.Context, q activation.Lookup) (activation.DirectoryUser, error) {
	m, err := a.Mappings.Mapping(ctx, q.Tenant, q.MappingID)
	if errors.Is(err, ErrNotFound) {
		return activation.DirectoryUser{}, fmt.Errorf("%w: mapping gone", activation.ErrOutOfScope)
	}
	if err != nil {
		return activation.DirectoryUser{}, fmt.Errorf("%w: %w", activation.ErrDirectoryUnavailable, err)
	}
	u, err := a.Directory(q.Tenant).Lookup(ctx, m.Mapping, q.Login)
	switch {
	case errors.Is(err, directory.ErrNotFound), errors.Is(err, directory.ErrAmbiguous):
		return activation.DirectoryUser{}, fmt.Errorf("%w: %w", activation.ErrUserNotFound, err)
	case err != nil:
		return activation.DirectoryUser{}, fmt.Errorf("%w: %w", activation.ErrDirectoryUnavailable, err)
	}
	if q.Domain != "" && !inDomain(u, q.Domain) {
		return activation.DirectoryUser{}, fmt.Errorf("%w: %q is not in domain %q", activation.ErrUserNotFound, q.Login, q.Domain)
	}
	return activation.DirectoryUser{StableID: u.ID, Login: u.Login, Domain: q.Domain, UPN: u.UPN, Email: u.Email,
		DisplayName: u.DisplayName, Disabled: u.Disabled, Locked: u.Locked, Expired: u.Expired}, nil
}

// inDomain reports whether a user belongs to a DNS domain ("corp.example")
// or NetBIOS-style name ("CORP"): its DN's dc= components or its UPN suffix.
func inDomain(u directory.User, domain string) bool {
	domain = strings.ToLower(domain)
	var dcs []string
	for _, rdn := range strings.Split(u.DN, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(rdn), "=")
		if ok && strings.EqualFold(k, "dc") {
			dcs = append(dcs, strings.ToLower(v))
		}
	}
	if len(dcs) > 0 && (strings.Join(dcs, ".") == domain || dcs[0] == domain) {
		return true
	}
	if _, suffix, ok := strings.Cut(u.UPN, "@"); ok && strings.EqualFold(suffix, domain) {
		return true
	}
	return slices.Contains(dcs, domain) && len(dcs) == 1
}
