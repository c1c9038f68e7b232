package main

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/term"

	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

const keysUsage = `usage:
  connector keys init    [key] [--argon2-cost default|low]   create a KEK file with version 1 (never overwrites)
  connector keys status  [key]                               JSON: keyring id, primary, versions and states (no secrets)
  connector keys rotate  [key]                               add a version, enabled but not primary; prints its number
  connector keys promote [key] --version N [--force]         make version N the primary (once every live connector has it)
  connector keys disable [key] --version N                   refuse version N everywhere (reversible with enable)
  connector keys enable  [key] --version N
  connector keys destroy [key] --version N                   erase a disabled version's secret: irreversible
  connector keys passwd  [key] (--new-passphrase-file P2 | --new-passphrase-env V2)
  connector keys escrow  [key] --age-recipient age1... > keyring.age
                         (open with: age -d -i identity.txt keyring.age)

[key] --kek-file FILE (--passphrase-file FILE | --passphrase-env VAR)
      (or --config FILE: the connector config's keys section; flags override)
      Without a passphrase flag, the passphrase is prompted for when stdin is a
      terminal. It is never a flag value and never printed. New passphrases
      (init, passwd) must be at least 12 characters.
--argon2-cost default|low (every command that writes the file): default is
      Argon2id t=3, 64 MiB, 4 lanes; low is the floor (t=2, 19 MiB, 1 lane) and
      is meant for tests only.

Every command that changes the keyring rewrites the KEK file atomically. The
file holds every KEK version: write it as the connector's service user, and
keep an escrow copy (connector keys escrow) before destroying anything.

Sharing the keyring among a tenant's connectors (the cloud relays sealed
bytes it cannot open; see tunnel/connector's "Sharing the keyring"):
  connector keys fingerprint --config C     this connector's fingerprint
  connector keys join FP --config C         on a NEW connector, before its first
                                            start (no KEK file): accept the
                                            keyring only from the connector whose
                                            fingerprint is FP
  connector keys requests --config C        on an existing connector: pending
                                            requests, fingerprint and ID
  connector keys approve FP --config C      after comparing FP with what
                                            "keys fingerprint" shows on the new
                                            connector (phone, in person): the
                                            keyring is sealed to it
  connector keys members --config C         approved connectors
  connector keys revoke FP --config C       seal nothing more to it (revoke it
                                            in the cloud too)
  Join runbook: on the new connector: enroll, keys fingerprint, keys join
  FP_OF_EXISTING, start it; on THAT existing connector (the one whose
  fingerprint was typed): keys requests, compare the fingerprint with the new
  connector's, keys approve FP. Within two key-share rounds the new connector
  writes the KEK file under its own passphrase. Compare fingerprints over a
  channel the vendor does not carry. "connector check" shows the fingerprint
  too.

Rotation runbook (package keyenvelope):
  1. rotate                        adds version N+1, not primary
  2. wait                          the running connector shares N+1 with every
                                   approved, live connector (cloud key-share
                                   rounds); until each has it none may wrap
                                   under N+1. Without sharing: copy the KEK
                                   file to every connector and restart them
  3. promote --version N+1         new wraps use it; refused (naming the
                                   connectors) while a live connector lacks
                                   N+1, unless --force
  4. rewrap                        the cloud rewraps its stored ekeys through
                                   the connectors (policy operation "keys")
  5. disable --version N           watch for unwrap failures; enable undoes it
  6. destroy --version N           after an escrow export if policy demands it
`

// minNewPassphrase is the shortest passphrase init and passwd accept. The
// KEK file is offline-attackable by whoever copies it; Argon2id slows each
// guess, a longer passphrase multiplies the guesses.
const minNewPassphrase = 12

// keyFlags are the [key] flags shared by every keys subcommand.
type keyFlags struct {
	configFile string
	kekFile    string
	passFile   string
	passEnv    string
	cost       string
}

func (k *keyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.kekFile, "kek-file", "", "the KEK file")
	fs.StringVar(&k.passFile, "passphrase-file", "", "file holding the KEK file's passphrase (one trailing newline is dropped)")
	fs.StringVar(&k.passEnv, "passphrase-env", "", "name of the environment variable holding the KEK file's passphrase")
	fs.StringVar(&k.configFile, "config", "", "take --kek-file and the passphrase source from this connector config's keys section")
	fs.StringVar(&k.cost, "argon2-cost", "default", "Argon2id cost when writing: default, or low (the floor; for tests only)")
}

