// Package bus publishes partner events to an EventBridge bus.
package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/threadline/threadline/shared/partner"
)

// API is the part of the EventBridge client used here.
type API interface {
	PutEvents(context.Context, *eventbridge.PutEventsInput, ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Counter counts what was published (shared/obs implements it).
type Counter interface {
	Count(ctx context.Context, name string, n float64)
}

// Publisher implements partner.Publisher.
type Publisher struct {
	API         API
	Bus         string // the bus name or ARN
	Source      string // the events' Source, e.g. threadline.chat
	Attempts    int    // per entry, counting the first; default 4
	Concurrency int    // PutEvents calls in flight; default 8
	Metrics     Counter
}

var _ partner.Publisher = Publisher{}

// maxEntries is PutEvents' limit per call.
const maxEntries = 10

// Publish sends events in batches of ten. The entries of a batch that fail
// are sent again, with backoff, a bounded number of times; if any still fails, Publish fails, so
// the stream record is retried (or dead-lettered) rather than dropped.
// Retries may deliver an entry twice: partners drop repeats by eventId.
func (p Publisher) Publish(ctx context.Context, events []partner.Event) error {
	if len(events) == 0 {
		return nil
	}
	entries := make([]types.PutEventsRequestEntry, 0, len(events))
	for _, e := range events {
		detail, err := json.Marshal(e.Detail)
		if err != nil {
			return fmt.Errorf("event %s: %w", e.ID, err)
		}
		entries = append(entries, types.PutEventsRequestEntry{
			EventBusName: aws.String(p.Bus), Source: aws.String(p.Source), DetailType: aws.String(e.DetailType),
			Detail: aws.String(string(detail)), Time: aws.Time(e.Time),
		})
	}
	limit := p.Concurrency
	if limit <= 0 {
		limit = 8
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	published, failed := 0, 0
	for start := 0; start < len(entries); start += maxEntries {
		chunk := entries[start:min(start+maxEntries, len(entries))]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ok, bad, err := p.send(ctx, chunk)
			mu.Lock()
			defer mu.Unlock()
			published += ok
			failed += bad
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if p.Metrics != nil {
		p.Metrics.Count(ctx, "EventsPublished", float64(published))
		p.Metrics.Count(ctx, "EventsFailed", float64(failed))
	}
	return errors.Join(errs...)
}

// send puts one chunk, retrying the entries that fail.
func (p Publisher) send(ctx context.Context, chunk []types.PutEventsRequestEntry) (published, failed int, err error) {
	attempts := p.Attempts
	if attempts <= 0 {
		attempts = 4
	}
	pending := chunk
	backoff := 50 * time.Millisecond
	var last error
	for attempt := 0; attempt < attempts && len(pending) > 0; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return published, len(pending), ctx.Err()
			case <-time.After(backoff):
			}
			backoff *= 2
		}
		out, err := p.API.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: pending})
		if err != nil {
			last = fmt.Errorf("put events: %w", err) // the whole call failed (throttled): retry it all
			continue
		}
		if len(out.Entries) != len(pending) {
			last = fmt.Errorf("put events: %d results for %d entries", len(out.Entries), len(pending))
			continue // cannot tell which went through: send them all again
		}
		var again []types.PutEventsRequestEntry
		for i, r := range out.Entries { // index-aligned with the request
			if r.ErrorCode != nil {
				again = append(again, pending[i])
				last = fmt.Errorf("put events: %s: %s", aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage))
			}
		}
		published += len(pending) - len(again)
		pending = again
	}
	if len(pending) > 0 {
		return published, len(pending), fmt.Errorf("%d events not published after %d attempts: %w", len(pending), attempts, last)
	}
	return published, 0, nil
}
