package credhelper

import (
	"context"
	"os/exec"
	"runtime"
)

// SystemBrowser returns an opener for the user's default browser, or nil
// when this session has none (a Linux session without DISPLAY or
// WAYLAND_DISPLAY, e.g. over SSH, or GATEHOUSE_NO_BROWSER=1). Callers pass
// it as Options.OpenBrowser; nil makes interactive sign-in fail with
// ErrInteractionRequired instead of hanging.
func SystemBrowser(getenv func(string) string) func(ctx context.Context, url string) error {
	if getenv("GATEHOUSE_NO_BROWSER") != "" {
		return nil
	}
	var name string
	var args []string
	switch runtime.GOOS {
	case "darwin":
		name = "open"
	case "windows":
		name, args = "rundll32", []string{"url.dll,FileProtocolHandler"}
	default:
		if getenv("DISPLAY") == "" && getenv("WAYLAND_DISPLAY") == "" {
			return nil
		}
		name = "xdg-open"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return nil
	}
	return func(ctx context.Context, url string) error {
		cmd := exec.Command(path, append(args, url)...)
		if err := cmd.Start(); err != nil {
			return err
		}
		go cmd.Wait() //nolint:errcheck // the browser outlives the sign-in; reap it
		return nil
	}
}
