// Package streams emulates Lambda's DynamoDB Streams event source mapping
// for the local stack: it reads DynamoDB Local's stream with the real
// dynamodbstreams client and invokes a function the way Lambda does, with
// Lambda's batching, filtering, retry, bisect, partial-batch-response and
// on-failure semantics (failed batches go to a folder instead of SQS/SNS).
package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// Invoker runs a function by logical id with a JSON event, like Lambda.
type Invoker interface {
	Invoke(ctx context.Context, function string, payload []byte) ([]byte, error)
}

// Mapping is one event source mapping (AWS::Lambda::EventSourceMapping or a
// SAM DynamoDB event). Zero values take Lambda's defaults except where noted.
type Mapping struct {
	Function string
	Table    string // table name; the stream ARN is found with DescribeTable (LatestStreamArn)
	// StreamARN, when set, is used instead of looking Table up (Lambda's
	// mappings are keyed by stream ARN; this also lets tests run without
	// a DynamoDB client).
	StreamARN        string
	StartingPosition string // "LATEST" (default) or "TRIM_HORIZON"
	BatchSize        int    // default 100 (Lambda's default), max 10000
	// MaxBatchingWindow is how long to gather records before invoking; as on
	// Lambda the window starts when the previous invocation completes.
	MaxBatchingWindow time.Duration
	// MaxRetryAttempts: -1 = until the record expires (Lambda's default).
	// Unlike Lambda, 0 (the Go zero value) means no retries, so wiring from a
	// template must pass -1 when MaximumRetryAttempts is absent.
	MaxRetryAttempts        int
	MaxRecordAge            time.Duration // 0 or negative = no limit
	BisectOnError           bool
	ReportBatchItemFailures bool     // honour {"batchItemFailures":[{"itemIdentifier":"<SequenceNumber>"}]}
	Filters                 []string // Lambda filter criteria patterns (JSON); a record is delivered if it matches ANY; none = all
	PollInterval            time.Duration
	DeadLetterDir           string // failed batches are written here as JSON files ("" = drop with a log line)
}

// Lambda's limits and our local defaults.
const (
	defaultBatchSize    = 100
	maxBatchSize        = 10000
	maxBatchingWindow   = 300 * time.Second
	maxRetryAttempts    = 10000
	defaultPollInterval = 50 * time.Millisecond // Lambda polls 4x/s; locally faster keeps tests quick
	getRecordsLimit     = 1000                  // the GetRecords maximum
	maxPayloadBytes     = 6 << 20               // synchronous invocation payload limit
)

// Poller runs mappings against one DynamoDB (Local) endpoint.
type Poller struct {
	Streams  *dynamodbstreams.Client
	DynamoDB *dynamodb.Client // only needed to find a Table's stream
	Invoker  Invoker
	Region   string       // awsRegion in records, e.g. "us-east-1" ("" keeps the stream's own)
	Log      *slog.Logger // nil = silent

	api streamsAPI // tests substitute the streams API; nil uses Streams
}

// streamsAPI is the part of the dynamodbstreams client the poller uses.
type streamsAPI interface {
	DescribeStream(context.Context, *dynamodbstreams.DescribeStreamInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error)
	GetShardIterator(context.Context, *dynamodbstreams.GetShardIteratorInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error)
	GetRecords(context.Context, *dynamodbstreams.GetRecordsInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error)
}

// NewStreamsClient is the real streams client pointed at a local endpoint,
// configured like the local stack's DynamoDB client.
func NewStreamsClient(endpoint string) *dynamodbstreams.Client {
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = 64 // one long-poll loop per shard per mapping
	})
	return dynamodbstreams.New(dynamodbstreams.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
		HTTPClient:   hc,
	})
}

// Stats are counts for tests and benchmarks.
type Stats struct {
	Invocations  int64     // function invocations, retries included
	Records      int64     // records sent to the function, re-sent ones included
	Retried      int64     // invocations that re-sent records an earlier invocation had failed on
	DeadLettered int64     // records given up on (retries exhausted or too old)
	Filtered     int64     // records dropped because no filter matched
	LastBatchAt  time.Time // when the last invocation started
}

// ErrStopped is returned by WaitIdle once the run is stopped.
var ErrStopped = errors.New("streams: run stopped")

// Run is a started mapping.
type Run struct {
	p         *Poller
	m         Mapping
	api       streamsAPI
	log       *slog.Logger
	streamARN string
	filters   []*filter

	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	dlMu     sync.Mutex // serialises dead-letter file names

	invocations, records, retried, deadLettered, filtered atomic.Int64

	mu          sync.Mutex
	lastBatchAt time.Time
	epoch       uint64                 // bumped by each WaitIdle
	active      map[string]*shardState // shards being read (or waiting for children)
	seen        map[string]bool        // shards ever started, so a child starts once
	stopped     bool
	changed     chan struct{} // closed and replaced on every state change
}

