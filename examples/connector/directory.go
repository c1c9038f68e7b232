package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/examples/internal/cli"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// connFlags are the [conn] flags shared by every directory subcommand.
type connFlags struct {
	configFile   string
	urls         stringList
	bindDN       string
	passwordFile string
	passwordEnv  string // from --config only
	caFile       string
	startTLS     bool
	profile      string
}

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.Var(&c.urls, "url", "directory server URL, ldaps:// or ldap:// (repeatable, in failover order)")
	fs.StringVar(&c.bindDN, "bind-dn", "", "service account DN")
	fs.StringVar(&c.passwordFile, "bind-password-file", "", "file holding the service account's password")
	fs.StringVar(&c.caFile, "ca-file", "", "PEM file of the CAs that signed the servers' certificates (default: system roots)")
	fs.BoolVar(&c.startTLS, "start-tls", true, "upgrade ldap:// URLs with StartTLS; =false sends passwords in clear (insecure, test servers only)")
	fs.StringVar(&c.profile, "profile", "auto", "directory profile: auto, ad or openldap")
	fs.StringVar(&c.configFile, "config", "", "take the connection settings from this connector config's directory section (flags override)")
}

// fromConfig fills the flags the command line did not set from the
// directory section of a connector config file.
func (c *connFlags) fromConfig(fs *flag.FlagSet) error {
	if c.configFile == "" {
		return nil
	}
	cfg, err := connector.LoadConfig(c.configFile)
	if err != nil {
		return err
	}
	d := cfg.Directory
	if d == nil {
		return fmt.Errorf("%s has no directory section (a key-only connector)", c.configFile)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["url"] {
		c.urls = d.URLs
	}
	if !set["bind-dn"] {
		c.bindDN = d.BindDN
	}
	if !set["bind-password-file"] {
		c.passwordFile, c.passwordEnv = d.BindPasswordFile, d.BindPasswordEnv
	}
	if !set["ca-file"] {
		c.caFile = d.CAFile
	}
	if !set["profile"] && d.Profile != "" {
		c.profile = d.Profile
	}
	if !set["start-tls"] {
		c.startTLS = !d.InsecurePlaintext
	}
	return nil
}

// config turns the flags into a directory.Config.
func (c *connFlags) config(stderr io.Writer) (directory.Config, error) {
	if len(c.urls) == 0 {
		return directory.Config{}, errors.New("--url is required")
	}
	if c.bindDN == "" {
		return directory.Config{}, errors.New("--bind-dn is required")
	}
	var pw string
	switch {
	case c.passwordFile != "":
		var err error
		if pw, err = readSecretFile(c.passwordFile); err != nil {
			return directory.Config{}, err
		}
	case c.passwordEnv != "":
		if pw = os.Getenv(c.passwordEnv); pw == "" {
			return directory.Config{}, fmt.Errorf("environment variable %s (bind_password_env) is not set", c.passwordEnv)
		}
	default:
		return directory.Config{}, errors.New("--bind-password-file is required")
	}
	profile, err := directory.ParseProfile(c.profile)
	if err != nil {
		return directory.Config{}, err
	}
	cfg := directory.Config{
		URLs:         c.urls,
		BindDN:       c.bindDN,
		BindPassword: pw,
		Profile:      profile,
		Plaintext:    !c.startTLS,
	}
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return directory.Config{}, fmt.Errorf("ca file: %w", err)
		}
		cfg.CAPEM = pem
	}
	if !c.startTLS {
		fmt.Fprintln(stderr, "connector: warning: --start-tls=false: ldap:// passwords cross the network in clear")
	}
	return cfg, nil
}

// readSecretFile reads a one-line secret, dropping one trailing newline.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	s = strings.TrimSuffix(s, "\r")
	if s == "" {
		return "", fmt.Errorf("password file %s is empty", path)
	}
	return s, nil
}

// scopeFlags are the [scope] flags: a directory.Mapping.
type scopeFlags struct {
	base    string
	ous     stringList
	subtree bool
	groups  stringList
	filter  string
}

