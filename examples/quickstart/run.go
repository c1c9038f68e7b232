package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/examples/internal/demoldap"
	"github.com/liaisonhq/liaison/examples/internal/e2e"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

const (
	tenant  = "acme"
	mapping = "staff"
	// grace is the Not Connected grace period, shortened from the
	// production default (alerts.DefaultGrace) so the demo is quick.
	grace = time.Second
)

// demo is the state the steps share.
type demo struct {
	w      io.Writer
	logger *slog.Logger
	ldap   *demoldap.Server
	st     *e2e.Stack
	client *http.Client // trusts the cloud's CA only
	users  map[string]cloudapp.User
	// device is carol.smith's activated laptop: its key and credential.
	device struct {
		key        ed25519.PrivateKey
		credential string
		id         string
	}
	// lastError is the body of the last non-200 answer, for messages.
	lastError string
}

type step struct {
	name string
	run  func(ctx context.Context, d *demo) error
}

func steps() []step {
	return []step{
		{"start an LDAP directory with demo data, in process", startDirectory},
		{"start the cloud endpoint and enroll a connector through the tunnel", startCloud},
		{"browse the directory's OUs and groups through the connector", browse},
		{"import the users of a mapping (ou=People)", importUsers},
		{"pick up directory changes with an incremental import", importChanges},
		{"activate devices by mass deployment", activateDevices},
		{"web login, password checked by the directory through the connector", webLogin},
		{"release a user's backup ekey to a worker", releaseKey},
		{"stop the connector: Not Connected raised after the grace period", connectorDown},
		{"with no connector, an activated device still authenticates before its backup", deviceWithoutConnector},
		{"bring the connector back: the alert resolves", connectorBack},
	}
}

// run walks every step, printing what it does to w, and returns an error
// naming the first step that did not do what it should.
func run(ctx context.Context, w io.Writer) error { return runWith(ctx, w, nil) }

// runWith is run with the cloud's and the connector's logs sent to logger
// (nil discards them).
func runWith(ctx context.Context, w io.Writer, logger *slog.Logger) error {
	d := &demo{w: w, logger: logger}
	defer d.close()
	all := steps()
	fmt.Fprintf(w, "Liaison quickstart: a directory, the cloud and a connector in one process\n\n")
	began := time.Now()
	for i, s := range all {
		fmt.Fprintf(w, "[%d/%d] %s\n", i+1, len(all), s.name)
		t0 := time.Now()
		if err := s.run(ctx, d); err != nil {
			fmt.Fprintf(w, "      FAILED: %v\n", err)
			return fmt.Errorf("step %d/%d %q failed: %w", i+1, len(all), s.name, err)
		}
		fmt.Fprintf(w, "      ok (%s)\n", time.Since(t0).Round(time.Millisecond))
	}
	fmt.Fprintf(w, "\nAll %d steps passed in %s.\n", len(all), time.Since(began).Round(time.Millisecond))
	return nil
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.w, "      "+format+"\n", args...)
}

func (d *demo) close() {
	if d.st != nil {
		d.st.Close()
	}
	if d.ldap != nil {
		d.ldap.Close()
	}
}

func startDirectory(ctx context.Context, d *demo) error {
	var err error
	if d.ldap, err = demoldap.Start(demoldap.Config{}); err != nil {
		return err
	}
	d.say("%s (StartTLS required; certificate from a CA made just now)", d.ldap.URL())
	d.say("%s: %d users in 4 departments, nested groups; the connector binds as %s",
		demoldap.BaseDN, len(d.ldap.Users()), demoldap.ServiceDN)
	return nil
}

