package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/liaisonhq/liaison/examples/internal/cli"
	"github.com/liaisonhq/liaison/tunnel/audit"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

const auditUsage = `usage:
  connector audit tail   [--config FILE | --dir DIR] [-n N] [--json]
  connector audit verify [--config FILE | --identity FILE | --public-key B64] [--dir DIR]
                         [--live] [--strict] [--expect SEQ:HASH] [FILE...]

tail prints the last N requests the cloud made to this connector.

verify checks audit files in order (default: every file in the audit
directory): each line's hash, the chain across lines and files, and each
checkpoint's signature by the connector's key (from the config's identity
file, --identity FILE, or --public-key, standard base64). It exits 0 when the
log is intact and ends with the checkpoint written at shutdown, 1 naming the
first bad line otherwise. --live accepts a log that is still being written
(a running connector's): the lines after its last checkpoint are reported,
since removing them cannot be detected from the files alone. Notes (a
restart after an unclean stop, which is also how lines cut from or added to
a stopped connector's log show; a log whose first file was not given) are
printed; --strict makes them fail too.

--expect SEQ:HASH names a checkpoint recorded outside the connector (each
one is logged as "audit checkpoint" with its seq and hash): verify then fails
unless the log still holds that line with that hash, which detects lines cut
from the end of a running connector's log and a log rewritten with the key.
`

// runAudit: connector audit tail|verify.
func runAudit(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return exitUsage
	}
	switch args[0] {
	case "tail":
		return runAuditTail(args[1:], stdout, stderr)
	case "verify":
		return runAuditVerify(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, auditUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "connector audit: unknown command %q\n%s", args[0], auditUsage)
	return exitUsage
}

// auditFlags are the flags both subcommands share.
type auditFlags struct {
	config, dir string
}

func (f *auditFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "connector config file: its audit directory and identity key")
	fs.StringVar(&f.dir, "dir", "", "audit directory (default: the config's audit.dir)")
}

// files returns the audit files to read: args, or the directory's.
func (f *auditFlags) files(cfg *connector.Config, args []string) ([]string, error) {
	if len(args) > 0 {
		return args, nil
	}
	dir := f.dir
	if dir == "" && cfg != nil {
		dir = cfg.AuditDir()
	}
	if dir == "" {
		return nil, errors.New("no audit files: give FILE arguments, --dir, or --config with an audit directory")
	}
	files, err := audit.Files(dir)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no audit files in %s", dir)
	}
	return files, nil
}

func loadConfigFlag(path string) (*connector.Config, error) {
	if path == "" {
		return nil, nil
	}
	cfg, err := connector.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	return &cfg, nil
}

