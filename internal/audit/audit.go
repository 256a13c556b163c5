// Package audit is the gateway's evidence trail: one Record per request,
// allowed or denied, written durably before the request is forwarded and
// completed when the response ends.
//
// The package owns the Record type, the Store interface its backends
// implement (audit/sqlite, audit/postgres), and the Recorder that batches
// writes into group commits so the store never becomes the bottleneck.
package audit

import (
	"context"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
)

// State is where a record is in its life.
type State string

const (
	StateBegun       State = "begun"       // written before forwarding; response not finished yet
	StateCompleted   State = "completed"   // response finished normally
	StateInterrupted State = "interrupted" // client or upstream stopped mid-response; usage is what was seen
	StateDenied      State = "denied"      // refused by the gateway; never forwarded
	StateUnfinished  State = "unfinished"  // found begun after a crash and closed by recovery
)

// Record is one request. Field names in JSON are the documented audit schema
// (docs/audit.md); keep them stable.
type Record struct {
	Seq       int64     `json:"seq,omitempty"` // store-assigned order
	RequestID string    `json:"request_id"`
	Time      time.Time `json:"time"` // when the request arrived (UTC)
	State     State     `json:"state"`

	Method string `json:"method"`
	Path   string `json:"path"`

	// Who.
	UserKey  string `json:"user_key,omitempty"`  // "<tid>/<oid>" or "<iss>|<sub>"
	TenantID string `json:"tenant_id,omitempty"` // tid
	ObjectID string `json:"object_id,omitempty"` // oid
	Subject  string `json:"subject,omitempty"`   // sub
	Issuer   string `json:"issuer,omitempty"`
	UserName string `json:"user_name,omitempty"` // display only: preferred_username/upn/email/name

	// Client.
	UserAgent string `json:"user_agent,omitempty"`
	SessionID string `json:"session_id,omitempty"` // x-claude-code-session-id
	ClientIP  string `json:"client_ip,omitempty"`

	// What.
	Model         string `json:"model,omitempty"`          // as asked by the client
	UpstreamModel string `json:"upstream_model,omitempty"` // as sent upstream (e.g. Foundry deployment)
	Upstream      string `json:"upstream,omitempty"`       // upstream name that served
	Stream        bool   `json:"stream,omitempty"`

	// Outcome.
	Status            int     `json:"status"`
	ErrorType         string  `json:"error_type,omitempty"` // Anthropic error type returned to the client
	Reason            string  `json:"reason,omitempty"`     // gateway reason code, e.g. "token_expired"
	LatencyMS         float64 `json:"latency_ms"`           // arrival to last byte
	TTFBMS            float64 `json:"ttfb_ms,omitempty"`    // arrival to first response byte
	UpstreamRequestID string  `json:"upstream_request_id,omitempty"`

	Usage   anthropic.Usage `json:"usage"`
	CostUSD float64         `json:"cost_usd,omitempty"`

	// Governance and routing.
	Policy          string   `json:"policy,omitempty"`           // the policy that admitted (or refused) the request
	Groups          []string `json:"groups,omitempty"`           // the user's group IDs the policy matched on (for reports by group)
	FailedUpstreams []string `json:"failed_upstreams,omitempty"` // upstreams tried before the one that served: "name: reason"

	// Instance names the gateway process that wrote the record (host name
	// or replica id); recovery after a crash closes only its own records.
	Instance string `json:"instance,omitempty"`
}

// Filter selects records for List.
type Filter struct {
	UserKey    string    // matches user_key, object_id or user_name exactly
	Since      time.Time // inclusive; zero = no bound
	Until      time.Time // exclusive; zero = no bound
	Model      string
	Status     int
	DeniedOnly bool
	Limit      int    // 0 = no limit
	RequestID  string // exact request id; empty = any
	State      State  // exact state; empty = any
}

// Store is a durable audit backend. Implementations: audit/sqlite,
// audit/postgres. Every method must be safe for concurrent use.
type Store interface {
	// Begin durably inserts new records (state begun or denied) in one
	// transaction and assigns Seq. It returns only once they are committed
	// at the configured durability level.
	Begin(ctx context.Context, recs []*Record) error
	// Finish durably updates records previously begun (same RequestID) with
	// their final state, status, usage, cost and timings, in one transaction.
	Finish(ctx context.Context, recs []*Record) error
	// List returns records matching f in Seq order.
	List(ctx context.Context, f Filter) ([]Record, error)
	// Close releases resources.
	Close() error
}

// LocalStore is implemented by stores whose writes wait on nothing a
// context could cancel (the journal: a write(2) under a mutex). The
// Recorder gives their writes no deadline of their own, which saves a
// timer per write.
type LocalStore interface {
	Store
	LocalWrites()
}

// Recoverer is implemented by stores that can close records left begun by a
// crashed gateway. The gateway calls Recover once at start-up, before it
// serves traffic; `gatehouse audit list` never does.
type Recoverer interface {
	// Recover marks every record still in state begun and written by
	// instance (every instance when empty) as StateUnfinished and returns
	// how many it changed.
	Recover(ctx context.Context, instance string) (int, error)
}

// Clock returns the current time; tests inject their own.
type Clock func() time.Time
