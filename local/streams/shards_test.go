package streams

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	st "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// DynamoDB Local keeps one shard for 4 hours, so shard lineage is tested
// against an in-memory stream that behaves like DynamoDB Streams: closed
// shards end with a null NextShardIterator and children may be listed late.
type fakeStream struct {
	mu        sync.Mutex
	arn       string
	status    st.StreamStatus
	shards    []*fakeShard
	describes int
}

type fakeShard struct {
	id, parent  string
	recs        []st.Record
	closed      bool
	showAtCount int // listed from this DescribeStream call on (0 = always)
}

func (f *fakeStream) shard(id string) *fakeShard {
	for _, s := range f.shards {
		if s.id == id {
			return s
		}
	}
	return nil
}

func (f *fakeStream) DescribeStream(_ context.Context, in *dynamodbstreams.DescribeStreamInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.describes++
	d := &st.StreamDescription{StreamArn: aws.String(f.arn), StreamStatus: f.status, StreamViewType: st.StreamViewTypeNewAndOldImages}
	for _, s := range f.shards {
		if s.showAtCount > f.describes {
			continue
		}
		sh := st.Shard{ShardId: aws.String(s.id), SequenceNumberRange: &st.SequenceNumberRange{}}
		if s.parent != "" {
			sh.ParentShardId = aws.String(s.parent)
		}
		if s.closed && len(s.recs) > 0 {
			sh.SequenceNumberRange.EndingSequenceNumber = s.recs[len(s.recs)-1].Dynamodb.SequenceNumber
		}
		d.Shards = append(d.Shards, sh)
	}
	return &dynamodbstreams.DescribeStreamOutput{StreamDescription: d}, nil
}

func (f *fakeStream) GetShardIterator(_ context.Context, in *dynamodbstreams.GetShardIteratorInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.shard(aws.ToString(in.ShardId))
	if s == nil {
		return nil, &st.ResourceNotFoundException{Message: aws.String("no shard")}
	}
	pos := 0
	switch in.ShardIteratorType {
	case st.ShardIteratorTypeLatest:
		pos = len(s.recs)
	case st.ShardIteratorTypeAfterSequenceNumber, st.ShardIteratorTypeAtSequenceNumber:
		pos = -1
		for i, r := range s.recs {
			if *r.Dynamodb.SequenceNumber == aws.ToString(in.SequenceNumber) {
				pos = i
				if in.ShardIteratorType == st.ShardIteratorTypeAfterSequenceNumber {
					pos++
				}
			}
		}
		if pos < 0 {
			return nil, fmt.Errorf("no sequence number %s", aws.ToString(in.SequenceNumber))
		}
	}
	return &dynamodbstreams.GetShardIteratorOutput{ShardIterator: aws.String(fmt.Sprintf("%s|%d", s.id, pos))}, nil
}

func (f *fakeStream) GetRecords(_ context.Context, in *dynamodbstreams.GetRecordsInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, p, _ := strings.Cut(aws.ToString(in.ShardIterator), "|")
	pos, _ := strconv.Atoi(p)
	s := f.shard(id)
	end := min(len(s.recs), pos+int(aws.ToInt32(in.Limit)))
	out := &dynamodbstreams.GetRecordsOutput{Records: append([]st.Record(nil), s.recs[pos:end]...)}
	if !(s.closed && end == len(s.recs)) {
		out.NextShardIterator = aws.String(fmt.Sprintf("%s|%d", id, end))
	}
	return out, nil
}

func (f *fakeStream) add(shard string, seq int, pk string, created time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.shard(shard)
	s.recs = append(s.recs, st.Record{
		EventID: aws.String(fmt.Sprint("ev", seq)), EventName: st.OperationTypeInsert,
		EventSource: aws.String("aws:dynamodb"), EventVersion: aws.String("1.1"), AwsRegion: aws.String("ddblocal"),
		Dynamodb: &st.StreamRecord{
			ApproximateCreationDateTime: aws.Time(created.Truncate(time.Minute)),
			Keys:                        map[string]st.AttributeValue{"pk": &st.AttributeValueMemberS{Value: pk}},
			NewImage:                    map[string]st.AttributeValue{"pk": &st.AttributeValueMemberS{Value: pk}},
			SequenceNumber:              aws.String(fmt.Sprintf("%021d", seq)),
			SizeBytes:                   aws.Int64(10),
			StreamViewType:              st.StreamViewTypeNewAndOldImages,
		},
	})
}

