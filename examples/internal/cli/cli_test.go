package cli_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/liaisonhq/liaison/examples/internal/cli"
)

func TestVersion(t *testing.T) {
	v := cli.Version("cloud")
	assert.True(t, strings.HasPrefix(v, "cloud (devel) "), v)
	assert.True(t, strings.HasSuffix(v, " "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH), v)
}

func TestMessage(t *testing.T) {
	inner := errors.New(`Post "https://cloud.example/v1/enroll": dial tcp: connection refused`)
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"stutter of two layers", fmt.Errorf("connectorapp: enroll: %w", fmt.Errorf("tunnel: enroll: %w", inner)),
			`enroll: Post "https://cloud.example/v1/enroll": dial tcp: connection refused`},
		{"one package prefix", errors.New("connectorapp: invalid config: cloud.url is required"), "invalid config: cloud.url is required"},
		{"foreign prefixes kept", errors.New("tunnel: connect: tls: failed to verify certificate: x509: certificate signed by unknown authority"),
			"connect: tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{"innermost kept even if a package name", errors.New("connectorapp: directory"), "directory"},
		{"no prefix", errors.New("--cloud is required"), "--cloud is required"},
		{"nil", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, cli.Message(tt.err))
		})
	}
}
