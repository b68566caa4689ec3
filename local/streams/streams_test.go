package streams

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dt "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	st "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/threadline/threadline/local/ddblocal"
)

// One DynamoDB Local serves every test; each test makes its own tables.
var (
	ddb      *ddblocal.Server
	db       *dynamodb.Client
	sc       *dynamodbstreams.Client
	tableSeq atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := ddblocal.DefaultDir()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		ddb, err = ddblocal.Start(ctx, ddblocal.Options{Dir: dir})
		cancel()
	}
	if err != nil {
		// Not a skip: these tests are about DynamoDB Local's real stream.
		fmt.Fprintln(os.Stderr, "streams tests need DynamoDB Local (run `make deps`):", err)
		return 1
	}
	defer ddb.Close()
	db = newDynamoDB(ddb.Endpoint)
	sc = NewStreamsClient(ddb.Endpoint)
	return m.Run()
}

// newDynamoDB mirrors local.NewDynamoDB (package local imports this one).
func newDynamoDB(endpoint string) *dynamodb.Client {
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) { t.MaxIdleConnsPerHost = 64 })
	return dynamodb.New(dynamodb.Options{
		Region:                          "us-east-1",
		BaseEndpoint:                    aws.String(endpoint),
		Credentials:                     credentials.NewStaticCredentialsProvider("local", "local", ""),
		HTTPClient:                      hc,
		DisableValidateResponseChecksum: true,
	})
}

// newTable creates a pk/sk table with a NEW_AND_OLD_IMAGES stream.
func newTable(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("streams_%d_%d", os.Getpid(), tableSeq.Add(1))
	_, err := db.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName:   &name,
		BillingMode: dt.BillingModePayPerRequest,
		AttributeDefinitions: []dt.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: dt.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: dt.ScalarAttributeTypeS},
		},
		KeySchema: []dt.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: dt.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: dt.KeyTypeRange},
		},
		StreamSpecification: &dt.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: dt.StreamViewTypeNewAndOldImages},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: &name}) })
	return name
}

func put(t *testing.T, table, pk, sk string, attrs map[string]dt.AttributeValue) {
	t.Helper()
	item := map[string]dt.AttributeValue{"pk": &dt.AttributeValueMemberS{Value: pk}, "sk": &dt.AttributeValueMemberS{Value: sk}}
	for k, v := range attrs {
		item[k] = v
	}
	if _, err := db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: &table, Item: item}); err != nil {
		t.Fatal(err)
	}
}

func del(t *testing.T, table, pk, sk string) {
	t.Helper()
	key := map[string]dt.AttributeValue{"pk": &dt.AttributeValueMemberS{Value: pk}, "sk": &dt.AttributeValueMemberS{Value: sk}}
	if _, err := db.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: &table, Key: key}); err != nil {
		t.Fatal(err)
	}
}

// putKeys writes items pk=k, sk="A" in order.
func putKeys(t *testing.T, table string, keys ...string) {
	t.Helper()
	for _, k := range keys {
		put(t, table, k, "A", nil)
	}
}

func keys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

// fakeInvoker records every invocation; handle decides each result.
type fakeInvoker struct {
	mu     sync.Mutex
	calls  []call
	handle func(n int, ev events.DynamoDBEvent) ([]byte, error) // n counts calls from 0
}

type call struct {
	payload []byte
	ev      events.DynamoDBEvent
	err     error // what the function returned
}

func (f *fakeInvoker) Invoke(_ context.Context, function string, payload []byte) ([]byte, error) {
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, fmt.Errorf("test: payload is not a DynamoDBEvent: %w", err)
	}
	f.mu.Lock()
	n := len(f.calls)
	f.calls = append(f.calls, call{payload: payload, ev: ev})
	h := f.handle
	f.mu.Unlock()
	if h == nil {
		return nil, nil
	}
	out, err := h(n, ev)
	f.mu.Lock()
	f.calls[n].err = err
	f.mu.Unlock()
	return out, err
}

func (f *fakeInvoker) snapshot() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// pkOf is a record's partition key.
func pkOf(r events.DynamoDBEventRecord) string { return r.Change.Keys["pk"].String() }

func pks(ev events.DynamoDBEvent) []string {
	out := []string{}
	for _, r := range ev.Records {
		out = append(out, pkOf(r))
	}
	return out
}

// delivered lists the partition keys of records in calls that succeeded
// (without ReportBatchItemFailures), in delivery order.
func delivered(calls []call) []string {
	out := []string{}
	for _, c := range calls {
		if c.err == nil {
			out = append(out, pks(c.ev)...)
		}
	}
	return out
}

