package activation_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
)

func TestActivateOutcomes(t *testing.T) {
	type tc struct {
		name string
		// setup prepares the harness and returns the request to send.
		setup       func(t *testing.T, h *harness) activation.Request
		wantErr     error // nil for success
		retryable   bool
		decision    activation.Decision
		userCreated bool
		status      int
	}
	alice := func(t *testing.T, h *harness) activation.Request {
		return newDevice(t, "dev-1").request("t1", h.token, "alice", "corp.example")
	}
	cases := []tc{
		{name: "new user in scope", setup: alice, decision: activation.DecisionUserCreated, userCreated: true, status: http.StatusOK},
		{name: "existing user new device", setup: func(t *testing.T, h *harness) activation.Request {
			_, err := h.svc.Activate(context.Background(), newDevice(t, "dev-0").request("t1", h.token, "alice", "corp.example"))
			require.NoError(t, err)
			return alice(t, h)
		}, decision: activation.DecisionActivated, status: http.StatusOK},
		{name: "user unknown to directory", setup: func(t *testing.T, h *harness) activation.Request {
			return newDevice(t, "dev-1").request("t1", h.token, "mallory", "corp.example")
		}, wantErr: activation.ErrUserNotFound, decision: activation.DecisionRefused, status: http.StatusForbidden},
		{name: "same login other domain is not that user", setup: func(t *testing.T, h *harness) activation.Request {
			return newDevice(t, "dev-1").request("t1", h.token, "alice", "other.example")
		}, wantErr: activation.ErrUserNotFound, decision: activation.DecisionRefused, status: http.StatusForbidden},
		{name: "user out of scope", setup: func(t *testing.T, h *harness) activation.Request {
			h.dir.outOfScope[[3]string{"m1", "corp.example", "alice"}] = true
			return alice(t, h)
		}, wantErr: activation.ErrOutOfScope, decision: activation.DecisionRefused, status: http.StatusForbidden},
		{name: "no connector connected", setup: func(t *testing.T, h *harness) activation.Request {
			h.dir.setConnected(false)
			return alice(t, h)
		}, wantErr: activation.ErrDirectoryUnavailable, retryable: true, decision: activation.DecisionRetry, status: http.StatusServiceUnavailable},
		{name: "expired token", setup: func(t *testing.T, h *harness) activation.Request {
			h.clock.Advance(24 * time.Hour)
			return alice(t, h)
		}, wantErr: activation.ErrTokenExpired, decision: activation.DecisionRefused, status: http.StatusForbidden},
		{name: "revoked token", setup: func(t *testing.T, h *harness) activation.Request {
			require.NoError(t, h.svc.RevokeToken(context.Background(), "t1", h.tokID))
			return alice(t, h)
		}, wantErr: activation.ErrTokenRevoked, decision: activation.DecisionRefused, status: http.StatusForbidden},
		{name: "unknown token", setup: func(t *testing.T, h *harness) activation.Request {
			other := newHarness(t, activation.NewMemoryStore()) // a token no store of ours has
			return newDevice(t, "dev-1").request("t1", other.token, "alice", "corp.example")
		}, wantErr: activation.ErrTokenUnknown, decision: activation.DecisionRefused, status: http.StatusForbidden},
		{name: "wrong tenant token", setup: func(t *testing.T, h *harness) activation.Request {
			tok, _, err := h.svc.IssueToken(context.Background(), "t2", "m1", time.Hour)
			require.NoError(t, err)
			return newDevice(t, "dev-1").request("t1", tok, "alice", "corp.example")
		}, wantErr: activation.ErrTokenWrongTenant, decision: activation.DecisionRefused, status: http.StatusForbidden},
		{name: "malformed token", setup: func(t *testing.T, h *harness) activation.Request {
			last := "A"
			if strings.HasSuffix(h.token, "A") {
				last = "Q"
			}
			return newDevice(t, "dev-1").request("t1", h.token[:len(h.token)-1]+last, "alice", "corp.example")
		}, wantErr: activation.ErrTokenMalformed, decision: activation.DecisionRefused, status: http.StatusForbidden},
		{name: "bad proof of possession", setup: func(t *testing.T, h *harness) activation.Request {
			r := alice(t, h)
			r.Hostname = "changed-after-signing"
			return r
		}, wantErr: activation.ErrBadProof, decision: activation.DecisionRefused, status: http.StatusUnauthorized},
		{name: "device id taken by another key", setup: func(t *testing.T, h *harness) activation.Request {
			_, err := h.svc.Activate(context.Background(), alice(t, h))
			require.NoError(t, err)
			return alice(t, h) // same ID, fresh key
		}, wantErr: activation.ErrDeviceConflict, decision: activation.DecisionRefused, status: http.StatusConflict},
		{name: "missing login", setup: func(t *testing.T, h *harness) activation.Request {
			return newDevice(t, "dev-1").request("t1", h.token, "", "corp.example")
		}, wantErr: activation.ErrInvalidRequest, decision: activation.DecisionRefused, status: http.StatusBadRequest},
		{name: "rate limited per source", setup: func(t *testing.T, h *harness) activation.Request {
			for range activation.DefaultSourceBurst {
				_, _ = h.svc.Activate(context.Background(), newDevice(t, "x").request("t1", "junk", "a", "b"))
			}
			return alice(t, h)
		}, wantErr: activation.ErrRateLimited, retryable: true, decision: activation.DecisionRetry, status: http.StatusTooManyRequests},
	}
	for storeName, newStore := range stores(t) {
		for _, c := range cases {
			t.Run(storeName+"/"+c.name, func(t *testing.T) {
				h := newHarness(t, newStore(t))
				req := c.setup(t, h)
				before := h.audit.count()
				res, err := h.svc.Activate(context.Background(), req)

				require.Equal(t, before+1, h.audit.count(), "exactly one audit event per decision")
				ev := h.audit.last()
				assert.Equal(t, c.decision, ev.Decision)
				assert.Equal(t, req.DeviceID, ev.DeviceID)
				status, _ := activation.PublicError(err)
				assert.Equal(t, c.status, status)
				if c.wantErr != nil {
					require.ErrorIs(t, err, c.wantErr)
					assert.ErrorIs(t, ev.Err, c.wantErr)
					var re *activation.RetryError
					assert.Equal(t, c.retryable, errors.As(err, &re), "retryable")
					if c.decision == activation.DecisionRefused || c.retryable {
						d, derr := h.store.Device(context.Background(), "t1", req.DeviceID)
						if c.wantErr != activation.ErrDeviceConflict {
							assert.ErrorIs(t, derr, activation.ErrNotFound, "nothing created, got %+v", d)
						} else {
							require.NoError(t, derr)
							assert.NotEqual(t, req.DevicePublicKey, d.PublicKey, "conflicting activation must not re-key the device")
						}
					}
					return
				}
				require.NoError(t, err)
				assert.Equal(t, c.userCreated, res.UserCreated)
				assert.True(t, res.DeviceCreated)
				assert.Equal(t, "guid-alice", res.User.DirectoryID)
				assert.Equal(t, "alice@corp.example", res.User.Email, "user created from directory attributes")
				assert.Equal(t, res.User.ID, res.Device.UserID)
				assert.True(t, res.Device.PublicKey.Equal(req.DevicePublicKey))
				assert.Equal(t, res.User.ID, ev.UserID)
				assert.Equal(t, h.tokID, ev.TokenID)
				stored, err := h.store.Device(context.Background(), "t1", req.DeviceID)
				require.NoError(t, err)
				assert.Equal(t, res.User.ID, stored.UserID)
			})
		}
	}
}

