//go:build unix

package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/masterkey"
	"github.com/liaisonhq/liaison/tunnel"
)

// The cluster tests run the cloud as separate processes: this test binary,
// re-executed with envRunCloud set, is the cloud command.
const envRunCloud = "LIAISON_TEST_RUN_CLOUD"

func TestMain(m *testing.M) {
	if os.Getenv(envRunCloud) == "1" {
		os.Exit(command(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

const (
	clusterAdminToken = "cluster-admin-token-0123456789"
	envPostgres       = "LIAISON_TEST_POSTGRES_URL"
)

// needClusterTools skips (fails under CI=true) without PostgreSQL or
// haproxy.
func needClusterTools(t testing.TB) (pgURL, haproxy string) {
	t.Helper()
	pgURL = os.Getenv(envPostgres)
	haproxy, herr := exec.LookPath("haproxy")
	if pgURL == "" || herr != nil {
		msg := fmt.Sprintf("cluster process test needs %s (scripts/testbed/pg-up) and haproxy on PATH (apt install haproxy); %s=%t, haproxy: %v",
			envPostgres, envPostgres, pgURL != "", herr)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return pgURL, haproxy
}

// freshSchema creates a schema of its own for the test in the PostgreSQL at
// base and returns a URL whose connections use it; dropped at cleanup.
func freshSchema(t testing.TB, base string) (string, *sql.DB) {
	t.Helper()
	admin, err := sql.Open("pgx", base)
	require.NoError(t, err)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "c_" + hex.EncodeToString(b[:])
	_, err = admin.Exec(`CREATE SCHEMA ` + schema)
	require.NoError(t, err, "create schema in %s", envPostgres)
	t.Cleanup(func() {
		_, _ = admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
		admin.Close()
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := sql.Open("pgx", u.String())
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return u.String(), db
}

func freePorts(t testing.TB, n int) []string {
	t.Helper()
	out := make([]string, n)
	var lns []net.Listener
	for i := range out {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		lns = append(lns, ln)
		out[i] = ln.Addr().String()
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

// node is one cloud process.
type node struct {
	t    testing.TB
	name string
	addr string // its own HTTPS listener
	args []string
	log  *syncBuffer
	cmd  *exec.Cmd
	done chan struct{}
}

func (n *node) start() {
	n.t.Helper()
	cmd := exec.Command(os.Args[0], n.args...)
	cmd.Env = append(os.Environ(), envRunCloud+"=1")
	cmd.Stdout, cmd.Stderr = n.log, n.log
	require.NoError(n.t, cmd.Start())
	n.cmd, n.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(n.done) }()
}

func (n *node) kill9() {
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// stop stops the node as an operator does (SIGTERM) and waits.
func (n *node) stop() {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		n.kill9()
		n.t.Errorf("%s did not stop on SIGTERM", n.name)
	}
}

// cloudCluster is 3 cloud processes on one PostgreSQL schema, clustered
// over their embedded NATS servers, behind haproxy (TCP, round robin).
type cloudCluster struct {
	t      testing.TB
	nodes  []*node
	lb     string // haproxy's address
	url    string // https://lb
	client *http.Client
	db     *sql.DB
	caPEM  []byte
}

func startCloudCluster(t testing.TB, extra ...string) *cloudCluster {
	pgURL, haproxy := needClusterTools(t)
	dbURL, db := freshSchema(t, pgURL)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "cloud.key")
	_, _, _, err := masterkey.LoadOrCreate(keyFile) // provisioned once; every node reads the same file
	require.NoError(t, err)
	tokenFile := filepath.Join(dir, "admin.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(clusterAdminToken), 0o600))
	ports := freePorts(t, 7) // 3 HTTPS, 3 cluster routes, haproxy
	lb := ports[6]
	c := &cloudCluster{t: t, lb: lb, url: "https://" + lb, db: db}
	routes := ports[3:6]
	caOut := filepath.Join(dir, "ca.pem")
	for i := range 3 {
		n := &node{t: t, name: fmt.Sprintf("node-%d", i), addr: ports[i], log: &syncBuffer{}}
		n.args = append([]string{
			"--listen", n.addr, "--public-url", c.url, "--db", dbURL, "--master-key-file", keyFile,
			"--admin-token-file", tokenFile, "--self-signed-ca-out", caOut + "." + n.name,
			"--node-id", n.name, "--cluster-listen", routes[i], "--cluster-peers", strings.Join(routes, ","),
			"--nats-dir", filepath.Join(dir, "nats-"+n.name), "--no-scheduler", "--log-format", "json",
		}, extra...)
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes { // together: JetStream waits for a majority
		n.start()
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			select {
			case <-n.done:
			default:
				n.stop()
			}
			if t.Failed() {
				t.Logf("%s log:\n%s", n.name, tail(n.log.String(), 3000))
			}
		}
	})
	for _, n := range c.nodes {
		c.waitReady(n)
	}
	c.caPEM, err = os.ReadFile(caOut + ".node-0")
	require.NoError(t, err)
	for _, n := range c.nodes[1:] {
		b, err := os.ReadFile(caOut + "." + n.name)
		require.NoError(t, err)
		require.Equal(t, c.caPEM, b, "every node serves under the CA kept in the shared database")
	}
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(c.caPEM))
	c.client = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}, DisableKeepAlives: true}}

	c.startHaproxy(haproxy, dir)
	return c
}

// startHaproxy puts haproxy (TCP, round robin, health-checked) at c.lb in
// front of c.nodes and waits until /healthz answers through it.
func (c *cloudCluster) startHaproxy(haproxy, dir string) {
	t := c.t
	t.Helper()
	cfg := fmt.Sprintf(`global
	maxconn 4096
defaults
	mode tcp
	retries 3
	option redispatch
	timeout connect 1s
	timeout client 1h
	timeout server 1h
frontend fe
	bind %s
	default_backend be
backend be
	balance roundrobin
`, c.lb)
	for _, n := range c.nodes {
		cfg += fmt.Sprintf("\tserver %s %s check inter 300ms fall 2 rise 2\n", n.name, n.addr)
	}
	cfgFile := filepath.Join(dir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(cfgFile, []byte(cfg), 0o600))
	var hlog syncBuffer
	hp := exec.Command(haproxy, "-db", "-f", cfgFile)
	hp.Stdout, hp.Stderr = &hlog, &hlog
	require.NoError(t, hp.Start())
	t.Cleanup(func() {
		_ = hp.Process.Kill()
		_ = hp.Wait()
		if t.Failed() {
			t.Logf("haproxy log:\n%s", tail(hlog.String(), 2000))
		}
	})
	require.Eventually(t, func() bool {
		return c.get(c.url+"/healthz") == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "haproxy")
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitReady waits until n answers /healthz on its own port.
func (c *cloudCluster) waitReady(n *node) {
	c.t.Helper()
	insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	require.Eventually(c.t, func() bool {
		select {
		case <-n.done:
			c.t.Fatalf("%s exited:\n%s", n.name, tail(n.log.String(), 3000))
		default:
		}
		resp, err := insecure.Get("https://" + n.addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 50*time.Second, 100*time.Millisecond, "%s ready", n.name)
}

func (c *cloudCluster) get(u string) int {
	resp, err := c.client.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// importAll imports tenant's mapping through node 0 (the import answers
// 202 with a run ID; runs are followed on the node that started them) and
// waits for the run to succeed.
func (c *cloudCluster) importAll(tenant, mapping string) {
	c.t.Helper()
	base := "https://" + c.nodes[0].addr
	var started struct {
		StatusURL string `json:"status_url"`
	}
	require.Equal(c.t, http.StatusAccepted, c.do(base, http.MethodPost, "/v1/admin/tenants/"+tenant+"/mappings/"+mapping+"/import", nil, &started))
	var run struct {
		State string `json:"state"`
		Error string `json:"error"`
	}
	require.Eventually(c.t, func() bool {
		return c.do(base, http.MethodGet, started.StatusURL, nil, &run) == http.StatusOK && run.State != "running"
	}, 60*time.Second, 50*time.Millisecond)
	require.Equal(c.t, "succeeded", run.State, run.Error)
}

// do sends an admin request to base (the balancer, or a node), decoding
// the answer into out; it returns the status, 0 on a transport error.
func (c *cloudCluster) do(base, method, path string, in, out any) int {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, body)
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+clusterAdminToken)
	client := c.client
	if base != c.url {
		client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode < 300 {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// sessions returns, per node, the live sessions of the tenant it holds.
func (c *cloudCluster) sessions(tenant string) []int {
	out := make([]int, len(c.nodes))
	for i, n := range c.nodes {
		select {
		case <-n.done:
			continue
		default:
		}
		var cs []struct {
			Sessions int `json:"sessions"`
		}
		if c.do("https://"+n.addr, http.MethodGet, "/v1/admin/tenants/"+tenant+"/connectors", nil, &cs) != http.StatusOK {
			continue
		}
		for _, ci := range cs {
			out[i] += ci.Sessions
		}
	}
	return out
}

// procConnector is a connector (in this process) of one tenant, dialing
// the balancer.
type procConnector struct {
	tenant string
	stop   context.CancelFunc
	done   chan struct{}
}

// connect enrolls a connector of tenant through the balancer and runs it,
// its tunnel dialing the balancer.
func (c *cloudCluster) connect(tenant string, dir directoryhttp.Directory) *procConnector {
	c.t.Helper()
	return c.connectTo(tenant, dir, c.lb)
}

// connectTo enrolls a connector of tenant through the balancer and runs it,
// its tunnel dialing addr (the balancer, or one node's own listener to
// place its session there; the connect token's audience stays the
// balancer's URL, the cloud's public one).
func (c *cloudCluster) connectTo(tenant string, dir directoryhttp.Directory, addr string) *procConnector {
	c.t.Helper()
	var tok struct {
		Token string `json:"token"`
	}
	require.Equal(c.t, http.StatusOK, c.do(c.url, http.MethodPost, "/v1/admin/tenants/"+tenant+"/enrollment-tokens", nil, &tok))
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(c.t, err)
	id, err := tunnel.Enroll(context.Background(), c.client, c.url+"/v1/enroll", tok.Token, key)
	require.NoError(c.t, err)
	mux := http.NewServeMux()
	mux.Handle("/directory/", http.StripPrefix("/directory", directoryhttp.NewHandler(dir)))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.caPEM)
	tc, err := tunnel.NewConnector(tunnel.ConnectorConfig{
		URL: "wss://" + addr + "/v1/tunnel", Audience: "wss://" + c.lb + "/v1/tunnel", ConnectorID: id.ConnectorID, CloudKey: id.CloudKey, Key: key, Handler: mux,
		TLSConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		BackoffBase: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
	})
	require.NoError(c.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	pc := &procConnector{tenant: tenant, stop: cancel, done: make(chan struct{})}
	go func() { _ = tc.Run(ctx); _ = tc.Close(); close(pc.done) }()
	c.t.Cleanup(func() { cancel(); <-pc.done })
	return pc
}

// procDir is a small directory served by the connectors.
type procDir struct {
	mu    sync.Mutex
	users []directory.User
}

func newProcDir(n int) *procDir {
	d := &procDir{}
	for i := range n {
		d.users = append(d.users, directory.User{ID: fmt.Sprintf("guid-%04d", i), Login: fmt.Sprintf("user%d", i),
			UPN: fmt.Sprintf("user%d@corp.test", i), DN: fmt.Sprintf("cn=user%d,ou=Corp,dc=corp,dc=test", i)})
	}
	return d
}

func (d *procDir) Info(context.Context) (directory.Info, error) {
	return directory.Info{Profile: directory.ProfileOpenLDAP, NamingContexts: []string{"dc=corp,dc=test"}}, nil
}
func (d *procDir) NamingContexts(context.Context) ([]string, error) {
	return []string{"dc=corp,dc=test"}, nil
}
func (d *procDir) OUs(context.Context, string) ([]directory.OU, error) {
	return []directory.OU{{DN: "ou=Corp,dc=corp,dc=test", Name: "Corp", Parent: "dc=corp,dc=test"}}, nil
}
func (d *procDir) Groups(context.Context, string) ([]directory.Group, error) { return nil, nil }
func (d *procDir) Users(_ context.Context, _ directory.Mapping, fn func(directory.User) error) (directory.Cursor, error) {
	d.mu.Lock()
	us := append([]directory.User(nil), d.users...)
	d.mu.Unlock()
	for _, u := range us {
		if err := fn(u); err != nil {
			return "", err
		}
	}
	return "c1", nil
}
func (d *procDir) Changes(ctx context.Context, m directory.Mapping, _ directory.Cursor, fn func(directory.User) error) (directory.Cursor, error) {
	return d.Users(ctx, m, fn)
}
func (d *procDir) Lookup(_ context.Context, _ directory.Mapping, name string) (directory.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.users {
		if strings.EqualFold(u.Login, name) || strings.EqualFold(u.UPN, name) {
			return u, nil
		}
	}
	return directory.User{}, directory.ErrNotFound
}
func (d *procDir) CheckCredentials(context.Context, directory.Mapping, string, string) (directory.User, error) {
	return directory.User{}, errors.New("not in this test")
}

// Three cloud processes behind haproxy: connectors spread over the nodes;
// kill -9 the node holding the most, its connectors re-home to the others,
// every tenant stays reachable through the balancer, and no tenant with a
// live connector gets a Not Connected alert (waited out past the presence
// TTL of the dead node's entries and the grace).
func TestClusterProcessesKillNode(t *testing.T) {
	c := startCloudCluster(t, "--grace", "5s")
	dir := newProcDir(3)
	var tenants []string
	for i := range 6 {
		tenant := fmt.Sprintf("tenant%d", i)
		tenants = append(tenants, tenant)
		c.connect(tenant, dir)
		// A connector takes three turns of the balancer's round robin
		// (token, enrollment, WebSocket): one more request before the
		// next moves the next WebSocket to the next node. Without it the
		// sessions landed [3 0 3] in a CI run, and the test needs every
		// node to hold some.
		require.Eventually(t, func() bool {
			s := c.sessions(tenant)
			return s[0]+s[1]+s[2] == 1
		}, 20*time.Second, 20*time.Millisecond, "%s connected", tenant)
		c.get(c.url + "/healthz")
	}
	perNode := make([]int, 3)
	require.Eventually(t, func() bool {
		clear(perNode)
		for _, tenant := range tenants {
			s := c.sessions(tenant)
			total := 0
			for i, n := range s {
				perNode[i] += n
				total += n
			}
			if total != 1 {
				return false
			}
		}
		return true
	}, 20*time.Second, 100*time.Millisecond, "every connector has one session")
	t.Logf("sessions per node: %v", perNode)
	for i, n := range perNode {
		assert.Positive(t, n, "round robin put connectors on node %d", i)
	}
	browseAll := func() {
		t.Helper()
		for _, tenant := range tenants {
			for range 3 { // lands on each node in turn
				var ous []directory.OU
				require.Equal(t, http.StatusOK, c.do(c.url, http.MethodGet, "/v1/admin/tenants/"+tenant+"/directory/ous", nil, &ous), tenant)
				require.Len(t, ous, 1)
			}
		}
	}
	browseAll()

	victim := 0
	for i, n := range perNode {
		if n > perNode[victim] {
			victim = i
		}
	}
	killed := time.Now()
	c.nodes[victim].kill9()
	require.Eventually(t, func() bool {
		for _, tenant := range tenants {
			s := c.sessions(tenant)
			if s[0]+s[1]+s[2] != 1 {
				return false
			}
		}
		return true
	}, 20*time.Second, 100*time.Millisecond, "connectors re-homed")
	t.Logf("re-homed %d connectors in %v", perNode[victim], time.Since(killed).Round(10*time.Millisecond))
	browseAll()

	// The dead node's presence entries expire after 15s; the grace is 5s.
	time.Sleep(time.Until(killed.Add(22 * time.Second)))
	var open []map[string]any
	require.Equal(t, http.StatusOK, c.do(c.url, http.MethodGet, "/v1/admin/alerts?kind=not_connected", nil, &open))
	assert.Empty(t, open, "no tenant with a live connector is alerted")
	browseAll()
}

// A rolling restart of the three processes (SIGTERM, start again, wait
// until ready, next) while devices activate through the balancer without
// pause: every device that retries as documented (a transport error, a 5xx
// or a 429: send the same signed request again) is activated exactly once,
// with one credential, and the database holds no device twice and none
// that no client saw activated.
func TestClusterRollingRestartDuringActivationStorm(t *testing.T) {
	c := startCloudCluster(t, "--grace", "60s",
		"--activation-token-rate", "100000", "--activation-token-burst", "100000",
		"--activation-source-rate", "100000", "--activation-source-burst", "100000")
	dir := newProcDir(50)
	for range 3 {
		c.connect("acme", dir)
	}
	require.Eventually(t, func() bool {
		s := c.sessions("acme")
		return s[0]+s[1]+s[2] == 3
	}, 20*time.Second, 100*time.Millisecond)
	require.Equal(t, http.StatusNoContent, c.do(c.url, http.MethodPut, "/v1/admin/tenants/acme/mappings/staff", directory.Mapping{}, nil))
	c.importAll("acme", "staff")
	var tok struct {
		Token string `json:"token"`
	}
	require.Equal(t, http.StatusOK, c.do(c.url, http.MethodPost, "/v1/admin/tenants/acme/deployment-tokens",
		map[string]any{"mapping_id": "staff", "ttl_seconds": 3600}, &tok))

	type result struct {
		device, credential, user string
		tries                    int
	}
	var (
		mu      sync.Mutex
		results []result
		fatal   []string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				dev := fmt.Sprintf("dev-%d-%d", w, k)
				_, priv, _ := ed25519.GenerateKey(rand.Reader)
				req := activation.Request{Tenant: "acme", Token: tok.Token, Login: fmt.Sprintf("user%d", (w*7+k)%50),
					Domain: "corp.test", Hostname: "pc", DeviceID: dev}
				req.Sign(priv)
				body := activation.ActivateRequest{Tenant: req.Tenant, Token: req.Token, Login: req.Login, Domain: req.Domain,
					Hostname: req.Hostname, DeviceID: req.DeviceID, DevicePublicKey: req.DevicePublicKey, Signature: req.Signature}
				var out activation.ActivateResponse
				tries := 0
				deadline := time.Now().Add(30 * time.Second)
				for {
					tries++
					st := c.activate(body, &out)
					if st == http.StatusOK {
						break
					}
					if st != 0 && st != http.StatusTooManyRequests && st < 500 || time.Now().After(deadline) {
						mu.Lock()
						fatal = append(fatal, fmt.Sprintf("%s: status %d after %d tries", dev, st, tries))
						mu.Unlock()
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
				mu.Lock()
				results = append(results, result{dev, out.Credential, out.UserID, tries})
				mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second)
	for _, n := range c.nodes {
		n.stop()
		n.start()
		c.waitReady(n)
		time.Sleep(time.Second) // haproxy's checks see it up again
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	require.Empty(t, fatal, "activations lost")
	retried := 0
	for _, r := range results {
		if r.tries > 1 {
			retried++
		}
	}
	t.Logf("%d activations during the rolling restart, %d needed a retry", len(results), retried)
	require.Greater(t, len(results), 30)

	var rows int
	require.NoError(t, c.db.QueryRow(`SELECT count(*) FROM activation_devices WHERE tenant = 'acme'`).Scan(&rows))
	assert.Equal(t, len(results), rows, "one stored device per activated device: none lost, none twice")
	var users int
	require.NoError(t, c.db.QueryRow(`SELECT count(DISTINCT id) FROM activation_users WHERE tenant = 'acme'`).Scan(&users))
	assert.LessOrEqual(t, users, 50, "no user created twice")
	for _, r := range results {
		var uid string
		require.NoError(t, c.db.QueryRow(`SELECT user_id FROM activation_devices WHERE tenant = 'acme' AND id = $1`, r.device).Scan(&uid), r.device)
		assert.Equal(t, r.user, uid, r.device)
	}
}

// activate posts one activation through the balancer; 0 on a transport
// error.
func (c *cloudCluster) activate(in activation.ActivateRequest, out *activation.ActivateResponse) int {
	b, _ := json.Marshal(in)
	resp, err := c.client.Post(c.url+"/v1/activate", "application/json", bytes.NewReader(b))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if json.NewDecoder(resp.Body).Decode(out) != nil {
			return 0
		}
	}
	return resp.StatusCode
}