func startCloud(ctx context.Context, d *demo) error {
	var err error
	d.st, err = e2e.Start(ctx, e2e.Config{
		Tenant: tenant,
		Grace:  grace,
		Logger: d.logger,
		Directory: connector.Directory{
			URLs:         []string{d.ldap.URL()},
			BindDN:       demoldap.ServiceDN,
			BindPassword: demoldap.ServicePassword,
			CAPEM:        d.ldap.CAPEM(),
		},
	})
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(d.st.Cloud.CAPEM()) {
		return errors.New("the cloud's CA is not PEM")
	}
	d.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
	}}
	cs, err := d.st.Cloud.Connectors(ctx, tenant)
	if err != nil {
		return err
	}
	if len(cs) != 1 || cs[0].ID != d.st.ConnectorID() {
		return fmt.Errorf("want the one enrolled connector, the cloud lists %+v", cs)
	}
	s, err := d.st.ConnectorStatus(ctx)
	if err != nil {
		return err
	}
	if s.ConnectorID != cs[0].ID || !s.Directory || !s.Keys {
		return fmt.Errorf("the connector's status through the tunnel: %+v", s)
	}
	d.say("cloud %s (TLS 1.3, certificate from its own CA made just now)", d.st.Cloud.URL())
	d.say("connector %s enrolled with a one-time token, connected to %s", cs[0].ID, d.st.Cloud.TunnelURL())
	d.say("through the tunnel the connector offers: directory and keys (policy: %s)", strings.Join(s.Allow, ", "))
	return nil
}

func browse(ctx context.Context, d *demo) error {
	ous, err := d.st.Cloud.OUs(ctx, tenant, "")
	if err != nil {
		return err
	}
	children := map[string][]directory.OU{}
	known := map[string]bool{}
	var names []string
	for _, o := range ous {
		known[strings.ToLower(o.DN)] = true
		names = append(names, o.Name)
	}
	var roots []directory.OU
	for _, o := range ous {
		if p := strings.ToLower(o.Parent); known[p] {
			children[p] = append(children[p], o)
		} else {
			roots = append(roots, o)
		}
	}
	var show func(os []directory.OU, depth int)
	show = func(os []directory.OU, depth int) {
		for _, o := range os {
			d.say("%sou=%s", strings.Repeat("  ", depth), o.Name)
			show(children[strings.ToLower(o.DN)], depth+1)
		}
	}
	show(roots, 0)
	for _, want := range []string{"People", "Engineering", "Sales", "Finance", "Support", "Groups"} {
		if !slices.Contains(names, want) {
			return fmt.Errorf("OU %q missing from %v", want, names)
		}
	}
	groups, err := d.st.Cloud.Groups(ctx, tenant, "")
	if err != nil {
		return err
	}
	var gs []string
	for _, g := range groups {
		gs = append(gs, fmt.Sprintf("%s(%d)", g.Name, g.MemberCount))
	}
	if len(groups) != 8 {
		return fmt.Errorf("want 8 groups, got %v", gs)
	}
	d.say("groups (direct members): %s", strings.Join(gs, " "))
	return nil
}

func (d *demo) loadUsers(ctx context.Context) error {
	us, err := d.st.Cloud.Users(ctx, tenant)
	if err != nil {
		return err
	}
	d.users = map[string]cloudapp.User{}
	for _, u := range us {
		d.users[u.Login] = u
	}
	return nil
}

func importUsers(ctx context.Context, d *demo) error {
	if err := d.st.Cloud.PutMapping(ctx, tenant, mapping, directory.Mapping{OUs: []string{demoldap.PeopleDN}}); err != nil {
		return err
	}
	res, err := d.st.Cloud.RunImport(ctx, tenant, mapping, cloudapp.ImportOptions{})
	if err != nil {
		return err
	}
	d.say("mapping %q = %s; full import: %d scanned, %d created", mapping, demoldap.PeopleDN, res.Scanned, res.Summary.Creates)
	if res.Summary.Creates != 20 || !res.Full {
		return fmt.Errorf("want a full import creating 20 users, got %+v", res.Summary)
	}
	if err := d.loadUsers(ctx); err != nil {
		return err
	}
	if len(d.users) != 20 {
		return fmt.Errorf("the cloud holds %d users, want 20", len(d.users))
	}
	if !d.users["ivan.petrov"].Disabled || d.users["alice.martin"].Disabled {
		return errors.New("ivan.petrov should be imported disabled and alice.martin enabled")
	}
	if !slices.ContainsFunc(d.users["alice.martin"].Groups, func(g string) bool { return directory.SameDN(g, demoldap.BackupGroupDN) }) {
		return fmt.Errorf("alice.martin's nested groups lack backup-users: %v", d.users["alice.martin"].Groups)
	}
	d.say("the cloud holds 20 users; ivan.petrov is disabled; alice.martin is in %d groups (nested)", len(d.users["alice.martin"].Groups))
	return nil
}