func TestPublicErrorIsUniform(t *testing.T) {
	tokenErrs := []error{activation.ErrTokenMalformed, activation.ErrTokenUnknown, activation.ErrTokenExpired,
		activation.ErrTokenRevoked, activation.ErrTokenWrongTenant}
	s0, m0 := activation.PublicError(fmt.Errorf("wrapped: %w", tokenErrs[0]))
	for _, e := range tokenErrs {
		t.Run(e.Error(), func(t *testing.T) {
			s, m := activation.PublicError(fmt.Errorf("wrapped: %w", e))
			assert.Equal(t, s0, s)
			assert.Equal(t, m0, m)
			assert.NotContains(t, m, e.Error())
		})
	}
	s1, m1 := activation.PublicError(activation.ErrUserNotFound)
	s2, m2 := activation.PublicError(activation.ErrOutOfScope)
	assert.Equal(t, s1, s2)
	assert.Equal(t, m1, m2, "not found and out of scope look the same outside")
}

func TestSeveralTokensValidAtOnce(t *testing.T) {
	h := newHarness(t, activation.NewMemoryStore())
	tok2, _, err := h.svc.IssueToken(context.Background(), "t1", "m1", time.Hour)
	require.NoError(t, err)
	_, err = h.svc.Activate(context.Background(), newDevice(t, "d1").request("t1", h.token, "alice", "corp.example"))
	require.NoError(t, err, "older token still valid")
	_, err = h.svc.Activate(context.Background(), newDevice(t, "d2").request("t1", tok2, "alice", "corp.example"))
	require.NoError(t, err)
}