// fromConfig fills the flags the command line did not set from the keys
// section of a connector config file.
func (k *keyFlags) fromConfig(fs *flag.FlagSet) error {
	if k.configFile == "" {
		return nil
	}
	cfg, err := connector.LoadConfig(k.configFile)
	if err != nil {
		return err
	}
	if cfg.Keys == nil {
		return fmt.Errorf("%s has no keys section (a directory-only connector)", k.configFile)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["kek-file"] {
		k.kekFile = cfg.Keys.KEKFile
	}
	if !set["passphrase-file"] && !set["passphrase-env"] {
		k.passFile, k.passEnv = cfg.Keys.PassphraseFile, cfg.Keys.PassphraseEnv
	}
	return nil
}

func (k *keyFlags) params() (keyenvelope.Argon2Params, error) {
	switch k.cost {
	case "default", "":
		return keyenvelope.Argon2Params{}, nil // zero: keyenvelope's defaults
	case "low":
		return keyenvelope.Argon2Params{Time: 2, MemoryKiB: 19 << 10, Threads: 1}, nil
	}
	return keyenvelope.Argon2Params{}, fmt.Errorf("--argon2-cost %q: want default or low", k.cost)
}

// errUsage marks errors that are the caller's to fix on the command line.
var errUsage = errors.New("usage")

// runKeys: connector keys SUBCOMMAND [flags].
func runKeys(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return exitUsage
	}
	sub := args[0]
	switch sub {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, keysUsage)
		return exitOK
	case "init", "status", "rotate", "promote", "disable", "enable", "destroy", "passwd", "escrow":
	case "fingerprint", "requests", "members", "approve", "join", "revoke":
		return runKeyShare(sub, args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "connector keys: unknown command %q\n%s", sub, keysUsage)
		return exitUsage
	}
	fs := flag.NewFlagSet("connector keys "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, keysUsage) }
	var kf keyFlags
	kf.register(fs)
	var version uint
	if sub == "promote" || sub == "disable" || sub == "enable" || sub == "destroy" {
		fs.UintVar(&version, "version", 0, "the KEK version")
	}
	var force bool
	if sub == "promote" {
		fs.BoolVar(&force, "force", false, "promote even though the last key-share round reported connectors without the version")
	}
	var newPassFile, newPassEnv, recipient string
	if sub == "passwd" {
		fs.StringVar(&newPassFile, "new-passphrase-file", "", "file holding the new passphrase")
		fs.StringVar(&newPassEnv, "new-passphrase-env", "", "environment variable holding the new passphrase")
	}
	if sub == "escrow" {
		fs.StringVar(&recipient, "age-recipient", "", "the escrow officer's age X25519 recipient (age1..., from age-keygen)")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "connector keys %s: "+format+"\n", append([]any{sub}, a...)...)
		return exitUsage
	}
	if fs.NArg() != 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if err := kf.fromConfig(fs); err != nil {
		fmt.Fprintf(stderr, "connector: %v\n", err)
		return exitUsage
	}
	if kf.kekFile == "" {
		return usageErr("--kek-file (or --config) is required")
	}
	params, err := kf.params()
	if err != nil {
		return usageErr("%v", err)
	}
	if version == 0 && (sub == "promote" || sub == "disable" || sub == "enable" || sub == "destroy") {
		return usageErr("--version N is required (see connector keys status)")
	}
	if version > 1<<32-1 {
		return usageErr("--version %d is out of range", version)
	}
	if sub == "escrow" {
		if recipient == "" {
			return usageErr("--age-recipient is required (age-keygen prints one: age1...)")
		}
		if isTerminal(stdout) {
			return usageErr("refusing to write the encrypted keyring to a terminal: redirect stdout to a file")
		}
	}

	if sub == "init" {
		return keysInit(kf, params, stdin, stdout, stderr)
	}

	pass, err := passphrase(kf.passFile, kf.passEnv, stdin, stderr, "KEK passphrase", false)
	if err != nil {
		return passphraseErr(stderr, sub, err)
	}
	defer clear(pass)
	if share := shareFileOf(kf); sub != "status" && sub != "escrow" {
		if _, err := os.Stat(share); err == nil {
			// A running connector's key-share round writes the KEK file
			// too: hold its lock while reading and rewriting it.
			unlock, err := connector.LockShareFile(share)
			if err != nil {
				return fail(stderr, err)
			}
			defer unlock()
		}
	}
	kr, code := openKEKFile(stderr, kf.kekFile, pass)
	if kr == nil {
		return code
	}

	switch sub {
	case "status":
		return keysStatus(kr, kf.kekFile, stdout, stderr)
	case "escrow":
		if err := kr.ExportAge(stdout, recipient); err != nil {
			if errors.Is(err, keyenvelope.ErrRecipient) {
				return usageErr("--age-recipient %q is not an age X25519 recipient (age1...)", recipient)
			}
			return fail(stderr, err)
		}
		fmt.Fprintf(stderr, "connector: escrow copy of keyring %s written (%d version(s)); keep the age identity offline: it opens every KEK\n",
			keyringID(kr), len(kr.Versions()))
		return exitOK
	case "passwd":
		newPass, err := passphrase(newPassFile, newPassEnv, stdin, stderr, "new KEK passphrase", true)
		if err != nil {
			if errors.Is(err, errNoPassphrase) {
				return usageErr("--new-passphrase-file or --new-passphrase-env is required")
			}
			return passphraseErr(stderr, sub, err)
		}
		defer clear(newPass)
		if len(newPass) < minNewPassphrase {
			return usageErr("the new passphrase is shorter than %d characters", minNewPassphrase)
		}
		if err := kr.WriteKEKFile(kf.kekFile, newPass, params); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "%s: passphrase changed\n", kf.kekFile)
		fmt.Fprintln(stderr, "connector: connectors read the passphrase at start-up: update their passphrase_file or passphrase_env before they restart")
		return exitOK
	}

	// The mutating commands: change the keyring, then rewrite the file.
	v := uint32(version)
	var done, next string
	switch sub {
	case "rotate":
		v, err = kr.AddVersion()
		done = fmt.Sprintf("added version %d (enabled, not primary)", v)
		next = fmt.Sprintf("next: the running connector shares version %d with every approved connector at the cloud's next key-share rounds (without key sharing: copy %s to every connector of the tenant and restart them); then: connector keys promote --version %d", v, kf.kekFile, v)
	case "promote":
		if !force {
			if cerr := checkPromote(kf, v); cerr != nil {
				fmt.Fprintf(stderr, "connector keys promote: %v\n", cerr)
				return exitFailure
			}
		}
		err = kr.Promote(v)
		done = fmt.Sprintf("version %d is the primary", v)
		next = "next: the other connectors pick the promotion up at the next key-share rounds; rewrap stored ekeys, then disable the old version"
	case "disable":
		err = kr.Disable(v)
		done = fmt.Sprintf("version %d disabled", v)
		next = fmt.Sprintf("next: distribute %s; watch for unwrap failures (enable --version %d undoes this), then destroy", kf.kekFile, v)
	case "enable":
		err = kr.Enable(v)
		done = fmt.Sprintf("version %d enabled", v)
		next = fmt.Sprintf("next: distribute %s", kf.kekFile)
	case "destroy":
		err = kr.Destroy(v)
		done = fmt.Sprintf("version %d destroyed: anything still wrapped under it is unrecoverable", v)
		next = fmt.Sprintf("next: distribute %s", kf.kekFile)
	}
	switch {
	case errors.Is(err, keyenvelope.ErrNoSuchVersion):
		fmt.Fprintf(stderr, "connector keys %s: no version %d in %s (see connector keys status)\n", sub, v, kf.kekFile)
		return exitFailure
	case errors.Is(err, keyenvelope.ErrKeyState):
		fmt.Fprintf(stderr, "connector keys %s: version %d: %s\n", sub, v, stateHint(sub, kr, v))
		return exitFailure
	case err != nil:
		return fail(stderr, err)
	}
	if err := kr.WriteKEKFile(kf.kekFile, pass, params); err != nil {
		return fail(stderr, err)
	}
	if sub == "rotate" {
		fmt.Fprintln(stdout, v)
		fmt.Fprintf(stderr, "connector: %s\nconnector: %s\n", done, next)
	} else {
		fmt.Fprintln(stdout, done)
		fmt.Fprintf(stderr, "connector: %s\n", next)
	}
	return exitOK
}

