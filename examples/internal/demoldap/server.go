package demoldap

import (
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jimlambrt/gldap"

	"github.com/liaisonhq/liaison/directory"
)

// Errors returned by the Server's methods.
var (
	// ErrNoSuchUser: no demo user has that login.
	ErrNoSuchUser = errors.New("demoldap: no such user")
	// ErrExists: an entry with that DN already exists.
	ErrExists = errors.New("demoldap: entry already exists")
	// ErrClosed: the server was closed.
	ErrClosed = errors.New("demoldap: server closed")
)

// Config configures a demo server. The zero Config serves the demo data.
type Config struct {
	// Users replaces the 20 demo users when non-nil. Their Department must
	// be one of Engineering, Sales, Finance or Support.
	Users []User
	// MaxFailures locks an account (ppolicy pwdMaxFailure) after that many
	// consecutive wrong passwords; 0 never locks.
	MaxFailures int
	// Now is the clock for timestamps and change sequence numbers
	// (default time.Now).
	Now func() time.Time
}

// Server is a running demo directory. Its methods are safe for concurrent
// use.
type Server struct {
	cfg   Config
	caPEM []byte
	tls   *tls.Config

	mu      sync.Mutex
	entries []*entry // parents before children
	byNorm  map[string]*entry
	lastCSN string
	csnSeq  int
	pages   map[string][]*entry // paged-search cookie -> remaining entries
	nextPg  int

	plain, secure *listener

	binds, searches atomic.Int64
	closeOnce       sync.Once
	closed          atomic.Bool
}

// entry is one directory entry.
type entry struct {
	dn       string
	norm     string
	attrs    []attr
	password string // userPassword, never returned
	login    string // uid, for users
	failures int
}

type attr struct {
	name string
	vals []string
}

// operational attributes are returned only when asked for by name or "+".
func operational(name string) bool {
	switch strings.ToLower(name) {
	case "entryuuid", "entrycsn", "createtimestamp", "modifytimestamp", "memberof", "entrydn",
		"contextcsn", "pwdaccountlockedtime", "pwdfailuretime", "structuralobjectclass",
		"subschemasubentry", "hassubordinates", "creatorsname", "modifiersname":
		return true
	}
	return false
}

// Start builds the demo directory and serves it on two random loopback
// ports: ldap:// (StartTLS required before any bind) and ldaps://, both
// with a certificate from a CA made at start-up ([Server.CAPEM]).
func Start(cfg Config) (*Server, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	users := cfg.Users
	if users == nil {
		users = demoUsers()
	}
	caPEM, leaf, err := newCA(cfg.Now())
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:    cfg,
		caPEM:  caPEM,
		tls:    &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12},
		byNorm: map[string]*entry{},
		pages:  map[string][]*entry{},
	}
	if err := s.load(users); err != nil {
		return nil, err
	}
	if s.plain, err = s.listen(false); err != nil {
		return nil, err
	}
	if s.secure, err = s.listen(true); err != nil {
		s.plain.stop()
		return nil, err
	}
	return s, nil
}

// URL is the ldap:// URL; clients must StartTLS before binding.
func (s *Server) URL() string { return "ldap://" + s.plain.addr }

// LDAPSURL is the ldaps:// URL.
func (s *Server) LDAPSURL() string { return "ldaps://" + s.secure.addr }

// CAPEM is the PEM of the CA that signed the server's certificate.
func (s *Server) CAPEM() []byte { return slices.Clone(s.caPEM) }

// DirectoryConfig returns a [directory.Config] for the service account,
// trusting the server's CA, with StartTLS on the ldap:// URL.
func (s *Server) DirectoryConfig() directory.Config {
	return directory.Config{
		URLs:         []string{s.URL()},
		BindDN:       ServiceDN,
		BindPassword: ServicePassword,
		CAPEM:        s.CAPEM(),
	}
}

// Stats returns the number of binds and searches served so far.
func (s *Server) Stats() (binds, searches int64) { return s.binds.Load(), s.searches.Load() }

// Close stops both listeners and waits for their connections. It is
// idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.plain.stop()
		s.secure.stop()
	})
	return nil
}

