//go:build windows

package main

import (
	"golang.org/x/sys/windows"
)

// noEcho turns console echo off on fd, if it is a console, and returns a
// function that restores it. ok is false when fd is not a console.
func noEcho(fd uintptr) (restore func(), ok bool) {
	h := windows.Handle(fd)
	var mode uint32
	if err := windows.GetConsoleMode(h, &mode); err != nil {
		return func() {}, false
	}
	if err := windows.SetConsoleMode(h, mode&^windows.ENABLE_ECHO_INPUT|windows.ENABLE_LINE_INPUT); err != nil {
		return func() {}, true
	}
	return func() { _ = windows.SetConsoleMode(h, mode) }, true
}
