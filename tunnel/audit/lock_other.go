//go:build !unix

package audit

import "os"

// lockDir does nothing here: outside Unix the directory is not locked, and
// running two connectors on one audit directory forks the chain.
func lockDir(string) (*os.File, error) { return nil, nil }