func sizes(calls []call) []int {
	out := []int{}
	for _, c := range calls {
		out = append(out, len(c.ev.Records))
	}
	return out
}

func start(t *testing.T, inv Invoker, m Mapping) *Run {
	t.Helper()
	p := &Poller{Streams: sc, DynamoDB: db, Invoker: inv, Region: "us-east-1"}
	if m.Function == "" {
		m.Function = "StreamFn"
	}
	if m.PollInterval == 0 {
		m.PollInterval = 10 * time.Millisecond
	}
	r, err := p.Start(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

func waitIdle(t *testing.T, r *Run) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
}

func streamARN(t *testing.T, table string) string {
	t.Helper()
	out, err := db.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: &table})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.Table.LatestStreamArn)
}

// canonSDK and canonEvent turn attribute values from the SDK and from
// aws-lambda-go's events into the same comparable form (sets sorted, since
// DynamoDB does not keep set order).
func canonSDK(v dt.AttributeValue) any {
	switch v := v.(type) {
	case *dt.AttributeValueMemberS:
		return "S:" + v.Value
	case *dt.AttributeValueMemberN:
		return "N:" + v.Value
	case *dt.AttributeValueMemberB:
		return "B:" + hex.EncodeToString(v.Value)
	case *dt.AttributeValueMemberBOOL:
		return fmt.Sprint("BOOL:", v.Value)
	case *dt.AttributeValueMemberNULL:
		return "NULL"
	case *dt.AttributeValueMemberSS:
		return "SS:" + sortedJoin(v.Value)
	case *dt.AttributeValueMemberNS:
		return "NS:" + sortedJoin(v.Value)
	case *dt.AttributeValueMemberBS:
		var s []string
		for _, b := range v.Value {
			s = append(s, hex.EncodeToString(b))
		}
		return "BS:" + sortedJoin(s)
	case *dt.AttributeValueMemberL:
		l := []any{}
		for _, e := range v.Value {
			l = append(l, canonSDK(e))
		}
		return l
	case *dt.AttributeValueMemberM:
		m := map[string]any{}
		for k, e := range v.Value {
			m[k] = canonSDK(e)
		}
		return m
	}
	return fmt.Sprintf("unknown %T", v)
}

func canonEvent(v events.DynamoDBAttributeValue) any {
	switch v.DataType() {
	case events.DataTypeString:
		return "S:" + v.String()
	case events.DataTypeNumber:
		return "N:" + v.Number()
	case events.DataTypeBinary:
		return "B:" + hex.EncodeToString(v.Binary())
	case events.DataTypeBoolean:
		return fmt.Sprint("BOOL:", v.Boolean())
	case events.DataTypeNull:
		return "NULL"
	case events.DataTypeStringSet:
		return "SS:" + sortedJoin(v.StringSet())
	case events.DataTypeNumberSet:
		return "NS:" + sortedJoin(v.NumberSet())
	case events.DataTypeBinarySet:
		var s []string
		for _, b := range v.BinarySet() {
			s = append(s, hex.EncodeToString(b))
		}
		return "BS:" + sortedJoin(s)
	case events.DataTypeList:
		l := []any{}
		for _, e := range v.List() {
			l = append(l, canonEvent(e))
		}
		return l
	case events.DataTypeMap:
		m := map[string]any{}
		for k, e := range v.Map() {
			m[k] = canonEvent(e)
		}
		return m
	}
	return fmt.Sprintf("unknown %v", v.DataType())
}

func canonItemSDK(item map[string]dt.AttributeValue) any {
	return canonSDK(&dt.AttributeValueMemberM{Value: item})
}

func canonItemEvent(item map[string]events.DynamoDBAttributeValue) any {
	if item == nil {
		return nil
	}
	return canonEvent(events.NewMapAttribute(item))
}

func sortedJoin(s []string) string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return strings.Join(s, ",")
}

