// Package directory is being written; see the issues.
package directory