func TestRevokeTokenOtherTenant(t *testing.T) {
	h := newHarness(t, activation.NewMemoryStore())
	err := h.svc.RevokeToken(context.Background(), "t2", h.tokID)
	require.ErrorIs(t, err, activation.ErrNotFound, "a tenant cannot revoke another's token")
	_, err = h.svc.Activate(context.Background(), newDevice(t, "d1").request("t1", h.token, "alice", "corp.example"))
	require.NoError(t, err)
}

// The same login in two mappings (e.g. two domains or OUs with their own
// "jsmith") resolves to two directory IDs and so to two cloud users.
func TestSameLoginDifferentDirectoryUsers(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, newStore(t))
			h.dir.add("m2", "corp.example", "alice", "guid-other-alice")
			tok2, _, err := h.svc.IssueToken(context.Background(), "t1", "m2", time.Hour)
			require.NoError(t, err)
			r1, err := h.svc.Activate(context.Background(), newDevice(t, "d1").request("t1", h.token, "alice", "corp.example"))
			require.NoError(t, err)
			r2, err := h.svc.Activate(context.Background(), newDevice(t, "d2").request("t1", tok2, "alice", "corp.example"))
			require.NoError(t, err)
			assert.True(t, r1.UserCreated)
			assert.True(t, r2.UserCreated)
			assert.NotEqual(t, r1.User.ID, r2.User.ID)
		})
	}
}

func TestRetryIsIdempotent(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, newStore(t))
			req := newDevice(t, "dev-1").request("t1", h.token, "alice", "corp.example")
			first, err := h.svc.Activate(context.Background(), req)
			require.NoError(t, err)
			h.clock.Advance(time.Minute) // the retry comes later
			again, err := h.svc.Activate(context.Background(), req)
			require.NoError(t, err)
			assert.Equal(t, activation.DecisionRepeated, h.audit.last().Decision)
			assert.False(t, again.UserCreated)
			assert.False(t, again.DeviceCreated)
			assert.Equal(t, first.User.ID, again.User.ID)
			assert.Equal(t, first.Device.ID, again.Device.ID)
			assert.Equal(t, first.Credential, again.Credential, "same credential on retry")
		})
	}
}