func (s *scopeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.base, "base", "", "search base when no --ou is given (default: the default naming context)")
	fs.Var(&s.ous, "ou", "OU whose users are in scope (repeatable)")
	fs.BoolVar(&s.subtree, "subtree", true, "include users below the OUs' direct children")
	fs.Var(&s.groups, "group", "keep only members of this group, nested membership included (repeatable)")
	fs.StringVar(&s.filter, "filter", "", "extra LDAP filter ANDed with the user filter, e.g. (department=Sales)")
}

func (s *scopeFlags) mapping() (directory.Mapping, error) {
	m := directory.Mapping{
		Base:     s.base,
		OUs:      s.ous,
		OneLevel: !s.subtree,
		Groups:   s.groups,
		Filter:   s.filter,
	}
	return m, m.Validate()
}

// parseInterleaved parses flags that may appear before and after positional
// arguments ("lookup --url U alice --ca-file F") and returns the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// userJSON is the contract of the user lines: every field always present.
type userJSON struct {
	ID          string   `json:"id"`
	Login       string   `json:"login"`
	UPN         string   `json:"upn"`
	Email       string   `json:"email"`
	DisplayName string   `json:"display_name"`
	DN          string   `json:"dn"`
	Groups      []string `json:"groups"`
	Disabled    bool     `json:"disabled"`
}

func toUserJSON(u directory.User) userJSON {
	g := u.Groups
	if g == nil {
		g = []string{}
	}
	return userJSON{
		ID: u.ID, Login: u.Login, UPN: u.UPN, Email: u.Email,
		DisplayName: u.DisplayName, DN: u.DN, Groups: g, Disabled: u.Disabled,
	}
}

// infoJSON is the contract of "directory info".
type infoJSON struct {
	Server               string   `json:"server"`
	Profile              string   `json:"profile"`
	Vendor               string   `json:"vendor"`
	VendorVersion        string   `json:"vendor_version"`
	NamingContexts       []string `json:"naming_contexts"`
	DefaultNamingContext string   `json:"default_naming_context"`
}

