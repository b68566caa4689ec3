package eventbus

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"
)

var fixedNow = time.Date(2024, 3, 1, 12, 30, 45, 678e6, time.UTC)

// start serves b over httptest and returns a real EventBridge client for it.
func start(t *testing.T, b http.Handler) (*eventbridge.Client, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", ""),
	}
	client := eventbridge.NewFromConfig(cfg, func(o *eventbridge.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
	})
	return client, srv
}

func put(t *testing.T, c *eventbridge.Client, entries ...types.PutEventsRequestEntry) *eventbridge.PutEventsOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
	if err != nil {
		t.Fatalf("PutEvents: %v", err)
	}
	if len(out.Entries) != len(entries) {
		t.Fatalf("got %d result entries for %d request entries", len(out.Entries), len(entries))
	}
	return out
}

func entry(source, detailType, detail string) types.PutEventsRequestEntry {
	return types.PutEventsRequestEntry{Source: aws.String(source), DetailType: aws.String(detailType), Detail: aws.String(detail)}
}

// logLines parses events.jsonl content, requiring one compact JSON object per
// line and a final newline.
func logLines(t *testing.T, log []byte) []map[string]json.RawMessage {
	t.Helper()
	var out []map[string]json.RawMessage
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not a JSON object: %v: %s", err, sc.Bytes())
		}
		var compact bytes.Buffer
		json.Compact(&compact, sc.Bytes())
		if compact.String() != sc.Text() {
			t.Errorf("log line is not compact: %s", sc.Bytes())
		}
		out = append(out, m)
	}
	if len(log) > 0 && log[len(log)-1] != '\n' {
		t.Errorf("log does not end in a newline")
	}
	return out
}

func str(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s is not a JSON string: %v", raw, err)
	}
	return s
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestBatchOfTenAcceptedAndLogged(t *testing.T) {
	var log bytes.Buffer
	b := New(Config{Log: &log, Account: "123456789012", Region: "eu-west-1", Now: func() time.Time { return fixedNow }})
	c, _ := start(t, b)

	explicit := time.Date(2023, 7, 4, 9, 8, 7, 250e6, time.UTC)
	var entries []types.PutEventsRequestEntry
	for i := range 10 {
		e := entry("threadline.chat", fmt.Sprintf("Type%d", i), fmt.Sprintf(`{ "n" : %d, "html": "<b>&</b>" }`, i))
		if i%2 == 1 {
			e.Resources = []string{fmt.Sprintf("arn:aws:acs:thread/%d", i), "r2"}
			e.Time = aws.Time(explicit)
			e.EventBusName = aws.String("chat-bus")
		}
		entries = append(entries, e)
	}
	out := put(t, c, entries...)
	if out.FailedEntryCount != 0 {
		t.Fatalf("FailedEntryCount = %d, want 0 (%+v)", out.FailedEntryCount, out.Entries)
	}
	ids := map[string]bool{}
	for i, r := range out.Entries {
		if r.ErrorCode != nil || r.EventId == nil || !uuidRE.MatchString(*r.EventId) {
			t.Fatalf("entry %d: %+v, want a UUID EventId", i, r)
		}
		ids[*r.EventId] = true
	}
	if len(ids) != 10 {
		t.Fatalf("EventIds not unique: %v", ids)
	}

	lines := logLines(t, log.Bytes())
	if len(lines) != 10 {
		t.Fatalf("log has %d lines, want 10:\n%s", len(lines), log.String())
	}
	events := b.Events()
	if len(events) != 10 {
		t.Fatalf("Events() has %d, want 10", len(events))
	}
	for i, l := range lines {
		for _, k := range []string{"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail", "eventBusName"} {
			if _, ok := l[k]; !ok {
				t.Errorf("line %d lacks %q: %v", i, k, l)
			}
		}
		if len(l) != 10 {
			t.Errorf("line %d has %d keys, want 10", i, len(l))
		}
		want := map[string]string{
			"version": "0", "id": *out.Entries[i].EventId, "detail-type": fmt.Sprintf("Type%d", i),
			"source": "threadline.chat", "account": "123456789012", "region": "eu-west-1",
			"time": "2024-03-01T12:30:45Z", "eventBusName": "default",
		}
		wantResources := `[]`
		if i%2 == 1 {
			want["time"] = "2023-07-04T09:08:07Z"
			want["eventBusName"] = "chat-bus"
			wantResources = fmt.Sprintf(`["arn:aws:acs:thread/%d","r2"]`, i)
		}
		for k, v := range want {
			if got := str(t, l[k]); got != v {
				t.Errorf("line %d %s = %q, want %q", i, k, got, v)
			}
		}
		if got := string(l["resources"]); got != wantResources {
			t.Errorf("line %d resources = %s, want %s", i, got, wantResources)
		}
		if got, want := string(l["detail"]), fmt.Sprintf(`{"n":%d,"html":"<b>&</b>"}`, i); got != want {
			t.Errorf("line %d detail = %s, want %s", i, got, want)
		}
		// memory and log agree
		ev := events[i]
		if ev.ID != *out.Entries[i].EventId || ev.DetailType != want["detail-type"] || ev.Time != want["time"] ||
			string(ev.Detail) != string(l["detail"]) || ev.EventBusName != want["eventBusName"] || ev.Version != "0" {
			t.Errorf("Events()[%d] = %+v disagrees with log line %v", i, ev, l)
		}
	}
	if s := b.Stats(); s != (Stats{Requests: 1, Accepted: 10}) {
		t.Errorf("Stats = %+v", s)
	}
}