// TestEventShape checks every record against what Lambda sends and that the
// payload survives a round trip through events.DynamoDBEvent unchanged.
func TestEventShape(t *testing.T) {
	table := newTable(t)
	put(t, table, "before", "A", nil) // written before Start: LATEST must not deliver it
	inv := &fakeInvoker{}
	r := start(t, inv, Mapping{Table: table})

	rich := map[string]dt.AttributeValue{
		"pk":   &dt.AttributeValueMemberS{Value: "item"},
		"sk":   &dt.AttributeValueMemberS{Value: "M#1"},
		"s":    &dt.AttributeValueMemberS{Value: "héllo \"quoted\""},
		"n":    &dt.AttributeValueMemberN{Value: "42.5"},
		"b":    &dt.AttributeValueMemberB{Value: []byte{0, 1, 2, 0xfe, 0xff}},
		"t":    &dt.AttributeValueMemberBOOL{Value: true},
		"f":    &dt.AttributeValueMemberBOOL{Value: false},
		"z":    &dt.AttributeValueMemberNULL{Value: true},
		"ss":   &dt.AttributeValueMemberSS{Value: []string{"a", "b"}},
		"ns":   &dt.AttributeValueMemberNS{Value: []string{"1", "2.5"}},
		"bs":   &dt.AttributeValueMemberBS{Value: [][]byte{{1}, {2, 3}}},
		"none": &dt.AttributeValueMemberL{Value: []dt.AttributeValue{}},
		"m": &dt.AttributeValueMemberM{Value: map[string]dt.AttributeValue{
			"inner": &dt.AttributeValueMemberM{Value: map[string]dt.AttributeValue{
				"x": &dt.AttributeValueMemberN{Value: "1"},
				"l": &dt.AttributeValueMemberL{Value: []dt.AttributeValue{
					&dt.AttributeValueMemberS{Value: "a"},
					&dt.AttributeValueMemberB{Value: []byte{9, 8}},
				}},
			}},
			"empty": &dt.AttributeValueMemberM{Value: map[string]dt.AttributeValue{}},
		}},
		"l": &dt.AttributeValueMemberL{Value: []dt.AttributeValue{
			&dt.AttributeValueMemberS{Value: "x"},
			&dt.AttributeValueMemberN{Value: "-2"},
			&dt.AttributeValueMemberM{Value: map[string]dt.AttributeValue{"k": &dt.AttributeValueMemberNULL{Value: true}}},
			&dt.AttributeValueMemberL{Value: []dt.AttributeValue{&dt.AttributeValueMemberBOOL{Value: true}}},
		}},
	}
	ctx := context.Background()
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &table, Item: rich}); err != nil {
		t.Fatal(err)
	}
	modified := map[string]dt.AttributeValue{}
	for k, v := range rich {
		modified[k] = v
	}
	modified["s"] = &dt.AttributeValueMemberS{Value: "world"}
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &table, Item: modified}); err != nil {
		t.Fatal(err)
	}
	del(t, table, "item", "M#1")
	waitIdle(t, r)

	calls := inv.snapshot()
	var recs []events.DynamoDBEventRecord
	for _, c := range calls {
		recs = append(recs, c.ev.Records...)
		checkRoundTrip(t, c.payload, c.ev)
	}
	if len(recs) != 3 {
		t.Fatalf("got %d records (%v), want INSERT, MODIFY, REMOVE", len(recs), delivered(calls))
	}
	arn := streamARN(t, table)
	wantNames := []string{"INSERT", "MODIFY", "REMOVE"}
	wantNew := []any{canonItemSDK(rich), canonItemSDK(modified), nil}
	wantOld := []any{nil, canonItemSDK(rich), canonItemSDK(modified)}
	wantKeys := canonItemSDK(map[string]dt.AttributeValue{"pk": rich["pk"], "sk": rich["sk"]})
	prevSeq := ""
	for i, rec := range recs {
		if rec.EventName != wantNames[i] {
			t.Errorf("record %d: eventName %q, want %q", i, rec.EventName, wantNames[i])
		}
		if rec.EventSource != "aws:dynamodb" || rec.EventVersion != "1.1" || rec.AWSRegion != "us-east-1" || rec.EventSourceArn != arn || rec.EventID == "" {
			t.Errorf("record %d: metadata %q %q %q %q %q", i, rec.EventSource, rec.EventVersion, rec.AWSRegion, rec.EventSourceArn, rec.EventID)
		}
		ch := rec.Change
		if ch.StreamViewType != "NEW_AND_OLD_IMAGES" || ch.SizeBytes <= 0 {
			t.Errorf("record %d: view %q size %d", i, ch.StreamViewType, ch.SizeBytes)
		}
		if d := time.Since(ch.ApproximateCreationDateTime.Time); d < -time.Minute || d > 2*time.Minute {
			t.Errorf("record %d: ApproximateCreationDateTime %v is not about now", i, ch.ApproximateCreationDateTime.Time)
		}
		if prevSeq != "" && seqCompare(ch.SequenceNumber, prevSeq) <= 0 {
			t.Errorf("record %d: sequence %s not after %s", i, ch.SequenceNumber, prevSeq)
		}
		prevSeq = ch.SequenceNumber
		if got := canonItemEvent(ch.Keys); !reflect.DeepEqual(got, wantKeys) {
			t.Errorf("record %d: Keys %v, want %v", i, got, wantKeys)
		}
		if got := canonItemEvent(ch.NewImage); !reflect.DeepEqual(got, wantNew[i]) {
			t.Errorf("record %d: NewImage\n got %v\nwant %v", i, got, wantNew[i])
		}
		if got := canonItemEvent(ch.OldImage); !reflect.DeepEqual(got, wantOld[i]) {
			t.Errorf("record %d: OldImage\n got %v\nwant %v", i, got, wantOld[i])
		}
	}
	// Spot-check binary inside nested structures through the events API.
	if b := recs[0].Change.NewImage["m"].Map()["inner"].Map()["l"].List()[1].Binary(); !reflect.DeepEqual(b, []byte{9, 8}) {
		t.Errorf("nested binary = %v", b)
	}
	// The raw payload: a JSON number for the time, Lambda's key names.
	var raw struct {
		Records []map[string]json.RawMessage `json:"Records"`
	}
	if err := json.Unmarshal(calls[0].payload, &raw); err != nil {
		t.Fatal(err)
	}
	var dyn map[string]json.RawMessage
	_ = json.Unmarshal(raw.Records[0]["dynamodb"], &dyn)
	if ts := string(dyn["ApproximateCreationDateTime"]); ts == "" || ts[0] < '0' || ts[0] > '9' {
		t.Errorf("ApproximateCreationDateTime = %s, want a number of seconds", ts)
	}
	for _, k := range []string{"eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb", "eventSourceARN"} {
		if _, ok := raw.Records[0][k]; !ok {
			t.Errorf("record has no %q", k)
		}
	}
}