// keysInit creates a new keyring and writes it to a file that must not
// exist yet.
func keysInit(kf keyFlags, params keyenvelope.Argon2Params, stdin io.Reader, stdout, stderr io.Writer) int {
	if _, err := os.Lstat(kf.kekFile); err == nil {
		fmt.Fprintf(stderr, "connector keys init: %s already exists: refusing to overwrite a keyring (use rotate to add a version)\n", kf.kekFile)
		return exitFailure
	}
	pass, err := passphrase(kf.passFile, kf.passEnv, stdin, stderr, "new KEK passphrase", true)
	if err != nil {
		return passphraseErr(stderr, "init", err)
	}
	defer clear(pass)
	if len(pass) < minNewPassphrase {
		fmt.Fprintf(stderr, "connector keys init: the passphrase is shorter than %d characters\n", minNewPassphrase)
		return exitUsage
	}
	kr, err := keyenvelope.NewKeyring(nil)
	if err != nil {
		return fail(stderr, err)
	}
	// Claim the name first, so that two concurrent inits cannot both
	// succeed; WriteKEKFile then renames the real file over the placeholder.
	f, err := os.OpenFile(kf.kekFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			fmt.Fprintf(stderr, "connector keys init: %s already exists: refusing to overwrite a keyring\n", kf.kekFile)
			return exitFailure
		}
		return fail(stderr, err)
	}
	_ = f.Close()
	if err := kr.WriteKEKFile(kf.kekFile, pass, params); err != nil {
		_ = os.Remove(kf.kekFile)
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "%s: created keyring %s, version 1 (primary)\n", kf.kekFile, keyringID(kr))
	fmt.Fprintln(stderr, "connector: take an escrow copy now: connector keys escrow --kek-file "+kf.kekFile+" ... --age-recipient age1... > keyring.age")
	return exitOK
}

