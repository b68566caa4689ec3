package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/obs"
)

// realLine is an EMF line as the functions write it (obs.Recorder.Flush).
func realLine(t *testing.T, function, op string, add func(*obs.Recorder)) []byte {
	t.Helper()
	var buf bytes.Buffer
	ctx, rec := obs.WithRecorder(context.Background())
	add(rec)
	rec.Flush(ctx, obs.NewLogger(&buf, function), op)
	return buf.Bytes()
}

func TestParseEMFRoundTrip(t *testing.T) {
	line := realLine(t, "send-message", "SendMessage", func(r *obs.Recorder) {
		r.Add(obs.Requests, 1)
		r.Add(obs.DynamoDBRequests, 3)
		r.Add(obs.DynamoDBWriteUnits, 3)
		r.Add(MetricTxAWS, 4)
		r.Milliseconds(obs.Latency, 2500*time.Microsecond)
	})
	inv, ok, err := ParseEMF(line)
	if !ok || err != nil {
		t.Fatalf("ok %v err %v: %s", ok, err, line)
	}
	if inv.Function != "send-message" || inv.Operation != "SendMessage" {
		t.Errorf("function %q operation %q", inv.Function, inv.Operation)
	}
	for k, want := range map[string]float64{"Requests": 1, "DynamoDBRequests": 3, "DynamoDBWriteUnits": 3, MetricTxAWS: 4, "Latency": 2.5} {
		if inv.Values[k] != want {
			t.Errorf("%s = %v, want %v", k, inv.Values[k], want)
		}
	}
}

func TestParseEMFRejectsAndIgnores(t *testing.T) {
	for _, line := range []string{
		`{"level":"INFO","msg":"request","status":201}`,
		`not json at all`,
		``,
		`{"msg":"mentions _aws in text"}`,
	} {
		if _, ok, err := ParseEMF([]byte(line)); ok || err != nil {
			t.Errorf("%q: ok %v err %v, want an ordinary line", line, ok, err)
		}
	}
	for _, line := range []string{
		`{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"T","Dimensions":[["Operation"]],"Metrics":[{"Name":"Requests","Unit":"Count"}]}]},"Operation":"X"}`,
		`{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"T","Dimensions":[["Operation"]],"Metrics":[{"Name":"Requests"}]}]},"Requests":"one","Operation":"X"}`,
		`{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"T","Dimensions":[["Operation"]],"Metrics":[{"Name":"Requests"}]}]},"Requests":1}`,
		`{"_aws":{"CloudWatchMetrics":[]},"Operation":"X"}`,
	} {
		if _, ok, err := ParseEMF([]byte(line)); !ok || err == nil {
			t.Errorf("%s: ok %v err %v, want a broken EMF line", line, ok, err)
		}
	}
}

func TestCollectorSumsPerOperationAndLogBytes(t *testing.T) {
	c := NewCollector()
	send := realLine(t, "send-message", "SendMessage", func(r *obs.Recorder) {
		r.Add(obs.DynamoDBRequests, 3)
		r.Milliseconds(obs.Latency, 4*time.Millisecond)
	})
	request := []byte(`{"level":"INFO","msg":"request","function":"send-message","status":201}` + "\n")
	disp := realLine(t, "dispatch", "Dispatch", func(r *obs.Recorder) { r.Add(obs.PushesDelivered, 20) })
	// Lines split across writes, as a writer may deliver them.
	all := append(append(append(append([]byte{}, send...), request...), send...), disp...)
	for i := 0; i < len(all); i += 7 {
		_, _ = c.Write(all[i:min(i+7, len(all))])
	}
	if c.Count("SendMessage") != 2 {
		t.Fatalf("count %d", c.Count("SendMessage"))
	}
	s := c.Take()
	sm := s.Op("SendMessage")
	if sm.Invocations != 2 || sm.Sums["DynamoDBRequests"] != 6 || sm.Mean("DynamoDBRequests") != 3 || len(sm.Latencies) != 2 {
		t.Errorf("SendMessage %+v", sm)
	}
	if s.Op("Dispatch").Sums["PushesDelivered"] != 20 {
		t.Errorf("Dispatch %+v", s.Op("Dispatch"))
	}
	wantBytes := 2*len(send) + len(request)
	if s.Logs["send-message"].Bytes != wantBytes || s.Logs["send-message"].Lines != 3 {
		t.Errorf("log %+v, want %d bytes", s.Logs["send-message"], wantBytes)
	}
	if got := s.LogBytesPerInvocation("send-message"); got != float64(wantBytes)/2 {
		t.Errorf("log bytes per invocation %v", got)
	}
	if c.Take().LineCount != 0 || len(s.BadLines) != 0 {
		t.Error("Take should start afresh; no bad lines expected")
	}
	_, _ = c.Write([]byte(`{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"T","Dimensions":[[]],"Metrics":[{"Name":"X"}]}]},"function":"f"}` + "\n"))
	if bad := c.Take().BadLines; len(bad) != 1 || !strings.Contains(bad[0], `"X"`) {
		t.Errorf("bad lines %v", bad)
	}
}

func TestLogicalID(t *testing.T) {
	for in, want := range map[string]string{"send-message": "SendMessageFunction", "dispatch": "DispatchFunction", "ws-connect": "WsConnectFunction", "chat-authorizer": "ChatAuthorizerFunction"} {
		if got := logicalID(in); got != want {
			t.Errorf("%s → %s, want %s", in, got, want)
		}
	}
}
