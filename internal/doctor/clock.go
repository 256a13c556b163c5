package doctor

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// ClockOptions configures ClockSkew.
type ClockOptions struct {
	// URLs are asked for their Date header, in order, until one answers
	// (the identity provider's discovery document, then the upstreams).
	URLs []string
	// Tolerance is the token clock skew the gateway tolerates
	// (identity.clock_skew). Zero: 60s. A skew beyond it fails; beyond
	// half of it warns.
	Tolerance time.Duration
	// Now is the local clock. Nil: time.Now.
	Now func() time.Time
	// Client sends the requests. Nil: NewHTTPClient(nil).
	Client *http.Client
}

// ClockSkew is "clock-skew": this machine's clock against the Date header
// of the identity provider (or an upstream). Tokens' exp and nbf are judged
// by the gateway's clock, so a skewed clock refuses fresh tokens or accepts
// expired ones. Run doctor on the gateway's host for the result to be about
// the gateway.
func ClockSkew(o ClockOptions) Check {
	o.Client = clientOr(o.Client)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Tolerance <= 0 {
		o.Tolerance = 60 * time.Second
	}
	return CheckFunc("clock-skew", func(ctx context.Context) Result {
		var tried []string
		for _, u := range o.URLs {
			if u == "" {
				continue
			}
			t0 := o.Now()
			resp, err := get(ctx, o.Client, u, nil)
			t1 := o.Now()
			if err != nil {
				tried = append(tried, u+": "+describeErr(err))
				continue
			}
			date, err := http.ParseTime(resp.header.Get("Date"))
			if err != nil {
				tried = append(tried, u+": no Date header")
				continue
			}
			skew, uncertainty := Skew(t0, t1, date)
			return judgeSkew(skew, uncertainty, o.Tolerance, u)
		}
		if len(tried) == 0 {
			return Skipf("no URL to compare the clock with")
		}
		return Skipf("no server gave a usable Date header (%s)", joinSemi(tried))
	})
}

// Skew estimates how far the local clock is behind (positive) or ahead
// (negative) of a server that stamped date while the local clock read
// between sent and received. Date has one-second resolution, so the
// uncertainty is half the round trip plus one second.
func Skew(sent, received, date time.Time) (skew, uncertainty time.Duration) {
	rtt := received.Sub(sent)
	mid := sent.Add(rtt / 2)
	// Date is truncated to the second: the server's true time was in
	// [date, date+1s); use the middle.
	skew = date.Add(500 * time.Millisecond).Sub(mid)
	return skew, rtt/2 + 500*time.Millisecond
}

func judgeSkew(skew, uncertainty, tolerance time.Duration, source string) Result {
	abs := skew
	if abs < 0 {
		abs = -abs
	}
	sure := abs - uncertainty // the least the skew can be
	dir := "behind"
	if skew < 0 {
		dir = "ahead of"
	}
	desc := fmt.Sprintf("this clock is about %s %s %s", abs.Round(100*time.Millisecond), dir, source)
	if sure <= 0 {
		desc = fmt.Sprintf("this clock agrees with %s within ±%s", source, uncertainty.Round(100*time.Millisecond))
	}
	fix := "synchronise the clock with NTP (chrony, systemd-timesyncd, w32time); containers take the host's clock"
	switch {
	case sure > tolerance:
		return Failf(fix, "%s, beyond the %s tolerated on token times: fresh tokens may be refused and expired ones accepted", desc, tolerance)
	case sure > tolerance/2:
		return Warnf(fix, "%s, more than half the %s tolerated on token times", desc, tolerance)
	}
	return Okf("%s (tolerance %s)", desc, tolerance)
}

func joinSemi(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += "; "
		}
		out += v
	}
	return out
}
