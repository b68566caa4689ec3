package chat_test

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/sanitize"
)

// memChat is an in-memory chat.MessageStore, chat.ParticipantStore and
// chat.ReceiptStore. It wraps memThreads and keeps its data in the same maps
// under the same mutex, so threads, participants and messages written
// through either interface are one state, as in the real table.
type memChat struct {
	*memThreads
	now func() time.Time // for the expiry of request records

	sendRecs map[string]chat.RequestRecord      // requestKey -> record written by PutMessage
	receipts map[string]map[string]chat.Receipt // thread -> user -> receipt

	// Call logs.
	sendChecks   []sendCheckCall
	nextSeqs     []string // thread ids
	puts         []putCall
	ranges       []chat.MessageRange
	msgViews     int
	replaces     []replaceCall
	rosters      int
	adds         []chat.RosterChange
	removes      []chat.RosterChange
	receiptPuts  []chat.Receipt
	receiptReads int

	// Hooks and injected failures. A hook runs with the mutex held, before
	// the fake's own logic; a non-nil error from it is returned as is. Hooks
	// may change state directly through the maps (they hold the lock).
	sendCheckErr   error
	sendCheckHook  func(call int) error
	nextSeqErr     error
	putHook        func(call int, m chat.Message, key string, rec *chat.RequestRecord) error
	messagesErr    error
	msgViewErr     error
	replaceHook    func(call int, m chat.Message, expect int64) error
	rosterErr      error
	addHook        func(call int, c chat.RosterChange) error
	removeHook     func(call int, c chat.RosterChange) error
	putReceiptErr  error
	receiptsErr    error
	rosterReversed bool // return the roster in descending user-id order (default ascending, like the table)
}

type sendCheckCall struct{ threadID, userID, key string }

type putCall struct {
	threadID string
	m        chat.Message
	key      string
	rec      *chat.RequestRecord
}

type replaceCall struct {
	m      chat.Message
	expect int64
}

var (
	_ chat.MessageStore     = (*memChat)(nil)
	_ chat.ParticipantStore = (*memChat)(nil)
	_ chat.ReceiptStore     = (*memChat)(nil)
	_ chat.TypingNotifier   = (*memTyping)(nil)
)

func newMemChat(st *memThreads, now func() time.Time) *memChat {
	return &memChat{memThreads: st, now: now, sendRecs: map[string]chat.RequestRecord{}, receipts: map[string]map[string]chat.Receipt{}}
}

func cloneMessage(m chat.Message) chat.Message {
	m.Metadata = maps.Clone(m.Metadata)
	m.Participants = slices.Clone(m.Participants)
	return m
}

// msgIndex returns the index of the message with sequence id seq, or -1.
// The caller holds the lock.
func (c *memChat) msgIndex(threadID string, seq int64) int {
	return slices.IndexFunc(c.msgs[threadID], func(m chat.Message) bool { return m.Seq == seq })
}

// thread helpers used by hooks (the lock is held there).
func (c *memChat) liveLocked(threadID string) (chat.Thread, bool) {
	t, ok := c.threads[threadID]
	return t, ok && t.DeletedOn.IsZero()
}

func (c *memChat) SendCheck(_ context.Context, threadID, userID, requestKey string) (*chat.Participant, *chat.RequestRecord, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sendChecks = append(c.sendChecks, sendCheckCall{threadID, userID, requestKey})
	if c.sendCheckHook != nil {
		if err := c.sendCheckHook(len(c.sendChecks)); err != nil {
			return nil, nil, err
		}
	}
	if c.sendCheckErr != nil {
		return nil, nil, c.sendCheckErr
	}
	var p *chat.Participant
	if v, ok := c.parts[threadID][userID]; ok {
		p = &v
	}
	var rec *chat.RequestRecord
	if requestKey != "" {
		if r, ok := c.sendRecs[requestKey]; ok && r.Expires.After(c.now()) {
			r.Result = slices.Clone(r.Result)
			rec = &r
		}
	}
	return p, rec, nil
}

func (c *memChat) NextSeq(_ context.Context, threadID string, at time.Time, q chat.Quota) (chat.Thread, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextSeqs = append(c.nextSeqs, threadID)
	if c.nextSeqErr != nil {
		return chat.Thread{}, c.nextSeqErr
	}
	t, ok := c.liveLocked(threadID)
	if !ok {
		return chat.Thread{}, chat.ErrThreadGone
	}
	if err := c.countQuotaLocked(threadID, q, at); err != nil {
		return chat.Thread{}, err
	}
	t.Seq++
	t.LastMessageAt = at
	c.threads[threadID] = t
	return t, nil
}