// statusJSON is the output of connector keys status. It holds no secret.
type statusJSON struct {
	KEKFile              string        `json:"kek_file"`
	KeyringID            string        `json:"keyring_id"`
	Primary              uint32        `json:"primary"`
	MinDecryptionVersion uint32        `json:"min_decryption_version"`
	Versions             []versionJSON `json:"versions"`
	Argon2               *argon2JSON   `json:"argon2,omitempty"`
}

type versionJSON struct {
	Version uint32 `json:"version"`
	State   string `json:"state"`
	Primary bool   `json:"primary"`
}

type argon2JSON struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

func keysStatus(kr *keyenvelope.Keyring, path string, stdout, stderr io.Writer) int {
	st := statusJSON{
		KEKFile:              path,
		KeyringID:            keyringID(kr),
		Primary:              kr.Primary(),
		MinDecryptionVersion: kr.MinDecryptionVersion(),
		Versions:             []versionJSON{},
		Argon2:               fileArgon2(path),
	}
	for _, v := range kr.Versions() {
		st.Versions = append(st.Versions, versionJSON{Version: v.Version, State: v.State.String(), Primary: v.Primary})
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return encode(enc, stderr, st)
}

// fileArgon2 reads the Argon2id parameters from the KEK file's public
// header (offsets 24 to 33, package keyenvelope "Kind 5: KEK file"). The
// file has just been opened, so they are within keyenvelope's bounds.
func fileArgon2(path string) *argon2JSON {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var h [33]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return nil
	}
	return &argon2JSON{
		Time:      binary.BigEndian.Uint32(h[24:28]),
		MemoryKiB: binary.BigEndian.Uint32(h[28:32]),
		Threads:   h[32],
	}
}

func keyringID(kr *keyenvelope.Keyring) string {
	id := kr.ID()
	return hex.EncodeToString(id[:])
}

