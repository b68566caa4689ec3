package bench

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/coder/websocket"

	"github.com/threadline/threadline/local"
	"github.com/threadline/threadline/local/acsclient"
	"github.com/threadline/threadline/local/samtemplate"
	"github.com/threadline/threadline/shared/chat"
)

// disableRateLimits turns the stack's ACS rate limits off: a benchmark
// measures capacity, and ACS allows only 10 messages per 10 s per thread
// (local.Config.RateLimitScale: nil = the template's, ACS's limits; 0 = off).
func disableRateLimits(cfg *local.Config) string {
	zero := 0.0
	cfg.RateLimitScale = &zero
	return "off (local.Config.RateLimitScale = 0)"
}

// env is one running stack with the benchmark's instruments on it.
type env struct {
	o         Options
	stack     *local.Stack
	col       *Collector
	inv       *invokeRecorder
	meter     *Meter
	ids       *acsclient.Identity
	hc        *http.Client
	wsHC      *http.Client
	memory    map[string]int // MB by function logical id
	track     *tracker
	rateLimit string
	userLevel bool
	stateDir  string
	mu        sync.Mutex
	conns     []*websocket.Conn
	closeOnce sync.Once
}

func startEnv(ctx context.Context, o Options, ddbEndpoint, prefix string, userLevel bool) (*env, error) {
	tmpl, err := samtemplate.Load(filepath.Join(o.Root, "template.yaml"))
	if err != nil {
		return nil, err
	}
	schemas, err := SchemasFromTemplate(tmpl, prefix)
	if err != nil {
		return nil, err
	}
	state, err := os.MkdirTemp("", "threadline-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{
		o: o, col: NewCollector(), inv: newInvokeRecorder(), track: newTracker(), userLevel: userLevel, stateDir: state,
		meter: &Meter{Schemas: schemas, Reader: local.NewDynamoDB(ddbEndpoint)}, memory: memorySizes(tmpl),
	}
	cfg := local.Config{
		Root: o.Root, StateDir: state, HTTPAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0", EventsAddr: "127.0.0.1:0",
		DynamoEndpoint: ddbEndpoint, TablePrefix: prefix, StreamPollInterval: o.PollInterval,
		UserLevelEvents: &userLevel, FunctionLog: e.col, DynamoDBOptions: []func(*dynamodb.Options){e.meter.Option},
		Wrap: e.inv.wrap,
	}
	e.rateLimit = disableRateLimits(&cfg)
	if e.stack, err = local.Start(ctx, cfg); err != nil {
		_ = os.RemoveAll(state)
		return nil, err
	}
	if e.hc, err = acsclient.HTTPClient(e.stack.Info.CACert); err != nil {
		e.close()
		return nil, err
	}
	tr := e.hc.Transport.(*http.Transport)
	tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost = 512, 0
	endpoint, key, err := acsclient.ParseConnectionString(e.stack.Info.ConnectionString)
	if err != nil {
		e.close()
		return nil, err
	}
	e.ids = &acsclient.Identity{Endpoint: endpoint, Key: key, HTTP: e.hc}
	// WebSocket dials need HTTP/1.1 (the upgrade), so a transport of their own.
	e.wsHC = &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: e.stack.CA.Pool(), MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 64,
	}}
	return e, nil
}

func (e *env) close() {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		for _, c := range e.conns {
			_ = c.CloseNow()
		}
		e.mu.Unlock()
		if e.stack != nil {
			e.stack.Close()
		}
		_ = os.RemoveAll(e.stateDir)
	})
}

// memorySizes is each function's MemorySize (its own, else Globals', else
// Lambda's 128 MB default).
func memorySizes(t *samtemplate.Template) map[string]int {
	def := 128
	if n, ok := samtemplate.Path(t.Globals, "Function", "MemorySize").(int); ok {
		def = n
	}
	out := map[string]int{}
	for _, f := range t.Functions() {
		out[f.ID] = def
		if n, ok := samtemplate.Path(t.Resources[f.ID].Properties, "MemorySize").(int); ok {
			out[f.ID] = n
		}
	}
	return out
}