func (c *memChat) PutMessage(_ context.Context, threadID string, m chat.Message, requestKey string, rec *chat.RequestRecord) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.puts = append(c.puts, putCall{threadID, cloneMessage(m), requestKey, rec})
	if c.putHook != nil {
		if err := c.putHook(len(c.puts), m, requestKey, rec); err != nil {
			return err
		}
	}
	if c.msgIndex(threadID, m.Seq) >= 0 {
		return fmt.Errorf("memChat: message %d already exists", m.Seq)
	}
	if rec != nil {
		if old, ok := c.sendRecs[requestKey]; ok && old.Expires.After(c.now()) {
			return chat.ErrRaced
		}
		c.sendRecs[requestKey] = *rec
	}
	c.msgs[threadID] = append(c.msgs[threadID], cloneMessage(m))
	return nil
}

func (c *memChat) MessageView(_ context.Context, threadID, userID string, seq int64) (chat.View, *chat.Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgViews++
	if c.msgViewErr != nil {
		return chat.View{}, nil, c.msgViewErr
	}
	var v chat.View
	if t, ok := c.threads[threadID]; ok {
		t.Metadata = maps.Clone(t.Metadata)
		v.Thread = &t
	}
	if p, ok := c.parts[threadID][userID]; ok {
		v.Participant = &p
	}
	if i := c.msgIndex(threadID, seq); i >= 0 {
		m := cloneMessage(c.msgs[threadID][i])
		return v, &m, nil
	}
	return v, nil, nil
}

// Messages follows the contract in store.go exactly: newest first, Before
// and MaxSeq as sequence bounds (0: none), Since as a creation-time bound.
func (c *memChat) Messages(_ context.Context, threadID string, r chat.MessageRange) ([]chat.Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ranges = append(c.ranges, r)
	if c.messagesErr != nil {
		return nil, c.messagesErr
	}
	all := slices.Clone(c.msgs[threadID])
	slices.SortFunc(all, func(a, b chat.Message) int { return cmp.Compare(b.Seq, a.Seq) })
	var out []chat.Message
	for _, m := range all {
		if r.Before > 0 && m.Seq >= r.Before {
			continue
		}
		if r.MaxSeq > 0 && m.Seq > r.MaxSeq {
			continue
		}
		if m.CreatedOn.Before(r.Since) {
			continue
		}
		out = append(out, cloneMessage(m))
		if r.Limit > 0 && len(out) == r.Limit {
			break
		}
	}
	return out, nil
}

func (c *memChat) ReplaceMessage(_ context.Context, threadID string, m chat.Message, expectVersion int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.replaces = append(c.replaces, replaceCall{cloneMessage(m), expectVersion})
	if c.replaceHook != nil {
		if err := c.replaceHook(len(c.replaces), m, expectVersion); err != nil {
			return err
		}
	}
	i := c.msgIndex(threadID, m.Seq)
	if i < 0 || c.msgs[threadID][i].Version != expectVersion {
		return chat.ErrRaced
	}
	c.msgs[threadID][i] = cloneMessage(m)
	return nil
}

func (c *memChat) Roster(_ context.Context, threadID string) (*chat.Thread, []chat.Participant, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rosters++
	if c.rosterErr != nil {
		return nil, nil, c.rosterErr
	}
	var t *chat.Thread
	if th, ok := c.threads[threadID]; ok {
		t = &th
	}
	ps := slices.Collect(maps.Values(c.parts[threadID]))
	slices.SortFunc(ps, func(a, b chat.Participant) int {
		if c.rosterReversed {
			return cmp.Compare(b.UserID, a.UserID)
		}
		return cmp.Compare(a.UserID, b.UserID)
	})
	return t, ps, nil
}

// currentLocked counts a thread's current participants.
func (c *memChat) currentLocked(threadID string) int {
	n := 0
	for _, p := range c.parts[threadID] {
		if p.Current() {
			n++
		}
	}
	return n
}

func (c *memChat) AddParticipants(_ context.Context, ch chat.RosterChange) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch.Add = slices.Clone(ch.Add)
	c.adds = append(c.adds, ch)
	if c.addHook != nil {
		if err := c.addHook(len(c.adds), ch); err != nil {
			return err
		}
	}
	t, ok := c.liveLocked(ch.ThreadID)
	if !ok {
		return chat.ErrThreadGone
	}
	for _, p := range ch.Add {
		if old, ok := c.parts[ch.ThreadID][p.UserID]; ok && old.Current() {
			return chat.ErrRaced
		}
	}
	if c.currentLocked(ch.ThreadID)+len(ch.Add) > ch.MaxMembers {
		return chat.ErrThreadFull
	}
	if c.parts[ch.ThreadID] == nil {
		c.parts[ch.ThreadID] = map[string]chat.Participant{}
	}
	for _, p := range ch.Add {
		c.parts[ch.ThreadID][p.UserID] = p
	}
	t.Members = c.currentLocked(ch.ThreadID)
	t.LastMessageAt = ch.At
	c.threads[ch.ThreadID] = t
	c.msgs[ch.ThreadID] = append(c.msgs[ch.ThreadID], cloneMessage(ch.Message))
	return nil
}