func runDirectory(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	sub := args[0]
	switch sub {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fs := flag.NewFlagSet("connector directory "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var conn connFlags
	conn.register(fs)
	var scope scopeFlags
	var base string
	wantLogin := false
	switch sub {
	case "info":
	case "ous", "groups":
		fs.StringVar(&base, "base", "", "base DN (default: the default naming context)")
	case "users":
		scope.register(fs)
	case "lookup", "auth":
		scope.register(fs)
		wantLogin = true
	default:
		fmt.Fprintf(stderr, "connector: unknown directory command %q\n%s", sub, usage)
		return exitUsage
	}
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	switch {
	case wantLogin && len(pos) != 1:
		fmt.Fprintf(stderr, "connector: directory %s takes exactly one LOGIN\n", sub)
		return exitUsage
	case !wantLogin && len(pos) != 0:
		fmt.Fprintf(stderr, "connector: directory %s: unexpected argument %q\n", sub, pos[0])
		return exitUsage
	}
	if err := conn.fromConfig(fs); err != nil {
		fmt.Fprintln(stderr, "connector:", cli.Message(err))
		return exitUsage
	}
	cfg, err := conn.config(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "connector:", cli.Message(err))
		return exitUsage
	}
	var m directory.Mapping
	if sub == "users" || wantLogin {
		if m, err = scope.mapping(); err != nil {
			fmt.Fprintln(stderr, "connector:", cli.Message(err))
			return exitUsage
		}
	}
	client, err := directory.Open(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "connector:", cli.Message(err))
		return exitUsage
	}
	defer client.Close()

	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	switch sub {
	case "info":
		info, err := client.Info(ctx)
		if err != nil {
			return fail(stderr, err)
		}
		nc := info.NamingContexts
		if nc == nil {
			nc = []string{}
		}
		return encode(enc, stderr, infoJSON{
			Server: info.Server, Profile: info.Profile.String(), Vendor: info.Vendor,
			VendorVersion: info.VendorVersion, NamingContexts: nc,
			DefaultNamingContext: info.DefaultNamingContext,
		})
	case "ous":
		ous, err := client.OUs(ctx, base)
		if err != nil {
			return fail(stderr, err)
		}
		for _, ou := range ous {
			if code := encode(enc, stderr, ou); code != exitOK {
				return code
			}
		}
		return exitOK
	case "groups":
		groups, err := client.Groups(ctx, base)
		if err != nil {
			return fail(stderr, err)
		}
		for _, g := range groups {
			if code := encode(enc, stderr, g); code != exitOK {
				return code
			}
		}
		return exitOK
	case "users":
		return listUsers(ctx, client, m, enc, stderr)
	case "lookup":
		u, err := client.Lookup(ctx, m, pos[0])
		switch {
		case errors.Is(err, directory.ErrNotFound):
			fmt.Fprintf(stderr, "connector: %q: not found\n", pos[0])
			return exitNotFound
		case errors.Is(err, directory.ErrAmbiguous):
			fmt.Fprintf(stderr, "connector: %q: ambiguous, more than one user matches\n", pos[0])
			return exitAmbiguous
		case err != nil:
			return fail(stderr, err)
		}
		return encode(enc, stderr, toUserJSON(u))
	default: // auth
		pw, err := promptPassword(stdin, stderr, pos[0])
		if err != nil {
			fmt.Fprintf(stderr, "connector: reading password from stdin: %v\n", cli.Message(err))
			return exitUsage
		}
		u, err := client.CheckCredentials(ctx, m, pos[0], pw)
		switch {
		case err == nil:
			fmt.Fprintf(stderr, "connector: %q: valid (%s)\n", pos[0], u.DN)
			return exitOK
		case errors.Is(err, directory.ErrInvalidCredentials):
			fmt.Fprintf(stderr, "connector: refused: %s\n", directory.ReasonOf(err))
			return exitRefused
		case errors.Is(err, directory.ErrNotFound):
			fmt.Fprintln(stderr, "connector: refused: not_found")
			return exitRefused
		case errors.Is(err, directory.ErrAmbiguous):
			fmt.Fprintln(stderr, "connector: refused: ambiguous")
			return exitRefused
		}
		return fail(stderr, err)
	}
}

// promptPassword reads the password from stdin; on a terminal it prompts on
// stderr and turns echo off while the password is typed.
func promptPassword(stdin io.Reader, stderr io.Writer, login string) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(stderr, "password for %s: ", login)
		defer fmt.Fprintln(stderr)
		b, err := term.ReadPassword(int(f.Fd()))
		return string(b), err
	}
	return readPassword(stdin)
}

// readPassword reads the first line of r without its line ending. Spaces are
// kept: they may be part of the password.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimSuffix(line, "\n")
	return strings.TrimSuffix(line, "\r"), nil
}

// listUsers streams the mapping's users as JSON lines, with progress on
// stderr when stderr is a terminal.
func listUsers(ctx context.Context, client *directory.Client, m directory.Mapping, enc *json.Encoder, stderr io.Writer) int {
	progress := isTerminal(stderr)
	start := time.Now()
	last := start
	n := 0
	_, err := client.Users(ctx, m, func(u directory.User) error {
		if err := enc.Encode(toUserJSON(u)); err != nil {
			return err
		}
		n++
		if progress && time.Since(last) >= 250*time.Millisecond {
			last = time.Now()
			fmt.Fprintf(stderr, "\r%d users (%.0f/s)", n, float64(n)/time.Since(start).Seconds())
		}
		return nil
	})
	if progress {
		fmt.Fprintf(stderr, "\r%d users in %s\n", n, time.Since(start).Round(time.Millisecond))
	}
	if err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

// isTerminal reports whether w is a terminal (a console on Windows). A
// character device that is not one, such as /dev/null, is not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func encode(enc *json.Encoder, stderr io.Writer, v any) int {
	if err := enc.Encode(v); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

func fail(stderr io.Writer, err error) int {
	fmt.Fprintln(stderr, "connector:", cli.Message(err))
	return exitFailure
}