func runAuditTail(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("connector audit tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var af auditFlags
	af.register(fs)
	n := fs.Int("n", 20, "how many requests to show")
	raw := fs.Bool("json", false, "print the JSON lines as stored")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 0 || *n <= 0 {
		fmt.Fprintln(stderr, "usage: connector audit tail [--config FILE | --dir DIR] [-n N] [--json]")
		return exitUsage
	}
	cfg, err := loadConfigFlag(af.config)
	if err != nil {
		fmt.Fprintln(stderr, "connector:", cli.Message(err))
		return exitFailure
	}
	files, err := af.files(cfg, nil)
	if err != nil {
		fmt.Fprintf(stderr, "connector audit tail: %v\n", cli.Message(err))
		return exitFailure
	}
	// Newest files first, until n entries are found.
	var lines [][]byte
	for i := len(files) - 1; i >= 0 && countEntries(lines) < *n; i-- {
		b, err := os.ReadFile(files[i])
		if err != nil {
			fmt.Fprintf(stderr, "connector audit tail: %v\n", cli.Message(err))
			return exitFailure
		}
		fileLines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
		lines = append(fileLines, lines...)
	}
	// Keep the last n entries and the lines between them.
	start, seen := len(lines), 0
	for start > 0 && seen < *n {
		start--
		if isEntry(lines[start]) {
			seen++
		}
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	for _, l := range lines[start:] {
		if len(l) == 0 {
			continue
		}
		if *raw {
			w.Write(l)
			w.WriteByte('\n')
			continue
		}
		fmt.Fprintln(w, formatLine(l))
	}
	return exitOK
}

func isEntry(l []byte) bool { return bytes.Contains(l, []byte(`"kind":"entry"`)) }

func countEntries(lines [][]byte) int {
	n := 0
	for _, l := range lines {
		if isEntry(l) {
			n++
		}
	}
	return n
}

// formatLine renders one line for a person; fields are sanitised, since a
// login name comes from the cloud's request.
func formatLine(b []byte) string {
	ln, err := audit.ParseLine(b)
	if err != nil {
		return fmt.Sprintf("(unreadable line: %v; run connector audit verify)", err)
	}
	ts := ln.Time.UTC().Format("2006-01-02 15:04:05.000Z")
	switch ln.Kind {
	case audit.KindStart:
		from := "a new log"
		if ln.PrevFile != "" {
			from = "continues " + audit.Sanitize(ln.PrevFile)
		}
		if ln.Unclean {
			from += "; unclean restart: the log did not end with its closing checkpoint"
		}
		return fmt.Sprintf("%s  --- file started (#%d, %s)", ts, ln.Seq, from)
	case audit.KindCheckpoint:
		return fmt.Sprintf("%s  --- checkpoint #%d (%s), signed by key %s", ts, ln.Seq, audit.Sanitize(ln.Why), audit.Sanitize(ln.KeyID))
	}
	outcome := audit.Sanitize(ln.Outcome)
	if ln.Reason != "" {
		outcome += "/" + audit.Sanitize(ln.Reason)
	}
	subject := audit.Sanitize(ln.Subject)
	if subject == "" {
		subject = "-"
	}
	return fmt.Sprintf("%s  #%-6d %-22s %-40s %-28s %3d %8s", ts, ln.Seq, audit.Sanitize(ln.Op), subject, outcome,
		ln.Status, (time.Duration(ln.Duration) * time.Microsecond).Round(10*time.Microsecond))
}

func runAuditVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("connector audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var af auditFlags
	af.register(fs)
	identity := fs.String("identity", "", "the connector's identity file (its key is FILE.key)")
	pubB64 := fs.String("public-key", "", "the connector's Ed25519 public key, standard base64")
	live := fs.Bool("live", false, "accept a log still being written (no closing checkpoint yet)")
	strict := fs.Bool("strict", false, "fail on notes too (unclean restarts, a log whose beginning was not given)")
	expect := fs.String("expect", "", "SEQ:HASH of a checkpoint recorded outside the connector; fail unless the log holds it")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	cfg, err := loadConfigFlag(af.config)
	if err != nil {
		fmt.Fprintln(stderr, "connector:", cli.Message(err))
		return exitFailure
	}
	if cfg == nil && *identity == "" && *pubB64 == "" {
		fmt.Fprintln(stderr, "connector audit verify: the connector's key is needed: --config FILE, --identity FILE or --public-key B64")
		return exitUsage
	}
	pub, err := verifyKey(cfg, *identity, *pubB64)
	if err != nil {
		fmt.Fprintf(stderr, "connector audit verify: %v\n", cli.Message(err))
		return exitFailure
	}
	files, err := af.files(cfg, fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "connector audit verify: %v\n", cli.Message(err))
		return exitFailure
	}
	v := audit.NewVerifier(pub)
	if *expect != "" {
		seqS, hash, ok := strings.Cut(*expect, ":")
		seq, err := strconv.ParseUint(seqS, 10, 64)
		if !ok || err != nil || seq == 0 || len(hash) != 64 {
			fmt.Fprintln(stderr, "connector audit verify: --expect: want SEQ:HASH (a sequence number and 64 hex digits, as the \"audit checkpoint\" log line gives them)")
			return exitUsage
		}
		v.Expect(seq, hash)
	}
	rep, err := v.VerifyFiles(files...)
	var le *audit.LineError
	switch {
	case err == nil:
	case *live && errors.Is(err, audit.ErrOpenTail):
	case errors.As(err, &le):
		fmt.Fprintf(stderr, "connector audit verify: FAILED: %s line %d: %s\n", le.File, le.Line, le.Reason)
		return exitRefused
	case errors.Is(err, audit.ErrTampered):
		fmt.Fprintf(stderr, "connector audit verify: FAILED: %v\n", cli.Message(err))
		return exitRefused
	default:
		fmt.Fprintf(stderr, "connector audit verify: %v\n", cli.Message(err))
		return exitFailure
	}
	fmt.Fprintf(stdout, "intact: %d file(s), %d line(s), %d request(s), %d checkpoint(s) signed by key %s\n",
		rep.Files, rep.Lines, rep.Entries, rep.Checkpoints, audit.KeyID(pub))
	if rep.Checkpoints > 0 {
		c := rep.LastCheckpoint
		fmt.Fprintf(stdout, "last checkpoint: %s line %d (#%d, %s)\n", c.File, c.Line, c.Seq, c.Time.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(stdout, "head: #%d %s (keep it elsewhere: a later verify must still reach it)\n", rep.Head.Seq, rep.HeadHash)
	if !rep.Closed {
		fmt.Fprintf(stdout, "open: %d line(s) after the last checkpoint are not signed yet; removing them cannot be detected\n", rep.Unsigned)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	if *strict && len(rep.Notes) > 0 {
		fmt.Fprintf(stderr, "connector audit verify: FAILED (--strict): %d note(s)\n", len(rep.Notes))
		return exitRefused
	}
	return exitOK
}

// verifyKey finds the public key checkpoints must be signed with.
func verifyKey(cfg *connector.Config, identity, b64 string) (ed25519.PublicKey, error) {
	switch {
	case b64 != "":
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, errors.New("--public-key: want a 32-byte Ed25519 public key in standard base64")
		}
		return ed25519.PublicKey(b), nil
	case identity != "":
		return connector.Cloud{IdentityFile: identity}.PublicKey()
	}
	return cfg.Cloud.PublicKey()
}
