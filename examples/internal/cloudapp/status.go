package cloudapp

import (
	"html/template"
	"net/http"
	"time"

	"github.com/liaisonhq/liaison/alerts"
)

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Liaison cloud</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}.up{color:#080}.down{color:#b00}</style></head>
<body><h1>Liaison cloud</h1>
<h2>Connectors</h2>
<table><tr><th>Tenant</th><th>Connector</th><th>Presence</th><th>Last change</th><th>Enrolled</th></tr>
{{range .Connectors}}<tr><td>{{.Tenant}}</td><td>{{.ID}}</td>
<td>{{if .Revoked}}revoked{{else if .Sessions}}<span class="up">connected ({{.Sessions}})</span>{{else}}<span class="down">not connected</span>{{end}}</td>
<td>{{ago .LastChange}}</td><td>{{.Enrolled.Format "2006-01-02 15:04"}}</td></tr>
{{else}}<tr><td colspan="5">no connector enrolled</td></tr>{{end}}</table>
<h2>Last imports</h2>
<table><tr><th>Tenant</th><th>Mapping</th><th>Finished</th><th>Kind</th><th>Status</th><th>Created</th><th>Updated</th><th>Disabled</th><th>Deleted</th><th>Error</th></tr>
{{range .Imports}}<tr><td>{{.Tenant}}</td><td>{{.MappingID}}</td><td>{{ago .Finished}}</td><td>{{if .Full}}full{{else}}incremental{{end}}</td>
<td>{{.Status}}</td><td>{{.Summary.Creates}}</td><td>{{.Summary.Updates}}</td><td>{{.Summary.Disables}}</td><td>{{.Summary.Deletes}}</td><td>{{.Error}}</td></tr>
{{else}}<tr><td colspan="10">no import yet</td></tr>{{end}}</table>
<h2>Open alerts</h2>
<table><tr><th>Tenant</th><th>Kind</th><th>Severity</th><th>Subject</th><th>Since</th><th>Count</th><th>Message</th></tr>
{{range .Alerts}}<tr><td>{{.Tenant}}</td><td>{{.Kind}}</td><td>{{.Severity}}</td><td>{{.Subject}}</td><td>{{ago .FirstSeen}}</td><td>{{.Count}}</td><td>{{.Message}}</td></tr>
{{else}}<tr><td colspan="7">none</td></tr>{{end}}</table>
</body></html>
`))

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	var data struct {
		Connectors []ConnectorInfo
		Imports    []ImportRun
		Alerts     []alerts.Alert
	}
	var err error
	if data.Connectors, err = s.Connectors(r.Context(), ""); err == nil {
		if data.Imports, err = s.users.Runs(r.Context(), "", 20); err == nil {
			data.Alerts, err = s.alertDB.List(r.Context(), alerts.Filter{OpenOnly: true, Limit: 100})
		}
	}
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