// openKEKFile opens the KEK file, turning keyenvelope's deliberately opaque
// error into advice. On failure it returns nil and the exit code.
func openKEKFile(stderr io.Writer, path string, pass []byte) (*keyenvelope.Keyring, int) {
	kr, err := keyenvelope.ReadKEKFile(path, pass)
	switch {
	case err == nil:
		return kr, exitOK
	case errors.Is(err, keyenvelope.ErrUnwrap):
		fmt.Fprintf(stderr, "connector keys: cannot open %s: wrong passphrase, or not an intact KEK file\n", path)
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(stderr, "connector keys: %s does not exist (create it with connector keys init)\n", path)
	default:
		fmt.Fprintf(stderr, "connector keys: %v\n", err)
	}
	return nil, exitFailure
}

// stateHint explains an ErrKeyState refusal from the version's state.
func stateHint(sub string, kr *keyenvelope.Keyring, v uint32) string {
	for _, vi := range kr.Versions() {
		if vi.Version != v {
			continue
		}
		switch {
		case vi.Primary && (sub == "disable" || sub == "destroy"):
			return "it is the primary: promote another version first"
		case sub == "destroy" && vi.State == keyenvelope.StateEnabled:
			return "it is enabled: disable it first, and watch for unwrap failures before destroying it"
		case vi.State == keyenvelope.StateDestroyed:
			return "it is destroyed: its secret is gone"
		case sub == "promote" && vi.State != keyenvelope.StateEnabled:
			return "it is " + vi.State.String() + ": enable it first"
		case sub == "promote":
			return "it is below the minimum decryption version " + strconv.FormatUint(uint64(kr.MinDecryptionVersion()), 10)
		}
		return "not allowed while it is " + vi.State.String()
	}
	return "not allowed in its state"
}

var errNoPassphrase = errors.New("no passphrase source")

// passphrase reads a passphrase from a file (one trailing newline dropped,
// as tunnel/connector does), an environment variable, or, when neither is given
// and stdin is a terminal, a prompt with echo off (twice when confirm).
func passphrase(file, env string, stdin io.Reader, stderr io.Writer, what string, confirm bool) ([]byte, error) {
	switch {
	case file != "" && env != "":
		return nil, fmt.Errorf("%w: a passphrase file and a passphrase variable are exclusive", errUsage)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("passphrase file: %w", err)
		}
		b = trimLineEnd(b)
		if len(b) == 0 {
			return nil, fmt.Errorf("passphrase file %s is empty", file)
		}
		return b, nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return nil, fmt.Errorf("environment variable %s is not set", env)
		}
		return []byte(v), nil
	}
	f, ok := stdin.(*os.File)
	if !ok {
		return nil, errNoPassphrase
	}
	p, err := promptSecret(f, stderr, what+": ")
	if err != nil {
		return nil, err
	}
	if confirm {
		again, err := promptSecret(f, stderr, "again: ")
		if err != nil {
			return nil, err
		}
		same := string(again) == string(p)
		clear(again)
		if !same {
			clear(p)
			return nil, errors.New("the passphrases differ")
		}
	}
	if len(p) == 0 {
		return nil, errors.New("empty passphrase")
	}
	return p, nil
}

// promptSecret prompts on stderr and reads one line from the terminal f
// with echo off; it returns errNoPassphrase when f is not a terminal.
func promptSecret(f *os.File, stderr io.Writer, prompt string) ([]byte, error) {
	if !term.IsTerminal(int(f.Fd())) {
		return nil, errNoPassphrase
	}
	fmt.Fprint(stderr, prompt)
	defer fmt.Fprintln(stderr)
	line, err := term.ReadPassword(int(f.Fd()))
	if err != nil {
		clear(line)
		return nil, err
	}
	return trimLineEnd(line), nil
}

func trimLineEnd(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

// passphraseErr reports a failure to obtain a passphrase.
func passphraseErr(stderr io.Writer, sub string, err error) int {
	if errors.Is(err, errNoPassphrase) {
		fmt.Fprintf(stderr, "connector keys %s: --passphrase-file or --passphrase-env is required (or run it on a terminal to be prompted)\n", sub)
		return exitUsage
	}
	if errors.Is(err, errUsage) {
		fmt.Fprintf(stderr, "connector keys %s: %s\n", sub, strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		return exitUsage
	}
	fmt.Fprintf(stderr, "connector keys %s: %v\n", sub, err)
	return exitFailure
}
