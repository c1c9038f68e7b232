package cloudapp

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/tunnel"
)

// PathMetrics serves the Prometheus metrics (see the package doc, "Metrics").
const PathMetrics = "/metrics"

// DefaultMetricsTenantLabels is Config.MetricsTenantLabels when zero.
const DefaultMetricsTenantLabels = 100

// metrics holds the cloud's own Prometheus registry (never the global
// default one) and its series.
type metrics struct {
	reg            *prometheus.Registry
	tunnelRequests *prometheus.CounterVec
	tunnelLatency  *prometheus.HistogramVec
	importRuns     *prometheus.CounterVec
	importUsers    *prometheus.CounterVec
	activations    *prometheus.CounterVec
	logins         *prometheus.CounterVec
	keyReleases    *prometheus.CounterVec
}

var (
	descConnectorsLive       = prometheus.NewDesc("liaison_connectors_live", "Connectors with a live tunnel session on this node.", nil, nil)
	descConnectorsLiveTenant = prometheus.NewDesc("liaison_tenant_connectors_live", "Connectors with a live tunnel session on this node, per tenant (only while the tenants with a live connector are at most Config.MetricsTenantLabels).", []string{"tenant"}, nil)
	descAlertsOpen           = prometheus.NewDesc("liaison_alerts_open", "Open alerts by kind.", []string{"kind"}, nil)
)

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		tunnelRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liaison_tunnel_requests_total",
			Help: "Requests the cloud sent to connectors through the tunnel, by operation and outcome (ok: an HTTP answer below 500)."}, []string{"operation", "outcome"}),
		tunnelLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "liaison_tunnel_request_duration_seconds",
			Help: "Time until a connector's answer headers arrived, by operation.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}, []string{"operation"}),
		importRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liaison_import_runs_total",
			Help: "Import runs by outcome (ok, refused, skipped, failed)."}, []string{"outcome"}),
		importUsers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liaison_import_users_applied_total",
			Help: "Users changed by successful import runs, by operation (create, update, disable, delete)."}, []string{"op"}),
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liaison_activations_total",
			Help: "Device activation decisions (activation.Decision)."}, []string{"decision"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liaison_web_logins_total",
			Help: "Web logins by outcome (ok, failed, throttled, unavailable)."}, []string{"outcome"}),
		keyReleases: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liaison_key_releases_total",
			Help: "Key releases by job purpose (backup, restore) and outcome (ok, refused, unavailable, failed)."}, []string{"purpose", "outcome"}),
	}
	for _, o := range []string{"ok", "failed", "throttled", "unavailable"} {
		m.logins.WithLabelValues(o)
	}
	for _, o := range []string{"ok", "refused", "skipped", "failed"} {
		m.importRuns.WithLabelValues(o)
	}
	for _, op := range []string{"create", "update", "disable", "delete"} {
		m.importUsers.WithLabelValues(op)
	}
	m.reg.MustRegister(m.tunnelRequests, m.tunnelLatency, m.importRuns, m.importUsers, m.activations, m.logins, m.keyReleases,
		liveCollector{s})
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// liveCollector reads the gauges at scrape time: live connectors from the
// gateway, open alerts from the alert store.
type liveCollector struct{ s *Server }

func (c liveCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descConnectorsLive
	ch <- descConnectorsLiveTenant
	ch <- descAlertsOpen
}

func (c liveCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	perTenant := map[string]int{}
	live := s.gw.Live("")
	total := len(live)
	for _, lc := range live {
		perTenant[lc.Tenant]++
	}
	ch <- prometheus.MustNewConstMetric(descConnectorsLive, prometheus.GaugeValue, float64(total))
	if max := s.cfg.MetricsTenantLabels; max > 0 && len(perTenant) <= max {
		for t, n := range perTenant {
			ch <- prometheus.MustNewConstMetric(descConnectorsLiveTenant, prometheus.GaugeValue, float64(n), t)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open, err := s.alertDB.List(ctx, alerts.Filter{OpenOnly: true})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descAlertsOpen, err)
		return
	}
	byKind := map[alerts.Kind]int{}
	for _, a := range open {
		byKind[a.Kind]++
	}
	for k, n := range byKind {
		ch <- prometheus.MustNewConstMetric(descAlertsOpen, prometheus.GaugeValue, float64(n), string(k))
	}
}

// metricsTransport counts and times the requests the cloud sends to
// connectors.
type metricsTransport struct {
	rt http.RoundTripper
	m  *metrics
}

func (t metricsTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	op := tunnelOperation(r.URL.Path)
	start := time.Now()
	resp, err := t.rt.RoundTrip(r)
	t.m.tunnelLatency.WithLabelValues(op).Observe(time.Since(start).Seconds())
	outcome := "ok"
	if err != nil || resp.StatusCode >= 500 {
		outcome = "error"
	}
	t.m.tunnelRequests.WithLabelValues(op, outcome).Inc()
	return resp, err
}

// tunnelOperation maps a connector URL path to a fixed set of labels, so
// the series stay few whatever the path.
func tunnelOperation(p string) string {
	switch {
	case p == "/status":
		return "status"
	case strings.HasPrefix(p, "/keyshare/"):
		return "keyshare"
	case strings.HasPrefix(p, "/keys/"):
		switch strings.TrimPrefix(p, "/keys") {
		case "/v1/release":
			return "keys/release"
		case "/v1/generate":
			return "keys/generate"
		case "/v1/rewrap":
			return "keys/rewrap"
		case "/v1/public-key":
			return "keys/public-key"
		}
		return "other"
	case strings.HasPrefix(p, "/directory/"):
		switch strings.TrimPrefix(p, "/directory/") {
		case "info":
			return "directory/info"
		case "naming-contexts":
			return "directory/naming-contexts"
		case "ous":
			return "directory/ous"
		case "groups":
			return "directory/groups"
		case "users":
			return "directory/users"
		case "changes":
			return "directory/changes"
		case "lookup":
			return "directory/lookup"
		case "credentials":
			return "directory/credentials"
		}
	}
	return "other"
}

// activationDecision bounds the decision label to the known decisions.
func activationDecision(d activation.Decision) string {
	switch d {
	case activation.DecisionUserCreated, activation.DecisionActivated, activation.DecisionRepeated,
		activation.DecisionRefused, activation.DecisionRetry, activation.DecisionTokenIssued, activation.DecisionTokenRevoke:
		return string(d)
	}
	return "other"
}

// loginOutcome classifies a login's error for liaison_web_logins_total.
func loginOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrLoginThrottled):
		return "throttled"
	case errors.Is(err, ErrLoginFailed), errors.Is(err, ErrNotFound):
		return "failed"
	}
	return "unavailable"
}

// releaseOutcome classifies a key release's error.
func releaseOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrUserDisabled), errors.Is(err, ErrNotFound), errors.Is(err, ErrInvalid):
		return "refused"
	case errors.Is(err, tunnel.ErrNotConnected):
		return "unavailable"
	}
	return "failed"
}

// releasePurpose bounds the purpose label to the job purposes.
func releasePurpose(j keyenvelope.JobPurpose) string {
	switch j {
	case keyenvelope.JobBackup, keyenvelope.JobRestore:
		return string(j)
	}
	return "other"
}