// listener is one gldap server and its per-connection state.
type listener struct {
	srv    *gldap.Server
	addr   string
	secure bool
	done   chan struct{}

	mu    sync.Mutex
	conns map[int]*connState
}

type connState struct {
	tls   bool
	bound string // normalised DN; "" = anonymous
}

func (l *listener) state(id int) *connState {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.conns[id]
	if c == nil {
		c = &connState{tls: l.secure}
		l.conns[id] = c
	}
	return c
}

func (l *listener) stop() {
	_ = l.srv.Stop()
	<-l.done
}

func (s *Server) listen(secure bool) (*listener, error) {
	var lastErr error
	for range 5 {
		l, err := s.tryListen(secure)
		if err == nil {
			return l, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func (s *Server) tryListen(secure bool) (*listener, error) {
	l := &listener{secure: secure, conns: map[int]*connState{}, done: make(chan struct{})}
	probed := make(chan struct{})
	var probedOnce sync.Once
	srv, err := gldap.NewServer(
		gldap.WithLogger(hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Off})),
		gldap.WithOnClose(func(id int) {
			l.mu.Lock()
			delete(l.conns, id)
			l.mu.Unlock()
			probedOnce.Do(func() { close(probed) })
		}))
	if err != nil {
		return nil, fmt.Errorf("demoldap: %w", err)
	}
	mux, err := gldap.NewMux()
	if err != nil {
		return nil, fmt.Errorf("demoldap: %w", err)
	}
	if err := errors.Join(
		mux.Bind(s.handleBind(l)),
		mux.Search(s.handleSearch(l)),
		mux.ExtendedOperation(s.handleStartTLS(l), gldap.ExtendedOperationStartTLS),
		mux.DefaultRoute(handleUnwilling),
		srv.Router(mux),
	); err != nil {
		return nil, fmt.Errorf("demoldap: %w", err)
	}
	// gldap listens itself: pick a free port, then hand it over.
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demoldap: listen: %w", err)
	}
	l.addr = probe.Addr().String()
	probe.Close()
	var opts []gldap.Option
	if secure {
		opts = append(opts, gldap.WithTLSConfig(s.tls))
	}
	errc := make(chan error, 1)
	go func() {
		defer close(l.done)
		errc <- srv.Run(l.addr, opts...)
	}()
	for !srv.Ready() {
		select {
		case err := <-errc:
			return nil, fmt.Errorf("demoldap: listen: %w", err)
		case <-time.After(time.Millisecond):
		}
	}
	// Ready is set even when listening failed; a failed Run returns at once.
	c, err := net.DialTimeout("tcp", l.addr, 2*time.Second)
	if err != nil {
		_ = srv.Stop()
		<-l.done
		return nil, fmt.Errorf("demoldap: listen: %w", err)
	}
	c.Close()
	// Wait until gldap has finished with the probe connection: its Run
	// counts connections in a WaitGroup that Stop waits on, and an Add
	// racing with a later Stop's Wait is a data race (seen under -race
	// when a server is closed right after Start).
	select {
	case <-probed:
	case <-time.After(2 * time.Second):
	}
	select {
	case err := <-errc:
		return nil, fmt.Errorf("demoldap: listen: %w", err)
	default:
	}
	l.srv = srv
	return l, nil
}

func handleUnwilling(w *gldap.ResponseWriter, r *gldap.Request) {
	_ = w.Write(r.NewResponse(gldap.WithResponseCode(gldap.ResultUnwillingToPerform),
		gldap.WithDiagnosticMessage("demoldap: read-only demo directory")))
}

func (s *Server) handleStartTLS(l *listener) gldap.HandlerFunc {
	return func(w *gldap.ResponseWriter, r *gldap.Request) {
		st := l.state(r.ConnectionID())
		res := r.NewExtendedResponse(gldap.WithResponseCode(gldap.ResultSuccess))
		res.SetResponseName(gldap.ExtendedOperationStartTLS)
		if st.tls {
			res.SetResultCode(gldap.ResultOperationsError)
			res.SetDiagnosticMessage("TLS already started")
			_ = w.Write(res)
			return
		}
		if err := w.Write(res); err != nil {
			return
		}
		if err := r.StartTLS(s.tls); err != nil {
			return // the client sees the connection fail
		}
		l.mu.Lock()
		st.tls = true
		l.mu.Unlock()
	}
}

