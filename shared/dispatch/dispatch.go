// Package dispatch is the stream Lambda: it decodes the chat table's stream
// records and hands the changes to the real-time dispatcher, reporting a
// partial batch failure from the first change it could not deliver, so
// Lambda retries from there and nothing before it is redone.
package dispatch

import (
	"context"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/obs"
	"github.com/threadline/threadline/shared/realtime"
	"github.com/threadline/threadline/shared/store"
)

// Deliverer is what the handler needs of the dispatcher.
type Deliverer interface {
	Dispatch(ctx context.Context, changes []chat.Change) (int, error)
}

var _ Deliverer = (*realtime.Dispatcher)(nil)

// Handler handles one batch of stream records.
func Handler(d Deliverer, log *slog.Logger) func(context.Context, events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	return func(ctx context.Context, ev events.DynamoDBEvent) (_ events.DynamoDBEventResponse, err error) {
		ctx, rec := obs.WithRecorder(ctx)
		start := time.Now()
		defer func() {
			rec.Add(obs.StreamRecords, float64(len(ev.Records)))
			rec.Add(obs.ServerErrors, 0)
			rec.Milliseconds(obs.Latency, time.Since(start))
			rec.Flush(ctx, log, "Dispatch")
		}()
		var changes []chat.Change
		var seqs []string
		fail := func(seq string) (events.DynamoDBEventResponse, error) {
			rec.Add(obs.ServerErrors, 1)
			return events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{{ItemIdentifier: seq}}}, nil
		}
		for _, rec := range ev.Records {
			ch, ok, err := store.DecodeChange(rec)
			if err != nil {
				// Deliver what precedes the unreadable record, then fail at
				// it: Lambda retries it a bounded number of times and then
				// sends it to the dead-letter queue, instead of it blocking
				// the shard or vanishing.
				log.ErrorContext(ctx, "undecodable stream record", "sequenceNumber", rec.Change.SequenceNumber, "error", err.Error())
				if i, derr := d.Dispatch(ctx, changes); derr != nil {
					log.ErrorContext(ctx, "dispatch failed", "sequenceNumber", seqs[i], "error", derr.Error())
					return fail(seqs[i])
				}
				return fail(rec.Change.SequenceNumber)
			}
			if ok {
				changes = append(changes, ch)
				seqs = append(seqs, rec.Change.SequenceNumber)
			}
		}
		i, err := d.Dispatch(ctx, changes)
		if err != nil {
			log.ErrorContext(ctx, "dispatch failed", "sequenceNumber", seqs[i], "records", len(ev.Records), "error", err.Error())
			return fail(seqs[i])
		}
		log.InfoContext(ctx, "dispatched", "records", len(ev.Records), "changes", len(changes))
		return events.DynamoDBEventResponse{}, nil
	}
}