// logicalID maps a function's log name (send-message) to its template id
// (SendMessageFunction), the convention functions/ and the Makefile follow.
func logicalID(function string) string {
	var b strings.Builder
	for _, part := range strings.Split(function, "-") {
		if part == "" {
			continue
		}
		r := []rune(part)
		r[0] = unicode.ToUpper(r[0])
		b.WriteString(string(r))
	}
	return b.String() + "Function"
}

// user is a benchmark identity.
type user struct {
	acsclient.User
	name string
}

func (e *env) createUsers(ctx context.Context, n int) ([]user, error) {
	out := make([]user, n)
	err := parallel(ctx, n, 8, func(i int) error {
		u, err := e.ids.CreateUser(ctx, "chat")
		out[i] = user{User: u, name: fmt.Sprintf("user %d", i)}
		return err
	})
	return out, err
}

func (e *env) chat(token string) *acsclient.Chat {
	return &acsclient.Chat{Endpoint: e.stack.Info.HTTPAPI, Token: token, HTTP: e.hc}
}

// createThread makes a thread of creator + members (ACS allows 200 per
// call, so bigger rosters are added in chunks).
func (e *env) createThread(ctx context.Context, creator user, members []user) (string, error) {
	ps := func(us []user) []any {
		out := make([]any, 0, len(us))
		for _, u := range us {
			out = append(out, acsclient.Participant(u.ID, u.name))
		}
		return out
	}
	first := members[:min(len(members), 199)]
	r, err := e.chat(creator.Token).Do(ctx, acsclient.Request{Method: http.MethodPost, Path: "/chat/threads?api-version=2025-03-15",
		Body: map[string]any{"topic": "bench", "participants": ps(first)}})
	if err != nil {
		return "", err
	}
	var out struct {
		ChatThread struct{ ID string } `json:"chatThread"`
	}
	if r.Status != http.StatusCreated || r.JSON(&out) != nil || out.ChatThread.ID == "" {
		return "", fmt.Errorf("create thread: %s", r)
	}
	for rest := members[len(first):]; len(rest) > 0; {
		chunk := rest[:min(len(rest), 200)]
		rest = rest[len(chunk):]
		r, err := e.chat(creator.Token).Do(ctx, acsclient.Request{Method: http.MethodPost,
			Path: acsclient.ThreadPath(out.ChatThread.ID, "participants/:add"), Body: map[string]any{"participants": ps(chunk)}})
		if err != nil {
			return "", err
		}
		if r.Status != http.StatusCreated && r.Status != http.StatusOK {
			return "", fmt.Errorf("add participants: %s", r)
		}
	}
	return out.ChatThread.ID, nil
}

// messageBody is the JSON of a text message of n bytes of content.
func messageBody(n int, seq int) []byte {
	tag := fmt.Sprintf("bench %08d ", seq)
	content := tag + strings.Repeat("x", max(0, n-len(tag)))
	b, _ := json.Marshal(map[string]any{"content": content, "senderDisplayName": "bench", "type": "text"})
	return b
}

// send posts one message and returns its id.
func (e *env) send(ctx context.Context, token, threadID string, body []byte) (string, acsclient.Response, error) {
	r, err := e.chat(token).Do(ctx, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(threadID, "messages"), Body: body})
	if err != nil {
		return "", r, err
	}
	var out struct{ ID string }
	if r.Status != http.StatusCreated || r.JSON(&out) != nil || out.ID == "" {
		return "", r, fmt.Errorf("send: %s", r)
	}
	return out.ID, r, nil
}

// connect opens a raw WebSocket for a user, who is recipient idx of their
// thread, and feeds its message frames to the tracker.
func (e *env) connect(ctx context.Context, u user, idx int) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(dctx, e.stack.Info.WebSocket+"/?access_token="+url.QueryEscape(u.Token), &websocket.DialOptions{HTTPClient: e.wsHC})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket handshake %d: %w", resp.StatusCode, err)
		}
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	e.mu.Lock()
	e.conns = append(e.conns, c)
	e.mu.Unlock()
	go func() {
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				return
			}
			now := time.Now()
			var f struct {
				Type     string `json:"type"`
				ThreadID string `json:"threadId"`
				Data     struct {
					ID string `json:"id"`
				} `json:"data"`
			}
			if json.Unmarshal(b, &f) != nil || f.Type != "chatMessageReceived" {
				continue
			}
			e.track.delivered(f.ThreadID, f.Data.ID, idx, now, len(b))
		}
	}()
	return c, nil
}