func importChanges(ctx context.Context, d *demo) error {
	if _, err := d.ldap.AddUser(demoldap.User{Login: "tom.new", GivenName: "Tom", Surname: "New", Department: "Engineering"}); err != nil {
		return err
	}
	if err := d.ldap.SetDisabled("laura.chen", true); err != nil {
		return err
	}
	if err := d.ldap.SetAttribute("bob.nguyen", "mail", "bob.nguyen@acme-corp.example"); err != nil {
		return err
	}
	d.say("in the directory: added tom.new, disabled laura.chen, changed bob.nguyen's mail")
	res, err := d.st.Cloud.RunImport(ctx, tenant, mapping, cloudapp.ImportOptions{})
	if err != nil {
		return err
	}
	s := res.Summary
	switch {
	case res.FellBack:
		// The demo directory has no syncprov, so it cannot say what was
		// deleted since the cursor: the importer falls back to a full scan
		// rather than miss a removal (OpenLDAP with syncprov and AD answer
		// incrementally; see directory.Client.Departures).
		d.say("incremental import asked; the demo directory cannot report deletions, so it ran as a full scan: %d scanned, %d created, %d updated, %d disabled",
			res.Scanned, s.Creates, s.Updates, s.Disables)
	case res.Full:
		return fmt.Errorf("want an incremental import, or a full scan it fell back to; got a full import %+v", s)
	default:
		d.say("incremental import: %d scanned, %d created, %d updated, %d disabled", res.Scanned, s.Creates, s.Updates, s.Disables)
		if res.Scanned > 5 {
			return fmt.Errorf("want an incremental import of about 3 users, got %d scanned", res.Scanned)
		}
	}
	if s.Creates != 1 || s.Disables != 1 || s.Updates < 1 {
		return fmt.Errorf("want 1 create, 1 disable and at least 1 update, got %+v", s)
	}
	if err := d.loadUsers(ctx); err != nil {
		return err
	}
	if _, ok := d.users["tom.new"]; !ok || !d.users["laura.chen"].Disabled || d.users["bob.nguyen"].Email != "bob.nguyen@acme-corp.example" {
		return errors.New("the cloud's users do not show the three changes")
	}
	return nil
}

// activate is what a device does: sign an activation request with its own
// key and post it to the cloud over HTTPS (never to the connector).
func (d *demo) activate(ctx context.Context, token, login, deviceID string, key ed25519.PrivateKey) (activation.ActivateResponse, int, error) {
	req := activation.Request{Tenant: tenant, Token: token, Login: login, Hostname: deviceID + ".corp.acme.example", DeviceID: deviceID}
	req.Sign(key)
	body, _ := json.Marshal(activation.ActivateRequest{
		Tenant: req.Tenant, Token: req.Token, Login: req.Login, Domain: req.Domain, Hostname: req.Hostname,
		DeviceID: req.DeviceID, DevicePublicKey: req.DevicePublicKey, Signature: req.Signature,
	})
	var out activation.ActivateResponse
	code, err := d.post(ctx, cloudapp.PathActivate, body, &out)
	return out, code, err
}

func (d *demo) post(ctx context.Context, path string, body []byte, out any) (int, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, d.st.Cloud.URL()+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	r.Header.Set("Content-Type", "application/json")
	resp, err := d.client.Do(r)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		d.lastError = strings.TrimSpace(string(b))
		return resp.StatusCode, nil
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s: %w", path, err)
		}
	}
	return resp.StatusCode, nil
}

