package tunnelnats

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerConfig configures an embedded NATS server ([StartServer]): the
// mode where cloud nodes run one each and form a cluster among themselves
// (the cloud's --cluster-listen and --cluster-peers), so nothing else has to
// be installed.
type ServerConfig struct {
	// Name names this server in the cluster: the node ID. Required, and
	// unique among the peers.
	Name string
	// StoreDir holds JetStream's files (presence, replay cache, login
	// counters). Required; one per node, on local disk.
	StoreDir string
	// ClientListen is the HOST:PORT of the server's client port. The
	// node's own connection reaches its server in process, but when that
	// server fails the connection moves to a peer's client port, which the
	// cluster advertises: on several hosts it must be reachable from the
	// others. Default: with ClusterSecret, ClusterListen's host and a free
	// port (clients then need the secret, see Connect); without, a free
	// loopback port (peers on other hosts cannot fail over to it).
	ClientListen string
	// ClusterListen is the HOST:PORT other nodes' servers connect to
	// (--cluster-listen). Empty runs a single server with no cluster.
	ClusterListen string
	// ClusterPeers are the other nodes' ClusterListen addresses
	// (--cluster-peers), as HOST:PORT or nats-route://HOST:PORT. A node may
	// list itself; peers found later are learned from the ones listed.
	ClusterPeers []string
	// ClusterName must be the same on every node. Default "liaison".
	ClusterName string
	// ClusterSecret, when set, is required of every peer's routes and of
	// every client (as its token): give every node the same one. Without it
	// anyone who can reach ClusterListen joins the cluster and can call
	// connectors.
	ClusterSecret string
	// Logger receives the server's warnings and errors; nil discards.
	Logger *slog.Logger
}

// Server is an embedded NATS server with JetStream.
type Server struct {
	ns     *server.Server
	name   string
	secret string // the clients' token, if any
}

// StartServer starts an embedded NATS server and waits until it accepts
// connections (up to 10 s). JetStream becomes usable once a majority of
// the cluster's servers are up; the stores of this package wait for it.
func StartServer(cfg ServerConfig) (*Server, error) {
	if cfg.Name == "" {
		return nil, errors.New("tunnelnats: ServerConfig.Name is required (the node ID, --node-id)")
	}
	if cfg.StoreDir == "" {
		return nil, errors.New("tunnelnats: ServerConfig.StoreDir is required (a local directory for JetStream)")
	}
	if cfg.ClientListen == "" {
		cfg.ClientListen = "127.0.0.1:0"
		if h, _, err := net.SplitHostPort(strings.TrimPrefix(cfg.ClusterListen, "nats-route://")); err == nil && h != "" && cfg.ClusterSecret != "" {
			cfg.ClientListen = net.JoinHostPort(h, "0")
		}
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = "liaison"
	}
	host, port, err := hostPort(cfg.ClientListen)
	if err != nil {
		return nil, fmt.Errorf("tunnelnats: ServerConfig.ClientListen: %w", err)
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		NoLog:      cfg.Logger == nil,
		// The client port may face the other hosts (ClientListen): with
		// a secret, a client must present it.
		Authorization: cfg.ClusterSecret,
	}
	if port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	if cfg.ClusterListen != "" {
		ch, cp, err := hostPort(cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("tunnelnats: ServerConfig.ClusterListen: %w", err)
		}
		opts.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: ch, Port: cp}
		if cp == 0 {
			opts.Cluster.Port = server.RANDOM_PORT
		}
		if cfg.ClusterSecret != "" {
			opts.Cluster.Username, opts.Cluster.Password = "liaison", cfg.ClusterSecret
		}
		for _, p := range cfg.ClusterPeers {
			if !strings.Contains(p, "://") {
				p = "nats-route://" + p
			}
			u, err := url.Parse(p)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("tunnelnats: ServerConfig.ClusterPeers: bad peer %q (want HOST:PORT)", p)
			}
			if cfg.ClusterSecret != "" {
				u.User = url.UserPassword("liaison", cfg.ClusterSecret)
			}
			opts.Routes = append(opts.Routes, u)
		}
	} else if len(cfg.ClusterPeers) > 0 {
		return nil, errors.New("tunnelnats: ServerConfig.ClusterPeers needs ClusterListen (--cluster-listen)")
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("tunnelnats: embedded NATS server: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(&serverLog{l: cfg.Logger.With("component", "nats_server")}, false, false, false)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("tunnelnats: embedded NATS server not ready after 10s (is %s or %s in use?)", cfg.ClientListen, cfg.ClusterListen)
	}
	return &Server{ns: ns, name: cfg.Name, secret: cfg.ClusterSecret}, nil
}

func hostPort(s string) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return h, n, nil
}

// ClientURL is the URL this server accepts clients on.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// ClusterAddr is the address the server accepts routes on, or nil.
func (s *Server) ClusterAddr() net.Addr { return s.ns.ClusterAddr() }

// Connect dials this server with [Connect]'s options, over an in-memory
// pipe instead of loopback TCP: every message a node sends or receives
// crosses this hop, and the pipe saves a socket write and a network poller
// wake-up each way. The connection still learns the cluster's other
// servers and reconnects to them over TCP when this one is gone.
func (s *Server) Connect() (*nats.Conn, error) {
	u, err := url.Parse(s.ClientURL())
	if err != nil {
		return nil, fmt.Errorf("tunnelnats: embedded server's client URL: %w", err)
	}
	opts := []nats.Option{nats.SetCustomDialer(&localDialer{ns: s.ns, addr: u.Host})}
	if s.secret != "" {
		opts = append(opts, nats.Token(s.secret)) // for this server and the peers it fails over to
	}
	return connect(s.ClientURL(), s.name, opts...)
}

// localDialer dials the embedded server in process, and any other server
// (a peer, after the embedded one died) over TCP.
type localDialer struct {
	ns   *server.Server
	addr string // the embedded server's client address, as nats.go dials it
}

func (d *localDialer) Dial(network, address string) (net.Conn, error) {
	if address == d.addr && d.ns.Running() {
		if c, err := d.ns.InProcessConn(); err == nil {
			return c, nil
		}
	}
	return (&net.Dialer{Timeout: nats.DefaultTimeout}).Dial(network, address)
}

// Close shuts the server down and waits for it. It is idempotent.
func (s *Server) Close() error {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	return nil
}

// Connect dials NATS at url (a comma-separated list is allowed: the
// cloud's --nats) the way the nodes need: reconnect forever, to the servers
// listed or learned from the cluster, and keep subscriptions. name labels
// the connection in the server's monitoring.
func Connect(url, name string) (*nats.Conn, error) { return connect(url, name) }

func connect(url, name string, extra ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.Name("liaison " + name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(false),
		nats.PingInterval(2 * time.Second),
		nats.MaxPingsOutstanding(3),
	}, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("tunnelnats: connect to NATS %s (--nats): %w", url, err)
	}
	return nc, nil
}

// serverLog passes the embedded server's warnings and errors to slog.
type serverLog struct{ l *slog.Logger }

func (s *serverLog) Noticef(f string, v ...any) { s.l.Debug(fmt.Sprintf(f, v...)) }
func (s *serverLog) Warnf(f string, v ...any) {
	s.l.Warn(fmt.Sprintf(f, v...))
}
func (s *serverLog) Fatalf(f string, v ...any) { s.l.Error(fmt.Sprintf(f, v...)) }
func (s *serverLog) Errorf(f string, v ...any) { s.l.Error(fmt.Sprintf(f, v...)) }
func (s *serverLog) Debugf(string, ...any)     {}
func (s *serverLog) Tracef(string, ...any)     {}
