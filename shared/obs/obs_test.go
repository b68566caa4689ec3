package obs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/threadline/threadline/shared/obs"
)

func invocation() context.Context {
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-1"})
	return context.WithValue(ctx, "x-amzn-trace-id", "Root=1-abc") //nolint:staticcheck // the runtime's own key
}

func TestLoggerAddsInvocationIDs(t *testing.T) {
	var buf bytes.Buffer
	obs.NewLogger(&buf, "send-message").InfoContext(invocation(), "request", "status", 201)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"function": "send-message", "requestId": "req-1", "traceId": "Root=1-abc", "level": "INFO", "status": 201.0} {
		if line[k] != want {
			t.Errorf("%s = %v, want %v", k, line[k], want)
		}
	}
}

type directive struct {
	Namespace  string
	Dimensions [][]string
	Metrics    []struct{ Name, Unit string }
}

func TestFlushWritesEMF(t *testing.T) {
	t.Setenv("METRICS_NAMESPACE", "Custom")
	var buf bytes.Buffer
	ctx, rec := obs.WithRecorder(invocation())
	obs.From(ctx).Add(obs.Requests, 1)
	obs.Counter{}.Count(ctx, obs.FeedWrites, 3)
	obs.Counter{}.Count(ctx, obs.FeedWrites, 2)
	rec.Milliseconds(obs.Latency, 1500*time.Microsecond)
	rec.Flush(ctx, obs.NewLogger(&buf, "f"), "SendMessage")

	var line struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []directive
		} `json:"_aws"`
		Operation                     string
		Requests, FeedWrites, Latency float64
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if line.Operation != "SendMessage" || line.Requests != 1 || line.FeedWrites != 5 || line.Latency != 1.5 || line.AWS.Timestamp == 0 {
		t.Errorf("line = %+v", line)
	}
	byName := map[string]directive{}
	for _, d := range line.AWS.CloudWatchMetrics {
		if d.Namespace != "Custom" {
			t.Errorf("namespace %q", d.Namespace)
		}
		for _, m := range d.Metrics {
			byName[m.Name] = d
		}
	}
	// Requests and latency per operation and in total; the rest in total only.
	for name, dims := range map[string]string{obs.Requests: "[[Operation] []]", obs.Latency: "[[Operation] []]", obs.FeedWrites: "[[]]"} {
		if got := fmtDims(byName[name].Dimensions); got != dims {
			t.Errorf("%s dimensions %s, want %s", name, got, dims)
		}
	}
	if !strings.Contains(buf.String(), `"Unit":"Milliseconds"`) {
		t.Errorf("latency unit missing: %s", buf.String())
	}
}

func fmtDims(d [][]string) string {
	var parts []string
	for _, set := range d {
		parts = append(parts, "["+strings.Join(set, " ")+"]")
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func TestFlushWithoutMetricsWritesNothing(t *testing.T) {
	var buf bytes.Buffer
	ctx, rec := obs.WithRecorder(context.Background())
	rec.Flush(ctx, obs.NewLogger(&buf, "f"), "Op")
	var none *obs.Recorder
	none.Add(obs.Requests, 1) // a context without a recorder: counting is a no-op
	none.Flush(ctx, obs.NewLogger(&buf, "f"), "Op")
	if buf.Len() != 0 {
		t.Errorf("wrote %s", buf.String())
	}
	if obs.From(context.Background()) != nil {
		t.Error("a bare context has a recorder")
	}
}
