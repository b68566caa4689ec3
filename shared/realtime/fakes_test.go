package realtime

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/partner"
)

// In-memory fakes of the ports, shared by the package's tests.

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock(t time.Time) *testClock { return &testClock{t: t} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// opLog records a global sequence of operations across fakes.
type opLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *opLog) add(op string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, op)
}

func (l *opLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ops)
}

// fakeRoster is a RosterReader.
type fakeRoster struct {
	mu      sync.Mutex
	threads map[string]*chat.Thread
	parts   map[string][]chat.Participant
	calls   map[string]int
	errs    map[string]error // per thread
}

func newFakeRoster() *fakeRoster {
	return &fakeRoster{threads: map[string]*chat.Thread{}, parts: map[string][]chat.Participant{}, calls: map[string]int{}, errs: map[string]error{}}
}

func (r *fakeRoster) set(t *chat.Thread, ps ...chat.Participant) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.threads[t.ID] = t
	r.parts[t.ID] = ps
}

func (r *fakeRoster) Roster(_ context.Context, threadID string) (*chat.Thread, []chat.Participant, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[threadID]++
	if err := r.errs[threadID]; err != nil {
		return nil, nil, err
	}
	return r.threads[threadID], slices.Clone(r.parts[threadID]), nil
}

// fakeMessages is a MessageReader.
type fakeMessages struct {
	mu    sync.Mutex
	msgs  map[MessageKey]chat.Message
	calls int
	err   error
}

func (m *fakeMessages) MessagesByKey(_ context.Context, keys []MessageKey) (map[MessageKey]chat.Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.err != nil {
		return nil, m.err
	}
	out := map[MessageKey]chat.Message{}
	for _, k := range keys {
		if msg, ok := m.msgs[k]; ok {
			out[k] = msg
		}
	}
	return out, nil
}

// fakeFeed is a FeedStore keeping entries sorted by (Pos, EventID) per user.
type fakeFeed struct {
	mu      sync.Mutex
	entries map[string][]FeedEntry
	appends [][]FeedEntry // every Append call, in order
	reads   []FeedKey     // every Read's "after"
	log     *opLog
	// hook runs at the start of every Append (before storing), with the
	// call's index; an error fails the call and stores nothing.
	hook    func(call int, entries []FeedEntry) error
	readErr error
}

func newFakeFeed() *fakeFeed { return &fakeFeed{entries: map[string][]FeedEntry{}} }

func feedCmp(a, b FeedEntry) int {
	return cmp.Or(cmp.Compare(a.Pos, b.Pos), strings.Compare(a.EventID, b.EventID))
}

func (f *fakeFeed) Append(_ context.Context, entries []FeedEntry) error {
	f.mu.Lock()
	call := len(f.appends)
	f.appends = append(f.appends, slices.Clone(entries))
	hook := f.hook
	f.mu.Unlock()
	// One line per event the call writes: "append <event id> <users>".
	var ids []string
	users := map[string][]string{}
	for _, e := range entries {
		if _, ok := users[e.EventID]; !ok {
			ids = append(ids, e.EventID)
		}
		users[e.EventID] = append(users[e.EventID], e.UserID)
	}
	for _, id := range ids {
		f.log.add("append " + id + " " + strings.Join(users[id], ","))
	}
	if hook != nil {
		if err := hook(call, entries); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range entries {
		f.put(e)
	}
	return nil
}

// put stores e; the same (Pos, EventID) overwrites.
func (f *fakeFeed) put(e FeedEntry) {
	list := f.entries[e.UserID]
	i, found := slices.BinarySearchFunc(list, e, feedCmp)
	if found {
		list[i] = e
	} else {
		list = slices.Insert(list, i, e)
	}
	f.entries[e.UserID] = list
}

// add stores entries directly, in any order.
func (f *fakeFeed) add(es ...FeedEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range es {
		f.put(e)
	}
}

func (f *fakeFeed) Read(_ context.Context, userID string, after FeedKey, limit int) ([]FeedEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, after)
	if f.readErr != nil {
		return nil, f.readErr
	}
	var out []FeedEntry
	for _, e := range f.entries[userID] {
		if e.Pos < after.Pos || (e.Pos == after.Pos && e.EventID <= after.EventID) {
			continue
		}
		out = append(out, e)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

func (f *fakeFeed) stored(userID string) []FeedEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries[userID])
}

// failing is a hook that fails every call writing an entry of one of the
// events.
func failing(errs map[string]error) func(int, []FeedEntry) error {
	return func(_ int, es []FeedEntry) error {
		for _, e := range es {
			if err := errs[e.EventID]; err != nil {
				return err
			}
		}
		return nil
	}
}

func (f *fakeFeed) appendCalls() [][]FeedEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.appends)
}

// fakeConns is a ConnectionStore.
type fakeConns struct {
	mu        sync.Mutex
	conns     map[string][]string // user -> connections
	expires   map[string]time.Time
	removed   []string // "user/conn"
	lookups   [][]string
	coalesced map[string]time.Time
	windows   []time.Duration
	clock     *testClock
	log       *opLog
	lookupErr error
}

