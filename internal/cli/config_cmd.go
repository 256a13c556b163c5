package cli

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

func runConfigValidate(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "config validate", "--config FILE")
	path := fs.String("config", "", "configuration file (required)")
	quiet := fs.Bool("quiet", false, "print nothing when the file is valid")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return usagef("--config FILE is required")
	}
	cfg, err := config.Load(*path, e.getenv)
	if err != nil {
		fmt.Fprintf(e.stderr, "%s is not valid:\n%v\n", *path, indent(err.Error()))
		return exitCode(1)
	}
	if *quiet {
		return nil
	}
	out, err := cfg.Redacted()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "# %s is valid. Effective configuration, defaults filled, secrets redacted:\n", *path)
	_, err = e.stdout.Write(out)
	return err
}

// loadConfig is how every command reads --config.
func loadConfig(e *env, path string) (*config.Config, error) {
	if path == "" {
		return nil, usagef("--config FILE is required")
	}
	cfg, err := config.Load(path, e.getenv)
	if err != nil {
		return nil, fmt.Errorf("%s is not valid:\n%s", path, indent(err.Error()))
	}
	return cfg, nil
}

func indent(s string) string {
	out := "  "
	for _, r := range s {
		out += string(r)
		if r == '\n' {
			out += "  "
		}
	}
	return out
}

// Version is set at build time with -ldflags "-X .../internal/cli.Version=v1.2.3".
var Version = ""

func runVersion(ctx context.Context, e *env, args []string) error {
	fmt.Fprintf(e.stdout, "gatehouse %s\n", versionString())
	return nil
}

func versionString() string {
	v := Version
	if v == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			v = bi.Main.Version
		}
	}
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	return v
}