type shardState struct {
	idleEpoch uint64 // epoch at the start of the last empty read with nothing pending
}

// Start checks the mapping, positions an iterator on each shard to read and
// begins polling in the background. It returns once the iterators are
// positioned, so a write made after Start returns is seen with LATEST. ctx
// bounds only the setup; the run lasts until Stop.
func (p *Poller) Start(ctx context.Context, m Mapping) (*Run, error) {
	m, err := m.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Run{p: p, m: m, api: p.api, log: p.Log, active: map[string]*shardState{}, seen: map[string]bool{}, changed: make(chan struct{})}
	if r.api == nil {
		if p.Streams == nil {
			return nil, errors.New("streams: Poller.Streams is nil")
		}
		r.api = p.Streams
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("function", m.Function)
	if p.Invoker == nil {
		return nil, errors.New("streams: Poller.Invoker is nil")
	}
	for i, pat := range m.Filters {
		f, err := compileFilter(pat)
		if err != nil {
			return nil, fmt.Errorf("streams: %s: filter %d: %w", m.Function, i, err)
		}
		r.filters = append(r.filters, f)
	}

	if r.streamARN = m.StreamARN; r.streamARN == "" {
		if r.streamARN, err = p.tableStream(ctx, m.Table); err != nil {
			return nil, err
		}
	}
	shards, status, err := describeStream(ctx, r.api, r.streamARN)
	if err != nil {
		return nil, fmt.Errorf("streams: describe stream %s: %w", r.streamARN, err)
	}
	if status != types.StreamStatusEnabled && status != types.StreamStatusEnabling {
		return nil, fmt.Errorf("streams: stream %s is %s; Lambda only maps enabled streams", r.streamARN, status)
	}

	pos := types.ShardIteratorType(m.StartingPosition)
	var workers []*worker
	for _, id := range startShards(shards, pos) {
		w := &worker{r: r, shard: id, startType: pos}
		out, err := r.api.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
			StreamArn: &r.streamARN, ShardId: aws.String(id), ShardIteratorType: pos,
		})
		if err != nil {
			return nil, fmt.Errorf("streams: shard iterator for %s: %w", id, err)
		}
		if w.iter = out.ShardIterator; w.iter == nil {
			w.ended = true
		}
		workers = append(workers, w)
		r.active[id] = &shardState{}
		r.seen[id] = true
	}
	if len(workers) == 0 {
		return nil, fmt.Errorf("streams: stream %s has no shards", r.streamARN)
	}

	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, w := range workers {
		r.wg.Add(1)
		go w.run()
	}
	r.log.Info("stream mapping started", "stream", r.streamARN, "shards", len(workers), "startingPosition", string(pos))
	return r, nil
}

func (m Mapping) withDefaults() (Mapping, error) {
	if m.Function == "" {
		return m, errors.New("streams: Mapping.Function is required")
	}
	if m.Table == "" && m.StreamARN == "" {
		return m, fmt.Errorf("streams: %s: Mapping.Table (or StreamARN) is required", m.Function)
	}
	switch m.StartingPosition {
	case "":
		m.StartingPosition = string(types.ShardIteratorTypeLatest)
	case string(types.ShardIteratorTypeLatest), string(types.ShardIteratorTypeTrimHorizon):
	default:
		return m, fmt.Errorf("streams: %s: StartingPosition %q: DynamoDB streams support LATEST or TRIM_HORIZON", m.Function, m.StartingPosition)
	}
	switch {
	case m.BatchSize == 0:
		m.BatchSize = defaultBatchSize
	case m.BatchSize < 0 || m.BatchSize > maxBatchSize:
		return m, fmt.Errorf("streams: %s: BatchSize %d is outside 1..%d", m.Function, m.BatchSize, maxBatchSize)
	}
	if m.MaxBatchingWindow < 0 || m.MaxBatchingWindow > maxBatchingWindow {
		return m, fmt.Errorf("streams: %s: MaxBatchingWindow %s is outside 0..%s", m.Function, m.MaxBatchingWindow, maxBatchingWindow)
	}
	if m.MaxRetryAttempts < -1 || m.MaxRetryAttempts > maxRetryAttempts {
		return m, fmt.Errorf("streams: %s: MaxRetryAttempts %d is outside -1..%d", m.Function, m.MaxRetryAttempts, maxRetryAttempts)
	}
	if m.MaxRecordAge < 0 {
		m.MaxRecordAge = 0
	}
	if m.PollInterval <= 0 {
		m.PollInterval = defaultPollInterval
	}
	return m, nil
}

