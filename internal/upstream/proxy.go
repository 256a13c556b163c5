package upstream

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// ProxyOptions routes a target's requests through an HTTP proxy (CONNECT
// for https). The zero value means direct connections.
type ProxyOptions struct {
	// URL of the proxy, e.g. http://proxy.corp:3128 (user info allowed
	// for Basic proxy authentication). Empty: no proxy.
	URL string
	// NoProxy lists hosts reached directly, in the NO_PROXY format: comma
	// or space separated; "*" for all; an IP or CIDR; a domain, which
	// matches itself and its subdomains (".corp" matches subdomains only);
	// any of these with ":port" to match that port only.
	NoProxy string
}

// ProxyFromEnv reads HTTPS_PROXY (or https_proxy) and NO_PROXY (or
// no_proxy) through getenv. Call it only when the operator asked for the
// environment's proxy: by default targets ignore it.
func ProxyFromEnv(getenv func(string) string) ProxyOptions {
	first := func(names ...string) string {
		for _, n := range names {
			if v := getenv(n); v != "" {
				return v
			}
		}
		return ""
	}
	return ProxyOptions{
		URL:     first("HTTPS_PROXY", "https_proxy"),
		NoProxy: first("NO_PROXY", "no_proxy"),
	}
}

// ProxyFunc returns the proxy selector for an http.Transport (nil when no
// proxy is configured), e.g. for the Entra token client when egress must go
// through the same proxy.
func (p ProxyOptions) ProxyFunc() (func(*http.Request) (*url.URL, error), error) {
	return p.proxyFunc()
}

func (p ProxyOptions) proxyFunc() (func(*http.Request) (*url.URL, error), error) {
	if p.URL == "" {
		return nil, nil
	}
	raw := p.URL
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	pu, err := url.Parse(raw)
	if err != nil || pu.Host == "" || (pu.Scheme != "http" && pu.Scheme != "https") {
		return nil, fmt.Errorf("proxy URL is not http(s)://host:port")
	}
	np := parseNoProxy(p.NoProxy)
	return func(r *http.Request) (*url.URL, error) {
		if np.match(r.URL) {
			return nil, nil
		}
		return pu, nil
	}, nil
}

type noProxyEntry struct {
	all    bool
	prefix netip.Prefix
	domain string // lower case, without leading dot
	sub    bool   // leading dot: subdomains only
	port   string
}

type noProxy []noProxyEntry

func parseNoProxy(s string) noProxy {
	var out noProxy
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		if f == "*" {
			return noProxy{{all: true}}
		}
		var e noProxyEntry
		if p, err := netip.ParsePrefix(f); err == nil {
			e.prefix = p
			out = append(out, e)
			continue
		}
		host := f
		if h, port, err := net.SplitHostPort(f); err == nil {
			host, e.port = h, port
		}
		if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
			e.prefix = netip.PrefixFrom(a, a.BitLen())
			out = append(out, e)
			continue
		}
		if strings.HasPrefix(host, "*.") {
			host = host[1:]
		}
		if strings.HasPrefix(host, ".") {
			e.sub = true
			host = host[1:]
		}
		e.domain = host
		out = append(out, e)
	}
	return out
}

func (np noProxy) match(u *url.URL) bool {
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	addr, addrErr := netip.ParseAddr(host)
	for _, e := range np {
		if e.all {
			return true
		}
		if e.port != "" && e.port != port {
			continue
		}
		if e.prefix.IsValid() {
			if addrErr == nil && e.prefix.Contains(addr.Unmap()) {
				return true
			}
			continue
		}
		if (!e.sub && host == e.domain) || strings.HasSuffix(host, "."+e.domain) {
			return true
		}
	}
	return false
}
