//go:build !linux && !windows

package main

// noEcho is not implemented here: the password is read with echo on.
func noEcho(fd uintptr) (restore func(), ok bool) { return func() {}, false }