// tableStream finds the table's current stream, as the ESM's EventSourceArn
// (the table's StreamArn attribute) would name it.
func (p *Poller) tableStream(ctx context.Context, table string) (string, error) {
	if p.DynamoDB == nil {
		return "", errors.New("streams: Poller.DynamoDB is nil (needed to look up Mapping.Table)")
	}
	out, err := p.DynamoDB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table})
	if err != nil {
		return "", fmt.Errorf("streams: describe table %s: %w", table, err)
	}
	if out.Table.LatestStreamArn == nil || out.Table.StreamSpecification == nil || !aws.ToBool(out.Table.StreamSpecification.StreamEnabled) {
		return "", fmt.Errorf("streams: table %s has no enabled stream (set StreamSpecification)", table)
	}
	return *out.Table.LatestStreamArn, nil
}

// describeStream returns every shard of the stream and its status.
func describeStream(ctx context.Context, api streamsAPI, arn string) ([]types.Shard, types.StreamStatus, error) {
	var shards []types.Shard
	var status types.StreamStatus
	in := &dynamodbstreams.DescribeStreamInput{StreamArn: &arn}
	for {
		out, err := api.DescribeStream(ctx, in)
		if err != nil {
			return nil, "", err
		}
		d := out.StreamDescription
		if d == nil {
			return nil, "", errors.New("DescribeStream returned no description")
		}
		status = d.StreamStatus
		shards = append(shards, d.Shards...)
		if d.LastEvaluatedShardId == nil {
			return shards, status, nil
		}
		in.ExclusiveStartShardId = d.LastEvaluatedShardId
	}
}

// startShards picks where a new mapping begins: TRIM_HORIZON starts at the
// oldest shards (whose parent is gone or absent) and follows their children;
// LATEST starts at the leaves, which are the open shards.
func startShards(shards []types.Shard, pos types.ShardIteratorType) []string {
	ids := map[string]bool{}
	parents := map[string]bool{}
	for _, s := range shards {
		ids[aws.ToString(s.ShardId)] = true
		if s.ParentShardId != nil {
			parents[*s.ParentShardId] = true
		}
	}
	var out []string
	for _, s := range shards {
		id := aws.ToString(s.ShardId)
		if pos == types.ShardIteratorTypeTrimHorizon {
			if s.ParentShardId == nil || !ids[*s.ParentShardId] {
				out = append(out, id)
			}
		} else if !parents[id] {
			out = append(out, id)
		}
	}
	return out
}

// Stop stops polling and waits for the in-flight invocation to finish (it is
// not cancelled, as Lambda would not cancel a running function either).
func (r *Run) Stop() {
	r.stopOnce.Do(func() {
		r.mu.Lock()
		r.stopped = true
		r.notifyLocked()
		r.mu.Unlock()
		r.cancel()
		r.wg.Wait()
		r.log.Info("stream mapping stopped")
	})
}

// Stats returns the counts so far.
func (r *Run) Stats() Stats {
	r.mu.Lock()
	last := r.lastBatchAt
	r.mu.Unlock()
	return Stats{
		Invocations:  r.invocations.Load(),
		Records:      r.records.Load(),
		Retried:      r.retried.Load(),
		DeadLettered: r.deadLettered.Load(),
		Filtered:     r.filtered.Load(),
		LastBatchAt:  last,
	}
}

// WaitIdle returns when every record written before the call has been
// processed: delivered, filtered out or dead-lettered. It works because
// DynamoDB Local makes a write visible to the very next GetRecords: each
// shard must complete an empty read that started after WaitIdle was called,
// with nothing buffered or being retried.
func (r *Run) WaitIdle(ctx context.Context) error {
	r.mu.Lock()
	r.epoch++
	target := r.epoch
	r.mu.Unlock()
	for {
		r.mu.Lock()
		if r.stopped {
			r.mu.Unlock()
			return ErrStopped
		}
		idle := true
		for _, s := range r.active {
			if s.idleEpoch < target {
				idle = false
				break
			}
		}
		ch := r.changed
		r.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("streams: %s: not idle: %w", r.m.Function, ctx.Err())
		}
	}
}

func (r *Run) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *Run) currentEpoch() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.epoch
}

func (r *Run) markIdle(shard string, epoch uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.active[shard]; s != nil && s.idleEpoch < epoch {
		s.idleEpoch = epoch
		r.notifyLocked()
	}
}

// replaceShard retires a finished shard and registers its children; it
// returns the children not started before.
func (r *Run) replaceShard(parent string, children []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.active, parent)
	var fresh []string
	for _, c := range children {
		if r.seen[c] {
			continue
		}
		r.seen[c] = true
		r.active[c] = &shardState{}
		fresh = append(fresh, c)
	}
	r.notifyLocked()
	return fresh
}

func (r *Run) setLastBatch(t time.Time) {
	r.mu.Lock()
	r.lastBatchAt = t
	r.mu.Unlock()
}