func TestWholeRequestValidation(t *testing.T) {
	b := New(Config{})
	c, _ := start(t, b)
	ctx := context.Background()

	wantValidation := func(t *testing.T, err error) {
		t.Helper()
		var ae smithy.APIError
		if !errors.As(err, &ae) {
			t.Fatalf("err = %v, want an API error", err)
		}
		if ae.ErrorCode() != "ValidationException" || ae.ErrorMessage() == "" {
			t.Fatalf("API error %q %q, want ValidationException with a message", ae.ErrorCode(), ae.ErrorMessage())
		}
	}

	t.Run("eleven entries", func(t *testing.T) {
		var entries []types.PutEventsRequestEntry
		for i := range 11 {
			entries = append(entries, entry("s", "t", fmt.Sprintf(`{"i":%d}`, i)))
		}
		out, err := c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
		if err == nil {
			t.Fatalf("11 entries accepted: %+v", out)
		}
		wantValidation(t, err)
	})
	t.Run("no entries", func(t *testing.T) {
		_, err := c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{}})
		wantValidation(t, err)
	})
	// Size = Source + DetailType + Detail + Resources (+14 for Time).
	sized := func(n int, withTime bool) types.PutEventsRequestEntry {
		fixed := len("src") + len("type") + len(`{"p":""}`) + len("res")
		if withTime {
			fixed += 14
		}
		e := entry("src", "type", `{"p":"`+strings.Repeat("x", n-fixed)+`"}`)
		e.Resources = []string{"res"}
		if withTime {
			e.Time = aws.Time(fixedNow)
		}
		return e
	}
	t.Run("entry of exactly 256 KB accepted", func(t *testing.T) {
		for _, withTime := range []bool{false, true} {
			out := put(t, c, sized(256*1024, withTime))
			if out.FailedEntryCount != 0 {
				t.Fatalf("withTime=%v: %+v", withTime, out.Entries[0])
			}
		}
	})
	t.Run("entry over 256 KB", func(t *testing.T) {
		for _, withTime := range []bool{false, true} {
			_, err := c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{entry("s", "t", `{}`), sized(256*1024+1, withTime)}})
			wantValidation(t, err)
		}
	})
	if got := len(b.Events()); got != 2 {
		t.Errorf("%d events recorded, want only the 2 from the 256 KB subtest", got)
	}
	if s := b.Stats(); s != (Stats{Requests: 6, Accepted: 2}) {
		t.Errorf("Stats = %+v", s)
	}
}

