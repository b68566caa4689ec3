package chat

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/threadline/threadline/shared/fault"
	"github.com/threadline/threadline/shared/ratelimit"
)

// Rate limits, as ACS documents them (reference/acs-chat.md §3.2), are
// counted two ways:
//   - writes that already update the thread item (send message, update
//     thread, add or remove participants) carry a Quota that the store counts
//     on the thread item in that same write: exact across every function
//     instance, at no extra DynamoDB request;
//   - everything else is counted by a Limiter in the function instance's
//     memory: approximate (each instance admits up to the limit) but free,
//     where an exact count would cost a DynamoDB write per request.
//
// A refused request writes nothing and answers 429 with Retry-After.

// Limiter counts requests in memory (ratelimit.Limiter).
type Limiter interface {
	// Allow admits a request at now if every check has room, counting it in
	// all of them, or refuses it and says how long until it would fit.
	Allow(now time.Time, checks ...ratelimit.Check) (wait time.Duration, ok bool)
}

// RateLimits says how strictly the service limits request rates.
type RateLimits struct {
	Scale   float64 // multiplies every limit: 1 is ACS's, 10 ten times ACS's; 0 turns limits off
	Limiter Limiter // counts the limits no store write counts; nil turns those off
}

func (r RateLimits) on() bool { return r.Scale > 0 }

// Quota is a per-thread limit a store counts on the thread itself, in the
// write that changes the thread: when a window is full the write is refused
// whole with *QuotaExceeded. The zero Quota counts nothing.
type Quota struct {
	Name    string // short and stable: the store names the thread's counters after it
	Windows []ratelimit.Window
}

// QuotaExceeded is a store's refusal of a write whose Quota is used up.
type QuotaExceeded struct {
	Wait time.Duration // until the full window ends
}

func (e *QuotaExceeded) Error() string {
	return fmt.Sprintf("chat: rate limit reached; retry in %v", e.Wait)
}

type rateScope int

const (
	perUser rateScope = iota
	perThread
	perUserInThread
)

// rateLimit is one row of ACS's table.
type rateLimit struct {
	budget  string // rows with the same budget and scope count together; short, a Quota names counters after it
	what    string // the operations, for the refusal's message
	scope   rateScope
	windows []ratelimit.Window
}

func per10s(n int) ratelimit.Window    { return ratelimit.Window{Span: 10 * time.Second, Max: n} }
func perMinute(n int) ratelimit.Window { return ratelimit.Window{Span: time.Minute, Max: n} }

// ACS's limits. "get thread / list threads" is one budget, as is "send /
// update / delete message"; ACS does not say whether each page of a list
// counts, so every request does.
var (
	rateCreateThread = rateLimit{"ct", "create thread", perUser, []ratelimit.Window{per10s(10)}}
	rateDeleteThread = rateLimit{"dt", "delete thread", perUser, []ratelimit.Window{per10s(10)}}
	rateReadThreads  = rateLimit{"rt", "get thread and list threads", perUser, []ratelimit.Window{per10s(50)}}
	rateUpdateThread = rateLimit{"t", "update thread", perThread, []ratelimit.Window{per10s(5)}}
	rateParticipants = rateLimit{"p", "add and remove participants", perThread, []ratelimit.Window{per10s(10), perMinute(30)}}
	rateMessages     = rateLimit{"m", "send, update and delete message", perThread, []ratelimit.Window{per10s(10), perMinute(30)}}

	rateGetMessage = []rateLimit{
		{"gm", "get message", perUserInThread, []ratelimit.Window{per10s(50)}},
		{"gm", "get message", perThread, []ratelimit.Window{per10s(250)}},
	}
	rateListMessages = []rateLimit{
		{"lm", "list messages", perUserInThread, []ratelimit.Window{per10s(50), perMinute(200)}},
		{"lm", "list messages", perThread, []ratelimit.Window{per10s(250), perMinute(400)}},
	}
	rateListReceipts = []rateLimit{
		{"lr", "list read receipts", perUserInThread, []ratelimit.Window{per10s(5)}},
		{"lr", "list read receipts", perThread, []ratelimit.Window{per10s(100)}},
	}
	rateListParticipants = []rateLimit{
		{"lp", "list participants", perUserInThread, []ratelimit.Window{per10s(10)}},
		{"lp", "list participants", perThread, []ratelimit.Window{per10s(250)}},
	}
	rateSendReceipt = []rateLimit{
		{"sr", "send read receipt", perUserInThread, []ratelimit.Window{per10s(10), perMinute(30)}},
	}
	rateTyping = []rateLimit{
		{"ty", "send typing notification", perUserInThread, []ratelimit.Window{per10s(5), perMinute(15)}},
		{"ty", "send typing notification", perThread, []ratelimit.Window{per10s(10), perMinute(30)}},
	}
)

func (l rateLimit) key(userID, threadID string) string {
	switch l.scope {
	case perUser:
		return l.budget + "|u|" + userID
	case perThread:
		return l.budget + "|t|" + threadID
	default:
		return l.budget + "|ut|" + userID + "|" + threadID
	}
}

func (r RateLimits) scaled(ws []ratelimit.Window) []ratelimit.Window {
	out := make([]ratelimit.Window, len(ws))
	for i, w := range ws {
		out[i] = w.Scaled(r.Scale)
	}
	return out
}

// throttle counts a request against limits kept in memory.
func (s *Service) throttle(caller Caller, threadID string, limits ...rateLimit) error {
	r := s.Rates
	if !r.on() || r.Limiter == nil {
		return nil
	}
	checks := make([]ratelimit.Check, len(limits))
	for i, l := range limits {
		checks[i] = ratelimit.Check{Key: l.key(caller.UserID, threadID), Windows: r.scaled(l.windows)}
	}
	wait, ok := r.Limiter.Allow(s.now(), checks...)
	if ok {
		return nil
	}
	return s.tooMany(wait, limits...)
}

// quota is a per-thread limit for the store to count on the thread.
func (s *Service) quota(l rateLimit) Quota {
	if !s.Rates.on() {
		return Quota{}
	}
	return Quota{Name: l.budget, Windows: s.Rates.scaled(l.windows)}
}

// refused turns a store's QuotaExceeded into the 429 it answers.
func (s *Service) refused(err error, l rateLimit) error {
	var qe *QuotaExceeded
	if errors.As(err, &qe) {
		return s.tooMany(qe.Wait, l)
	}
	return err
}

// tooMany is the 429, naming the limits that apply (as scaled), so the
// caller knows what it ran into.
func (s *Service) tooMany(wait time.Duration, limits ...rateLimit) error {
	var parts []string
	for _, l := range limits {
		var ws []string
		for _, w := range s.Rates.scaled(l.windows) {
			span := "10 seconds"
			if w.Span == time.Minute {
				span = "minute"
			}
			ws = append(ws, fmt.Sprintf("%d per %s", w.Max, span))
		}
		scope := map[rateScope]string{perUser: "per user", perThread: "per thread", perUserInThread: "per user in a thread"}[l.scope]
		parts = append(parts, strings.Join(ws, " and ")+" "+scope)
	}
	secs := int(math.Ceil(wait.Seconds()))
	return fault.Throttled(wait, "Too many %s requests: the limit is %s. Retry after %d s.", limits[0].what, strings.Join(parts, ", "), secs)
}
