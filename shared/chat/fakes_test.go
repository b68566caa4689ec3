package chat_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/ratelimit"
)

// memThreads is an in-memory chat.ThreadStore. A thread is committed once
// it is in threads (the META item); participants may exist without it.
type memThreads struct {
	mu      sync.Mutex
	threads map[string]chat.Thread
	parts   map[string]map[string]chat.Participant // thread -> user -> participant
	msgs    map[string][]chat.Message
	quotas  map[string][]ratelimit.Counter // thread|quota name -> its counters, as the store keeps them on the thread

	creates []chat.ThreadDraft  // every CreateThread call, failed or not
	changes []chat.ThreadChange // every UpdateThread call, raced or not
	deletes []string            // every MarkThreadDeleted call
	views   int

	createErr      error                           // CreateThread fails (after recording the draft)
	updateHook     func(c chat.ThreadChange) error // runs first in UpdateThread; an error is returned as is
	viewErr        error                           // ThreadView fails
	membershipsErr error                           // Memberships fails
	threadsHook    func(ids []string)              // observes Threads calls
	createHook     func(d chat.ThreadDraft)        // observes CreateThread calls
}

func newMemThreads() *memThreads {
	return &memThreads{threads: map[string]chat.Thread{}, parts: map[string]map[string]chat.Participant{}, msgs: map[string][]chat.Message{}}
}

func (m *memThreads) CreateThread(_ context.Context, d chat.ThreadDraft) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.creates = append(m.creates, d)
	if m.createHook != nil {
		m.createHook(d)
	}
	if m.createErr != nil {
		return m.createErr
	}
	id := d.Thread.ID
	if m.parts[id] == nil {
		m.parts[id] = map[string]chat.Participant{}
	}
	for _, p := range d.Participants {
		m.parts[id][p.UserID] = p
	}
	if _, done := m.threads[id]; done {
		return nil // committed by an earlier attempt
	}
	m.msgs[id] = append(m.msgs[id], d.Messages...)
	m.threads[id] = d.Thread
	return nil
}

func (m *memThreads) ThreadView(_ context.Context, threadID, userID string) (chat.View, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.views++
	if m.viewErr != nil {
		return chat.View{}, m.viewErr
	}
	var v chat.View
	if t, ok := m.threads[threadID]; ok {
		t.Metadata = maps.Clone(t.Metadata)
		v.Thread = &t
	}
	if p, ok := m.parts[threadID][userID]; ok {
		v.Participant = &p
	}
	return v, nil
}

func (m *memThreads) UpdateThread(_ context.Context, c chat.ThreadChange) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.changes = append(m.changes, c)
	if m.updateHook != nil {
		if err := m.updateHook(c); err != nil {
			return err
		}
	}
	t, ok := m.threads[c.ThreadID]
	if !ok || !t.DeletedOn.IsZero() || t.Rev != c.ExpectRev {
		return chat.ErrRaced
	}
	if c.Message != nil && t.Seq != c.ExpectSeq {
		return chat.ErrRaced
	}
	if err := m.countQuotaLocked(c.ThreadID, c.Quota, c.At); err != nil {
		return err
	}
	t.Topic = c.Topic
	t.Metadata = maps.Clone(c.Metadata)
	t.Retention = c.Retention
	t.Rev++
	if c.Message != nil {
		t.Seq = c.Message.Seq
		t.LastMessageAt = c.At
		m.msgs[c.ThreadID] = append(m.msgs[c.ThreadID], *c.Message)
	}
	m.threads[c.ThreadID] = t
	return nil
}

func (m *memThreads) MarkThreadDeleted(_ context.Context, threadID string, at time.Time, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deletes = append(m.deletes, threadID)
	t, ok := m.threads[threadID]
	if ok && t.DeletedOn.IsZero() {
		t.DeletedOn = at
		m.threads[threadID] = t
	}
	return nil
}

