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

// Dispatch delivers a batch of changes. It reads each thread's roster (in
// parallel), then delivers the whole batch at once, which keeps DynamoDB
// and EventBridge calls per batch, not per event: one feed Append of every
// event's entries, one connection Lookup for every recipient, the pushes
// (each connection's in order, connections in parallel) alongside one partner
// Publish. It returns the index of the first change it could not deliver
// (len(changes) when all were), so the caller reports a partial batch
// failure from there: every change before it is in every recipient's feed
// and its partner events are published. Changes after it that did get
// through are delivered again on the retry; readers and partners drop
// repeats by id.
func (d *Dispatcher) Dispatch(ctx context.Context, changes []chat.Change) (int, error) {
	failedAt, failure := len(changes), error(nil)
	fail := func(i int, err error) {
		if i < failedAt {
			failedAt, failure = i, err
		}
	}
	groups := map[string][]int{}
	var order []string
	for i, ch := range changes {
		if _, ok := groups[ch.ThreadID]; !ok {
			order = append(order, ch.ThreadID)
		}
		groups[ch.ThreadID] = append(groups[ch.ThreadID], i)
	}
	type thread struct {
		t      *chat.Thread
		roster []chat.Participant
		err    error
	}
	threads := make([]thread, len(order))
	parallel(len(order), 16, func(g int) {
		t, roster, err := d.Roster.Roster(ctx, order[g])
		threads[g] = thread{t, roster, err}
	})

	// The events in delivery order: each thread's in bySequence order (a
	// connection gets them in this order; threads may interleave freely).
	var events []*event
	var delivery []int // the changes whose roster was read, in delivery order
	rosters := make([][]chat.Participant, len(changes))
	for g, id := range order {
		th := threads[g]
		if th.err != nil {
			fail(groups[id][0], fmt.Errorf("roster of %s: %w", id, th.err))
			continue
		}
		for _, i := range bySequence(changes, groups[id], th.t, th.roster) {
			delivery = append(delivery, i)
			rosters[i] = th.roster
			for _, o := range occurrences(changes[i], th.t, th.roster) {
				if len(o.Recipients) > 0 {
					events = append(events, &event{Occurrence: o, change: i})
				}
			}
		}
	}

	// A failed feed write fails every change with an event: which entries
	// of a failed call were written is unknown, and pushing some of a
	// thread's events but not the ones before them would break its order.
	// The changes before the first of them emit no event, so publishing
	// their partner events delivers them. Once the feed holds the events,
	// the pushes and the partner publish run side by side (neither needs
	// the other), which takes the publish off each batch's critical path.
	firstEvent := len(changes)
	if len(events) > 0 {
		firstEvent = slices.MinFunc(events, func(a, b *event) int { return cmp.Compare(a.change, b.change) }).change
	}
	publishBelow := len(changes)
	var pushErr error
	var pushed sync.WaitGroup
	if len(events) > 0 {
		if err := d.write(ctx, events); err != nil {
			fail(firstEvent, err)
			publishBelow = firstEvent
		} else {
			pushed.Add(1)
			go func() {
				defer pushed.Done()
				pushErr = d.push(ctx, events)
			}()
		}
	}
	var publishErr error
	firstPublished := len(changes)
	if d.Partners != nil {
		var evs []partner.Event
		for _, i := range delivery {
			if i >= publishBelow {
				continue
			}
			if es := partner.Events(changes[i], rosters[i], d.UserLevelEvents); len(es) > 0 {
				evs = append(evs, es...)
				firstPublished = min(firstPublished, i)
			}
		}
		if len(evs) > 0 {
			publishErr = d.Partners.Publish(ctx, evs)
		}
	}
	pushed.Wait()
	if pushErr != nil {
		fail(firstEvent, pushErr)
	}
	if publishErr != nil {
		fail(firstPublished, fmt.Errorf("partner events: %w", publishErr))
	}
	return failedAt, failure
}

