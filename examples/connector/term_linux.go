//go:build linux

package main

import (
	"golang.org/x/sys/unix"
)

// noEcho turns terminal echo off on fd, if it is a terminal, and returns a
// function that restores it. ok is false when fd is not a terminal.
func noEcho(fd uintptr) (restore func(), ok bool) {
	old, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
	if err != nil {
		return func() {}, false
	}
	t := *old
	t.Lflag &^= unix.ECHO
	t.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(int(fd), unix.TCSETS, &t); err != nil {
		return func() {}, true
	}
	return func() { _ = unix.IoctlSetTermios(int(fd), unix.TCSETS, old) }, true
}