func activateDevices(ctx context.Context, d *demo) error {
	token, _, err := d.st.Cloud.IssueDeploymentToken(ctx, tenant, mapping, time.Hour)
	if err != nil {
		return err
	}
	d.say("mass-deployment token issued for mapping %q (shown once, stored hashed)", mapping)
	_, key, _ := ed25519.GenerateKey(rand.Reader)

	res, code, err := d.activate(ctx, token, "carol.smith", "laptop-0142", key)
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("activation of carol.smith: status %d %s %v", code, d.lastError, err)
	}
	if res.UserCreated || !res.DeviceCreated || res.UserID != d.users["carol.smith"].ID {
		return fmt.Errorf("carol.smith (imported) should get a new device on her existing user, got %+v", res)
	}
	d.say("laptop-0142 for carol.smith (already imported): device activated, credential issued")
	d.device.key, d.device.credential, d.device.id = key, res.Credential, res.DeviceID

	again, code, err := d.activate(ctx, token, "carol.smith", "laptop-0142", key)
	if err != nil || code != http.StatusOK || again.DeviceCreated || again.DeviceID != res.DeviceID {
		return fmt.Errorf("a retried activation should return the same device: status %d %+v %v", code, again, err)
	}
	d.say("the same request retried: same device, nothing created twice")

	if _, err := d.ldap.AddUser(demoldap.User{Login: "uma.fresh", GivenName: "Uma", Surname: "Fresh", Department: "Finance"}); err != nil {
		return err
	}
	_, key2, _ := ed25519.GenerateKey(rand.Reader)
	res2, code, err := d.activate(ctx, token, "uma.fresh", "laptop-0143", key2)
	if err != nil || code != http.StatusOK || !res2.UserCreated || !res2.DeviceCreated {
		return fmt.Errorf("uma.fresh (in the directory, not yet imported) should be created and activated: status %d %s %v", code, d.lastError, err)
	}
	d.say("laptop-0143 for uma.fresh (new in the directory): user created from the directory, device activated")

	_, key3, _ := ed25519.GenerateKey(rand.Reader)
	if _, code, err := d.activate(ctx, token, "mallory", "laptop-6666", key3); err != nil || code == http.StatusOK {
		return fmt.Errorf("a login absent from the directory must be refused, got status %d %v", code, err)
	} else {
		d.say("laptop-6666 for \"mallory\" (not in the directory): refused with %d", code)
	}
	return nil
}

func (d *demo) login(ctx context.Context, login, password string) (int, error) {
	body, _ := json.Marshal(cloudapp.LoginRequest{Tenant: tenant, MappingID: mapping, Login: login, Password: password})
	return d.post(ctx, cloudapp.PathLogin, body, nil)
}

func webLogin(ctx context.Context, d *demo) error {
	cases := []struct {
		what, login, password string
		want                  int
	}{
		{"right password", "alice.martin", demoldap.Password, http.StatusOK},
		{"wrong password", "alice.martin", "guess", http.StatusUnauthorized},
		{"disabled account, right password", "ivan.petrov", demoldap.Password, http.StatusUnauthorized},
	}
	for _, c := range cases {
		code, err := d.login(ctx, c.login, c.password)
		if err != nil {
			return err
		}
		if code != c.want {
			return fmt.Errorf("login of %s with the %s: status %d, want %d", c.login, c.what, code, c.want)
		}
		d.say("%s, %s: %d %s", c.login, c.what, code, http.StatusText(code))
	}
	return nil
}

func releaseKey(ctx context.Context, d *demo) error {
	kem := hpke.DHKEM(ecdh.X25519())
	worker, err := kem.GenerateKey()
	if err != nil {
		return err
	}
	alice := d.users["alice.martin"]
	rel, err := d.st.Cloud.ReleaseKey(ctx, tenant, alice.ID, "job-0001", worker.PublicKey().Bytes(), 10*time.Minute)
	if err != nil {
		return err
	}
	d.say("the cloud signed a ticket for job-0001; the connector unwrapped alice.martin's ekey %s and sealed it to the worker's key", rel.EkeyID)
	ek, err := keyenvelope.OpenRelease(worker, rel.Ticket, rel.Release)
	if err != nil {
		return fmt.Errorf("the worker cannot open its release: %w", err)
	}
	d.say("the worker opened the release: a %d-byte ekey (never seen by the cloud)", len(ek.Key))

	other, err := kem.GenerateKey()
	if err != nil {
		return err
	}
	if _, err := keyenvelope.OpenRelease(other, rel.Ticket, rel.Release); !errors.Is(err, keyenvelope.ErrUnwrap) {
		return fmt.Errorf("another worker must not open the release, got %v", err)
	}
	d.say("another worker's key cannot open it")

	rel2, err := d.st.Cloud.ReleaseKey(ctx, tenant, alice.ID, "job-0002", worker.PublicKey().Bytes(), 10*time.Minute)
	if err != nil {
		return err
	}
	ek2, err := keyenvelope.OpenRelease(worker, rel2.Ticket, rel2.Release)
	if err != nil {
		return err
	}
	if ek.Key != ek2.Key || ek.ID != ek2.ID {
		return errors.New("a second job got a different ekey for the same user")
	}
	ek.Zero()
	ek2.Zero()
	d.say("job-0002 gets the same ekey: backups stay readable")
	return nil
}

