package demoldap

import (
	"fmt"
	"slices"
	"strings"
)

// Users returns the user accounts as they stand now.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []User
	for _, e := range s.entries {
		if e.login == "" {
			continue
		}
		out = append(out, s.userOf(e))
	}
	return out
}

// User returns one account by login, or [ErrNoSuchUser].
func (s *Server) User(login string) (User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.userByLogin(login)
	if e == nil {
		return User{}, fmt.Errorf("%w: %q", ErrNoSuchUser, login)
	}
	return s.userOf(e), nil
}

func (s *Server) userOf(e *entry) User {
	first := func(name string) string {
		if v := e.get(name); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	return User{
		Login:       e.login,
		GivenName:   first("givenName"),
		Surname:     first("sn"),
		Department:  first("departmentNumber"),
		Email:       first("mail"),
		Password:    e.password,
		Disabled:    first("pwdAccountLockedTime") == disabledTime,
		DN:          e.dn,
		DisplayName: first("displayName"),
	}
}

// AddUser adds an account (Password defaults to [Password], Email to
// login@acme.example) and returns it with its DN.
func (s *Server) AddUser(u User) (User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.addUser(u)
	if err != nil {
		return User{}, err
	}
	return s.userOf(e), nil
}

// SetAttribute replaces (or, with no values, removes) a user attribute,
// as an administrator's modify would; modifyTimestamp and entryCSN move.
// Naming and operational attributes cannot be set this way.
func (s *Server) SetAttribute(login, name string, values ...string) error {
	if strings.EqualFold(name, "uid") || strings.EqualFold(name, "objectClass") || operational(name) ||
		strings.EqualFold(name, "userPassword") {
		return fmt.Errorf("demoldap: attribute %q cannot be set", name)
	}
	return s.modify(login, func(e *entry) { e.set(name, slices.Clone(values)...) })
}

// SetDisabled disables (pwdAccountLockedTime 000001010000Z) or enables an
// account. Enabling also clears a lockout.
func (s *Server) SetDisabled(login string, disabled bool) error {
	return s.modify(login, func(e *entry) {
		if disabled {
			e.set("pwdAccountLockedTime", disabledTime)
		} else {
			e.set("pwdAccountLockedTime")
			e.failures = 0
		}
	})
}

// SetPassword changes an account's password.
func (s *Server) SetPassword(login, password string) error {
	if password == "" {
		return fmt.Errorf("demoldap: empty password")
	}
	return s.modify(login, func(e *entry) { e.password = password })
}

// Locked reports whether an account is locked out or disabled.
func (s *Server) Locked(login string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.userByLogin(login)
	if e == nil {
		return false, fmt.Errorf("%w: %q", ErrNoSuchUser, login)
	}
	return len(e.get("pwdAccountLockedTime")) > 0, nil
}

// DeleteUser removes an account and its group memberships.
func (s *Server) DeleteUser(login string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.userByLogin(login)
	if e == nil {
		return fmt.Errorf("%w: %q", ErrNoSuchUser, login)
	}
	s.entries = slices.DeleteFunc(s.entries, func(x *entry) bool { return x == e })
	delete(s.byNorm, e.norm)
	for _, g := range s.entries {
		members := g.get("member")
		kept := slices.DeleteFunc(slices.Clone(members), func(m string) bool {
			n, ok := normDN(m)
			return ok && n == e.norm
		})
		if len(kept) != len(members) {
			g.set("member", kept...)
			s.touch(g)
		}
	}
	s.nextCSN(s.cfg.Now())
	return nil
}

func (s *Server) modify(login string, fn func(*entry)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.userByLogin(login)
	if e == nil {
		return fmt.Errorf("%w: %q", ErrNoSuchUser, login)
	}
	fn(e)
	e.set("modifiersName", AdminDN)
	s.touch(e)
	return nil
}
