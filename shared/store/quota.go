package store

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/ratelimit"
)

// Per-thread rate limits (chat.Quota) are counted on the thread's META item
// inside the write that changes the thread anyway (the sequence id or the
// properties), so they are exact across every function instance and cost no
// extra request. Each window of a quota is two attributes: rl<quota><span
// in s>w, the window counted, and …n, its count; e.g. rlm10w/rlm10n.
//
// An update expression cannot branch, so each window's counter is updated
// one of two ways, and the condition checks the guess was right:
//   - same window: ADD n 1, if w = :w AND n < :max;
//   - new window:  SET w = :w, n = 1, if w is missing or older than :w.
//
// The guess comes from the last window this process saw on the thread (a
// miss guesses "new window", right for a quiet thread). When the condition
// fails, ALL_OLD says why: the thread is gone, a window is full (refuse,
// nothing written), or the guess was wrong (retry with the truth).

// countingAttempts bounds the retries after wrong guesses. Each window can
// be guessed wrong once and then move on once more under a concurrent
// writer, so two windows need at most four attempts.
const countingAttempts = 4

func counterAttrs(q chat.Quota, w ratelimit.Window) (window, count string) {
	base := "rl" + q.Name + strconv.FormatInt(int64(w.Span/time.Second), 10)
	return base + "w", base + "n"
}

// counting is how one write counts a request against a quota: per window,
// the window it counts in and whether it starts that window.
type counting struct {
	q     chat.Quota
	at    time.Time
	index []int64
	fresh []bool
}

// guess plans the counting from what this process last saw of the thread.
func (s *Store) guess(threadID string, q chat.Quota, at time.Time) counting {
	c := counting{q: q, at: at, index: make([]int64, len(q.Windows)), fresh: make([]bool, len(q.Windows))}
	seen := s.counters.get(threadID)
	for i, w := range q.Windows {
		attr, _ := counterAttrs(q, w)
		c.index[i], c.fresh[i] = w.Index(at), true
		if last, ok := seen[attr]; ok && last >= c.index[i] {
			c.index[i], c.fresh[i] = last, false // a window ahead of our clock is counted in, as ratelimit.Admit does
		}
	}
	return c
}

// apply adds the counters' updates and conditions to a write.
func (c counting) apply(upd expression.UpdateBuilder, cond expression.ConditionBuilder) (expression.UpdateBuilder, expression.ConditionBuilder) {
	for i, w := range c.q.Windows {
		wa, na := counterAttrs(c.q, w)
		win, n := expression.Name(wa), expression.Name(na)
		if c.fresh[i] {
			upd = upd.Set(win, expression.Value(c.index[i])).Set(n, expression.Value(1))
			cond = cond.And(expression.Or(expression.AttributeNotExists(win), win.LessThan(expression.Value(c.index[i]))))
		} else {
			upd = upd.Add(n, expression.Value(1))
			cond = cond.And(win.Equal(expression.Value(c.index[i])), n.LessThan(expression.Value(w.Max)))
		}
	}
	return upd, cond
}

// correct replans from the thread as it was when the condition failed. It
// returns the refusal when a window has no room.
func (c *counting) correct(old map[string]types.AttributeValue) *chat.QuotaExceeded {
	var refused *chat.QuotaExceeded
	for i, w := range c.q.Windows {
		wa, na := counterAttrs(c.q, w)
		have := ratelimit.Counter{Index: intAttr(old, wa), Count: intAttr(old, na)}
		if _, wait, ok := w.Admit(have, c.at); !ok && (refused == nil || wait > refused.Wait) {
			refused = &chat.QuotaExceeded{Wait: wait}
		}
		c.index[i], c.fresh[i] = w.Index(c.at), true
		if have.Index >= c.index[i] {
			c.index[i], c.fresh[i] = have.Index, false
		}
	}
	return refused
}

// counted is what the thread's counters are after a successful write.
func (c counting) counted() map[string]int64 {
	out := make(map[string]int64, len(c.q.Windows))
	for i, w := range c.q.Windows {
		wa, _ := counterAttrs(c.q, w)
		out[wa] = c.index[i]
	}
	return out
}

func intAttr(item map[string]types.AttributeValue, name string) int64 {
	if v, ok := item[name].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

// counterCacheSize bounds the threads whose windows a process remembers;
// forgetting one costs at most one wrong guess.
const counterCacheSize = 10_000

// counterCache remembers, per thread, the window each counter last counted.
type counterCache struct {
	mu      sync.Mutex
	threads map[string]map[string]int64 // thread id -> window attribute -> window index
}

func (c *counterCache) get(threadID string) map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.threads[threadID] // never changed in place: set replaces it
}

// set merges windows into what is remembered of the thread.
func (c *counterCache) set(threadID string, windows map[string]int64) {
	if len(windows) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.threads == nil {
		c.threads = map[string]map[string]int64{}
	}
	old, known := c.threads[threadID]
	if !known && len(c.threads) >= counterCacheSize {
		for k := range c.threads { // arbitrary threads: a forgotten one only costs a guess
			delete(c.threads, k)
			if len(c.threads) < counterCacheSize*7/8 {
				break
			}
		}
	}
	merged := make(map[string]int64, len(old)+len(windows))
	for k, v := range old {
		merged[k] = v
	}
	for k, v := range windows {
		merged[k] = max(merged[k], v)
	}
	c.threads[threadID] = merged
}

// note remembers the windows on a thread item the store has read.
func (c *counterCache) note(threadID string, item map[string]types.AttributeValue) {
	var windows map[string]int64
	for k := range item {
		if strings.HasPrefix(k, "rl") && strings.HasSuffix(k, "w") {
			if windows == nil {
				windows = map[string]int64{}
			}
			windows[k] = intAttr(item, k)
		}
	}
	c.set(threadID, windows)
}