// Activate, then lose every connector: the device still authenticates.
func TestCredentialWorksWithoutConnector(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, newStore(t))
			dev := newDevice(t, "dev-1")
			res, err := h.svc.Activate(context.Background(), dev.request("t1", h.token, "alice", "corp.example"))
			require.NoError(t, err)

			h.dir.setConnected(false)
			calls := h.dir.calls
			challenge := []byte("server challenge 42")
			got, err := h.svc.AuthenticateDevice(context.Background(), "t1", res.Credential, challenge, ed25519Sign(dev, challenge))
			require.NoError(t, err)
			assert.Equal(t, res.User.ID, got.UserID)
			assert.Equal(t, "dev-1", got.ID)
			assert.Equal(t, calls, h.dir.calls, "authentication never asks the directory")

			tampered := []byte(res.Credential)
			tampered[len(tampered)-2] ^= 1
			other := newDevice(t, "dev-1")
			for name, tc := range map[string]struct {
				tenant, cred string
				sig          []byte
			}{
				"wrong key":         {"t1", res.Credential, ed25519Sign(other, challenge)},
				"wrong tenant":      {"t2", res.Credential, ed25519Sign(dev, challenge)},
				"tampered":          {"t1", string(tampered), ed25519Sign(dev, challenge)},
				"garbage":           {"t1", "ldc1.AAAA.AAAA", ed25519Sign(dev, challenge)},
				"other message sig": {"t1", res.Credential, ed25519Sign(dev, []byte("other"))},
			} {
				t.Run(name, func(t *testing.T) {
					_, err := h.svc.AuthenticateDevice(context.Background(), tc.tenant, tc.cred, challenge, tc.sig)
					assert.ErrorIs(t, err, activation.ErrBadProof)
				})
			}
		})
	}
}

func TestConcurrentActivationsCreateOneUser(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, newStore(t), func(c *activation.Config) { c.SourceBurst = 1000 })
			const n = 100
			var wg sync.WaitGroup
			results := make([]activation.Result, n)
			errs := make([]error, n)
			for i := range n {
				req := newDevice(t, fmt.Sprintf("dev-%03d", i)).request("t1", h.token, "alice", "corp.example")
				wg.Go(func() { results[i], errs[i] = h.svc.Activate(context.Background(), req) })
			}
			wg.Wait()
			created := 0
			users := map[string]bool{}
			for i := range n {
				require.NoError(t, errs[i], "activation %d", i)
				if results[i].UserCreated {
					created++
				}
				users[results[i].User.ID] = true
				assert.True(t, results[i].DeviceCreated)
			}
			assert.Equal(t, 1, created, "exactly one activation created the user")
			assert.Len(t, users, 1, "every device belongs to the same user")
		})
	}
}

func TestRateLimitPerTokenRecovers(t *testing.T) {
	h := newHarness(t, activation.NewMemoryStore(), func(c *activation.Config) {
		c.TokenRate, c.TokenBurst, c.SourceBurst = 1, 2, 1000
	})
	act := func(id string) error {
		_, err := h.svc.Activate(context.Background(), newDevice(t, id).request("t1", h.token, "alice", "corp.example"))
		return err
	}
	require.NoError(t, act("a"))
	require.NoError(t, act("b"))
	err := act("c")
	require.ErrorIs(t, err, activation.ErrRateLimited)
	var re *activation.RetryError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, time.Second, re.RetryAfter)
	h.clock.Advance(time.Second)
	assert.NoError(t, act("c"), "bucket refilled after one second")
}

func TestNewValidatesConfig(t *testing.T) {
	st := activation.NewMemoryStore()
	dir := newFakeDirectory()
	key := make([]byte, 32)
	for name, cfg := range map[string]activation.Config{
		"no directory": {Store: st, Tokens: st, CredentialKey: key},
		"no store":     {Directory: dir, Tokens: st, CredentialKey: key},
		"no tokens":    {Directory: dir, Store: st, CredentialKey: key},
		"short key":    {Directory: dir, Store: st, Tokens: st, CredentialKey: key[:16]},
		"negative":     {Directory: dir, Store: st, Tokens: st, CredentialKey: key, TokenRate: -1},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := activation.New(cfg)
			assert.ErrorContains(t, err, "activation: config:")
		})
	}
}

