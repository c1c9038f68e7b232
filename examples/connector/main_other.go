//go:build !windows

package main

// runService reports whether the process was started by a service manager
// that needs a special protocol. Only the Windows SCM does; systemd runs
// "connector run" as an ordinary process (see liaison-connector.service).
func runService(args []string) (handled bool, code int) { return false, 0 }
