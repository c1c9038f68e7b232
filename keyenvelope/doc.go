// Package keyenvelope is being written; see the issues.
package keyenvelope