// checkRoundTrip: payload → events.DynamoDBEvent → JSON must be the same
// JSON, so nothing was lost in the typed event.
func checkRoundTrip(t *testing.T, payload []byte, ev events.DynamoDBEvent) {
	t.Helper()
	back, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal(payload, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(back, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("round trip through events.DynamoDBEvent changed the event:\n sent %s\n back %s", payload, back)
	}
}

func TestTrimHorizonBatchSize(t *testing.T) {
	table := newTable(t)
	want := keys("k", 10)
	putKeys(t, table, want...)
	inv := &fakeInvoker{}
	r := start(t, inv, Mapping{Table: table, StartingPosition: "TRIM_HORIZON", BatchSize: 3})
	waitIdle(t, r)
	calls := inv.snapshot()
	if got := sizes(calls); !reflect.DeepEqual(got, []int{3, 3, 3, 1}) {
		t.Errorf("batch sizes %v, want [3 3 3 1]", got)
	}
	if got := delivered(calls); !reflect.DeepEqual(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	if s := r.Stats(); s.Invocations != 4 || s.Records != 10 || s.Retried != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestBatchingWindow(t *testing.T) {
	const window = 400 * time.Millisecond
	t.Run("gathers", func(t *testing.T) {
		table := newTable(t)
		inv := &fakeInvoker{}
		r := start(t, inv, Mapping{Table: table, MaxBatchingWindow: window})
		begin := time.Now()
		putKeys(t, table, keys("w", 5)...)
		waitIdle(t, r)
		calls := inv.snapshot()
		if got := sizes(calls); !reflect.DeepEqual(got, []int{5}) {
			t.Errorf("batch sizes %v, want one batch of 5", got)
		}
		if d := r.Stats().LastBatchAt.Sub(begin); d < window-100*time.Millisecond {
			t.Errorf("invoked %v after the first write; the window is %v", d, window)
		}
	})
	t.Run("full batch does not wait", func(t *testing.T) {
		table := newTable(t)
		inv := &fakeInvoker{}
		r := start(t, inv, Mapping{Table: table, MaxBatchingWindow: window, BatchSize: 3})
		putKeys(t, table, keys("w", 7)...)
		waitIdle(t, r)
		calls := inv.snapshot()
		if got := sizes(calls); !reflect.DeepEqual(got, []int{3, 3, 1}) {
			t.Errorf("batch sizes %v, want [3 3 1]", got)
		}
		if got := delivered(calls); !reflect.DeepEqual(got, keys("w", 7)) {
			t.Errorf("delivered %v", got)
		}
	})
}

func TestFilters(t *testing.T) {
	table := newTable(t)
	inv := &fakeInvoker{}
	r := start(t, inv, Mapping{Table: table, Filters: []string{
		`{"eventName":["INSERT"],"dynamodb":{"Keys":{"sk":{"S":[{"prefix":"M#"}]}}}}`,
		`{"dynamodb":{"NewImage":{"kind":{"S":["pin"]}},"OldImage":{"kind":{"S":[{"exists":false}]}}}}`,
	}})
	s := func(v string) dt.AttributeValue { return &dt.AttributeValueMemberS{Value: v} }
	put(t, table, "t", "M#1", nil)                                                         // INSERT M#: delivered
	put(t, table, "t", "T#1", nil)                                                         // prefix mismatch: filtered
	put(t, table, "t", "M#1", map[string]dt.AttributeValue{"x": s("1")})                   // MODIFY: filtered
	put(t, table, "t", "P#1", map[string]dt.AttributeValue{"kind": s("pin")})              // new pin: delivered
	put(t, table, "t", "P#1", map[string]dt.AttributeValue{"kind": s("pin"), "x": s("2")}) // pin existed before: filtered
	put(t, table, "t", "M#2", nil)                                                         // delivered
	del(t, table, "t", "M#2")                                                              // REMOVE: filtered
	waitIdle(t, r)

	var got []string
	for _, c := range inv.snapshot() {
		for _, rec := range c.ev.Records {
			got = append(got, rec.EventName+" "+rec.Change.Keys["sk"].String())
		}
	}
	want := []string{"INSERT M#1", "INSERT P#1", "INSERT M#2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	if f := r.Stats().Filtered; f != 4 {
		t.Errorf("Filtered = %d, want 4", f)
	}
}

func TestFunctionErrorRetries(t *testing.T) {
	table := newTable(t)
	first := keys("r", 4)
	putKeys(t, table, first...)
	inv := &fakeInvoker{handle: func(n int, ev events.DynamoDBEvent) ([]byte, error) {
		if n < 2 {
			return nil, errors.New("transient failure")
		}
		return nil, nil
	}}
	r := start(t, inv, Mapping{Table: table, StartingPosition: "TRIM_HORIZON", MaxRetryAttempts: -1})
	waitIdle(t, r)
	later := []string{"s00", "s01"}
	putKeys(t, table, later...)
	waitIdle(t, r)

	calls := inv.snapshot()
	for i := 0; i < 3 && i < len(calls); i++ {
		if got := pks(calls[i].ev); !reflect.DeepEqual(got, first) {
			t.Errorf("call %d carried %v, want the same batch %v", i, got, first)
		}
	}
	if got, want := delivered(calls), append(append([]string{}, first...), later...); !reflect.DeepEqual(got, want) {
		t.Errorf("delivered %v, want %v (each once, in order)", got, want)
	}
	if s := r.Stats(); s.Retried != 2 || s.DeadLettered != 0 {
		t.Errorf("stats %+v, want Retried 2", s)
	}
}

func TestBisectIsolatesPoisonRecord(t *testing.T) {
	table := newTable(t)
	all := keys("b", 8)
	putKeys(t, table, all...)
	dlq := t.TempDir()
	inv := &fakeInvoker{handle: func(_ int, ev events.DynamoDBEvent) ([]byte, error) {
		for _, rec := range ev.Records {
			if pkOf(rec) == "b04" {
				return nil, errors.New("poison record b04")
			}
		}
		return nil, nil
	}}
	r := start(t, inv, Mapping{Table: table, Function: "Fanout", StartingPosition: "TRIM_HORIZON", BatchSize: 8,
		BisectOnError: true, MaxRetryAttempts: 1, DeadLetterDir: dlq})
	waitIdle(t, r)

	calls := inv.snapshot()
	// 8 fails → [0-3] ok, [4-7] fails → [4,5] fails → [4] fails, is retried
	// once and dead-lettered → [5] ok → [6,7] ok.
	if got := sizes(calls); !reflect.DeepEqual(got, []int{8, 4, 4, 2, 1, 1, 1, 2}) {
		t.Errorf("batch sizes %v, want [8 4 4 2 1 1 1 2]", got)
	}
	want := append(append([]string{}, all[:4]...), all[5:]...)
	if got := delivered(calls); !reflect.DeepEqual(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	doc := onlyDeadLetter(t, dlq, "Fanout")
	if doc.Function != "Fanout" || doc.Condition != "RetryAttemptsExhausted" || !strings.Contains(doc.Error, "poison record b04") {
		t.Errorf("dead letter header %+v", doc)
	}
	if len(doc.Records) != 1 || pkOf(doc.Records[0]) != "b04" {
		t.Fatalf("dead letter records %+v, want only b04", doc.Records)
	}
	seq := doc.Records[0].Change.SequenceNumber
	if doc.FirstSequenceNumber != seq || doc.LastSequenceNumber != seq {
		t.Errorf("dead letter range %s..%s, want %s", doc.FirstSequenceNumber, doc.LastSequenceNumber, seq)
	}
	if s := r.Stats(); s.DeadLettered != 1 || s.Invocations != 8 {
		t.Errorf("stats %+v", s)
	}
}

// deadLetterFile is the dead-letter document as a test reads it.
type deadLetterFile struct {
	Function            string                       `json:"function"`
	Condition           string                       `json:"condition"`
	Error               string                       `json:"error"`
	FirstSequenceNumber string                       `json:"firstSequenceNumber"`
	LastSequenceNumber  string                       `json:"lastSequenceNumber"`
	Records             []events.DynamoDBEventRecord `json:"records"`
}

func onlyDeadLetter(t *testing.T, dir, function string) deadLetterFile {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("dead-letter dir holds %v, want one file", files)
	}
	base := filepath.Base(files[0])
	if !strings.HasSuffix(base, "-"+function+".json") {
		t.Errorf("dead-letter file name %q, want <unix-nanos>-%s.json", base, function)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var doc deadLetterFile
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("dead letter is not valid: %v\n%s", err, b)
	}
	return doc
}

func TestPartialBatchResponse(t *testing.T) {
	t.Run("retries from the lowest failed record", func(t *testing.T) {
		table := newTable(t)
		all := keys("p", 6)
		putKeys(t, table, all...)
		inv := &fakeInvoker{}
		inv.handle = func(n int, ev events.DynamoDBEvent) ([]byte, error) {
			if n == 0 {
				// Unordered on purpose: the lowest one (p03) counts.
				return failures(ev.Records[4].Change.SequenceNumber, ev.Records[3].Change.SequenceNumber), nil
			}
			return []byte(`{"batchItemFailures":[]}`), nil
		}
		r := start(t, inv, Mapping{Table: table, StartingPosition: "TRIM_HORIZON", ReportBatchItemFailures: true, MaxRetryAttempts: -1})
		waitIdle(t, r)
		calls := inv.snapshot()
		if len(calls) != 2 {
			t.Fatalf("%d calls %v, want 2", len(calls), sizes(calls))
		}
		if got := pks(calls[1].ev); !reflect.DeepEqual(got, all[3:]) {
			t.Errorf("retry carried %v, want %v (records before the failure are done)", got, all[3:])
		}
		if s := r.Stats(); s.Retried != 1 {
			t.Errorf("Retried = %d, want 1", s.Retried)
		}
	})
	t.Run("unknown identifier fails the whole batch", func(t *testing.T) {
		table := newTable(t)
		all := keys("u", 3)
		putKeys(t, table, all...)
		inv := &fakeInvoker{}
		inv.handle = func(n int, ev events.DynamoDBEvent) ([]byte, error) {
			if n == 0 {
				return failures("999999999999999999999"), nil
			}
			return []byte(`{"batchItemFailures":null}`), nil
		}
		r := start(t, inv, Mapping{Table: table, StartingPosition: "TRIM_HORIZON", ReportBatchItemFailures: true, MaxRetryAttempts: -1})
		waitIdle(t, r)
		calls := inv.snapshot()
		if got := sizes(calls); !reflect.DeepEqual(got, []int{3, 3}) {
			t.Errorf("batch sizes %v, want the whole batch twice", got)
		}
	})
	t.Run("ignored without ReportBatchItemFailures", func(t *testing.T) {
		table := newTable(t)
		putKeys(t, table, keys("i", 3)...)
		inv := &fakeInvoker{handle: func(_ int, ev events.DynamoDBEvent) ([]byte, error) {
			return failures(ev.Records[0].Change.SequenceNumber), nil
		}}
		r := start(t, inv, Mapping{Table: table, StartingPosition: "TRIM_HORIZON"})
		waitIdle(t, r)
		if got := sizes(inv.snapshot()); !reflect.DeepEqual(got, []int{3}) {
			t.Errorf("batch sizes %v, want one successful batch", got)
		}
	})
}

func failures(seqs ...string) []byte {
	var resp events.DynamoDBEventResponse
	for _, s := range seqs {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: s})
	}
	b, _ := json.Marshal(resp)
	return b
}

func TestRetriesExhausted(t *testing.T) {
	table := newTable(t)
	putKeys(t, table, "a", "b", "c")
	dlq := t.TempDir()
	inv := &fakeInvoker{handle: func(_ int, ev events.DynamoDBEvent) ([]byte, error) {
		for _, rec := range ev.Records {
			if pkOf(rec) == "b" {
				return nil, errors.New("cannot handle b")
			}
		}
		return nil, nil
	}}
	r := start(t, inv, Mapping{Table: table, StartingPosition: "TRIM_HORIZON", MaxRetryAttempts: 2, DeadLetterDir: dlq})
	waitIdle(t, r)
	putKeys(t, table, "d", "e")
	waitIdle(t, r)

	calls := inv.snapshot()
	for i := 0; i < 3; i++ {
		if got := pks(calls[i].ev); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
			t.Errorf("call %d carried %v, want [a b c]", i, got)
		}
	}
	if got := delivered(calls); !reflect.DeepEqual(got, []string{"d", "e"}) {
		t.Errorf("delivered %v, want [d e]: the poller must move on after dead-lettering", got)
	}
	doc := onlyDeadLetter(t, dlq, "StreamFn")
	var got []string
	for _, rec := range doc.Records {
		got = append(got, pkOf(rec))
	}
	if !reflect.DeepEqual(got, []string{"a", "b", "c"}) || doc.Condition != "RetryAttemptsExhausted" || !strings.Contains(doc.Error, "cannot handle b") {
		t.Errorf("dead letter %+v", doc)
	}
	if doc.FirstSequenceNumber != doc.Records[0].Change.SequenceNumber || doc.LastSequenceNumber != doc.Records[2].Change.SequenceNumber {
		t.Errorf("dead letter range %s..%s", doc.FirstSequenceNumber, doc.LastSequenceNumber)
	}
	if s := r.Stats(); s.Retried != 2 || s.DeadLettered != 3 {
		t.Errorf("stats %+v, want Retried 2, DeadLettered 3", s)
	}
}

