package streams

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// Retry pacing. Lambda backs off for seconds; locally tests must stay fast.
const (
	splitDelay    = 10 * time.Millisecond
	retryBase     = 10 * time.Millisecond
	retryMax      = 100 * time.Millisecond
	readErrorBase = 100 * time.Millisecond
	readErrorMax  = time.Second
)

// worker reads one shard and invokes the function with its records, one
// batch at a time, like the ESM's per-shard processor.
type worker struct {
	r         *Run
	shard     string
	startType types.ShardIteratorType // where to start when nothing is checkpointed

	iter  *string // next GetRecords iterator; nil = reposition first
	ended bool    // the shard is closed and fully read

	// checkpoint is the last sequence number fully handled (delivered,
	// filtered out or dead-lettered); the shard is re-read after it when an
	// iterator has to be replaced.
	checkpoint string
	resumeAt   string    // first dropped record when nothing is checkpointed yet
	readUpTo   string    // last sequence number read
	buf        []*record // read and matching a filter, not yet handled
	maxSent    string    // highest sequence number sent to the function
	window     time.Time // batching window start: the end of the previous invocation
	readErrors int
}

func (w *worker) run() {
	defer w.r.wg.Done()
	ctx := w.r.ctx
	m := &w.r.m
	w.window = time.Now()
	for ctx.Err() == nil {
		if w.iter == nil && !w.ended {
			if err := w.position(ctx); err != nil {
				w.readFailed(ctx, "get shard iterator", err)
				continue
			}
		}
		if w.wantRecords() {
			got, err := w.poll(ctx)
			if err != nil {
				w.readFailed(ctx, "get records", err)
				continue
			}
			w.readErrors = 0
			if got > 0 && w.wantRecords() {
				continue // the shard has more: read on before deciding
			}
			if got == 0 && len(w.buf) == 0 && !w.ended {
				sleep(ctx, m.PollInterval)
				continue
			}
		}
		if len(w.buf) == 0 {
			if w.ended {
				w.finishShard(ctx)
				return
			}
			continue
		}
		if left := w.windowLeft(); left > 0 && len(w.buf) < m.BatchSize && !w.ended {
			sleep(ctx, min(left, m.PollInterval))
			continue
		}
		w.process(ctx, w.take())
		w.window = time.Now()
	}
}

// wantRecords reports whether to read before invoking: when nothing is
// buffered, or while a batching window is still filling.
func (w *worker) wantRecords() bool {
	if w.ended || w.iter == nil || len(w.buf) >= w.r.m.BatchSize {
		return false
	}
	return len(w.buf) == 0 || w.windowLeft() > 0
}

func (w *worker) windowLeft() time.Duration {
	if w.r.m.MaxBatchingWindow <= 0 {
		return 0
	}
	return w.r.m.MaxBatchingWindow - time.Since(w.window)
}

// position gets a fresh iterator: after the checkpoint when there is one,
// else at the first record dropped from the buffer, else where the mapping
// (or, for a child shard, the shard) starts.
func (w *worker) position(ctx context.Context) error {
	in := &dynamodbstreams.GetShardIteratorInput{StreamArn: &w.r.streamARN, ShardId: &w.shard, ShardIteratorType: w.startType}
	switch {
	case w.checkpoint != "":
		in.ShardIteratorType, in.SequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(w.checkpoint)
	case w.resumeAt != "":
		in.ShardIteratorType, in.SequenceNumber = types.ShardIteratorTypeAtSequenceNumber, aws.String(w.resumeAt)
	}
	out, err := w.r.api.GetShardIterator(ctx, in)
	var trimmed *types.TrimmedDataAccessException
	if errors.As(err, &trimmed) {
		// The checkpoint is older than the stream's retention: like Lambda,
		// carry on from the oldest record still there.
		w.r.log.Warn("records past retention were skipped", "shard", w.shard, "after", w.checkpoint)
		in.ShardIteratorType, in.SequenceNumber = types.ShardIteratorTypeTrimHorizon, nil
		out, err = w.r.api.GetShardIterator(ctx, in)
	}
	if err != nil {
		return err
	}
	if w.iter = out.ShardIterator; w.iter == nil {
		w.ended = true
	}
	return nil
}

