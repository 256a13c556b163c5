// Package cli is the composition root of the gatehouse program: it parses
// subcommands and flags, loads the configuration, builds every dependency
// from it and passes them down. It is the only package that imports
// internal/config. Tests drive the whole program through Run.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// env is what a command may touch of the outside world; nothing else is
// global.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

type command struct {
	name    string // space-separated path, e.g. "audit list"
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// commands is the dispatch table: one line per command.
func commands() []command {
	return []command{
		{"serve", "run the gateway from a configuration file", runServe},
		{"demo", "run a self-contained demo gateway on loopback (no set-up, no network)", runDemo},
		{"config validate", "check a configuration file and print it with secrets redacted", runConfigValidate},
		{"version", "print the version", runVersion},
		{"usage", "report tokens, requests and cost per user, group or model from the audit store", runUsage},
		{"profile", "generate Claude Desktop / Claude Code managed profiles (mobileconfig, reg, json)", runProfile},
		{"login", "sign in to the identity provider for the credential helper", runLogin},
		{"token", "print the user's token (Claude Code apiKeyHelper, Desktop inferenceCredentialHelper)", runToken},
		{"logout", "forget the credential helper's cached tokens", runLogout},
		{"entra register", "create or update the Entra ID app registration through Microsoft Graph", runEntraRegister},
		{"revoke user", "revoke every token of a user (object ID, or UPN matched case-insensitively)", runRevokeUser},
		{"revoke before", "revoke every token issued before a time, for everyone or one user (--user OID)", runRevokeBefore},
		{"revoke token", "revoke one token by its jti/uti or SHA-256", runRevokeToken},
		{"revoke all", "kill switch: refuse every request until removed or --until", runRevokeAll},
		{"revoke list", "list revocations with their ids (--json, --all)", runRevokeList},
		{"revoke remove", "lift a revocation by id", runRevokeRemove},
		{"doctor", "check a configuration or a deployed gateway and say how to fix what is wrong", runDoctor},
		{"audit list", "list audit records (--json lines, --csv; filters --user --since --until --model --status --denied)", runAuditList},
		{"audit show", "show one audit record by request id", runAuditShow},
		{"audit verify", "verify the audit trail's hash chain and signed checkpoints; non-zero exit on tampering", runAuditVerify},
		{"audit keygen", "generate an Ed25519 key pair for signing audit checkpoints", runAuditKeygen},
		{"audit purge", "erase captured content of a user (--user) or older than --before; the erasure is audited", runAuditPurge},
	}
}

// Run is the whole program: it returns the process exit code.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if getenv == nil {
		e.getenv = func(string) string { return "" }
	}
	cmd, rest := lookup(args)
	if cmd == nil {
		if len(args) > 0 && args[0] != "help" && args[0] != "-h" && args[0] != "--help" {
			fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n", strings.Join(args, " "))
			usage(stderr)
			return 2
		}
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	err := cmd.run(ctx, e, rest)
	var ec exitCode
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ec):
		return int(ec)
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "gatehouse %s: %v\n", cmd.name, err)
		return 2
	default:
		fmt.Fprintf(stderr, "gatehouse %s: %v\n", cmd.name, err)
		return 1
	}
}

// lookup finds the longest command path that prefixes args.
func lookup(args []string) (*command, []string) {
	var best *command
	bestLen := 0
	cmds := commands()
	for i := range cmds {
		parts := strings.Fields(cmds[i].name)
		if len(parts) > len(args) || len(parts) <= bestLen {
			continue
		}
		match := true
		for j, p := range parts {
			if args[j] != p {
				match = false
				break
			}
		}
		if match {
			best, bestLen = &cmds[i], len(parts)
		}
	}
	if best == nil {
		return nil, nil
	}
	return best, args[bestLen:]
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "gatehouse: the governed gateway for Claude Desktop and Claude Code")
	fmt.Fprintln(w, "\nUsage: gatehouse <command> [flags]\n\nCommands:")
	cmds := commands()
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-22s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'gatehouse <command> -h' for a command's flags. Documentation: docs/README.md")
}

// exitCode ends the program with a code and no further message (the
// command has already reported).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// newFlags returns a flag set whose errors and help go to stderr.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: gatehouse %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses and rejects stray arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitCode(2)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