const ppolicyOID = "1.3.6.1.4.1.42.2.27.8.5.1"

func (s *Server) handleBind(l *listener) gldap.HandlerFunc {
	return func(w *gldap.ResponseWriter, r *gldap.Request) {
		s.binds.Add(1)
		reply := func(code int, msg string, ctrl ...gldap.Control) {
			res := r.NewBindResponse(gldap.WithResponseCode(code), gldap.WithDiagnosticMessage(msg))
			if len(ctrl) > 0 {
				res.SetControls(ctrl...)
			}
			_ = w.Write(res)
		}
		m, err := r.GetSimpleBindMessage()
		if err != nil {
			reply(gldap.ResultAuthMethodNotSupported, "only simple binds are supported")
			return
		}
		st := l.state(r.ConnectionID())
		l.mu.Lock()
		st.bound = ""
		secure := st.tls
		l.mu.Unlock()
		if m.UserName == "" && m.Password == "" {
			reply(gldap.ResultSuccess, "") // anonymous
			return
		}
		if m.Password == "" {
			// OpenLDAP refuses unauthenticated binds by default.
			reply(gldap.ResultUnwillingToPerform, "unauthenticated bind (DN with no password) disallowed")
			return
		}
		if !secure {
			reply(gldap.ResultConfidentialityRequired, "TLS confidentiality required")
			return
		}
		wantsPolicy := slices.ContainsFunc(m.Controls, func(c gldap.Control) bool { return c.GetControlType() == ppolicyOID })
		policyErr := func(code uint) []gldap.Control {
			if !wantsPolicy {
				return nil
			}
			c, err := gldap.NewControlBeheraPasswordPolicy(gldap.WithErrorCode(code))
			if err != nil {
				return nil
			}
			return []gldap.Control{c}
		}
		norm, ok := normDN(m.UserName)
		if !ok {
			reply(gldap.ResultInvalidDNSyntax, "invalid DN")
			return
		}
		s.mu.Lock()
		e := s.byNorm[norm]
		var (
			code   = gldap.ResultSuccess
			ctrls  []gldap.Control
			locked bool
		)
		if e != nil {
			locked = e.get("pwdaccountlockedtime") != nil
		}
		switch {
		case e == nil || e.password == "":
			code = gldap.ResultInvalidCredentials
		case locked:
			// ppolicy answers a locked or disabled account with
			// invalidCredentials and, when asked, accountLocked (1).
			code, ctrls = gldap.ResultInvalidCredentials, policyErr(1)
		case subtle.ConstantTimeCompare([]byte(e.password), []byte(m.Password)) != 1:
			code = gldap.ResultInvalidCredentials
			e.failures++
			if s.cfg.MaxFailures > 0 && e.failures >= s.cfg.MaxFailures {
				s.setLocked(e, s.cfg.Now().UTC().Format("20060102150405Z"))
			}
		default:
			e.failures = 0
		}
		s.mu.Unlock()
		if code != gldap.ResultSuccess {
			reply(code, "", ctrls...)
			return
		}
		l.mu.Lock()
		st.bound = norm
		l.mu.Unlock()
		reply(gldap.ResultSuccess, "")
	}
}

