package upstream

import (
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"
)

// Route sends a model to one upstream under the upstream's model name (the
// Foundry deployment name).
type Route struct {
	Upstream      string
	UpstreamModel string
	// Weight > 0 on every route of a model makes its routes weighted;
	// 0 on every route keeps them ordered (first healthy one serves).
	Weight int
}

// Candidate is one way to serve a request.
type Candidate struct {
	Target        *Target
	UpstreamModel string
}

// RouterOptions configures NewRouter.
type RouterOptions struct {
	// Targets are the upstreams; names must be unique. Each target may
	// belong to one router only.
	Targets []*Target
	// Models maps a client-facing model id to its routes.
	Models map[string][]Route
	// Breaker tunes every target's circuit breaker.
	Breaker BreakerOptions
	// MaxRetryAfter caps how long an upstream's retry-after keeps it out
	// of rotation. Zero: 5m.
	MaxRetryAfter time.Duration
	// MaxErrorBody caps how much of a failed attempt's body is kept to be
	// relayed if no other route serves. Zero: 1 MiB.
	MaxErrorBody int64
	// Logger receives breaker transitions and failovers. Nil: discard.
	Logger *slog.Logger
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// OnStateChange, if set, observes breaker transitions (metrics).
	OnStateChange func(target string, from, to State)
}

// Router orders candidates and sends requests with failover.
type Router struct {
	o       RouterOptions
	targets map[string]*Target
	order   []*Target
	models  map[string]modelRoutes
}

type modelRoutes struct {
	weighted bool
	routes   []resolvedRoute
}

type resolvedRoute struct {
	target *Target
	model  string
	weight float64
}

// NewRouter validates the routes against the targets.
func NewRouter(o RouterOptions) (*Router, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = 5 * time.Minute
	}
	if o.MaxErrorBody <= 0 {
		o.MaxErrorBody = 1 << 20
	}
	o.Breaker.normalize()
	rt := &Router{o: o, targets: map[string]*Target{}, models: map[string]modelRoutes{}}
	var errs []error
	for _, t := range o.Targets {
		switch {
		case t == nil:
			errs = append(errs, errors.New("nil target"))
			continue
		case rt.targets[t.name] != nil:
			errs = append(errs, fmt.Errorf("upstream %q is listed twice", t.name))
			continue
		case t.health != nil:
			errs = append(errs, fmt.Errorf("upstream %q already belongs to a router", t.name))
			continue
		}
		rt.targets[t.name] = t
		rt.order = append(rt.order, t)
	}
	for model, routes := range o.Models {
		if len(routes) == 0 {
			errs = append(errs, fmt.Errorf("model %q has no routes", model))
			continue
		}
		mr := modelRoutes{weighted: routes[0].Weight > 0}
		seen := map[string]bool{}
		for i, r := range routes {
			t := rt.targets[r.Upstream]
			switch {
			case t == nil:
				errs = append(errs, fmt.Errorf("model %q route %d: unknown upstream %q", model, i, r.Upstream))
			case seen[r.Upstream]:
				errs = append(errs, fmt.Errorf("model %q route %d: upstream %q is used twice", model, i, r.Upstream))
			case r.Weight < 0 || (r.Weight > 0) != mr.weighted:
				errs = append(errs, fmt.Errorf("model %q route %d: give every route a positive weight, or none", model, i))
			case r.UpstreamModel == "":
				errs = append(errs, fmt.Errorf("model %q route %d: upstream model is empty", model, i))
			}
			seen[r.Upstream] = true
			mr.routes = append(mr.routes, resolvedRoute{target: t, model: r.UpstreamModel, weight: float64(r.Weight)})
		}
		rt.models[model] = mr
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, t := range rt.order {
		name := t.name
		t.health = newBreaker(o.Breaker, func(from, to State) {
			o.Logger.Warn("upstream circuit breaker", slog.String("upstream", name),
				slog.String("from", from.String()), slog.String("to", to.String()))
			if o.OnStateChange != nil {
				o.OnStateChange(name, from, to)
			}
		})
	}
	return rt, nil
}

// Targets returns the router's targets in configuration order.
func (rt *Router) Targets() []*Target { return slices.Clone(rt.order) }

// Target returns the named target, or nil.
func (rt *Router) Target(name string) *Target { return rt.targets[name] }

// Candidates returns the routes for model in the order to try them, and
// false if the model has no routes. Ordered routes keep their configured
// order. Weighted routes are ordered by weighted rendezvous hashing of
// affinityKey (the Claude Code session id, else the user): the same key
// always yields the same order, so a session stays on one upstream and its
// prompt cache keeps hitting, and across keys the first choice follows the
// weights. An empty key draws a fresh weighted order. Targets that are
// currently unavailable (open circuit, retry-after) stay in the list; Send
// skips them at attempt time.
func (rt *Router) Candidates(model, affinityKey string) ([]Candidate, bool) {
	mr, ok := rt.models[model]
	if !ok {
		return nil, false
	}
	out := make([]Candidate, len(mr.routes))
	if !mr.weighted {
		for i, r := range mr.routes {
			out[i] = Candidate{Target: r.target, UpstreamModel: r.model}
		}
		return out, true
	}
	type scored struct {
		c     Candidate
		score float64
	}
	s := make([]scored, len(mr.routes))
	for i, r := range mr.routes {
		var u float64
		if affinityKey == "" {
			u = rand.Float64()
		} else {
			u = unitHash(affinityKey, r.target.name)
		}
		if u <= 0 {
			u = math.SmallestNonzeroFloat64
		}
		// Weighted rendezvous: the maximum of -w/ln(u) is route i with
		// probability w_i / Σw.
		s[i] = scored{Candidate{Target: r.target, UpstreamModel: r.model}, -r.weight / math.Log(u)}
	}
	sort.SliceStable(s, func(i, j int) bool { return s[i].score > s[j].score })
	for i := range s {
		out[i] = s[i].c
	}
	return out, true
}

// unitHash maps (key, name) to (0,1), stable across processes and
// versions (FNV-1a 64 with a splitmix64 finaliser), so every gateway
// replica routes a session the same way.
func unitHash(key, name string) float64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(name))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return (float64(x>>11) + 0.5) / (1 << 53)
}
