package limits

import (
	"strconv"
	"sync"
	"time"
)

// windowKeys are one scope's backend keys for the windows containing one
// minute, with the windows' ends. Building them per request (a SHA-256 of
// the user key or group ID, then concatenations and date formatting) was a
// third of Admit; the engine keeps them for the minute instead.
type windowKeys struct {
	minute                      int64  // unix seconds of the minute's start
	base                        string // prefix:kind:hash(id):
	rpm, tpm, tpd, usd, conc    string
	minuteEnd, dayEnd, monthEnd time.Time
}

// scopeID names a scope in the key cache without building a string.
type scopeID struct {
	kind byte // 'u' user, 'g' group
	id   string
}

// keyCache holds the window keys of the scopes seen in the current and the
// previous minute: each new minute drops what the minute before last used
// and nobody used since, so it holds only active users and groups.
type keyCache struct {
	mu        sync.Mutex
	minute    int64
	cur, prev map[scopeID]*windowKeys
}

// windowKeys returns the keys of scope (kind, id) for the windows
// containing now.
func (e *Engine) windowKeys(kind byte, id string, now time.Time) *windowKeys {
	t := now.In(e.loc)
	minute := t.Truncate(time.Minute)
	m := minute.Unix()
	k := scopeID{kind, id}
	c := &e.keys
	c.mu.Lock()
	if m != c.minute {
		if m > c.minute {
			c.prev, c.cur = c.cur, make(map[scopeID]*windowKeys, len(c.cur))
		}
		c.minute = max(c.minute, m)
	}
	w := c.cur[k]
	if w == nil {
		if w = c.prev[k]; w != nil {
			c.cur[k] = w
		}
	}
	c.mu.Unlock()
	if w != nil && w.minute == m {
		return w
	}
	// Build outside the lock; a racing Admit may build the same keys.
	var base string
	if w != nil {
		base = w.base // same scope, an earlier minute: the hash still holds
	} else {
		base = e.prefix + ":" + string(kind) + ":" + HashKey(id) + ":"
	}
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, e.loc)
	month := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, e.loc)
	mins := strconv.FormatInt(m, 10)
	w = &windowKeys{
		minute:    m,
		base:      base,
		rpm:       base + "rpm:" + mins,
		tpm:       base + "tpm:" + mins,
		tpd:       base + "tpd:" + day.Format("20060102"),
		usd:       base + "usd:" + month.Format("200601"),
		conc:      base + "conc",
		minuteEnd: minute.Add(time.Minute), dayEnd: day.AddDate(0, 0, 1), monthEnd: month.AddDate(0, 1, 0),
	}
	c.mu.Lock()
	if c.minute == m {
		c.cur[k] = w
	}
	c.mu.Unlock()
	return w
}