// group is a thread with one WebSocket per participant.
type group struct {
	thread string
	users  []user
}

// newGroup creates n users, connects each, then makes their thread.
// Connecting first keeps the thread's own setup events (created,
// participants added) from racing the connections' $connect: a push to a
// connection still in $connect is answered 410 Gone, and the dispatcher
// then forgets that connection for good (see docs/benchmarks.md).
func (e *env) newGroup(ctx context.Context, n int) (*group, error) {
	us, err := e.createUsers(ctx, n)
	if err != nil {
		return nil, err
	}
	g := &group{users: us}
	if err := parallel(ctx, n, 8, func(i int) error {
		_, err := e.connect(ctx, us[i], i)
		return err
	}); err != nil {
		return nil, err
	}
	if g.thread, err = e.createThread(ctx, us[0], us[1:]); err != nil {
		return nil, err
	}
	e.track.setSize(g.thread, n)
	return g, nil
}

// ready waits for the setup's events to be dispatched and checks the
// groups' connections.
func (e *env) ready(ctx context.Context, groups ...*group) error {
	if err := e.settle(ctx); err != nil {
		return err
	}
	return e.checkConnections(ctx, groups...)
}

// checkConnections makes sure every member's connection is still known to
// the connections table after setup; a missing one would show as lost
// messages that are the setup's doing.
func (e *env) checkConnections(ctx context.Context, groups ...*group) error {
	for _, g := range groups {
		ids := make([]string, len(g.users))
		for i, u := range g.users {
			ids[i] = u.ID
		}
		conns, err := e.stack.Realtime.Lookup(ctx, ids)
		if err != nil {
			return err
		}
		for i, u := range g.users {
			if len(conns[u.ID]) != 1 {
				return fmt.Errorf("bench: after setup, participant %d of %s has %d registered connections, want 1", i, g.thread, len(conns[u.ID]))
			}
		}
	}
	return nil
}

// settle waits until the stream is drained (setup events delivered).
func (e *env) settle(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return e.stack.WaitStreams(wctx)
}

// parallel runs f(0…n-1), at most limit at a time, and returns the first error.
func parallel(ctx context.Context, n, limit int, f func(int) error) error {
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			if err := f(i); err != nil {
				once.Do(func() { first = err })
			}
		}(i)
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// invokeRecorder wraps the stack's function host: it times every
// invocation (Lambda bills the whole of it) and notes when the dispatcher
// was first handed each message.
type invokeRecorder struct {
	next          local.Invoker
	trackDispatch atomic.Bool

	mu         sync.Mutex
	durations  map[string][]float64 // ms by function logical id
	dispatchAt map[string]time.Time // by thread|message id
}

func newInvokeRecorder() *invokeRecorder {
	return &invokeRecorder{durations: map[string][]float64{}, dispatchAt: map[string]time.Time{}}
}

func (r *invokeRecorder) wrap(next local.Invoker) local.Invoker {
	r.next = next
	return r
}

const dispatchFunction = "DispatchFunction"

func (r *invokeRecorder) Invoke(ctx context.Context, function string, payload []byte) ([]byte, error) {
	start := time.Now()
	if function == dispatchFunction && r.trackDispatch.Load() {
		r.noteDispatch(payload, start)
	}
	out, err := r.next.Invoke(ctx, function, payload)
	ms := float64(time.Since(start).Microseconds()) / 1000
	r.mu.Lock()
	r.durations[function] = append(r.durations[function], ms)
	r.mu.Unlock()
	return out, err
}