func (s *Server) handleSearch(l *listener) gldap.HandlerFunc {
	return func(w *gldap.ResponseWriter, r *gldap.Request) {
		s.searches.Add(1)
		done := func(code int, msg string, ctrl ...gldap.Control) {
			res := r.NewSearchDoneResponse(gldap.WithResponseCode(code), gldap.WithDiagnosticMessage(msg))
			if len(ctrl) > 0 {
				res.SetControls(ctrl...)
			}
			_ = w.Write(res)
		}
		m, err := r.GetSearchMessage()
		if err != nil {
			done(gldap.ResultProtocolError, "bad search request")
			return
		}
		f, err := parseFilter(m.Filter)
		if err != nil {
			done(gldap.ResultProtocolError, "bad filter")
			return
		}
		if m.BaseDN == "" && m.Scope == gldap.BaseObject {
			if f.match(func(string) []string { return []string{"x"} }) || f.kind == fPresent {
				_ = w.Write(r.NewSearchResponseEntry("", gldap.WithAttributes(s.rootDSE(m.Attributes))))
			}
			done(gldap.ResultSuccess, "")
			return
		}
		st := l.state(r.ConnectionID())
		l.mu.Lock()
		bound := st.bound
		l.mu.Unlock()
		if bound == "" {
			done(gldap.ResultInsufficientAccessRights, "anonymous search not allowed")
			return
		}
		var paging *gldap.ControlPaging
		for _, c := range m.Controls {
			if p, ok := c.(*gldap.ControlPaging); ok {
				paging = p
			}
		}
		matched, code, msg := s.collect(m, f, paging)
		if code != gldap.ResultSuccess {
			done(code, msg)
			return
		}
		limit := len(matched)
		if m.SizeLimit > 0 && int64(limit) > m.SizeLimit {
			limit = int(m.SizeLimit)
			code = gldap.ResultSizeLimitExceeded
		}
		var next string
		if paging != nil && paging.PagingSize > 0 && limit > int(paging.PagingSize) {
			next = s.keepPage(matched[paging.PagingSize:limit])
			limit = int(paging.PagingSize)
			code = gldap.ResultSuccess
		}
		for _, res := range s.render(matched[:limit], m.Attributes) {
			if err := w.Write(r.NewSearchResponseEntry(res.dn, gldap.WithAttributes(res.attrs))); err != nil {
				return
			}
		}
		if paging != nil {
			done(code, "", &gldap.ControlPaging{Cookie: []byte(next)})
			return
		}
		done(code, "")
	}
}

// keepPage stores the rest of a paged search and returns its cookie.
func (s *Server) keepPage(rest []*entry) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextPg++
	cookie := "p" + strconv.Itoa(s.nextPg)
	s.pages[cookie] = rest
	if len(s.pages) > 256 { // bound abandoned searches: drop the oldest
		oldest := ""
		oldestN := 0
		for k := range s.pages {
			if n, _ := strconv.Atoi(k[1:]); oldest == "" || n < oldestN {
				oldest, oldestN = k, n
			}
		}
		delete(s.pages, oldest)
	}
	return cookie
}

// result is an entry as sent: DN and the selected attributes.
type result struct {
	dn    string
	attrs map[string][]string
}

func (s *Server) render(es []*entry, want []string) []result {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]result, len(es))
	for i, e := range es {
		out[i] = result{dn: e.dn, attrs: s.selectAttrs(e, want)}
	}
	return out
}

// collect runs the search, or continues a paged one, and returns the
// matching entries.
func (s *Server) collect(m *gldap.SearchMessage, f *filter, paging *gldap.ControlPaging) ([]*entry, int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if paging != nil && len(paging.Cookie) > 0 {
		rest, ok := s.pages[string(paging.Cookie)]
		if !ok {
			return nil, gldap.ResultUnwillingToPerform, "paged results cookie is invalid"
		}
		delete(s.pages, string(paging.Cookie))
		if paging.PagingSize == 0 { // abandon
			return nil, gldap.ResultSuccess, ""
		}
		return rest, gldap.ResultSuccess, ""
	}
	base, ok := normDN(m.BaseDN)
	if !ok {
		return nil, gldap.ResultInvalidDNSyntax, "invalid DN"
	}
	if s.byNorm[base] == nil {
		return nil, gldap.ResultNoSuchObject, ""
	}
	var out []*entry
	for _, e := range s.entries {
		var in bool
		switch m.Scope {
		case gldap.BaseObject:
			in = e.norm == base
		case gldap.SingleLevel:
			in = parentOf(e.norm) == base
		default:
			in = e.norm == base || under(e.norm, base)
		}
		if in && f.match(s.attrFunc(e)) {
			out = append(out, e)
		}
	}
	return out, gldap.ResultSuccess, ""
}
