// Package tunnel is being written; see the issues.
package tunnel
