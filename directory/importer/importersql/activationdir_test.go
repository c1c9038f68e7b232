package importersql_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/importer/importersql"
	"github.com/liaisonhq/liaison/internal/sqlstore/sqlstoretest"
)

type fakeResolver map[string]directory.User

func (f fakeResolver) Lookup(_ context.Context, _ directory.Mapping, name string) (directory.User, error) {
	if u, ok := f[name]; ok {
		return u, nil
	}
	return directory.User{}, directory.ErrNotFound
}

func TestActivationDirectory(t *testing.T) {
	ctx := context.Background()
	st := newStore(t, importersql.SQLite, sqlstoretest.Open(t, importersql.SQLite))
	require.NoError(t, st.PutMapping(ctx, importersql.Mapping{Tenant: "acme", ID: "staff"}))
	dir := fakeResolver{
		"alice": {ID: "g-a", Login: "alice", DN: "CN=alice,OU=Staff,DC=corp,DC=example", UPN: "alice@corp.example"},
		"bob":   {ID: "g-b", Login: "bob", DN: "CN=bob,OU=Staff,DC=other,DC=example", Disabled: true},
	}
	ad := importersql.ActivationDirectory{Mappings: st, Directory: func(string) importersql.Resolver { return dir }}
	for _, tc := range []struct {
		name, mapping, login, domain string
		want                         error
	}{
		{"in scope", "staff", "alice", "", nil},
		{"dns domain", "staff", "alice", "corp.example", nil},
		{"netbios-style domain", "staff", "alice", "CORP", nil},
		{"upn suffix, case", "staff", "alice", "Corp.Example", nil},
		{"another domain is not conflated", "staff", "alice", "other.example", activation.ErrUserNotFound},
		{"unknown user", "staff", "carol", "", activation.ErrUserNotFound},
		{"mapping gone", "old", "alice", "", activation.ErrOutOfScope},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ad.LookupUser(ctx, activation.Lookup{Tenant: "acme", MappingID: tc.mapping, Login: tc.login, Domain: tc.domain})
			if tc.want != nil {
				assert.ErrorIs(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "g-a", u.StableID)
		})
	}
	u, err := ad.LookupUser(ctx, activation.Lookup{Tenant: "acme", MappingID: "staff", Login: "bob"})
	require.NoError(t, err)
	assert.True(t, u.Disabled, "the account state goes to activation, which refuses it")
}