func (c *memChat) RemoveParticipant(_ context.Context, ch chat.RosterChange) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removes = append(c.removes, ch)
	if c.removeHook != nil {
		if err := c.removeHook(len(c.removes), ch); err != nil {
			return err
		}
	}
	t, ok := c.liveLocked(ch.ThreadID)
	if !ok {
		return chat.ErrThreadGone
	}
	p, ok := c.parts[ch.ThreadID][ch.Remove]
	if !ok || !p.Current() {
		return chat.ErrRaced
	}
	p.RemovedOn, p.RemovedSeq = ch.At, ch.Message.Seq
	c.parts[ch.ThreadID][ch.Remove] = p
	t.Members = c.currentLocked(ch.ThreadID)
	t.LastMessageAt = ch.At
	c.threads[ch.ThreadID] = t
	c.msgs[ch.ThreadID] = append(c.msgs[ch.ThreadID], cloneMessage(ch.Message))
	return nil
}

func (c *memChat) PutReceipt(_ context.Context, threadID string, r chat.Receipt) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.receiptPuts = append(c.receiptPuts, r)
	if c.putReceiptErr != nil {
		return c.putReceiptErr
	}
	if c.receipts[threadID] == nil {
		c.receipts[threadID] = map[string]chat.Receipt{}
	}
	if old, ok := c.receipts[threadID][r.UserID]; ok && old.Seq >= r.Seq {
		return nil // pointers only move forward
	}
	c.receipts[threadID][r.UserID] = r
	return nil
}

// Receipts returns a fresh slice in descending user-id order, so the
// service's own sorting is what a test sees.
func (c *memChat) Receipts(_ context.Context, threadID string) ([]chat.Receipt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.receiptReads++
	if c.receiptsErr != nil {
		return nil, c.receiptsErr
	}
	out := slices.Collect(maps.Values(c.receipts[threadID]))
	slices.SortFunc(out, func(a, b chat.Receipt) int { return cmp.Compare(b.UserID, a.UserID) })
	return out, nil
}

// seedMessages appends messages to a thread and raises its Seq to the
// highest one.
func (c *memChat) seedMessages(threadID string, ms ...chat.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.threads[threadID]
	for _, m := range ms {
		c.msgs[threadID] = append(c.msgs[threadID], cloneMessage(m))
		t.Seq = max(t.Seq, m.Seq)
	}
	c.threads[threadID] = t
}

// message returns the stored message with sequence id seq.
func (c *memChat) message(threadID string, seq int64) (chat.Message, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.msgIndex(threadID, seq)
	if i < 0 {
		return chat.Message{}, false
	}
	return cloneMessage(c.msgs[threadID][i]), true
}

// messageCount is how many messages a thread holds.
func (c *memChat) messageCount(threadID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs[threadID])
}

// participant returns the stored participant.
func (c *memChat) participant(threadID, userID string) (chat.Participant, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.parts[threadID][userID]
	return p, ok
}

// setParticipant stores p as it is.
func (c *memChat) setParticipant(threadID string, p chat.Participant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.parts[threadID] == nil {
		c.parts[threadID] = map[string]chat.Participant{}
	}
	c.parts[threadID][p.UserID] = p
}

// setReceipt stores r as it is.
func (c *memChat) setReceipt(threadID string, r chat.Receipt) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.receipts[threadID] == nil {
		c.receipts[threadID] = map[string]chat.Receipt{}
	}
	c.receipts[threadID][r.UserID] = r
}

// writes counts every write the message, participant and receipt stores
// were asked for.
func (c *memChat) writes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.puts) + len(c.replaces) + len(c.adds) + len(c.removes) + len(c.receiptPuts)
}

// memTyping is a chat.TypingNotifier that records its calls.
type memTyping struct {
	mu    sync.Mutex
	calls []typingCall
	err   error
}

type typingCall struct {
	threadID, userID, displayName string
	at                            time.Time
}

func (n *memTyping) Typing(_ context.Context, threadID, userID, displayName string, at time.Time) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, typingCall{threadID, userID, displayName, at})
	return n.err
}

// msgEnv is env with the message, participant and receipt stores and a
// typing notifier wired in.
type msgEnv struct {
	*env
	mc     *memChat
	typing *memTyping
}

func newMsgEnv() *msgEnv {
	e := newEnv()
	mc := newMemChat(e.st, e.clock.Now)
	typ := &memTyping{}
	e.svc.Messages, e.svc.Participants, e.svc.Receipts, e.svc.Typing = mc, mc, mc, typ
	e.svc.HTML = sanitize.HTML()
	return &msgEnv{env: e, mc: mc, typing: typ}
}
