package directory

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// CheckCredentials looks name up in the mapping (as [Client.Lookup] does)
// and checks password with a simple bind as that user, on a connection
// reserved for credential checks that is reset to anonymous right after, so
// no connection is ever left bound as an end user.
//
// It returns the user when the directory accepts the password, without
// Groups (nil) unless the mapping names groups: call [Client.Lookup] for
// them. A refusal
// is a *[CredentialError] matching [ErrInvalidCredentials], whose Reason
// says why: wrong password, locked, disabled, password expired, account
// expired, must change password. An empty password is refused before any
// bind or search is sent ([ErrEmptyPassword]): an empty simple bind is an
// anonymous bind, which Active Directory reports as a success. A name that
// matches nobody is [ErrNotFound], more than one [ErrAmbiguous]. The
// password is never logged nor put in an error.
func (c *Client) CheckCredentials(ctx context.Context, m Mapping, name, password string) (User, error) {
	return c.checkCredentials(ctx, m, name, "", password)
}

// CheckAccount is [Client.CheckCredentials] bound to one account: name
// must still resolve to the user whose stable ID ([User.ID]) is id, or
// CheckAccount returns [ErrAccountChanged] without sending any bind. A
// login guard that counts failures per account (package
// directory/loginguard) resolves the name first and checks with the ID it
// counted against, so a name that moved to another account between the
// two steps can never cost that other account a bad-password bind. An
// empty id is refused with ErrAccountChanged too.
func (c *Client) CheckAccount(ctx context.Context, m Mapping, name, id, password string) (User, error) {
	if id == "" {
		if password == "" {
			return User{}, &CredentialError{Reason: ReasonEmptyPassword}
		}
		return User{}, ErrAccountChanged
	}
	return c.checkCredentials(ctx, m, name, id, password)
}

func (c *Client) checkCredentials(ctx context.Context, m Mapping, name, wantID, password string) (User, error) {
	if password == "" {
		return User{}, &CredentialError{Reason: ReasonEmptyPassword}
	}
	cm, err := m.compile()
	if err != nil {
		return User{}, err
	}
	if name == "" {
		return User{}, ErrNotFound
	}
	var u User
	err = c.use(ctx, c.search, func(ctx context.Context, cn *conn) error {
		var err error
		u, err = c.lookup(cn, cm, name, false)
		return err
	})
	if err != nil {
		return User{}, err
	}
	if wantID != "" && !strings.EqualFold(u.ID, wantID) {
		return User{}, ErrAccountChanged
	}
	var prof *profile
	if c.authMode == authDedicated {
		err = c.bindDedicated(ctx, u, password)
	} else {
		err = c.use(ctx, c.auth, func(ctx context.Context, cn *conn) error {
			prof = nil
			c.mu.Lock()
			if si := c.infos[cn.srv]; si != nil {
				prof = si.prof
			}
			c.mu.Unlock()
			return c.bindAs(cn, prof, u, password)
		})
	}
	if err != nil {
		return User{}, err
	}
	if u.Disabled {
		// The server let a disabled account bind (an OpenLDAP without the
		// ppolicy overlay): fail closed.
		return User{}, &CredentialError{Reason: ReasonDisabled}
	}
	return u, nil
}

// bindAs binds cn as u and resets it to anonymous after a success.
func (c *Client) bindAs(cn *conn, prof *profile, u User, password string) error {
	var controls []ldap.Control
	if prof == nil || prof.kind != ProfileActiveDirectory {
		controls = append(controls, ldap.NewControlBeheraPasswordPolicy())
	}
	res, err := cn.l.SimpleBind(ldap.NewSimpleBindRequest(u.DN, password, controls))
	var pp *ldap.ControlBeheraPasswordPolicy
	if res != nil {
		pp, _ = ldap.FindControl(res.Controls, ldap.ControlTypeBeheraPasswordPolicy).(*ldap.ControlBeheraPasswordPolicy)
	}
	if err != nil {
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return fmt.Errorf("directory: bind: %w", err)
		}
		return &CredentialError{Reason: bindReason(err, pp, u.Disabled), Err: err}
	}
	// Never leave the connection bound as the user. An anonymous bind is
	// the cheapest reset; if it fails the connection is dropped.
	reset := &ldap.SimpleBindRequest{AllowEmptyPassword: true}
	if c.authMode == authResetService {
		reset = ldap.NewSimpleBindRequest(c.cfg.BindDN, c.cfg.BindPassword, nil)
	}
	if _, rerr := cn.l.SimpleBind(reset); rerr != nil {
		cn.l.Close()
	}
	if pp != nil && pp.Error == 2 { // changeAfterReset: bound, but only to change the password
		return &CredentialError{Reason: ReasonMustChange}
	}
	return nil
}

var adSubCode = regexp.MustCompile(`(?i)\bdata ([0-9a-f]{3,8})\b`)

// bindReason maps a refused bind to a Reason: AD puts a sub-code in the
// diagnostic message ("... AcceptSecurityContext error, data 52e, v4563");
// OpenLDAP's ppolicy overlay answers with a response control.
func bindReason(err error, pp *ldap.ControlBeheraPasswordPolicy, disabled bool) Reason {
	if pp != nil && pp.Error >= 0 {
		switch pp.Error {
		case 0:
			return ReasonPasswordExpired
		case 1:
			if disabled {
				return ReasonDisabled
			}
			return ReasonLocked
		case 2:
			return ReasonMustChange
		}
	}
	var le *ldap.Error
	if errors.As(err, &le) && le.Err != nil {
		if m := adSubCode.FindStringSubmatch(le.Err.Error()); m != nil {
			return adReason(m[1])
		}
	}
	if disabled {
		return ReasonDisabled
	}
	return ReasonBadPassword
}

// adReason maps an AD bind sub-code.
func adReason(code string) Reason {
	switch code {
	case "52e", "525": // bad password; unknown user (not told apart on purpose)
		return ReasonBadPassword
	case "775":
		return ReasonLocked
	case "533":
		return ReasonDisabled
	case "532":
		return ReasonPasswordExpired
	case "701":
		return ReasonAccountExpired
	case "773":
		return ReasonMustChange
	}
	return ReasonUnknown
}

// Ways to isolate credential checks, measured by BenchmarkCredentialIsolation.
const (
	authResetAnonymous = iota // pooled, reset with an anonymous bind (default)
	authResetService          // pooled, reset by binding as the service account
	authDedicated             // a fresh connection per check
)

// bindDedicated checks the password on a connection of its own, closed
// right after.
func (c *Client) bindDedicated(ctx context.Context, u User, password string) error {
	cn, err := c.dial(ctx, false)
	if err != nil {
		return err
	}
	defer cn.l.Close()
	var prof *profile
	c.mu.Lock()
	if si := c.infos[cn.srv]; si != nil {
		prof = si.prof
	}
	c.mu.Unlock()
	return c.guard(ctx, cn, func(ctx context.Context, cn *conn) error { return c.bindAs(cn, prof, u, password) })
}