func (m *memThreads) Memberships(_ context.Context, userID string) ([]chat.Membership, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.membershipsErr != nil {
		return nil, m.membershipsErr
	}
	var out []chat.Membership
	for _, id := range slices.Sorted(maps.Keys(m.parts)) {
		if p, ok := m.parts[id][userID]; ok {
			out = append(out, chat.Membership{ThreadID: id, RemovedOn: p.RemovedOn})
		}
	}
	return out, nil
}

func (m *memThreads) Threads(_ context.Context, ids []string) (map[string]chat.Thread, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.threadsHook != nil {
		m.threadsHook(ids)
	}
	out := map[string]chat.Thread{}
	for _, id := range ids {
		if t, ok := m.threads[id]; ok {
			out[id] = t
		}
	}
	return out, nil
}

// countQuotaLocked counts a request against q as the store does on the
// thread item: in every window or, when one is full, in none.
func (m *memThreads) countQuotaLocked(threadID string, q chat.Quota, at time.Time) error {
	if len(q.Windows) == 0 {
		return nil
	}
	if m.quotas == nil {
		m.quotas = map[string][]ratelimit.Counter{}
	}
	key := threadID + "|" + q.Name
	have := m.quotas[key]
	next := make([]ratelimit.Counter, len(q.Windows))
	var wait time.Duration
	for i, w := range q.Windows {
		var c ratelimit.Counter
		if i < len(have) {
			c = have[i]
		}
		n, wt, ok := w.Admit(c, at)
		if !ok {
			wait = max(wait, wt)
		}
		next[i] = n
	}
	if wait > 0 {
		return &chat.QuotaExceeded{Wait: wait}
	}
	m.quotas[key] = next
	return nil
}

// seed stores a committed thread with the given participants.
func (m *memThreads) seed(t chat.Thread, members ...chat.Participant) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.threads[t.ID] = t
	if m.parts[t.ID] == nil {
		m.parts[t.ID] = map[string]chat.Participant{}
	}
	for _, p := range members {
		m.parts[t.ID][p.UserID] = p
	}
}

func (m *memThreads) thread(id string) chat.Thread {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.threads[id]
}

func (m *memThreads) setThread(t chat.Thread) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.threads[t.ID] = t
}

// memDirectory is an in-memory chat.Directory.
type memDirectory struct {
	mu    sync.Mutex
	live  map[string]bool
	calls [][]string
	err   error
}

func newMemDirectory(users ...string) *memDirectory {
	d := &memDirectory{live: map[string]bool{}}
	for _, u := range users {
		d.live[u] = true
	}
	return d
}

func (d *memDirectory) ExistingUsers(_ context.Context, ids []string) (map[string]bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, slices.Clone(ids))
	if d.err != nil {
		return nil, d.err
	}
	out := map[string]bool{}
	for _, id := range ids {
		if d.live[id] {
			out[id] = true
		}
	}
	return out, nil
}

// memRequests is an in-memory chat.RequestLog.
type memRequests struct {
	mu        sync.Mutex
	recs      map[string]chat.RequestRecord
	claims    int
	completes int
	claimErr  error
}

func newMemRequests() *memRequests { return &memRequests{recs: map[string]chat.RequestRecord{}} }

func (r *memRequests) Claim(_ context.Context, key string, rec chat.RequestRecord) (*chat.RequestRecord, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.claims++
	if r.claimErr != nil {
		return nil, r.claimErr
	}
	if old, ok := r.recs[key]; ok {
		old.Result = slices.Clone(old.Result)
		return &old, nil
	}
	r.recs[key] = rec
	return nil, nil
}

func (r *memRequests) Complete(_ context.Context, key string, result []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.recs[key]
	if !ok {
		return errors.New("complete: no such request")
	}
	r.completes++
	rec.Done = true
	rec.Result = slices.Clone(result)
	r.recs[key] = rec
	return nil
}

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