// readFailed handles a failed read: the iterator may be expired or invalid,
// so the buffer is dropped and the shard re-read from the checkpoint.
func (w *worker) readFailed(ctx context.Context, op string, err error) {
	if ctx.Err() != nil {
		return
	}
	var expired *types.ExpiredIteratorException
	if errors.As(err, &expired) {
		w.r.log.Info("shard iterator expired; resuming after the checkpoint", "shard", w.shard, "checkpoint", w.checkpoint)
	} else {
		w.r.log.Warn("stream read failed", "shard", w.shard, "op", op, "error", err.Error())
	}
	if w.checkpoint == "" && len(w.buf) > 0 {
		w.resumeAt = w.buf[0].seq
	}
	w.buf = nil
	w.readUpTo = w.checkpoint
	w.iter = nil
	w.readErrors++
	if !errors.As(err, &expired) {
		sleep(ctx, min(readErrorBase<<min(w.readErrors-1, 4), readErrorMax))
	}
}

// poll reads once. Records no filter matches are dropped here, as Lambda
// filters before batching.
func (w *worker) poll(ctx context.Context) (int, error) {
	epoch := w.r.currentEpoch()
	out, err := w.r.api.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: w.iter, Limit: aws.Int32(getRecordsLimit)})
	if err != nil {
		return 0, err
	}
	if w.iter = out.NextShardIterator; w.iter == nil {
		w.ended = true // the shard is closed and this was its last page
	}
	now := time.Now()
	for _, sr := range out.Records {
		rec, err := convertRecord(sr, w.r.streamARN, w.r.p.Region)
		if err != nil {
			// Cannot happen with DynamoDB's own types; never block the shard on it.
			w.r.log.Error("unreadable stream record skipped", "shard", w.shard, "error", err.Error())
			continue
		}
		rec.readAt = now
		w.readUpTo = rec.seq
		if !w.r.matches(rec) {
			w.r.filtered.Add(1)
			if len(w.buf) == 0 {
				w.checkpoint = rec.seq
			}
			continue
		}
		w.buf = append(w.buf, rec)
	}
	if len(out.Records) == 0 && len(w.buf) == 0 && !w.ended {
		w.r.markIdle(w.shard, epoch)
	}
	return len(out.Records), nil
}

func (r *Run) matches(rec *record) bool {
	if len(r.filters) == 0 {
		return true
	}
	v, err := decodeForFilter(rec.raw)
	if err != nil {
		return false // Lambda drops records it cannot parse when filtering
	}
	for _, f := range r.filters {
		if f.match(v) {
			return true
		}
	}
	return false
}

// take removes the next batch from the buffer: up to BatchSize records and
// no more than fits Lambda's 6 MB payload limit.
func (w *worker) take() []*record {
	n, size := 0, len(`{"Records":[]}`)
	for n < len(w.buf) && n < w.r.m.BatchSize {
		size += len(w.buf[n].raw) + 1
		if n > 0 && size > maxPayloadBytes {
			break
		}
		n++
	}
	batch := w.buf[:n:n]
	w.buf = w.buf[n:]
	return batch
}

// part is a batch, or a piece of one after bisecting or a partial failure,
// with the retry attempts charged to it.
type part struct {
	recs     []*record
	attempts int
}

