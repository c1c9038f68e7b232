package main

import (
	"context"
	"fmt"
	"io"
)

func runEnroll(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "connector: enroll: not implemented yet")
	return exitFailure
}

func runAgent(ctx context.Context, args []string, stderr io.Writer) int {
	fmt.Fprintln(stderr, "connector: run: not implemented yet")
	return exitFailure
}
