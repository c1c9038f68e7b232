// Package alerts is being written; see the issues.
package alerts