func TestNoRetriesAndNoDeadLetterDir(t *testing.T) {
	table := newTable(t)
	putKeys(t, table, "x", "y")
	inv := &fakeInvoker{handle: func(n int, _ events.DynamoDBEvent) ([]byte, error) {
		if n == 0 {
			return nil, errors.New("boom")
		}
		return nil, nil
	}}
	r := start(t, inv, Mapping{Table: table, StartingPosition: "TRIM_HORIZON", BatchSize: 1, MaxRetryAttempts: 0})
	waitIdle(t, r)
	if got := delivered(inv.snapshot()); !reflect.DeepEqual(got, []string{"y"}) {
		t.Errorf("delivered %v, want [y] (x dropped after its only attempt)", got)
	}
	if s := r.Stats(); s.DeadLettered != 1 || s.Invocations != 2 {
		t.Errorf("stats %+v", s)
	}
}

// expiringStreams injects one ExpiredIteratorException into the real client.
type expiringStreams struct {
	*dynamodbstreams.Client
	armed atomic.Bool
	mu    sync.Mutex
	after []string // AFTER_SEQUENCE_NUMBER positions requested
}

func (e *expiringStreams) GetRecords(ctx context.Context, in *dynamodbstreams.GetRecordsInput, o ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error) {
	if e.armed.CompareAndSwap(true, false) {
		return nil, &st.ExpiredIteratorException{Message: aws.String("Iterator expired (test)")}
	}
	return e.Client.GetRecords(ctx, in, o...)
}

