package ratelimit

import (
	"sync"
	"time"
)

// Check is one limit a request must fit: what is counted (Key, e.g. a user
// in a thread, named with the budget it counts against) and the windows
// that apply to it. A key is always checked with the same windows.
type Check struct {
	Key     string
	Windows []Window
}

// DefaultMaxKeys bounds a Limiter's memory: a few hundred bytes a key, so
// some 15 MB at most. One Lambda instance serves one request at a time and a
// key is forgotten a minute after its last request, so it rarely holds more
// than a few thousand.
const DefaultMaxKeys = 50_000

// sweepEvery is how often idle keys are dropped even when there is room.
const sweepEvery = time.Minute

// Limiter counts requests per key in fixed windows, in this process's
// memory only: two processes each admit up to the limit. It is safe for
// concurrent use, and its memory is bounded: a key whose windows have all
// ended is dropped (it would start from zero anyway), and when maxKeys keys
// are live some are forgotten, which can only admit more, never refuse more.
type Limiter struct {
	mu        sync.Mutex
	maxKeys   int
	entries   map[string]*entry
	nextSweep time.Time
}

type entry struct {
	counters []Counter // one per window of the key's Check
	idle     time.Time // when the last of those windows ends
}

// NewLimiter returns a limiter holding at most maxKeys keys
// (DefaultMaxKeys when maxKeys ≤ 0).
func NewLimiter(maxKeys int) *Limiter {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Limiter{maxKeys: maxKeys, entries: map[string]*entry{}}
}

// Allow admits one request at now if every window of every check has room,
// and only then counts it in all of them: a refused request uses up
// nothing. Refused, it returns how long until the request would fit (the
// latest end among the full windows).
func (l *Limiter) Allow(now time.Time, checks ...Check) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !now.Before(l.nextSweep) {
		l.dropIdle(now)
	}
	next := make([][]Counter, len(checks))
	refused := false
	for i, c := range checks {
		var have []Counter
		if e := l.entries[c.Key]; e != nil && len(e.counters) == len(c.Windows) {
			have = e.counters
		}
		next[i] = make([]Counter, len(c.Windows))
		for j, w := range c.Windows {
			var cur Counter
			if have != nil {
				cur = have[j]
			}
			n, wt, fits := w.Admit(cur, now)
			if !fits {
				refused = true
				wait = max(wait, wt)
			}
			next[i][j] = n
		}
	}
	if refused {
		return wait, false
	}
	for i, c := range checks {
		e := l.entries[c.Key]
		if e == nil {
			if len(l.entries) >= l.maxKeys {
				l.makeRoom(now)
			}
			e = &entry{}
			l.entries[c.Key] = e
		}
		e.counters = next[i]
		e.idle = time.Time{}
		for j, w := range c.Windows {
			if end := w.End(next[i][j].Index); end.After(e.idle) {
				e.idle = end
			}
		}
	}
	return 0, true
}

// dropIdle forgets keys whose windows have all ended.
func (l *Limiter) dropIdle(now time.Time) {
	for k, e := range l.entries {
		if !now.Before(e.idle) {
			delete(l.entries, k)
		}
	}
	l.nextSweep = now.Add(sweepEvery)
}

// makeRoom drops idle keys and, if that is not enough, arbitrary live ones
// down to 7/8 of the bound, so a full limiter does not sweep on every call.
func (l *Limiter) makeRoom(now time.Time) {
	l.dropIdle(now)
	target := l.maxKeys - max(1, l.maxKeys/8)
	for k := range l.entries {
		if len(l.entries) <= target {
			break
		}
		delete(l.entries, k)
	}
}

// Len is how many keys the limiter holds.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}