func connectorDown(ctx context.Context, d *demo) error {
	t0 := time.Now()
	if err := d.st.StopConnector(); err != nil {
		return err
	}
	d.say("connector stopped; grace period %s", grace)
	wctx, cancel := context.WithTimeout(ctx, grace+10*time.Second)
	defer cancel()
	a, err := d.st.WaitAlert(wctx, alerts.KindNotConnected, alerts.EventRaised, t0)
	if err != nil {
		return err
	}
	after := time.Since(t0)
	if after < grace {
		return fmt.Errorf("Not Connected raised after %s, before the %s grace period", after, grace)
	}
	d.say("alert raised after %s: [%s] %s", after.Round(10*time.Millisecond), a.Severity, a.Message)
	code, err := d.login(ctx, "alice.martin", demoldap.Password)
	if err != nil {
		return err
	}
	if code != http.StatusServiceUnavailable {
		return fmt.Errorf("a web login without connector: status %d, want 503", code)
	}
	d.say("meanwhile a web login answers %d %s: the cloud knows no connector is there", code, http.StatusText(code))
	return nil
}

// deviceWithoutConnector: the device activated earlier calls the device
// endpoint, as a backup client does before each backup, while the tenant
// has no connector; a replay of the same signed request is refused.
func deviceWithoutConnector(ctx context.Context, d *demo) error {
	if d.device.credential == "" {
		return errors.New("no activated device from the activation step")
	}
	req, err := activation.SignDeviceAuth(d.device.key, tenant, d.device.credential, time.Now(), rand.Reader)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(req)
	var out activation.DeviceAuthResponse
	code, err := d.post(ctx, cloudapp.PathDeviceAuth, body, &out)
	if err != nil {
		return err
	}
	if code != http.StatusOK || out.DeviceID != d.device.id || out.UserID != d.users["carol.smith"].ID {
		return fmt.Errorf("device authentication with no connector: status %d %s %+v, want 200 for %s", code, d.lastError, out, d.device.id)
	}
	d.say("%s (carol.smith) authenticated with its credential and key: %d %s, no connector involved", out.DeviceID, code, http.StatusText(code))
	code, err = d.post(ctx, cloudapp.PathDeviceAuth, body, nil)
	if err != nil {
		return err
	}
	if code != http.StatusUnauthorized {
		return fmt.Errorf("a replayed device request: status %d, want 401", code)
	}
	d.say("the same signed request replayed: %d %s", code, http.StatusText(code))
	return nil
}

func connectorBack(ctx context.Context, d *demo) error {
	t0 := time.Now()
	if err := d.st.StartConnector(ctx); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	a, err := d.st.WaitAlert(wctx, alerts.KindNotConnected, alerts.EventResolved, t0)
	if err != nil {
		return err
	}
	d.say("connector reconnected; alert resolved after %s (open for %s)", time.Since(t0).Round(10*time.Millisecond),
		a.ResolvedAt.Sub(a.FirstSeen).Round(10*time.Millisecond))
	open, err := d.st.Cloud.Alerts(ctx, alerts.Filter{Tenant: tenant, Kind: alerts.KindNotConnected, OpenOnly: true})
	if err != nil {
		return err
	}
	if len(open) != 0 {
		return fmt.Errorf("%d Not Connected alerts still open", len(open))
	}
	code, err := d.login(ctx, "alice.martin", demoldap.Password)
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("web login after the connector returned: status %d %v", code, err)
	}
	d.say("web login works again")
	return nil
}