func (e *expiringStreams) GetShardIterator(ctx context.Context, in *dynamodbstreams.GetShardIteratorInput, o ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error) {
	if in.ShardIteratorType == st.ShardIteratorTypeAfterSequenceNumber {
		e.mu.Lock()
		e.after = append(e.after, aws.ToString(in.SequenceNumber))
		e.mu.Unlock()
	}
	return e.Client.GetShardIterator(ctx, in, o...)
}

func TestExpiredIteratorResumesAfterCheckpoint(t *testing.T) {
	table := newTable(t)
	api := &expiringStreams{Client: sc}
	inv := &fakeInvoker{}
	p := &Poller{DynamoDB: db, Invoker: inv, api: api}
	r, err := p.Start(context.Background(), Mapping{Function: "F", Table: table, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	putKeys(t, table, "e0", "e1")
	waitIdle(t, r)
	api.armed.Store(true)
	putKeys(t, table, "e2", "e3")
	waitIdle(t, r)
	if api.armed.Load() {
		t.Fatal("the injected expiry was never hit")
	}
	calls := inv.snapshot()
	if got := delivered(calls); !reflect.DeepEqual(got, []string{"e0", "e1", "e2", "e3"}) {
		t.Errorf("delivered %v, want each record once", got)
	}
	var e1 string
	for _, c := range calls {
		for _, rec := range c.ev.Records {
			if pkOf(rec) == "e1" {
				e1 = rec.Change.SequenceNumber
			}
		}
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if !reflect.DeepEqual(api.after, []string{e1}) {
		t.Errorf("re-positioned AFTER_SEQUENCE_NUMBER %v, want [%s] (the checkpoint)", api.after, e1)
	}
}

func TestWaitIdle(t *testing.T) {
	t.Run("sees every concurrent write", func(t *testing.T) {
		table := newTable(t)
		inv := &fakeInvoker{}
		r := start(t, inv, Mapping{Table: table, BatchSize: 7})
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					item := map[string]dt.AttributeValue{
						"pk": &dt.AttributeValueMemberS{Value: fmt.Sprintf("g%d-%02d", g, i)},
						"sk": &dt.AttributeValueMemberS{Value: "A"},
					}
					if _, err := db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: &table, Item: item}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		waitIdle(t, r)
		got := delivered(inv.snapshot())
		if len(got) != 200 {
			t.Fatalf("WaitIdle returned with %d of 200 records delivered", len(got))
		}
		seen := map[string]bool{}
		for _, k := range got {
			if seen[k] {
				t.Errorf("%s delivered twice", k)
			}
			seen[k] = true
		}
		// Per-writer order is the stream's order.
		last := map[string]string{}
		for _, k := range got {
			g := k[:2]
			if k <= last[g] {
				t.Errorf("%s delivered after %s", k, last[g])
			}
			last[g] = k
		}
	})
	t.Run("times out while a batch keeps failing", func(t *testing.T) {
		table := newTable(t)
		inv := &fakeInvoker{handle: func(int, events.DynamoDBEvent) ([]byte, error) { return nil, errors.New("down") }}
		r := start(t, inv, Mapping{Table: table, MaxRetryAttempts: -1})
		putKeys(t, table, "stuck")
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if err := r.WaitIdle(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WaitIdle = %v, want a deadline error", err)
		}
		if s := r.Stats(); s.Invocations < 2 || s.Retried != s.Invocations-1 {
			t.Errorf("stats %+v: the batch should be retried over and over", s)
		}
	})
}

func TestStop(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		table := newTable(t)
		r := start(t, &fakeInvoker{}, Mapping{Table: table, PollInterval: 200 * time.Millisecond})
		waitIdle(t, r)
		begin := time.Now()
		r.Stop()
		if d := time.Since(begin); d > 500*time.Millisecond {
			t.Errorf("Stop took %v", d)
		}
		if err := r.WaitIdle(context.Background()); !errors.Is(err, ErrStopped) {
			t.Errorf("WaitIdle after Stop = %v, want ErrStopped", err)
		}
		r.Stop() // idempotent
	})
	t.Run("waits for the running invocation", func(t *testing.T) {
		table := newTable(t)
		started := make(chan struct{})
		release := make(chan struct{})
		var finished atomic.Bool
		inv := &fakeInvoker{handle: func(int, events.DynamoDBEvent) ([]byte, error) {
			close(started)
			<-release
			finished.Store(true)
			return nil, nil
		}}
		r := start(t, inv, Mapping{Table: table})
		putKeys(t, table, "slow")
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("function never invoked")
		}
		go func() {
			time.Sleep(100 * time.Millisecond)
			close(release)
		}()
		begin := time.Now()
		r.Stop()
		if !finished.Load() {
			t.Error("Stop returned before the invocation finished")
		}
		if d := time.Since(begin); d > 2*time.Second {
			t.Errorf("Stop took %v", d)
		}
		if n := r.Stats().Invocations; n != 1 {
			t.Errorf("%d invocations, want 1", n)
		}
	})
}

