package realtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/partner"
)

// Timing of feed positions; see docs/realtime.md, "Delivery guarantees".
const (
	// Settle is how long after its position an event is guaranteed to be
	// readable in the feed. Long polls return only settled events, and reads
	// from a pushed (not yet settled) cursor start this much earlier.
	Settle = 2 * time.Second
	// fresh is how old a change may be for the feed to use its own time as
	// the position (so a quick retry rewrites the very same entries).
	fresh = time.Second
	// MaxPushFrame is API Gateway's WebSocket frame limit.
	MaxPushFrame = 32 * 1024
)

// Dispatcher delivers committed changes: to each recipient's feed, then to
// each recipient's live connections.
type Dispatcher struct {
	Roster      RosterReader
	Feed        FeedStore
	Connections ConnectionStore
	Pusher      Pusher
	Retention   time.Duration // how long feed entries live
	Concurrency int           // pushes in flight; default 32
	Log         *slog.Logger
	Now         func() time.Time
	Metrics     Metrics // may be nil

	// Partners receives the EventBridge events of each change (nil: none);
	// UserLevelEvents adds the per-recipient ones.
	Partners        partner.Publisher
	UserLevelEvents bool
}

// Metrics counts what the dispatcher does (shared/obs implements it).
type Metrics interface {
	Count(ctx context.Context, name string, n float64)
}

func (d *Dispatcher) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Dispatcher) count(ctx context.Context, name string, n int) {
	if d.Metrics != nil && n > 0 {
		d.Metrics.Count(ctx, name, float64(n))
	}
}

// Dispatch delivers a batch of changes. Each thread's changes go in order;
// different threads' go in parallel (a batch mixes many threads, and one at
// a time would cap throughput at a few dozen events a second). It returns
// the index of the first change it could not deliver (len(changes) when all
// were), so the caller reports a partial batch failure from there: every
// change before it is in every recipient's feed. Changes after it that did
// get through are delivered again on the retry; readers drop repeats by id.
func (d *Dispatcher) Dispatch(ctx context.Context, changes []chat.Change) (int, error) {
	groups := map[string][]int{}
	var order []string
	for i, ch := range changes {
		if _, ok := groups[ch.ThreadID]; !ok {
			order = append(order, ch.ThreadID)
		}
		groups[ch.ThreadID] = append(groups[ch.ThreadID], i)
	}
	failedAt, failure := len(changes), error(nil)
	var mu sync.Mutex
	parallel(len(order), 16, func(g int) {
		idx := groups[order[g]]
		if i, err := d.dispatchThread(ctx, changes, idx); err != nil {
			mu.Lock()
			if i < failedAt {
				failedAt, failure = i, err
			}
			mu.Unlock()
		}
	})
	return failedAt, failure
}

// dispatchThread delivers one thread's changes in order, stopping at the
// first failure.
func (d *Dispatcher) dispatchThread(ctx context.Context, changes []chat.Change, idx []int) (int, error) {
	threadID := changes[idx[0]].ThreadID
	t, roster, err := d.Roster.Roster(ctx, threadID)
	if err != nil {
		return idx[0], fmt.Errorf("roster of %s: %w", threadID, err)
	}
	work := bySequence(changes, idx, t, roster)
	for k, i := range work {
		ch := changes[i]
		for _, o := range occurrences(ch, t, roster) {
			if err := d.deliver(ctx, o); err != nil {
				return slices.Min(work[k:]), err
			}
		}
		if d.Partners != nil {
			if err := d.Partners.Publish(ctx, partner.Events(ch, roster, d.UserLevelEvents)); err != nil {
				return slices.Min(work[k:]), fmt.Errorf("partner events of %s: %w", threadID, err)
			}
		}
	}
	return len(changes), nil
}

// bySequence is the order to deliver one thread's changes in: the stream's,
// except that new messages are put in sequenceId order among themselves
// within each run of them. Concurrent senders take their sequence ids first
// and commit their messages after, so the stream can hold message 6 before
// message 5; delivered as they come, clients would see them swapped. A
// change that emits something else (an edit, a roster or property change)
// ends a run, so it never moves past a message it followed or preceded.
// Changes that emit nothing (the sequence counter's own update) do not.
// (A failure reports the lowest index not yet delivered, so the partial
// batch response still covers only delivered changes.)
func bySequence(changes []chat.Change, idx []int, t *chat.Thread, roster []chat.Participant) []int {
	out := slices.Clone(idx)
	isNew := func(i int) bool { return changes[i].Message != nil && changes[i].OldMessage == nil }
	neutral := func(i int) bool {
		return len(occurrences(changes[i], t, roster)) == 0 && len(partner.Events(changes[i], roster, false)) == 0
	}
	for start := 0; start < len(out); {
		end := start
		var slots []int
		for end < len(out) && (isNew(out[end]) || neutral(out[end])) {
			if isNew(out[end]) {
				slots = append(slots, end)
			}
			end++
		}
		if len(slots) > 1 {
			run := make([]int, len(slots))
			for k, at := range slots {
				run[k] = out[at]
			}
			slices.SortStableFunc(run, func(a, b int) int { return cmp.Compare(changes[a].Message.Seq, changes[b].Message.Seq) })
			for k, at := range slots {
				out[at] = run[k]
			}
		}
		start = max(end, start+1)
	}
	return out
}

