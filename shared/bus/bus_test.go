package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/threadline/threadline/shared/bus"
	"github.com/threadline/threadline/shared/partner"
)

// fakeBus records every call; fail decides, per entry and attempt, whether
// it comes back with an ErrorCode, and callErr fails whole calls.
type fakeBus struct {
	mu       sync.Mutex
	calls    [][]types.PutEventsRequestEntry
	attempts map[string]int
	accepted map[string]int
	fail     func(eventID string, attempt int) bool
	callErr  func(call int) error
	short    bool // answer with one result fewer than entries
}

func newFakeBus() *fakeBus { return &fakeBus{attempts: map[string]int{}, accepted: map[string]int{}} }

func eventID(e types.PutEventsRequestEntry) string {
	var d struct{ EventID string }
	_ = json.Unmarshal([]byte(aws.ToString(e.Detail)), &d)
	return d.EventID
}

func (f *fakeBus) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, in.Entries)
	if f.callErr != nil {
		if err := f.callErr(len(f.calls)); err != nil {
			return nil, err
		}
	}
	out := &eventbridge.PutEventsOutput{}
	for _, e := range in.Entries {
		id := eventID(e)
		n := f.attempts[id]
		f.attempts[id]++
		if f.fail != nil && f.fail(id, n) {
			out.Entries = append(out.Entries, types.PutEventsResultEntry{ErrorCode: aws.String("InternalFailure"), ErrorMessage: aws.String("try again")})
			out.FailedEntryCount++
			continue
		}
		f.accepted[id]++
		out.Entries = append(out.Entries, types.PutEventsResultEntry{EventId: aws.String("eb-" + id)})
	}
	if f.short {
		out.Entries = out.Entries[:len(out.Entries)-1]
	}
	return out, nil
}

type counts map[string]float64

func (c counts) Count(_ context.Context, name string, n float64) { c[name] += n }

func events(n int) []partner.Event {
	var out []partner.Event
	for i := range n {
		id := fmt.Sprintf("p_%02d", i)
		out = append(out, partner.Event{ID: id, DetailType: partner.MessageReceivedInThread, Time: time.Unix(1795660000, 0),
			Detail: map[string]any{"eventId": id, "messageBody": "<b>x</b>"}})
	}
	return out
}

func TestPublish(t *testing.T) {
	tests := []struct {
		name          string
		events        int
		fail          func(string, int) bool
		callErr       func(int) error
		wantErr       bool
		wantCalls     int
		wantPublished float64
		wantFailed    float64
	}{
		{name: "nothing to publish", events: 0, wantCalls: 0},
		{name: "one batch", events: 7, wantCalls: 1, wantPublished: 7},
		{name: "batches of ten", events: 23, wantCalls: 3, wantPublished: 23},
		{name: "only the failed entries are sent again", events: 10, fail: func(id string, n int) bool { return n == 0 && id == "p_03" },
			wantCalls: 2, wantPublished: 10},
		{name: "an entry refused three times still goes through on the fourth", events: 3, fail: func(id string, n int) bool { return id == "p_01" && n < 3 },
			wantCalls: 4, wantPublished: 3},
		{name: "an entry always refused fails the publish", events: 12, fail: func(id string, _ int) bool { return id == "p_11" },
			wantErr: true, wantCalls: 2 + 3, wantPublished: 11, wantFailed: 1},
		{name: "a throttled call is retried whole", events: 4, callErr: func(call int) error {
			if call == 1 {
				return errors.New("ThrottlingException")
			}
			return nil
		}, wantCalls: 2, wantPublished: 4},
		{name: "a call that keeps failing fails the publish", events: 2, callErr: func(int) error { return errors.New("AccessDenied") },
			wantErr: true, wantCalls: 4, wantFailed: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeBus()
			f.fail, f.callErr = tt.fail, tt.callErr
			m := counts{}
			p := bus.Publisher{API: f, Bus: "chat-bus", Source: "threadline.chat", Metrics: m}
			err := p.Publish(context.Background(), events(tt.events))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if len(f.calls) != tt.wantCalls {
				t.Errorf("%d PutEvents calls, want %d", len(f.calls), tt.wantCalls)
			}
			for _, c := range f.calls {
				if len(c) > 10 {
					t.Errorf("a call with %d entries", len(c))
				}
				for _, e := range c {
					if aws.ToString(e.EventBusName) != "chat-bus" || aws.ToString(e.Source) != "threadline.chat" || aws.ToString(e.DetailType) != partner.MessageReceivedInThread || e.Time == nil {
						t.Errorf("entry %+v", e)
					}
					if !strings.Contains(aws.ToString(e.Detail), "\\u003cb\\u003ex") {
						// Detail is JSON; html in bodies arrives escaped, and intact.
						t.Errorf("detail %s", aws.ToString(e.Detail))
					}
				}
			}
			if m["EventsPublished"] != tt.wantPublished || m["EventsFailed"] != tt.wantFailed {
				t.Errorf("metrics %v, want published %v failed %v", m, tt.wantPublished, tt.wantFailed)
			}
			for i, c := range f.calls {
				if i > 0 && tt.fail != nil && tt.events <= 10 && len(c) != 1 {
					t.Errorf("retry %d sent %d entries; only the refused one should go again", i, len(c))
				}
			}
			if !tt.wantErr {
				for _, e := range events(tt.events) {
					if f.accepted[e.ID] != 1 {
						t.Errorf("%s accepted %d times", e.ID, f.accepted[e.ID])
					}
				}
			}
		})
	}
}

func TestShortAnswerIsRetriedWhole(t *testing.T) {
	f := newFakeBus()
	f.short = true
	err := bus.Publisher{API: f, Bus: "b", Source: "s", Attempts: 2}.Publish(context.Background(), events(3))
	if err == nil || len(f.calls) != 2 || len(f.calls[1]) != 3 {
		t.Fatalf("err %v after %d calls; a result list that does not match the entries must be retried whole", err, len(f.calls))
	}
}

func TestCancelledContextStopsRetrying(t *testing.T) {
	f := newFakeBus()
	f.fail = func(string, int) bool { return true }
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := bus.Publisher{API: f, Bus: "b", Source: "s"}.Publish(ctx, events(1))
	if !errors.Is(err, context.Canceled) || len(f.calls) != 1 {
		t.Fatalf("err %v after %d calls", err, len(f.calls))
	}
}