func TestStartErrors(t *testing.T) {
	plain := fmt.Sprintf("nostream_%d_%d", os.Getpid(), tableSeq.Add(1))
	_, err := db.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName: &plain, BillingMode: dt.BillingModePayPerRequest,
		AttributeDefinitions: []dt.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: dt.ScalarAttributeTypeS}},
		KeySchema:            []dt.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: dt.KeyTypeHash}},
	})
	if err != nil {
		t.Fatal(err)
	}
	withStream := newTable(t)
	p := &Poller{Streams: sc, DynamoDB: db, Invoker: &fakeInvoker{}}
	for name, m := range map[string]Mapping{
		"no stream":      {Function: "F", Table: plain},
		"missing table":  {Function: "F", Table: "does_not_exist"},
		"bad filter":     {Function: "F", Table: withStream, Filters: []string{`{"eventName":"INSERT"}`}},
		"bad position":   {Function: "F", Table: withStream, StartingPosition: "AT_TIMESTAMP"},
		"batch too big":  {Function: "F", Table: withStream, BatchSize: 10001},
		"no function":    {Table: withStream},
		"retries < -1":   {Function: "F", Table: withStream, MaxRetryAttempts: -2},
		"window too big": {Function: "F", Table: withStream, MaxBatchingWindow: 301 * time.Second},
	} {
		if r, err := p.Start(context.Background(), m); err == nil {
			r.Stop()
			t.Errorf("%s: Start succeeded", name)
		}
	}
}
