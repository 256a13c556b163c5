package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// CertReloader serves a certificate and key from files and picks up new
// files (renewals, rotated Kubernetes secrets) without a restart: at most
// every CheckInterval it compares the files' modification times and sizes
// and reloads when they changed. A bad new pair is logged and the last good
// certificate keeps serving.
type CertReloader struct {
	certFile, keyFile string
	interval          time.Duration
	log               *slog.Logger
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string
	checkedAt time.Time
}

// NewCertReloader loads the pair once; it fails if the files are unusable.
func NewCertReloader(certFile, keyFile string, log *slog.Logger) (*CertReloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &CertReloader{certFile: certFile, keyFile: keyFile, interval: 2 * time.Second, log: log, now: time.Now}
	stamp, err := r.fileStamp()
	if err != nil {
		return nil, err
	}
	if err := r.load(stamp); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *CertReloader) fileStamp() (string, error) {
	var s string
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("tls: %w", err)
		}
		s += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return s, nil
}

func (r *CertReloader) load(stamp string) error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls: loading %s and %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.stamp = &c, stamp
	return nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checkedAt) >= r.interval {
		r.checkedAt = now
		if stamp, err := r.fileStamp(); err == nil && stamp != r.stamp {
			if err := r.load(stamp); err != nil {
				r.log.Error("tls: new certificate files are unusable; still serving the previous certificate", slog.String("cause", err.Error()))
				r.stamp = stamp // do not retry the same broken pair on every handshake
			} else {
				r.log.Info("tls: certificate reloaded", slog.String("cert_file", r.certFile))
			}
		}
	}
	return r.cert, nil
}

// TLSConfig returns the server TLS configuration: TLS 1.2 minimum, HTTP/2
// and HTTP/1.1 offered, certificates from r.
func (r *CertReloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}