func TestPerEntryFailures(t *testing.T) {
	var log bytes.Buffer
	b := New(Config{Log: &log})
	c, _ := start(t, b)

	noType := entry("app", "", `{}`)
	noType.DetailType = nil
	noSource := entry("", "T", `{}`)
	noSource.Source = nil
	noDetail := entry("app", "T", "")
	noDetail.Detail = nil
	entries := []types.PutEventsRequestEntry{
		entry("app", "A", `{"k":0}`),         // 0 ok
		noType,                               // 1 InvalidArgument
		entry("app", "B", `{"k":2}`),         // 2 ok
		entry("app", "C", `[1,2]`),           // 3 MalformedDetail (array)
		entry("app", "D", `not json`),        // 4 MalformedDetail
		noSource,                             // 5 InvalidArgument
		entry("app", "E", `"a string"`),      // 6 MalformedDetail
		noDetail,                             // 7 InvalidArgument
		entry("app", "F", `{"k":8,"x":[1]}`), // 8 ok
		entry("app", "G", `{"k":9`),          // 9 MalformedDetail (truncated)
	}
	want := []string{"", "InvalidArgument", "", "MalformedDetail", "MalformedDetail", "InvalidArgument", "MalformedDetail", "InvalidArgument", "", "MalformedDetail"}
	out := put(t, c, entries...)
	if out.FailedEntryCount != 7 {
		t.Errorf("FailedEntryCount = %d, want 7", out.FailedEntryCount)
	}
	var acceptedIDs []string
	for i, r := range out.Entries {
		code := aws.ToString(r.ErrorCode)
		if code != want[i] {
			t.Errorf("entry %d: ErrorCode %q, want %q (%+v)", i, code, want[i], r)
		}
		if want[i] == "" {
			if r.EventId == nil || r.ErrorMessage != nil {
				t.Errorf("entry %d: %+v, want only an EventId", i, r)
			} else {
				acceptedIDs = append(acceptedIDs, *r.EventId)
			}
		} else if r.EventId != nil || aws.ToString(r.ErrorMessage) == "" {
			t.Errorf("entry %d: %+v, want an ErrorMessage and no EventId", i, r)
		}
	}
	events := b.Events()
	var gotIDs, gotTypes []string
	for _, e := range events {
		gotIDs = append(gotIDs, e.ID)
		gotTypes = append(gotTypes, e.DetailType)
	}
	if !slices.Equal(gotTypes, []string{"A", "B", "F"}) || !slices.Equal(gotIDs, acceptedIDs) {
		t.Errorf("accepted %v %v, want types [A B F] with ids %v", gotTypes, gotIDs, acceptedIDs)
	}
	if n := len(logLines(t, log.Bytes())); n != 3 {
		t.Errorf("log has %d lines, want 3", n)
	}
	if s := b.Stats(); s != (Stats{Requests: 1, Accepted: 3, Rejected: 7}) {
		t.Errorf("Stats = %+v", s)
	}
}

func TestRejectThenRetrySucceeds(t *testing.T) {
	type call struct {
		detailType string
		attempt    int
	}
	var mu sync.Mutex
	var calls []call
	b := New(Config{Reject: func(e Entry, attempt int) bool {
		mu.Lock()
		calls = append(calls, call{e.DetailType, attempt})
		mu.Unlock()
		return e.DetailType == "Flaky" && attempt == 0
	}})
	c, _ := start(t, b)

	flaky := entry("app", "Flaky", `{"id":1}`)
	out := put(t, c, entry("app", "A", `{}`), flaky, entry("app", "B", `{}`))
	if out.FailedEntryCount != 1 {
		t.Fatalf("FailedEntryCount = %d, want 1 (%+v)", out.FailedEntryCount, out.Entries)
	}
	if r := out.Entries[1]; aws.ToString(r.ErrorCode) != "InternalFailure" || r.EventId != nil {
		t.Fatalf("entry 1 = %+v, want InternalFailure", r)
	}
	if out.Entries[0].EventId == nil || out.Entries[2].EventId == nil {
		t.Fatalf("neighbours failed: %+v", out.Entries)
	}
	if n := len(b.Events()); n != 2 {
		t.Fatalf("%d events after the first batch, want 2", n)
	}

	// A differently-detailed entry is a different entry: attempt 0, rejected.
	other := put(t, c, entry("app", "Flaky", `{"id":2}`))
	if aws.ToString(other.Entries[0].ErrorCode) != "InternalFailure" {
		t.Fatalf("new Flaky entry = %+v, want InternalFailure on its attempt 0", other.Entries[0])
	}

	// Resubmitting the failed entry is its attempt 1: accepted.
	retry := put(t, c, flaky)
	if retry.FailedEntryCount != 0 || retry.Entries[0].EventId == nil {
		t.Fatalf("retry = %+v, want accepted", retry.Entries[0])
	}
	evs := b.Events()
	if len(evs) != 3 || evs[2].DetailType != "Flaky" || string(evs[2].Detail) != `{"id":1}` || evs[2].ID != *retry.Entries[0].EventId {
		t.Fatalf("events = %+v", evs)
	}
	wantCalls := []call{{"A", 0}, {"Flaky", 0}, {"B", 0}, {"Flaky", 0}, {"Flaky", 1}}
	if !slices.Equal(calls, wantCalls) {
		t.Errorf("Reject calls %v, want %v", calls, wantCalls)
	}
	if s := b.Stats(); s != (Stats{Requests: 3, Accepted: 3, Rejected: 2}) {
		t.Errorf("Stats = %+v", s)
	}
}

