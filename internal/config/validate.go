package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// validator collects problems with their paths.
type validator struct {
	prefix string
	errs   *[]error
}

func (v *validator) at(path string) *validator {
	if v.errs == nil {
		v.errs = new([]error)
	}
	p := path
	if v.prefix != "" {
		p = v.prefix + "." + path
	}
	return &validator{prefix: p, errs: v.errs}
}

func (v *validator) index(path string, i int) *validator {
	return v.at(fmt.Sprintf("%s[%d]", path, i))
}

func (v *validator) add(field, format string, args ...any) {
	if v.errs == nil {
		v.errs = new([]error)
	}
	p := field
	if v.prefix != "" {
		if field == "" {
			p = v.prefix
		} else {
			p = v.prefix + "." + field
		}
	}
	*v.errs = append(*v.errs, fmt.Errorf("%s: %s", p, fmt.Sprintf(format, args...)))
}

func (v *validator) err() error {
	if v.errs == nil {
		return nil
	}
	return errors.Join(*v.errs...)
}

// parseURL parses an absolute http(s) URL. http is allowed only for loopback
// hosts (local development and tests) unless allowHTTP is set.
func parseURL(raw string, allowHTTP bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("is not a URL: %v", err)
	}
	if u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%q must be an absolute https:// URL", raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("must not carry credentials in the URL")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q must not have a query or fragment", raw)
	}
	if u.Scheme == "http" && !allowHTTP && !IsLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("%q uses http://, which is allowed only for loopback hosts (127.0.0.1, ::1, localhost); use https://", raw)
	}
	return u, nil
}

// IsLoopbackHost reports whether host is localhost or a loopback IP.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func splitHostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("%q has an invalid port", addr)
	}
	return host, n, nil
}
