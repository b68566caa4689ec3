// Package ratelimit counts requests in fixed time windows. It has the
// arithmetic of one window counter, shared by counters kept on a stored item
// (shared/store) and counters kept in memory, and Limiter, the in-memory
// kind for one process. It knows nothing of AWS or HTTP.
package ratelimit

import (
	"math"
	"time"
)

// Window is a fixed-window limit: at most Max requests in each Span-long
// window. Windows are aligned to the Unix epoch, so every process agrees on
// where a window starts without talking to the others.
type Window struct {
	Span time.Duration // a whole number of milliseconds, e.g. 10 s
	Max  int
}

// Index is the number of the window that holds t.
func (w Window) Index(t time.Time) int64 {
	return floorDiv(t.UnixMilli(), w.Span.Milliseconds())
}

// End is when window i ends, and the next one starts.
func (w Window) End(i int64) time.Time {
	return time.UnixMilli((i + 1) * w.Span.Milliseconds())
}

// Scaled multiplies Max by f, rounding to the nearest whole request but
// never below one: a positive scale must not turn an operation off.
func (w Window) Scaled(f float64) Window {
	w.Max = max(1, int(math.Round(float64(w.Max)*f)))
	return w
}

// Counter is one window's count, as kept in memory or on an item.
type Counter struct {
	Index int64 // the window counted
	Count int64 // requests admitted in it
}

// Admit decides about one request at now, given what c has counted. When
// there is room it returns the counter after the request; otherwise ok is
// false and wait is how long until the full window ends. A counter ahead of
// now (written by a process whose clock runs ahead) is counted in as it is:
// windows never move backwards.
func (w Window) Admit(c Counter, now time.Time) (next Counter, wait time.Duration, ok bool) {
	i := w.Index(now)
	if c.Index < i {
		return Counter{Index: i, Count: 1}, 0, true
	}
	if c.Count >= int64(w.Max) {
		return c, w.End(c.Index).Sub(now), false
	}
	return Counter{Index: c.Index, Count: c.Count + 1}, 0, true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