func newFakeConns(clock *testClock) *fakeConns {
	return &fakeConns{conns: map[string][]string{}, expires: map[string]time.Time{}, coalesced: map[string]time.Time{}, clock: clock}
}

func (c *fakeConns) Add(_ context.Context, userID, connectionID string, expires time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.conns[userID], connectionID) {
		c.conns[userID] = append(c.conns[userID], connectionID)
	}
	c.expires[userID+"/"+connectionID] = expires
	return nil
}

func (c *fakeConns) Remove(_ context.Context, userID, connectionID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removed = append(c.removed, userID+"/"+connectionID)
	c.conns[userID] = slices.DeleteFunc(c.conns[userID], func(s string) bool { return s == connectionID })
	return nil
}

func (c *fakeConns) Lookup(_ context.Context, userIDs []string) (map[string][]string, error) {
	c.log.add("lookup")
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lookups = append(c.lookups, slices.Clone(userIDs))
	if c.lookupErr != nil {
		return nil, c.lookupErr
	}
	out := map[string][]string{}
	for _, u := range userIDs {
		if len(c.conns[u]) > 0 {
			out[u] = slices.Clone(c.conns[u])
		}
	}
	return out, nil
}

func (c *fakeConns) Coalesce(_ context.Context, key string, window time.Duration) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.windows = append(c.windows, window)
	now := c.clock.Now()
	if until, ok := c.coalesced[key]; ok && now.Before(until) {
		return false, nil
	}
	c.coalesced[key] = now.Add(window)
	return true, nil
}

func (c *fakeConns) removals() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.removed)
}

// fakePusher records the frames pushed to each connection.
type fakePusher struct {
	mu        sync.Mutex
	frames    map[string][][]byte
	attempts  map[string]int
	gone      map[string]bool  // connection -> ErrGone
	fail      map[string]error // connection -> another error
	goneFirst int              // the first goneFirst pushes (any connection) are ErrGone
	failAfter int              // when > 0: pushes beyond this many fail (a guard against loops)
	total     int
	log       *opLog
}

func newFakePusher() *fakePusher {
	return &fakePusher{frames: map[string][][]byte{}, attempts: map[string]int{}, gone: map[string]bool{}, fail: map[string]error{}}
}

var errTooManyPushes = fmt.Errorf("fake pusher: too many pushes")

func (p *fakePusher) Push(_ context.Context, connectionID string, frame []byte) error {
	if p.log != nil {
		var f struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(frame, &f)
		p.log.add("push " + connectionID + " " + f.ID)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total++
	p.attempts[connectionID]++
	if p.failAfter > 0 && p.total > p.failAfter {
		return errTooManyPushes
	}
	if p.goneFirst > 0 {
		p.goneFirst--
		return fmt.Errorf("push %s: %w", connectionID, ErrGone)
	}
	if p.gone[connectionID] {
		return fmt.Errorf("push %s: %w", connectionID, ErrGone)
	}
	if err := p.fail[connectionID]; err != nil {
		return err
	}
	p.frames[connectionID] = append(p.frames[connectionID], slices.Clone(frame))
	return nil
}

func (p *fakePusher) got(connectionID string) [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.frames[connectionID])
}

func (p *fakePusher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, fs := range p.frames {
		n += len(fs)
	}
	return n
}

// fakeMetrics sums counts by name.
type fakeMetrics struct {
	mu     sync.Mutex
	counts map[string]float64
}

func (m *fakeMetrics) Count(_ context.Context, name string, n float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counts == nil {
		m.counts = map[string]float64{}
	}
	m.counts[name] += n
}

func (m *fakeMetrics) get(name string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[name]
}

// wireFrame is a decoded server frame.
type wireFrame struct {
	ID         string         `json:"id"`
	Cursor     string         `json:"cursor"`
	Type       string         `json:"type"`
	ThreadID   string         `json:"threadId"`
	OccurredOn string         `json:"occurredOn"`
	Data       map[string]any `json:"data"`
}

func decodeFrame(t *testing.T, b []byte) wireFrame {
	t.Helper()
	if !json.Valid(b) {
		t.Fatalf("frame is not valid JSON: %s", b)
	}
	var f wireFrame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("decode frame %s: %v", b, err)
	}
	return f
}

// rawID returns the rawId of a decoded identifier (or participant's
// communicationIdentifier).
func rawID(v any) string {
	m, _ := v.(map[string]any)
	if ci, ok := m["communicationIdentifier"]; ok {
		m, _ = ci.(map[string]any)
	}
	s, _ := m["rawId"].(string)
	return s
}

// toMap round-trips v through JSON, as a client would see it.
func toMap(t *testing.T, v any) map[string]any {
	t.Helper()
	b := marshal(v)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return m
}

func mustDecodeCursor(t *testing.T, c string) (FeedKey, bool) {
	t.Helper()
	k, live, err := decodeCursor(c)
	if err != nil {
		t.Fatalf("decodeCursor(%q): %v", c, err)
	}
	return k, live
}

// fakePartners is a partner.Publisher.
type fakePartners struct {
	mu    sync.Mutex
	calls [][]partner.Event
	err   error
}

func (p *fakePartners) Publish(_ context.Context, events []partner.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, slices.Clone(events))
	return p.err
}