// deliver appends one event to its recipients' feeds, then pushes it. The
// feed comes first: a connection registered after the lookup below resumes
// from a feed that already holds the event.
func (d *Dispatcher) deliver(ctx context.Context, o Occurrence) error {
	if len(o.Recipients) == 0 {
		return nil
	}
	data := marshal(o.Data)
	now := d.now()
	pos := o.At.UnixMilli()
	if now.Sub(o.At) > fresh || o.At.IsZero() {
		pos = now.UnixMilli() // late (a retry, a backlog): position it now, so no reader has passed it
	}
	if err := d.append(ctx, o, data, pos); err != nil {
		return err
	}
	if late := d.now().UnixMilli() - pos; late > int64(Settle/2/time.Millisecond) {
		// The write took long enough that a reader may already have passed
		// its position: write it again, later. Readers dedupe by id.
		pos = d.now().UnixMilli()
		if err := d.append(ctx, o, data, pos); err != nil {
			return err
		}
	}
	d.count(ctx, "FeedWrites", len(o.Recipients))
	d.count(ctx, "FanoutRecipients", len(o.Recipients))
	return d.push(ctx, o, data, pos)
}

func (d *Dispatcher) append(ctx context.Context, o Occurrence, data []byte, pos int64) error {
	entries := make([]FeedEntry, 0, len(o.Recipients))
	exp := time.UnixMilli(pos).Add(d.Retention)
	for _, u := range o.Recipients {
		e := FeedEntry{UserID: u, Pos: pos, EventID: o.ID, Type: o.Type, ThreadID: o.ThreadID, At: o.At, Expires: exp}
		if o.Seq > 0 && isMessageEvent(o.Type) {
			e.Seq = o.Seq
		} else {
			e.Data = data
		}
		entries = append(entries, e)
	}
	if err := d.Feed.Append(ctx, entries); err != nil {
		return fmt.Errorf("feed append for %s: %w", o.ID, err)
	}
	return nil
}

func isMessageEvent(t string) bool {
	return t == TypeMessageReceived || t == TypeMessageEdited || t == TypeMessageDeleted
}

// push sends the event to every live connection of every recipient. Push
// failures lose nothing (the event is in the feed): a connection a push
// failed on is closed, so its client resumes; one that is gone is
// forgotten.
func (d *Dispatcher) push(ctx context.Context, o Occurrence, data []byte, pos int64) error {
	conns, err := d.Connections.Lookup(ctx, o.Recipients)
	if err != nil {
		return fmt.Errorf("connections for %s: %w", o.ID, err)
	}
	cursor := encodeCursor(FeedKey{Pos: pos, EventID: o.ID}, true)
	type job struct{ user, conn string }
	var jobs []job
	for _, u := range o.Recipients {
		for _, c := range conns[u] {
			jobs = append(jobs, job{u, c})
		}
	}
	var delivered, gone, failed int
	var mu sync.Mutex
	parallel(len(jobs), d.Concurrency, func(i int) {
		j := jobs[i]
		frame := render(o.ID, cursor, o.Type, o.ThreadID, o.At, data, j.user)
		if len(frame) > MaxPushFrame {
			frame = render(o.ID, cursor, o.Type, o.ThreadID, o.At, withoutContent(o.Data), j.user)
		}
		err := d.Pusher.Push(ctx, j.conn, frame)
		switch {
		case err == nil:
		case errors.Is(err, ErrGone):
			d.forget(ctx, j.user, j.conn)
		default:
			if d.Log != nil {
				d.Log.WarnContext(ctx, "push failed", "event", o.ID, "error", err.Error())
			}
			d.drop(ctx, j.user, j.conn)
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			delivered++
		case errors.Is(err, ErrGone):
			gone++
		default:
			failed++
		}
	})
	d.count(ctx, "PushesDelivered", delivered)
	d.count(ctx, "PushesGone", gone)
	d.count(ctx, "PushesFailed", failed)
	return nil
}

// forget removes a connection API Gateway says is gone.
func (d *Dispatcher) forget(ctx context.Context, user, conn string) {
	if err := d.Connections.Remove(ctx, user, conn); err != nil && d.Log != nil {
		d.Log.WarnContext(ctx, "forget gone connection", "error", err.Error())
	}
}

// drop closes a connection a push failed on (see Disconnecter), so that
// its client resumes from before the event it missed.
func (d *Dispatcher) drop(ctx context.Context, user, conn string) {
	dc, ok := d.Pusher.(Disconnecter)
	if !ok {
		return
	}
	err := dc.Disconnect(ctx, conn)
	switch {
	case errors.Is(err, ErrGone):
		d.forget(ctx, user, conn)
	case err != nil && d.Log != nil:
		d.Log.WarnContext(ctx, "close connection after a failed push", "error", err.Error())
	}
}

// withoutContent is the data of an event too big for one WebSocket frame:
// everything but the message text, flagged so the client fetches it.
func withoutContent(data map[string]any) []byte {
	slim := make(map[string]any, len(data)+1)
	for k, v := range data {
		if k != "message" {
			slim[k] = v
		}
	}
	slim["contentOmitted"] = true
	return marshal(slim)
}

// parallel runs f(0…n-1) with at most limit in flight.
func parallel(n, limit int, f func(int)) {
	if limit <= 0 {
		limit = 32
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}(i)
	}
	wg.Wait()
}