// process handles one batch until every record in it is delivered or
// dead-lettered, checkpointing as pieces succeed. Pieces are handled in
// order, so the shard stays ordered and blocked on failure, as on Lambda.
func (w *worker) process(ctx context.Context, batch []*record) {
	m := &w.r.m
	parts := []part{{recs: batch}}
	for len(parts) > 0 {
		if ctx.Err() != nil {
			return // stopped: the records stay unprocessed, as after a restart
		}
		p := &parts[0]
		if n := w.expired(p.recs); n > 0 {
			w.deadLetter(p.recs[:n], "RecordAgeExceeded", fmt.Sprintf("record is older than MaxRecordAge (%s)", m.MaxRecordAge), p.attempts)
			w.advance(p.recs[n-1].seq)
			if p.recs = p.recs[n:]; len(p.recs) == 0 {
				parts = parts[1:]
			}
			continue
		}

		failedAt, err := w.invoke(ctx, p.recs)
		switch {
		case err == nil && failedAt < 0:
			w.advance(p.recs[len(p.recs)-1].seq)
			parts = parts[1:]
			continue
		case err == nil:
			// Partial failure: everything before the lowest reported record
			// is done; the rest is retried from it.
			if failedAt > 0 {
				w.advance(p.recs[failedAt-1].seq)
				p.recs = p.recs[failedAt:]
			}
			p.attempts++
			err = fmt.Errorf("function reported batch item failures from sequence number %s", p.recs[0].seq)
		case m.BisectOnError && len(p.recs) > 1:
			// "Splitting a batch does not count towards the retry quota"
			// (Lambda docs): each half keeps the attempts charged so far.
			half := len(p.recs) / 2
			w.r.log.Warn("function error; bisecting batch", "shard", w.shard, "records", len(p.recs), "error", err.Error())
			parts = append([]part{{p.recs[:half], p.attempts}, {p.recs[half:], p.attempts}}, parts[1:]...)
			sleep(ctx, splitDelay)
			continue
		default:
			p.attempts++
		}

		if m.MaxRetryAttempts >= 0 && p.attempts > m.MaxRetryAttempts {
			w.deadLetter(p.recs, "RetryAttemptsExhausted", err.Error(), p.attempts)
			w.advance(p.recs[len(p.recs)-1].seq)
			parts = parts[1:]
			continue
		}
		w.r.log.Warn("batch failed; retrying", "shard", w.shard, "records", len(p.recs), "attempt", p.attempts, "error", err.Error())
		sleep(ctx, min(retryBase<<min(p.attempts-1, 4), retryMax))
	}
	if len(w.buf) == 0 {
		w.checkpoint = w.readUpTo // covers records filtered out after the batch
	}
}

// expired counts the leading records older than MaxRecordAge. Records are
// in write order, so the old ones are always a prefix.
func (w *worker) expired(recs []*record) int {
	limit := w.r.m.MaxRecordAge
	if limit <= 0 {
		return 0
	}
	n := 0
	for n < len(recs) && recordAge(recs[n]) > limit {
		n++
	}
	return n
}

// recordAge is the least age the record can have. DynamoDB Local rounds
// ApproximateCreationDateTime down to the minute (AWS: to the second), so
// the record was written up to a minute later, and no later than it was
// read; without this a fresh record could look 59 s old and be discarded
// early under Lambda's smallest MaximumRecordAgeInSeconds (60).
func recordAge(r *record) time.Duration {
	if r.created.IsZero() {
		return 0
	}
	born := r.created.Add(time.Minute)
	if !r.readAt.IsZero() && r.readAt.Before(born) {
		born = r.readAt
	}
	return time.Since(born)
}

func (w *worker) advance(seq string) {
	w.checkpoint = seq
	w.resumeAt = ""
}

