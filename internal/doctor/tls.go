package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"strings"
	"time"
)

// TLSOptions configures TLSExpiry.
type TLSOptions struct {
	// URLs whose https hosts are checked (duplicates and http URLs are
	// ignored).
	URLs []string
	// Roots verifies the chains. Nil: the system roots.
	Roots *x509.CertPool
	// WarnWithin warns about certificates expiring sooner. Zero: 30 days.
	WarnWithin time.Duration
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
}

// TLSExpiry is "tls-expiry": for each https host, the certificate chain it
// presents is trusted, names the host, and expires no sooner than
// WarnWithin (warn) and not in the past (fail). The handshake only reads
// the certificates; nothing is sent over the connection.
func TLSExpiry(o TLSOptions) Check {
	if o.WarnWithin <= 0 {
		o.WarnWithin = 30 * 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return CheckFunc("tls-expiry", func(ctx context.Context) Result {
		var hosts []string
		seen := map[string]bool{}
		for _, raw := range o.URLs {
			u, err := url.Parse(raw)
			if err != nil || u.Scheme != "https" || u.Host == "" {
				continue
			}
			hp := u.Host
			if u.Port() == "" {
				hp = net.JoinHostPort(u.Hostname(), "443")
			}
			if !seen[hp] {
				seen[hp] = true
				hosts = append(hosts, hp)
			}
		}
		if len(hosts) == 0 {
			return Skipf("no https URL to check")
		}
		worst := OK
		var lines, fixes []string
		for _, hp := range hosts {
			r := checkCert(ctx, hp, o)
			lines = append(lines, r.Message)
			if r.Fix != "" {
				fixes = append(fixes, r.Fix)
			}
			if rank(r.Status) > rank(worst) {
				worst = r.Status
			}
		}
		return Result{Status: worst, Message: strings.Join(lines, "\n"), Fix: strings.Join(dedupe(fixes), "; ")}
	})
}

func rank(s Status) int {
	switch s {
	case Fail:
		return 3
	case Warn:
		return 2
	case OK:
		return 1
	}
	return 0
}

func checkCert(ctx context.Context, hostport string, o TLSOptions) Result {
	host, _, _ := net.SplitHostPort(hostport)
	var certs []*x509.Certificate
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		Config: &tls.Config{
			ServerName: host,
			MinVersion: tls.VersionTLS12,
			// Verification is done below, so that an expired or untrusted
			// certificate is reported precisely instead of as a failed
			// handshake. Nothing is sent over this connection.
			// gatehouse:allow-insecure diagnostics only: the chain is verified explicitly below and nothing is sent
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				certs = cs.PeerCertificates
				return nil
			},
		},
	}
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return Failf("check that "+hostport+" is reachable and serves TLS 1.2 or later", "%s: TLS handshake failed: %s", hostport, describeErr(err))
	}
	conn.Close()
	if len(certs) == 0 {
		return Failf("configure a certificate on "+hostport, "%s presented no certificate", hostport)
	}
	now := o.Now()
	leaf := certs[0]
	inter := x509.NewCertPool()
	notAfter := leaf.NotAfter
	for _, c := range certs[1:] {
		inter.AddCert(c)
		if c.NotAfter.Before(notAfter) {
			notAfter = c.NotAfter
		}
	}
	renew := "renew the certificate of " + host + " (and automate renewal)"
	if now.After(notAfter) {
		return Failf(renew, "%s: certificate EXPIRED on %s", hostport, notAfter.UTC().Format(time.DateOnly))
	}
	_, verr := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: o.Roots, Intermediates: inter, CurrentTime: now})
	if verr != nil {
		var hn x509.HostnameError
		if errors.As(verr, &hn) {
			return Failf("issue a certificate that names "+host, "%s: the certificate does not name %s", hostport, host)
		}
		return Failf("serve the full chain from a CA the clients trust (on managed devices, deploy the private CA too)", "%s: certificate not trusted: %s", hostport, sanitize(verr.Error(), 200))
	}
	left := notAfter.Sub(now)
	days := int(left.Hours() / 24)
	if left < o.WarnWithin {
		return Warnf(renew, "%s: certificate expires in %d days (%s)", hostport, days, notAfter.UTC().Format(time.DateOnly))
	}
	return Okf("%s: certificate valid for %d more days (until %s)", hostport, days, notAfter.UTC().Format(time.DateOnly))
}