func (r *invokeRecorder) noteDispatch(payload []byte, at time.Time) {
	var ev events.DynamoDBEvent
	if json.Unmarshal(payload, &ev) != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range ev.Records {
		if rec.EventName != "INSERT" {
			continue
		}
		pk, sk := rec.Change.Keys["pk"], rec.Change.Keys["sk"]
		if pk.DataType() != events.DataTypeString || sk.DataType() != events.DataTypeString {
			continue
		}
		thread, okT := strings.CutPrefix(pk.String(), "T#")
		seqStr, okM := strings.CutPrefix(sk.String(), "M#")
		var seq int64
		if !okT || !okM || json.Unmarshal([]byte(strings.TrimLeft(seqStr, "0")), &seq) != nil {
			continue
		}
		k := thread + "|" + chat.MessageID(thread, seq)
		if _, seen := r.dispatchAt[k]; !seen {
			r.dispatchAt[k] = at
		}
	}
}

// dispatchedAt is when the dispatcher was first invoked with a message.
func (r *invokeRecorder) dispatchedAt(thread, msgID string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.dispatchAt[thread+"|"+msgID]
	return t, ok
}

// take returns the durations since the last take.
func (r *invokeRecorder) take() map[string][]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.durations
	r.durations = map[string][]float64{}
	r.dispatchAt = map[string]time.Time{}
	return d
}

// billedMs is Lambda's billed duration: each invocation rounded up to 1 ms.
func billedMs(ds []float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	var sum float64
	for _, d := range ds {
		sum += math.Max(1, math.Ceil(d))
	}
	return sum / float64(len(ds))
}

// tracker follows every message from its 201 to each recipient.
type tracker struct {
	mu         sync.Mutex
	size       map[string]int
	msgs       map[string]*msgState
	frames     int64
	frameBytes int64
	duplicates int64
}

type msgState struct {
	thread   string
	id       string
	sentAt   time.Time // 201 received; zero until the sender registers it
	arrivals []time.Time
	got      int
	done     chan struct{}
}

func newTracker() *tracker {
	return &tracker{size: map[string]int{}, msgs: map[string]*msgState{}}
}

func (t *tracker) setSize(thread string, n int) {
	t.mu.Lock()
	t.size[thread] = n
	t.mu.Unlock()
}

func (t *tracker) stateLocked(thread, msgID string) *msgState {
	k := thread + "|" + msgID
	s := t.msgs[k]
	if s == nil {
		s = &msgState{thread: thread, id: msgID, arrivals: make([]time.Time, t.size[thread]), done: make(chan struct{})}
		t.msgs[k] = s
	}
	return s
}

// sent registers a message the sender got a 201 for.
func (t *tracker) sent(thread, msgID string, at time.Time) *msgState {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stateLocked(thread, msgID)
	s.sentAt = at
	return s
}

func (t *tracker) delivered(thread, msgID string, idx int, at time.Time, size int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, known := t.size[thread]; !known {
		return
	}
	t.frames++
	t.frameBytes += int64(size)
	s := t.stateLocked(thread, msgID)
	if idx < 0 || idx >= len(s.arrivals) {
		return
	}
	if !s.arrivals[idx].IsZero() {
		t.duplicates++
		return
	}
	s.arrivals[idx] = at
	s.got++
	if s.got == len(s.arrivals) {
		close(s.done)
	}
}

// reset forgets every message (between runs) and returns the frame counts.
func (t *tracker) reset() (frames, bytes, dups int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	frames, bytes, dups = t.frames, t.frameBytes, t.duplicates
	t.msgs = map[string]*msgState{}
	t.frames, t.frameBytes, t.duplicates = 0, 0, 0
	return frames, bytes, dups
}

// snapshot copies the registered messages' states.
func (t *tracker) snapshot() []msgState {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]msgState, 0, len(t.msgs))
	for _, s := range t.msgs {
		c := *s
		c.arrivals = append([]time.Time(nil), s.arrivals...)
		c.done = nil
		out = append(out, c)
	}
	return out
}

// waitAll waits until every registered message reached every recipient or
// the deadline passes.
func (t *tracker) waitAll(ctx context.Context, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		t.mu.Lock()
		pending := 0
		for _, s := range t.msgs {
			if !s.sentAt.IsZero() && s.got < len(s.arrivals) {
				pending++
			}
		}
		t.mu.Unlock()
		if pending == 0 {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// progress prints one line to the progress log.
func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
}
