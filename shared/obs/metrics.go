package obs

import (
	"context"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"
)

// Metric names every function may emit, in CloudWatch Embedded Metric
// Format, in the namespace METRICS_NAMESPACE (default Threadline) with the
// single dimension Operation. User and thread ids are never dimensions:
// every distinct dimension value is a billed custom metric.
const (
	Requests           = "Requests"
	ClientErrors       = "ClientErrors"
	ServerErrors       = "ServerErrors"
	Latency            = "Latency" // milliseconds
	MessagesSent       = "MessagesSent"
	FanoutRecipients   = "FanoutRecipients"
	PushesDelivered    = "PushesDelivered"
	PushesGone         = "PushesGone"
	PushesFailed       = "PushesFailed"
	FeedWrites         = "FeedWrites"
	EventsPublished    = "EventsPublished"
	EventsFailed       = "EventsFailed"
	StreamRecords      = "StreamRecords"
	DynamoDBRequests   = "DynamoDBRequests"
	DynamoDBReadUnits  = "DynamoDBReadUnits"
	DynamoDBWriteUnits = "DynamoDBWriteUnits"
	DynamoDBThrottles  = "DynamoDBThrottles"
	Throttled          = "Throttled" // requests refused by a rate limit (429)
)

// perOperation are the metrics also kept per Operation: the dashboard's
// per-operation requests, errors and latency.
var perOperation = map[string]bool{Requests: true, ClientErrors: true, ServerErrors: true, Latency: true}

// Names lists every metric name above.
var Names = []string{
	Requests, ClientErrors, ServerErrors, Latency, MessagesSent, FanoutRecipients, PushesDelivered, PushesGone,
	PushesFailed, FeedWrites, EventsPublished, EventsFailed, StreamRecords, DynamoDBRequests, DynamoDBReadUnits,
	DynamoDBWriteUnits, DynamoDBThrottles, Throttled,
}

// Recorder gathers one invocation's metrics; Flush writes them as a single
// EMF log line.
type Recorder struct {
	mu     sync.Mutex
	values map[string]float64
	units  map[string]string
}

type recorderKey struct{}

// WithRecorder returns a context carrying a fresh recorder.
func WithRecorder(ctx context.Context) (context.Context, *Recorder) {
	r := &Recorder{values: map[string]float64{}, units: map[string]string{}}
	return context.WithValue(ctx, recorderKey{}, r), r
}

// From returns the context's recorder; adding to a nil recorder does nothing.
func From(ctx context.Context) *Recorder {
	r, _ := ctx.Value(recorderKey{}).(*Recorder)
	return r
}

// Add adds n to a count.
func (r *Recorder) Add(name string, n float64) { r.add(name, n, "Count") }

// Milliseconds adds a duration in milliseconds.
func (r *Recorder) Milliseconds(name string, d time.Duration) {
	r.add(name, float64(d.Microseconds())/1000, "Milliseconds")
}

func (r *Recorder) add(name string, n float64, unit string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.values[name] += n
	r.units[name] = unit
	r.mu.Unlock()
}

// Value is a metric's total so far (tests and benchmarks read it).
func (r *Recorder) Value(name string) float64 {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.values[name]
}

// Namespace is the CloudWatch namespace metrics are written to.
func Namespace() string {
	if ns := os.Getenv("METRICS_NAMESPACE"); ns != "" {
		return ns
	}
	return "Threadline"
}

// Flush writes the metrics as one EMF line through log. EMF lines are INFO
// lines: the template keeps ApplicationLogLevel at INFO so they are kept.
func (r *Recorder) Flush(ctx context.Context, log *slog.Logger, operation string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	names := make([]string, 0, len(r.values))
	for n := range r.values {
		names = append(names, n)
	}
	sort.Strings(names)
	var perOp, total []map[string]string
	attrs := []slog.Attr{}
	for _, n := range names {
		def := map[string]string{"Name": n, "Unit": r.units[n]}
		if perOperation[n] {
			perOp = append(perOp, def)
		} else {
			total = append(total, def)
		}
		attrs = append(attrs, slog.Float64(n, r.values[n]))
	}
	r.mu.Unlock()
	if len(names) == 0 {
		return
	}
	ns := Namespace()
	var directives []map[string]any
	if len(perOp) > 0 {
		// Per operation, and once more with no dimension: the service-wide
		// totals the alarms watch.
		directives = append(directives, map[string]any{"Namespace": ns, "Dimensions": [][]string{{"Operation"}, {}}, "Metrics": perOp})
	}
	if len(total) > 0 {
		// The rest only as service-wide totals: every metric × operation
		// pair is a billed custom metric, and these are read in aggregate.
		directives = append(directives, map[string]any{"Namespace": ns, "Dimensions": [][]string{{}}, "Metrics": total})
	}
	attrs = append([]slog.Attr{
		slog.Group("_aws",
			slog.Int64("Timestamp", time.Now().UnixMilli()),
			slog.Any("CloudWatchMetrics", directives),
		),
		slog.String("Operation", operation),
	}, attrs...)
	log.LogAttrs(ctx, slog.LevelInfo, "metrics", attrs...)
}

// Counter adapts the context's recorder to the small counting interfaces
// of other packages (realtime.Metrics, bus.Counter).
type Counter struct{}

// Count adds n to the named count of the invocation in ctx.
func (Counter) Count(ctx context.Context, name string, n float64) { From(ctx).Add(name, n) }