func TestEventsEndpointFilters(t *testing.T) {
	b := New(Config{})
	c, srv := start(t, b)
	put(t, c,
		entry("chat", "MessageSent", `{"n":1}`),
		entry("chat", "ThreadCreated", `{"n":2}`),
		entry("identity", "MessageSent", `{"n":3}`),
		entry("chat", "MessageSent", `{"n":4}`),
	)
	list := func(query url.Values) []int {
		t.Helper()
		resp, err := http.Get(srv.URL + "/events?" + query.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("GET /events?%s: %d %s %s", query.Encode(), resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if !bytes.HasPrefix(bytes.TrimSpace(body), []byte("[")) {
			t.Fatalf("GET /events?%s = %s, want a JSON array", query.Encode(), body)
		}
		var evs []Event
		if err := json.Unmarshal(body, &evs); err != nil {
			t.Fatal(err)
		}
		ns := []int{}
		for _, e := range evs {
			var d struct{ N int }
			json.Unmarshal(e.Detail, &d)
			ns = append(ns, d.N)
		}
		return ns
	}
	for _, tc := range []struct {
		q    url.Values
		want []int
	}{
		{url.Values{}, []int{1, 2, 3, 4}},
		{url.Values{"detail-type": {"MessageSent"}}, []int{1, 3, 4}},
		{url.Values{"source": {"chat"}}, []int{1, 2, 4}},
		{url.Values{"source": {"chat"}, "detail-type": {"MessageSent"}}, []int{1, 4}},
		{url.Values{"detail-type": {"ThreadCreated", "MessageSent"}, "source": {"identity"}}, []int{3}},
		{url.Values{"source": {"nobody"}}, []int{}},
	} {
		if got := list(tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("GET /events?%s = %v, want %v", tc.q.Encode(), got, tc.want)
		}
	}
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /healthz = %d", resp.StatusCode)
	}
}

func TestConcurrentPutEventsLoseNothing(t *testing.T) {
	var log bytes.Buffer // deliberately not goroutine-safe: the bus serializes writes
	b := New(Config{Log: &log})
	c, _ := start(t, b)
	const workers, requests, perRequest = 8, 20, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*requests)
	for w := range workers {
		wg.Go(func() {
			for r := range requests {
				var entries []types.PutEventsRequestEntry
				for i := range perRequest {
					entries = append(entries, entry(fmt.Sprintf("w%d", w), "Tick", fmt.Sprintf(`{"w":%d,"r":%d,"i":%d}`, w, r, i)))
				}
				out, err := c.PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: entries})
				if err != nil {
					errs <- err
					continue
				}
				if out.FailedEntryCount != 0 {
					errs <- fmt.Errorf("worker %d request %d: %d failed", w, r, out.FailedEntryCount)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	const total = workers * requests * perRequest
	events := b.Events()
	lines := logLines(t, log.Bytes())
	if len(events) != total || len(lines) != total {
		t.Fatalf("%d events, %d log lines, want %d", len(events), len(lines), total)
	}
	seen := map[string]bool{}
	ids := map[string]bool{}
	lastInRequest := map[string]int{} // per worker+request, entries keep their order
	for i, e := range events {
		if str(t, lines[i]["id"]) != e.ID {
			t.Fatalf("log line %d is %s, Events()[%d] is %s: orders differ", i, lines[i]["id"], i, e.ID)
		}
		var d struct{ W, R, I int }
		json.Unmarshal(e.Detail, &d)
		key := string(e.Detail)
		if seen[key] || ids[e.ID] {
			t.Fatalf("duplicate event %s %s", e.ID, key)
		}
		seen[key], ids[e.ID] = true, true
		req := fmt.Sprintf("%d/%d", d.W, d.R)
		if last, ok := lastInRequest[req]; ok && d.I != last+1 {
			t.Errorf("request %s: entry %d follows entry %d", req, d.I, last)
		}
		lastInRequest[req] = d.I
	}
	if s := b.Stats(); s != (Stats{Requests: workers * requests, Accepted: total}) {
		t.Errorf("Stats = %+v", s)
	}
}

// TestWire pins the awsJson1_1 details the SDK relies on: what it sends, what
// the bus answers, and how errors are shaped.
func TestWire(t *testing.T) {
	var mu sync.Mutex
	var seen []*http.Request
	var bodies [][]byte
	b := New(Config{})
	spy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen, bodies = append(seen, r), append(bodies, body)
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		b.ServeHTTP(w, r)
	})
	c, srv := start(t, spy)

	e := entry("app", "T", `{}`)
	e.Time = aws.Time(time.Unix(1700000000, 500e6))
	e.TraceHeader = aws.String("Root=1-abc")
	put(t, c, e)
	r := seen[0]
	if r.Method != http.MethodPost || r.URL.Path != "/" || r.Header.Get("X-Amz-Target") != "AWSEvents.PutEvents" ||
		r.Header.Get("Content-Type") != "application/x-amz-json-1.1" || !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		t.Errorf("SDK sent %s %s %v", r.Method, r.URL.Path, r.Header)
	}
	if !bytes.Contains(bodies[0], []byte(`"Time":1700000000.5`)) {
		t.Errorf("SDK body %s: Time is not epoch seconds", bodies[0])
	}
	if got := b.Events()[0].Time; got != "2023-11-14T22:13:20Z" {
		t.Errorf("envelope time %q", got)
	}

	raw := func(target, auth, body string) (*http.Response, map[string]string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		if target != "" {
			req.Header.Set("X-Amz-Target", target)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]string
		data, _ := io.ReadAll(resp.Body)
		json.Unmarshal(data, &m)
		if ct := resp.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
			t.Errorf("response Content-Type %q", ct)
		}
		if resp.Header.Get("X-Amzn-Requestid") == "" {
			t.Errorf("no X-Amzn-Requestid")
		}
		return resp, m
	}
	for _, tc := range []struct {
		name, target, auth, body string
		status                   int
		typ                      string
	}{
		{"no authorization", "AWSEvents.PutEvents", "", `{"Entries":[{"Source":"a","DetailType":"b","Detail":"{}"}]}`, 400, "MissingAuthenticationTokenException"},
		{"unknown operation", "AWSEvents.PutRule", "x", `{}`, 400, "UnknownOperationException"},
		{"malformed JSON", "AWSEvents.PutEvents", "x", `{"Entries":[`, 400, "SerializationException"},
		{"Time as a string", "AWSEvents.PutEvents", "x", `{"Entries":[{"Source":"a","DetailType":"b","Detail":"{}","Time":"2024-01-01T00:00:00Z"}]}`, 400, "SerializationException"},
		{"Entries missing", "AWSEvents.PutEvents", "x", `{}`, 400, "ValidationException"},
	} {
		resp, m := raw(tc.target, tc.auth, tc.body)
		if resp.StatusCode != tc.status || m["__type"] != tc.typ || m["message"] == "" {
			t.Errorf("%s: %d %v, want %d %s with a message", tc.name, resp.StatusCode, m, tc.status, tc.typ)
		}
	}
	resp, _ := raw("AWSEvents.PutEvents", "x", `{"Entries":[{"Source":"a","DetailType":"b","Detail":"{}"}]}`)
	if resp.StatusCode != 200 {
		t.Errorf("unsigned but authorized request: %d", resp.StatusCode)
	}
	if n := len(b.Events()); n != 2 {
		t.Errorf("%d events, want 2", n)
	}
}

func TestRejectShare(t *testing.T) {
	if RejectShare(0) != nil {
		t.Error("share 0 must inject nothing")
	}
	for _, share := range []float64{0.25, 1} {
		reject, n := RejectShare(share), 0
		for i := range 4000 {
			if reject(Entry{}, i%4) {
				n++
			}
		}
		if got := float64(n) / 4000; got < share-0.05 || got > share+0.05 {
			t.Errorf("share %.2f rejected %.3f of attempts", share, got)
		}
	}
}
