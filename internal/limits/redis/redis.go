// Package redis is the limits.Backend shared by several gateway replicas:
// every Reserve and Settle is one Lua script, which Redis runs atomically,
// so replicas cannot interleave a check with an increment.
//
// Windowed counters are plain integer keys with a TTL; concurrent-request
// slots are sorted sets of reservation IDs scored by their expiry, so a
// slot held by a crashed gateway frees itself. All keys of one call must
// live on one node: use a standalone or Sentinel-managed Redis (not
// Cluster).
package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/gatehouse-dev/gatehouse/internal/limits"
)

var _ limits.Backend = (*Backend)(nil)

// reserveScript: KEYS = counter keys; ARGV = now_ms, id, then per key
// kind ("c" counter | "l" lease), amount, limit (-1: none), soft (0|1),
// ttl_ms. Returns {ok, value_1, ..., value_n}: values before the change
// when refused, after it when applied.
var reserveScript = goredis.NewScript(`
local now = tonumber(ARGV[1])
local id = ARGV[2]
local n = #KEYS
local vals = {}
local ok = 1
for i = 1, n do
  local b = 2 + (i - 1) * 5
  local kind, amt, lim, soft = ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), ARGV[b + 4]
  local cur
  if kind == 'l' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    cur = redis.call('ZCARD', KEYS[i])
  else
    cur = tonumber(redis.call('GET', KEYS[i]) or '0')
  end
  vals[i] = cur
  if soft == '0' and lim >= 0 and cur + amt > lim then ok = 0 end
end
if ok == 1 then
  for i = 1, n do
    local b = 2 + (i - 1) * 5
    local kind, ttl = ARGV[b + 1], tonumber(ARGV[b + 5])
    if kind == 'l' and tonumber(ARGV[b + 2]) <= 0 then
      -- peek: count without taking a slot
    elseif kind == 'l' then
      redis.call('ZADD', KEYS[i], now + ttl, id)
      if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
      vals[i] = redis.call('ZCARD', KEYS[i])
    else
      vals[i] = redis.call('INCRBY', KEYS[i], ARGV[b + 2])
      if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
    end
  end
end
local out = {ok}
for i = 1, n do out[i + 1] = vals[i] end
return out
`)

// settleScript: KEYS = keys; ARGV = id, then per key kind, amount, ttl_ms.
var settleScript = goredis.NewScript(`
local id = ARGV[1]
for i = 1, #KEYS do
  local b = 1 + (i - 1) * 3
  local kind, amt, ttl = ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  if kind == 'l' then
    redis.call('ZREM', KEYS[i], id)
  elseif amt ~= 0 then
    redis.call('INCRBY', KEYS[i], ARGV[b + 2])
    if redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end
return 1
`)

// Options configures New.
type Options struct {
	// Client is the Redis client; required. The caller owns it (and closes
	// it). Its dial/read/write timeouts bound every call.
	Client goredis.UniversalClient
	// Cooldown: after a failed call, calls fail at once for this long
	// instead of each waiting for a timeout (a Redis outage must not add
	// the dial timeout to every request). Zero: 1s. Negative: never.
	Cooldown time.Duration
	// Now is the clock for the cooldown; nil: time.Now.
	Now func() time.Time
}

// Backend is safe for concurrent use.
type Backend struct {
	c         goredis.UniversalClient
	cooldown  time.Duration
	now       func() time.Time
	downUntil atomic.Int64 // unix nanoseconds
}

// ErrCoolingDown is returned while the backend skips Redis after a failure.
var ErrCoolingDown = errors.New("limits/redis: Redis failed recently; not retrying yet")

// New returns a backend using opts.Client.
func New(opts Options) (*Backend, error) {
	if opts.Client == nil {
		return nil, errors.New("limits/redis: no client")
	}
	b := &Backend{c: opts.Client, cooldown: opts.Cooldown, now: opts.Now}
	if b.cooldown == 0 {
		b.cooldown = time.Second
	}
	if b.now == nil {
		b.now = time.Now
	}
	return b, nil
}

func (b *Backend) coolingDown() bool {
	return b.cooldown > 0 && b.now().UnixNano() < b.downUntil.Load()
}

// failed starts a cooldown after a connection-level failure (not after a
// script error, which would repeat regardless).
func (b *Backend) failed(err error) {
	var rerr goredis.Error
	if b.cooldown > 0 && !errors.As(err, &rerr) {
		b.downUntil.Store(b.now().Add(b.cooldown).UnixNano())
	}
}

// NewClient builds a client from a redis:// or rediss:// URL, an optional
// password (overrides the URL's) and a per-call timeout.
func NewClient(url, password string, timeout time.Duration) (*goredis.Client, error) {
	o, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("limits/redis: %w", err)
	}
	if password != "" {
		o.Password = password
	}
	if timeout > 0 {
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = timeout, timeout, timeout
	}
	o.MaxRetries = -1   // never retry: a retried script could apply twice
	o.DialerRetries = 1 // a down Redis fails within one dial timeout
	return goredis.NewClient(o), nil
}

// Ping checks the connection and loads the scripts (for doctor/readiness).
func (b *Backend) Ping(ctx context.Context) error {
	if err := b.c.Ping(ctx).Err(); err != nil {
		return err
	}
	if err := reserveScript.Load(ctx, b.c).Err(); err != nil {
		return err
	}
	return settleScript.Load(ctx, b.c).Err()
}

func ms(d time.Duration) int64 {
	m := d.Milliseconds()
	if m <= 0 && d > 0 {
		m = 1
	}
	return m
}

func kind(k limits.Kind) string {
	if k == limits.Lease {
		return "l"
	}
	return "c"
}

// Reserve implements limits.Backend.
func (b *Backend) Reserve(ctx context.Context, id string, now time.Time, ops []limits.Op) (limits.Result, error) {
	keys := make([]string, len(ops))
	args := make([]any, 0, 2+5*len(ops))
	args = append(args, now.UnixMilli(), id)
	for i, op := range ops {
		keys[i] = op.Key
		soft := "0"
		if op.Soft {
			soft = "1"
		}
		args = append(args, kind(op.Kind), op.Amount, op.Limit, soft, ms(op.TTL))
	}
	if b.coolingDown() {
		return limits.Result{}, ErrCoolingDown
	}
	raw, err := reserveScript.Run(ctx, b.c, keys, args...).Int64Slice()
	if err != nil {
		b.failed(err)
		return limits.Result{}, fmt.Errorf("limits/redis: reserve: %w", err)
	}
	if len(raw) != len(ops)+1 {
		return limits.Result{}, fmt.Errorf("limits/redis: reserve returned %d values for %d ops", len(raw), len(ops))
	}
	return limits.Result{OK: raw[0] == 1, Values: raw[1:]}, nil
}

// Settle implements limits.Backend.
func (b *Backend) Settle(ctx context.Context, id string, now time.Time, ops []limits.Op) error {
	keys := make([]string, 0, len(ops))
	args := make([]any, 0, 1+3*len(ops))
	args = append(args, id)
	for _, op := range ops {
		if op.TTL <= 0 {
			continue
		}
		keys = append(keys, op.Key)
		args = append(args, kind(op.Kind), strconv.FormatInt(op.Amount, 10), ms(op.TTL))
	}
	if len(keys) == 0 {
		return nil
	}
	if b.coolingDown() {
		return ErrCoolingDown
	}
	if err := settleScript.Run(ctx, b.c, keys, args...).Err(); err != nil {
		b.failed(err)
		return fmt.Errorf("limits/redis: settle: %w", err)
	}
	return nil
}
