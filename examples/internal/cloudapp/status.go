package cloudapp

import (
	"cmp"
	"context"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/directory/importer"
)

// Status page settings.
const (
	// statusRefresh is how often the page reloads itself.
	statusRefresh = 10 * time.Second
	// revokedShownFor is how long a revoked connector stays listed after
	// it was last seen; older ones are counted, not listed.
	revokedShownFor = 24 * time.Hour
	// resolvedShownFor is how long a resolved alert stays listed.
	resolvedShownFor = 24 * time.Hour
	// statusTimeFormat is the one time format of the page (UTC).
	statusTimeFormat = "2006-01-02 15:04:05 UTC"
)

// fmtTime is the page's one time format; "-" for the zero time.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(statusTimeFormat)
}

// fmtDuration rounds d for people: "3m20s", "2h5m", "45s"; "-" when 0.
func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"time":     fmtTime,
	"duration": fmtDuration,
	"percent": func(done, total int) int {
		if total <= 0 {
			return 0
		}
		return min(100, int(math.Round(100*float64(done)/float64(total))))
	},
	"rate": func(r float64) string { return fmt.Sprintf("%.0f/s", r) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{{.RefreshSeconds}}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Liaison cloud status</title>
<style>
:root{--ok:#137333;--bad:#b3261e;--warn:#a56300;--mute:#5f6368;--line:#e0e3e7;--bg:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#202124;background:var(--bg)}
header{background:#1f2937;color:#fff;padding:14px 28px;display:flex;justify-content:space-between;align-items:baseline}
header h1{font-size:18px;margin:0;font-weight:600}
header .meta{color:#cbd5e1;font-size:12px}
main{padding:20px 28px;max-width:1400px}
.cards{display:flex;gap:14px;flex-wrap:wrap;margin-bottom:18px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 16px;min-width:150px}
.card .n{font-size:24px;font-weight:600}
.card .l{color:var(--mute);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
section{background:#fff;border:1px solid var(--line);border-radius:8px;margin-bottom:18px;overflow:hidden}
section h2{font-size:15px;margin:0;padding:10px 16px;border-bottom:1px solid var(--line);background:#fbfbfc}
table{border-collapse:collapse;width:100%}
th,td{padding:7px 12px;text-align:left;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--mute);font-weight:600;text-transform:uppercase;letter-spacing:.03em}
tr:last-child td{border-bottom:0}
td.err{color:var(--bad);max-width:520px;word-break:break-word;font-size:13px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;white-space:nowrap}
.b-ok{background:#e6f4ea;color:var(--ok)}.b-bad{background:#fce8e6;color:var(--bad)}
.b-warn{background:#fef7e0;color:var(--warn)}.b-mute{background:#eef0f2;color:var(--mute)}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}
.mute{color:var(--mute)}
.bar{background:#e8eaed;border-radius:4px;height:10px;width:220px;overflow:hidden;display:inline-block;vertical-align:middle}
.bar>span{display:block;height:100%;background:#1a73e8}
.empty{padding:12px 16px;color:var(--mute)}
</style></head>
<body>
<header><h1>Liaison cloud status</h1>
<span class="meta">generated <span id="generated">{{time .Generated}}</span> · refreshes every {{.RefreshSeconds}} s</span></header>
<main>
<div class="cards">
<div class="card"><div class="n" id="connected-count">{{.Connected}} / {{len .Connectors}}</div><div class="l">connectors connected</div></div>
<div class="card"><div class="n" id="directory-problems">{{.DirectoryProblems}}</div><div class="l">directory problems</div></div>
<div class="card"><div class="n">{{len .Running}}</div><div class="l">imports running</div></div>
<div class="card"><div class="n">{{.OpenAlerts}}</div><div class="l">open alerts</div></div>
</div>

<section id="connectors"><h2>Connectors</h2>
{{if .Connectors}}<table>
<tr><th>Tenant</th><th>Connector</th><th>Presence</th><th>Directory</th><th>Version</th><th>Host</th><th>Last seen</th><th>Last error</th></tr>
{{range .Connectors}}<tr class="connector" data-connector="{{.ID}}">
<td>{{.Tenant}}</td><td class="mono">{{.ID}}</td>
<td>{{if .Revoked}}<span class="badge b-mute">revoked</span>{{else if .Connected}}<span class="badge b-ok">connected{{if gt .Sessions 1}} ({{.Sessions}}){{end}}</span>{{if .Sealed}}<div class="mute sealed">TLS ended on the way: sealed</div>{{end}}{{else}}<span class="badge b-bad">not connected</span>{{end}}</td>
<td class="directory-health">{{with .Health}}{{if eq .Directory "ok"}}<span class="badge b-ok">ok</span>{{else if eq .Directory "unavailable"}}<span class="badge b-bad">unavailable</span>{{else if eq .Directory "error"}}<span class="badge b-warn">error</span>{{else}}<span class="badge b-mute">{{.Directory}}</span>{{end}}{{with .LastOp}}<div class="mute">{{.Op}} at {{time .At}}</div>{{end}}{{else}}<span class="badge b-mute">unknown</span>{{end}}</td>
<td class="version mono">{{with .Health}}{{.Version}}{{else}}-{{end}}</td>
<td>{{with .Health}}{{.Host}}<div class="mute">{{.OS}}</div>{{else}}-{{end}}</td>
<td>{{time .LastChange}}</td>
<td class="err">{{with .Health}}{{with .LastOp}}{{if not .OK}}{{.Error}}{{end}}{{end}}{{end}}</td></tr>
{{end}}</table>{{else}}<div class="empty">No connector enrolled yet.</div>{{end}}
{{if .RevokedHidden}}<div class="empty">{{.RevokedHidden}} connector(s) revoked more than 24 h ago are not listed.</div>{{end}}
</section>

<section id="running-imports"><h2>Running imports</h2>
{{if .Running}}<table>
<tr><th>Tenant</th><th>Mapping</th><th>Phase</th><th>Progress</th><th>Rate</th><th>Elapsed</th><th>ETA</th></tr>
{{range .Running}}<tr class="import" data-mapping="{{.Scope.MappingID}}">
<td>{{.Scope.Tenant}}</td><td>{{.Scope.MappingID}}</td><td>{{.Phase}}</td>
<td class="progress"><span class="bar"><span style="width:{{percent .Done .Total}}%"></span></span>
<span class="count">{{.Done}} / {{if .Total}}{{.Total}}{{else}}?{{end}}</span>{{if .Total}} ({{percent .Done .Total}} %){{end}}</td>
<td>{{rate .Rate}}</td><td>{{duration .Elapsed}}</td><td>{{duration .ETA}}</td></tr>
{{end}}</table>{{else}}<div class="empty">No import running.</div>{{end}}
</section>

<section id="alerts"><h2>Alerts</h2>
{{if .Alerts}}<table>
<tr><th>State</th><th>Tenant</th><th>Kind</th><th>Severity</th><th>Subject</th><th>First seen</th><th>Last seen</th><th>Count</th><th>Message</th></tr>
{{range .Alerts}}<tr class="alert" data-kind="{{.Kind}}">
<td>{{if .Open}}<span class="badge b-bad">open</span>{{else}}<span class="badge b-ok">resolved</span><div class="mute">{{time .ResolvedAt}}</div>{{end}}</td>
<td>{{.Tenant}}</td><td class="mono">{{.Kind}}</td>
<td>{{if eq .Severity "critical"}}<span class="badge b-bad">critical</span>{{else if eq .Severity "warning"}}<span class="badge b-warn">warning</span>{{else}}<span class="badge b-mute">{{.Severity}}</span>{{end}}</td>
<td class="mono">{{.Subject}}</td><td>{{time .FirstSeen}}</td><td>{{time .LastSeen}}</td><td>{{.Count}}</td><td class="err">{{.Message}}</td></tr>
{{end}}</table>{{else}}<div class="empty">No open or recent alert.</div>{{end}}
</section>

<section id="recent-imports"><h2>Recent imports</h2>
{{if .Imports}}<table>
<tr><th>Tenant</th><th>Mapping</th><th>Finished</th><th>Took</th><th>Kind</th><th>Status</th><th>Created</th><th>Updated</th><th>Disabled</th><th>Deleted</th><th>Error</th></tr>
{{range .Imports}}<tr><td>{{.Tenant}}</td><td>{{.MappingID}}</td><td>{{time .Finished}}</td><td>{{duration (.Finished.Sub .Started)}}</td>
<td>{{if .Full}}full{{else}}incremental{{end}}</td>
<td>{{if eq .Status "ok"}}<span class="badge b-ok">ok</span>{{else if eq .Status "skipped"}}<span class="badge b-warn">skipped</span>{{else}}<span class="badge b-bad">{{.Status}}</span>{{end}}</td>
<td>{{.Summary.Creates}}</td><td>{{.Summary.Updates}}</td><td>{{.Summary.Disables}}</td><td>{{.Summary.Deletes}}</td><td class="err">{{.Error}}</td></tr>
{{with .Removals}}<tr class="removals"><td></td><td colspan="10" class="mute">{{range $i, $r := .}}{{if $i}}; {{end}}{{$r}}{{end}}</td></tr>{{end}}
{{end}}</table>{{else}}<div class="empty">No import yet.</div>{{end}}
</section>
</main></body></html>
`))

// statusData is what the status page shows.
type statusData struct {
	Generated         time.Time
	RefreshSeconds    int
	Connectors        []ConnectorInfo
	RevokedHidden     int
	Connected         int
	DirectoryProblems int
	Running           []importer.Progress
	Imports           []ImportRun
	Alerts            []alerts.Alert
	OpenAlerts        int
}

// statusRank orders connectors so that problems come first: a broken
// directory, then not connected, then healthy, then revoked.
func statusRank(c ConnectorInfo) int {
	switch {
	case c.Revoked:
		return 3
	case c.Health != nil && (c.Health.Directory == HealthUnavailable || c.Health.Directory == HealthError):
		return 0
	case !c.Connected:
		return 1
	}
	return 2
}

// sortConnectors puts problems first, then by tenant and ID.
func sortConnectors(cs []ConnectorInfo) {
	slices.SortStableFunc(cs, func(a, b ConnectorInfo) int {
		return cmp.Or(cmp.Compare(statusRank(a), statusRank(b)), cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.ID, b.ID))
	})
}

func (s *Server) statusData(ctx context.Context, now time.Time) (statusData, error) {
	d := statusData{Generated: now, RefreshSeconds: int(statusRefresh / time.Second)}
	all, err := s.Connectors(ctx, "")
	if err != nil {
		return d, err
	}
	for _, c := range all {
		if c.Revoked && now.Sub(c.LastChange) > revokedShownFor {
			d.RevokedHidden++
			continue
		}
		d.Connectors = append(d.Connectors, c)
		if !c.Revoked && c.Connected {
			d.Connected++
		}
		if !c.Revoked && statusRank(c) == 0 {
			d.DirectoryProblems++
		}
	}
	sortConnectors(d.Connectors)
	runs, err := s.imports.Runs(ctx, "")
	if err != nil {
		return d, err
	}
	for _, r := range runs {
		if r.State == importer.RunRunning {
			d.Running = append(d.Running, r.Progress)
		}
	}
	slices.SortFunc(d.Running, func(a, b importer.Progress) int {
		return cmp.Or(cmp.Compare(a.Scope.Tenant, b.Scope.Tenant), cmp.Compare(a.Scope.MappingID, b.Scope.MappingID))
	})
	if d.Imports, err = s.users.Runs(ctx, "", 20); err != nil {
		return d, err
	}
	open, err := s.alertDB.List(ctx, alerts.Filter{OpenOnly: true, Limit: 200})
	if err != nil {
		return d, err
	}
	d.OpenAlerts = len(open)
	recent, err := s.alertDB.List(ctx, alerts.Filter{Limit: 200})
	if err != nil {
		return d, err
	}
	d.Alerts = open
	for _, a := range recent {
		if !a.Open() && now.Sub(a.ResolvedAt) <= resolvedShownFor {
			d.Alerts = append(d.Alerts, a)
		}
	}
	return d, nil
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	data, err := s.statusData(r.Context(), time.Now())
	if err != nil {
		s.log.Warn("cloudapp: status page", "err", err)
		http.Error(w, "status unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := statusPage.Execute(w, data); err != nil {
		s.log.Warn("cloudapp: status page", "err", err)
	}
}