// event is one occurrence on its way: the change it came from and its
// place in the feed.
type event struct {
	Occurrence
	change int // index in the batch
	data   []byte
	pos    int64
	cursor string
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

// write appends the events to their recipients' feeds, in one call, and
// gives each its cursor. It must finish before push looks up connections:
// a connection registered after that lookup resumes from a feed that
// already holds the events.
func (d *Dispatcher) write(ctx context.Context, events []*event) error {
	now := d.now()
	for _, e := range events {
		e.data = marshal(e.Data)
		e.pos = e.At.UnixMilli()
		if now.Sub(e.At) > fresh || e.At.IsZero() {
			e.pos = now.UnixMilli() // late (a retry, a backlog): position it now, so no reader has passed it
		}
	}
	if err := d.append(ctx, events); err != nil {
		return err
	}
	// The write took long enough that a reader may already have passed
	// these positions: write those events again, later. Readers dedupe by id.
	var late []*event
	after := d.now().UnixMilli()
	for _, e := range events {
		if after-e.pos > int64(Settle/2/time.Millisecond) {
			late = append(late, e)
		}
	}
	if len(late) > 0 {
		pos := d.now().UnixMilli()
		for _, e := range late {
			e.pos = pos
		}
		if err := d.append(ctx, late); err != nil {
			return err
		}
	}
	recipients := 0
	for _, e := range events {
		recipients += len(e.Recipients)
		e.cursor = encodeCursor(FeedKey{Pos: e.pos, EventID: e.ID}, true)
	}
	d.count(ctx, "FeedWrites", recipients)
	d.count(ctx, "FanoutRecipients", recipients)
	return nil
}

func (d *Dispatcher) append(ctx context.Context, events []*event) error {
	var entries []FeedEntry
	for _, o := range events {
		exp := time.UnixMilli(o.pos).Add(d.Retention)
		for _, u := range o.Recipients {
			e := FeedEntry{UserID: u, Pos: o.pos, EventID: o.ID, Type: o.Type, ThreadID: o.ThreadID, At: o.At, Expires: exp}
			if o.Seq > 0 && isMessageEvent(o.Type) {
				e.Seq = o.Seq
			} else {
				e.Data = o.data
			}
			entries = append(entries, e)
		}
	}
	if err := d.Feed.Append(ctx, entries); err != nil {
		if len(events) == 1 {
			return fmt.Errorf("feed append for %s: %w", events[0].ID, err)
		}
		return fmt.Errorf("feed append for %d events from %s: %w", len(events), events[0].ID, err)
	}
	return nil
}

func isMessageEvent(t string) bool {
	return t == TypeMessageReceived || t == TypeMessageEdited || t == TypeMessageDeleted
}

// push sends the events to every live connection of their recipients:
// each connection its events in order, different connections in parallel.
// Push failures lose nothing (the events are in the feed): a connection a
// push failed on is closed, so its client resumes; one that is gone is
// forgotten. Either way it gets none of the batch's later events.
func (d *Dispatcher) push(ctx context.Context, events []*event) error {
	var users []string
	seen := map[string]bool{}
	for _, e := range events {
		for _, u := range e.Recipients {
			if !seen[u] {
				seen[u] = true
				users = append(users, u)
			}
		}
	}
	conns, err := d.Connections.Lookup(ctx, users)
	if err != nil {
		return fmt.Errorf("connections for %d events from %s: %w", len(events), events[0].ID, err)
	}
	type target struct{ user, conn string }
	var targets []target
	queue := map[target][]*event{}
	for _, e := range events {
		for _, u := range e.Recipients {
			for _, c := range conns[u] {
				t := target{u, c}
				if _, ok := queue[t]; !ok {
					targets = append(targets, t)
				}
				queue[t] = append(queue[t], e)
			}
		}
	}
	var delivered, gone, failed int
	var mu sync.Mutex
	parallel(len(targets), d.Concurrency, func(k int) {
		t := targets[k]
		for _, e := range queue[t] {
			frame := render(e.ID, e.cursor, e.Type, e.ThreadID, e.At, e.data, t.user)
			if len(frame) > MaxPushFrame {
				frame = render(e.ID, e.cursor, e.Type, e.ThreadID, e.At, withoutContent(e.Data), t.user)
			}
			err := d.Pusher.Push(ctx, t.conn, frame)
			mu.Lock()
			switch {
			case err == nil:
				delivered++
			case errors.Is(err, ErrGone):
				gone++
			default:
				failed++
			}
			mu.Unlock()
			switch {
			case err == nil:
				continue
			case errors.Is(err, ErrGone):
				d.forget(ctx, t.user, t.conn)
			default:
				if d.Log != nil {
					d.Log.WarnContext(ctx, "push failed", "event", e.ID, "error", err.Error())
				}
				d.drop(ctx, t.user, t.conn)
			}
			return
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