func startFake(t *testing.T, f *fakeStream, inv Invoker, m Mapping) *Run {
	t.Helper()
	m.Function, m.StreamARN, m.PollInterval = "F", f.arn, 5*time.Millisecond
	r, err := (&Poller{Invoker: inv, api: f}).Start(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

func TestShardLineage(t *testing.T) {
	now := time.Now()
	f := &fakeStream{arn: "arn:fake", status: st.StreamStatusEnabled, shards: []*fakeShard{
		{id: "parent", closed: true},
		{id: "child", parent: "parent", closed: true},
		// Listed only from the 4th DescribeStream: after the child closes
		// the poller must keep looking until the grandchild shows up.
		{id: "grandchild", parent: "child", showAtCount: 4},
	}}
	for i, pk := range []string{"p1", "p2", "p3"} {
		f.add("parent", 1+i, pk, now)
	}
	f.add("child", 4, "c1", now)
	f.add("child", 5, "c2", now)
	f.add("grandchild", 6, "g1", now)

	inv := &fakeInvoker{}
	r := startFake(t, f, inv, Mapping{StartingPosition: "TRIM_HORIZON", BatchSize: 2})
	waitIdle(t, r)
	f.add("grandchild", 7, "g2", now)
	waitIdle(t, r)
	want := []string{"p1", "p2", "p3", "c1", "c2", "g1", "g2"}
	if got := delivered(inv.snapshot()); !reflect.DeepEqual(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	// A batch never spans shards: the parent's odd record goes alone.
	if got := sizes(inv.snapshot()); !reflect.DeepEqual(got, []int{2, 1, 2, 1, 1}) {
		t.Errorf("batch sizes %v, want [2 1 2 1 1]", got)
	}

	// LATEST starts at the open leaf only.
	inv2 := &fakeInvoker{}
	r2 := startFake(t, f, inv2, Mapping{})
	f.add("grandchild", 8, "g3", now)
	waitIdle(t, r2)
	if got := delivered(inv2.snapshot()); !reflect.DeepEqual(got, []string{"g3"}) {
		t.Errorf("LATEST delivered %v, want [g3]", got)
	}
}

func TestStreamDisabledEndsRun(t *testing.T) {
	f := &fakeStream{arn: "arn:fake", status: st.StreamStatusEnabled, shards: []*fakeShard{{id: "only"}}}
	inv := &fakeInvoker{}
	r := startFake(t, f, inv, Mapping{})
	f.add("only", 1, "a", time.Now())
	waitIdle(t, r)
	f.mu.Lock()
	f.status, f.shards[0].closed = st.StreamStatusDisabled, true
	f.mu.Unlock()
	waitIdle(t, r) // the closed shard retires; nothing is left to wait for
	r.mu.Lock()
	active := len(r.active)
	r.mu.Unlock()
	if active != 0 {
		t.Errorf("%d shards still active after the stream was disabled", active)
	}
}

func TestMaxRecordAge(t *testing.T) {
	f := &fakeStream{arn: "arn:fake", status: st.StreamStatusEnabled, shards: []*fakeShard{{id: "only"}}}
	old := time.Now().Add(-2 * time.Hour)
	f.add("only", 1, "old1", old)
	f.add("only", 2, "old2", old)
	f.add("only", 3, "new1", time.Now())
	dlq := t.TempDir()
	inv := &fakeInvoker{}
	r := startFake(t, f, inv, Mapping{StartingPosition: "TRIM_HORIZON", MaxRecordAge: time.Hour, DeadLetterDir: dlq})
	waitIdle(t, r)
	if got := delivered(inv.snapshot()); !reflect.DeepEqual(got, []string{"new1"}) {
		t.Errorf("delivered %v, want only the fresh record", got)
	}
	doc := onlyDeadLetter(t, dlq, "F")
	var pks []string
	for _, rec := range doc.Records {
		pks = append(pks, pkOf(rec))
	}
	if doc.Condition != "RecordAgeExceeded" || !reflect.DeepEqual(pks, []string{"old1", "old2"}) {
		t.Errorf("dead letter %s %v, want RecordAgeExceeded [old1 old2]", doc.Condition, pks)
	}
	if s := r.Stats(); s.DeadLettered != 2 || s.Records != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestRecordAgeAllowsForMinuteRounding(t *testing.T) {
	now := time.Now()
	fresh := &record{created: now.Truncate(time.Minute), readAt: now}
	if a := recordAge(fresh); a > time.Second {
		t.Errorf("a record read just now is %v old", a)
	}
	old := &record{created: now.Add(-2 * time.Hour).Truncate(time.Minute), readAt: now}
	if a := recordAge(old); a < 118*time.Minute || a > 2*time.Hour {
		t.Errorf("a two-hour-old record is %v old", a)
	}
}
