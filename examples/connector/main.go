// Command connector is Liaison's on-premises agent: it dials the vendor's
// cloud over one outbound WebSocket and serves the directory and key services
// the cloud asks for. Its directory subcommands let an administrator see what
// the connector sees.
//
//	connector enroll --cloud URL --token T [--config FILE | --identity FILE]
//	connector run --config FILE
//	connector check --config FILE [--lookup NAME] [--base DN] [--offline]
//	connector directory info|ous|groups|users|lookup|auth [flags]
//	connector keys init|status|rotate|promote|disable|enable|destroy|passwd|escrow [flags]
//	connector audit tail|verify [flags]
//	connector version
//
// Exit codes: 0 success; 1 credentials refused (directory auth); 2 usage
// error; 3 user not found and 4 ambiguous (directory lookup); 5 any other
// failure (server unreachable, TLS, bad configuration). audit verify exits 1
// when a line fails verification or the log lacks its closing checkpoint.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/liaisonhq/liaison/examples/internal/cli"
)

// Exit codes. They are part of the command's contract.
const (
	exitOK        = 0
	exitRefused   = 1 // directory auth: the directory refused the credentials; audit verify: the log failed
	exitUsage     = 2
	exitNotFound  = 3 // directory lookup: no user matches
	exitAmbiguous = 4 // directory lookup: more than one user matches
	exitFailure   = 5 // anything else: unreachable, TLS, configuration
)

func main() {
	if handled, code := runService(os.Args[1:]); handled {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage:
  connector version
  connector enroll --cloud URL --token T [--config FILE | --identity FILE] [--ca-file FILE] [--proxy URL]
  connector run --config FILE [--log-format text|json] [--log-file FILE]
  connector check --config FILE [--lookup NAME] [--base DN] [--offline]
                                     (load everything, then test the cloud through the proxy and the
                                      directory: bind, base search, lookup; PASS/FAIL with the fix)
  connector directory info   [conn]
  connector directory ous    [conn] [--base DN]
  connector directory groups [conn] [--base DN]
  connector directory users  [conn] [scope]
  connector directory lookup [conn] [scope] LOGIN
  connector directory auth   [conn] [scope] LOGIN   (password on stdin)

  connector keys init|status|rotate|promote|disable|enable|destroy|passwd|escrow [key]
                                     (the KEK file; connector keys help for the rotation runbook)
  connector audit tail   [--config FILE | --dir DIR] [-n N]       (the cloud's recent requests)
  connector audit verify [--config FILE] [--live] [FILE...]       (connector audit help)

[conn]  --url URL (repeatable, failover order) --bind-dn DN --bind-password-file FILE
        --ca-file FILE --start-tls --profile auto|ad|openldap
        (or --config FILE: the connector config's directory section; flags override)
[scope] --base DN --ou DN (repeatable) --subtree=true|false --group DN (repeatable) --filter F
[key]   --kek-file FILE (--passphrase-file FILE | --passphrase-env VAR) or --config FILE
`

// run is the whole command, testable without a process: it returns the exit
// code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "directory":
		return runDirectory(ctx, args[1:], stdin, stdout, stderr)
	case "enroll":
		return runEnroll(ctx, args[1:], stdout, stderr)
	case "run":
		return runAgent(ctx, args[1:], stderr)
	case "check":
		return runCheck(ctx, args[1:], stdout, stderr)
	case "keys":
		return runKeys(args[1:], stdin, stdout, stderr)
	case "audit":
		return runAudit(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, cli.Version("connector"))
		return exitOK
	}
	fmt.Fprintf(stderr, "connector: unknown command %q\n%s", args[0], usage)
	return exitUsage
}
