// Package activation is being written; see the issues.
package activation