// invoke sends recs and interprets the result: failedAt < 0 and no error is
// success, failedAt >= 0 is the index of the lowest reported item failure,
// and an error fails the whole batch.
func (w *worker) invoke(ctx context.Context, recs []*record) (failedAt int, err error) {
	r := w.r
	var payload bytes.Buffer
	payload.WriteString(`{"Records":[`)
	for i, rec := range recs {
		if i > 0 {
			payload.WriteByte(',')
		}
		payload.Write(rec.raw)
	}
	payload.WriteString(`]}`)

	first, last := recs[0].seq, recs[len(recs)-1].seq
	r.invocations.Add(1)
	r.records.Add(int64(len(recs)))
	if w.maxSent != "" && seqCompare(first, w.maxSent) <= 0 {
		r.retried.Add(1)
	}
	if w.maxSent == "" || seqCompare(last, w.maxSent) > 0 {
		w.maxSent = last
	}
	r.setLastBatch(time.Now())
	r.log.Debug("invoking", "shard", w.shard, "records", len(recs), "first", first, "last", last)

	// Not cancelled by Stop: Stop waits for the running invocation instead.
	out, err := r.p.Invoker.Invoke(context.WithoutCancel(ctx), r.m.Function, payload.Bytes())
	if err != nil {
		return -1, err
	}
	if !r.m.ReportBatchItemFailures {
		return -1, nil // the response is ignored without ReportBatchItemFailures
	}
	return batchItemFailures(out, recs)
}

// batchItemFailures applies Lambda's partial batch response rules: an empty
// or null response or list is success; an item that is empty, malformed or
// not in the batch fails the whole batch; otherwise processing resumes at
// the lowest reported sequence number.
func batchItemFailures(out []byte, recs []*record) (int, error) {
	out = bytes.TrimSpace(out)
	if len(out) == 0 || string(out) == "null" {
		return -1, nil
	}
	var resp map[string]json.RawMessage
	if err := json.Unmarshal(out, &resp); err != nil {
		return -1, fmt.Errorf("function response is not a batch item failures object: %.200s", out)
	}
	raw, ok := resp["batchItemFailures"]
	if !ok || string(raw) == "null" {
		return -1, nil
	}
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return -1, fmt.Errorf("batchItemFailures is not a list of objects: %.200s", raw)
	}
	if len(items) == 0 {
		return -1, nil
	}
	index := make(map[string]int, len(recs))
	for i, rec := range recs {
		index[rec.seq] = i
	}
	lowest := len(recs)
	for _, it := range items {
		var id string
		if err := json.Unmarshal(it["itemIdentifier"], &id); err != nil || id == "" {
			return -1, fmt.Errorf("batch item failure without an itemIdentifier string: %.200s", raw)
		}
		i, ok := index[id]
		if !ok {
			return -1, fmt.Errorf("batch item failure %q is not a sequence number in the batch", id)
		}
		lowest = min(lowest, i)
	}
	return lowest, nil
}

// finishShard runs once a closed shard is fully processed: it hands over to
// the shard's children, which appear in DescribeStream when DynamoDB rolls
// the shard over, or retires the shard when the stream is disabled.
func (w *worker) finishShard(ctx context.Context) {
	r := w.r
	delay := r.m.PollInterval
	for ctx.Err() == nil {
		shards, status, err := describeStream(ctx, r.api, r.streamARN)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("describe stream failed", "error", err.Error())
			}
			sleep(ctx, readErrorMax)
			continue
		}
		var children []string
		for _, s := range shards {
			if aws.ToString(s.ParentShardId) == w.shard {
				children = append(children, aws.ToString(s.ShardId))
			}
		}
		if len(children) > 0 || (status != types.StreamStatusEnabled && status != types.StreamStatusEnabling) {
			fresh := r.replaceShard(w.shard, children)
			r.log.Info("shard finished", "shard", w.shard, "children", children, "streamStatus", string(status))
			for _, c := range fresh {
				// Children are read from their start, after the parent, so
				// order per item is kept across the split.
				cw := &worker{r: r, shard: c, startType: types.ShardIteratorTypeTrimHorizon}
				r.wg.Add(1)
				go cw.run()
			}
			return
		}
		// Closed but the child is not listed yet.
		sleep(ctx, delay)
		delay = min(delay*2, readErrorMax)
	}
}

// seqCompare orders DynamoDB sequence numbers, which are decimal strings of
// varying length.
func seqCompare(a, b string) int {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