// A conflict on the device rolls back the user created in the same
// transaction: nothing half-done remains.
func TestActivateIsOneTransaction(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, newStore(t))
			h.dir.add("m1", "corp.example", "bob", "guid-bob")
			_, err := h.svc.Activate(context.Background(), newDevice(t, "shared-id").request("t1", h.token, "alice", "corp.example"))
			require.NoError(t, err)

			_, err = h.svc.Activate(context.Background(), newDevice(t, "shared-id").request("t1", h.token, "bob", "corp.example"))
			require.ErrorIs(t, err, activation.ErrDeviceConflict)

			res, err := h.svc.Activate(context.Background(), newDevice(t, "bob-laptop").request("t1", h.token, "bob", "corp.example"))
			require.NoError(t, err)
			assert.True(t, res.UserCreated, "bob was not left behind by the failed transaction")
		})
	}
}

// A device already activated for alice cannot be claimed by bob, even with
// the same key (another user on the same machine needs their own device).
func TestDeviceOfAnotherUser(t *testing.T) {
	h := newHarness(t, activation.NewMemoryStore())
	h.dir.add("m1", "corp.example", "bob", "guid-bob")
	dev := newDevice(t, "pc-1")
	_, err := h.svc.Activate(context.Background(), dev.request("t1", h.token, "alice", "corp.example"))
	require.NoError(t, err)
	_, err = h.svc.Activate(context.Background(), dev.request("t1", h.token, "bob", "corp.example"))
	assert.ErrorIs(t, err, activation.ErrDeviceConflict)
}

func TestDirectoryFailureIsRetryable(t *testing.T) {
	h := newHarness(t, activation.NewMemoryStore(), func(c *activation.Config) {
		c.Directory = directoryFunc(func(context.Context, activation.Lookup) (activation.DirectoryUser, error) {
			return activation.DirectoryUser{}, errors.New("ldap: connection reset")
		})
	})
	_, err := h.svc.Activate(context.Background(), newDevice(t, "d").request("t1", h.token, "alice", "corp.example"))
	var re *activation.RetryError
	require.ErrorAs(t, err, &re)
	assert.ErrorIs(t, err, activation.ErrDirectoryUnavailable)
	assert.ErrorContains(t, err, "connection reset")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = h.svc.Activate(ctx, newDevice(t, "d").request("t1", h.token, "alice", "corp.example"))
	assert.ErrorIs(t, err, context.Canceled)
}

type directoryFunc func(context.Context, activation.Lookup) (activation.DirectoryUser, error)

func (f directoryFunc) LookupUser(ctx context.Context, q activation.Lookup) (activation.DirectoryUser, error) {
	return f(ctx, q)
}

func TestTokenLifecycleAudited(t *testing.T) {
	h := newHarness(t, activation.NewMemoryStore())
	require.NoError(t, h.svc.RevokeToken(context.Background(), "t1", h.tokID))
	h.audit.mu.Lock()
	defer h.audit.mu.Unlock()
	require.Len(t, h.audit.events, 2)
	assert.Equal(t, activation.DecisionTokenIssued, h.audit.events[0].Decision)
	assert.Equal(t, activation.DecisionTokenRevoke, h.audit.events[1].Decision)
	assert.Equal(t, h.tokID, h.audit.events[1].TokenID)
}

// FuzzAuthenticateDevice feeds hostile credentials to the credential
// parser: it must refuse them with ErrBadProof and never panic.
func FuzzAuthenticateDevice(f *testing.F) {
	h := newHarness(f, activation.NewMemoryStore())
	dev := newDevice(f, "d1")
	res, err := h.svc.Activate(context.Background(), dev.request("t1", h.token, "alice", "corp.example"))
	if err != nil {
		f.Fatal(err)
	}
	msg := []byte("challenge")
	sig := ed25519Sign(dev, msg)
	f.Add(res.Credential)
	f.Add("ldc1.")
	f.Add("ldc1..")
	f.Add(res.Credential[:len(res.Credential)/2])
	f.Fuzz(func(t *testing.T, cred string) {
		d, err := h.svc.AuthenticateDevice(context.Background(), "t1", cred, msg, sig)
		if err == nil {
			if cred != res.Credential || d.ID != "d1" {
				t.Fatalf("accepted a forged credential %q", cred)
			}
			return
		}
		if !errors.Is(err, activation.ErrBadProof) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
