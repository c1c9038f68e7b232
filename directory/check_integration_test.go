package directory_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directorytest"
)

// Check against real servers: every step passes with the right settings;
// a wrong service password fails at the bind step with ErrServiceBind; an
// unreachable server fails there with ErrUnavailable; a missing base or
// user fails at its own step.
func TestIntegrationCheck(t *testing.T) {
	eachServer(t, func(t *testing.T, s directorytest.Server) {
		u, ok := s.Dataset().User("nested")
		require.True(t, ok)
		t.Run("all pass", func(t *testing.T) {
			steps := serverClient(t, s, nil).Check(t.Context(), "", directory.Mapping{}, u.LoginFor(s.Flavor))
			require.Len(t, steps, 3)
			for i, want := range []string{directory.StepBind, directory.StepBaseSearch, directory.StepLookup} {
				assert.Equal(t, want, steps[i].Step)
				assert.NoError(t, steps[i].Err)
				assert.NotEmpty(t, steps[i].Detail)
			}
			assert.Contains(t, steps[0].Detail, s.BindDN)
			assert.Contains(t, steps[2].Detail, u.LoginFor(s.Flavor))
		})
		t.Run("wrong service password", func(t *testing.T) {
			c := serverClient(t, s, func(cfg *directory.Config) { cfg.BindPassword = "wrong-service-pw-1A!" })
			steps := c.Check(t.Context(), "", directory.Mapping{}, "anyone")
			require.Len(t, steps, 1)
			assert.Equal(t, directory.StepBind, steps[0].Step)
			assert.ErrorIs(t, steps[0].Err, directory.ErrServiceBind)
		})
		t.Run("unreachable", func(t *testing.T) {
			c := serverClient(t, s, func(cfg *directory.Config) { cfg.URLs = []string{"ldap://127.0.0.1:1"} })
			steps := c.Check(t.Context(), "", directory.Mapping{}, "")
			require.Len(t, steps, 1)
			assert.ErrorIs(t, steps[0].Err, directory.ErrUnavailable)
		})
		t.Run("missing base", func(t *testing.T) {
			steps := serverClient(t, s, nil).Check(t.Context(), "ou=NoSuchOU,"+s.BaseDN, directory.Mapping{}, "x")
			require.Len(t, steps, 2)
			assert.NoError(t, steps[0].Err)
			assert.Error(t, steps[1].Err)
		})
		t.Run("unknown user", func(t *testing.T) {
			steps := serverClient(t, s, nil).Check(t.Context(), "", directory.Mapping{}, "no-such-user-xyz")
			require.Len(t, steps, 3)
			assert.ErrorIs(t, steps[2].Err, directory.ErrNotFound)
		})
	})
}
