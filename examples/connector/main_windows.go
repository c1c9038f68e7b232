//go:build windows

package main

func runService(args []string) (handled bool, code int) { return false, 0 }
