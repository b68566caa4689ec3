package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/fault"
)

var _ chat.ThreadStore = (*Store)(nil)

// Item keys. A thread's items share its partition: META, P#<user>, M#<seq>.
const (
	skThread = "META"
	prefixT  = "T#"
	prefixP  = "P#"
	prefixM  = "M#"
	prefixU  = "U#"
)

func threadPK(id string) string { return prefixT + id }
func msgSK(seq int64) string    { return fmt.Sprintf("%s%012d", prefixM, seq) }

// threadItem is a thread's META item. Times are epoch milliseconds; short
// attribute names keep the items (and so the write units) small.
type threadItem struct {
	PK            string            `dynamodbav:"pk"`
	SK            string            `dynamodbav:"sk"`
	Topic         string            `dynamodbav:"topic"`
	CreatedBy     string            `dynamodbav:"cby"`
	CreatedOn     int64             `dynamodbav:"con"`
	DeletedOn     int64             `dynamodbav:"del,omitempty"`
	DeletedBy     string            `dynamodbav:"dby,omitempty"`
	UpdatedOn     int64             `dynamodbav:"upd,omitempty"`
	UpdatedBy     string            `dynamodbav:"uby,omitempty"`
	Metadata      map[string]string `dynamodbav:"md,omitempty"`
	RetKind       string            `dynamodbav:"rk,omitempty"`
	RetDays       int               `dynamodbav:"rd,omitempty"`
	LastMessageAt int64             `dynamodbav:"lma"`
	Seq           int64             `dynamodbav:"seq"`
	Rev           int64             `dynamodbav:"rev"`
	Members       int               `dynamodbav:"pc"`
}

func (it threadItem) thread() chat.Thread {
	return chat.Thread{
		ID: strings.TrimPrefix(it.PK, prefixT), Topic: it.Topic, CreatedBy: it.CreatedBy, CreatedOn: ms(it.CreatedOn),
		DeletedOn: ms(it.DeletedOn), DeletedBy: it.DeletedBy, UpdatedOn: ms(it.UpdatedOn), UpdatedBy: it.UpdatedBy, Metadata: it.Metadata, Retention: chat.Retention{Kind: it.RetKind, Days: it.RetDays},
		LastMessageAt: ms(it.LastMessageAt), Seq: it.Seq, Rev: it.Rev, Members: it.Members,
	}
}

// participantItem is a P#<user> item; gsi1pk/gsi1sk put it in the user's
// ByUser index, which lists a user's threads.
type participantItem struct {
	PK               string            `dynamodbav:"pk"`
	SK               string            `dynamodbav:"sk"`
	GSI1PK           string            `dynamodbav:"gsi1pk"`
	GSI1SK           string            `dynamodbav:"gsi1sk"`
	DisplayName      string            `dynamodbav:"dn,omitempty"`
	ShareHistoryTime int64             `dynamodbav:"sht,omitempty"`
	Metadata         map[string]string `dynamodbav:"md,omitempty"`
	JoinedOn         int64             `dynamodbav:"jn"`
	JoinedSeq        int64             `dynamodbav:"jseq,omitempty"`
	RemovedOn        int64             `dynamodbav:"rmv,omitempty"`
	RemovedSeq       int64             `dynamodbav:"rseq,omitempty"`
}

func newParticipantItem(threadID string, p chat.Participant) participantItem {
	return participantItem{
		PK: threadPK(threadID), SK: prefixP + p.UserID, GSI1PK: prefixU + p.UserID, GSI1SK: threadPK(threadID),
		DisplayName: p.DisplayName, ShareHistoryTime: toMS(p.ShareHistoryTime), Metadata: p.Metadata,
		JoinedOn: toMS(p.JoinedOn), JoinedSeq: p.JoinedSeq, RemovedOn: toMS(p.RemovedOn), RemovedSeq: p.RemovedSeq,
	}
}

func (it participantItem) participant() chat.Participant {
	return chat.Participant{
		UserID: strings.TrimPrefix(it.SK, prefixP), DisplayName: it.DisplayName, ShareHistoryTime: ms(it.ShareHistoryTime),
		Metadata: it.Metadata, JoinedOn: ms(it.JoinedOn), JoinedSeq: it.JoinedSeq, RemovedOn: ms(it.RemovedOn), RemovedSeq: it.RemovedSeq,
	}
}

// partRef is a participant inside a system message.
type partRef struct {
	UserID           string            `dynamodbav:"u"`
	DisplayName      string            `dynamodbav:"dn,omitempty"`
	ShareHistoryTime int64             `dynamodbav:"sht,omitempty"`
	Metadata         map[string]string `dynamodbav:"md,omitempty"`
}

// messageItem is an M#<seq> item.
type messageItem struct {
	PK                string            `dynamodbav:"pk"`
	SK                string            `dynamodbav:"sk"`
	Seq               int64             `dynamodbav:"seq"`
	Type              string            `dynamodbav:"typ"`
	SenderID          string            `dynamodbav:"snd,omitempty"`
	SenderDisplayName string            `dynamodbav:"sdn,omitempty"`
	Body              string            `dynamodbav:"body,omitempty"`
	Topic             string            `dynamodbav:"tpc,omitempty"`
	Participants      []partRef         `dynamodbav:"parts,omitempty"`
	InitiatorID       string            `dynamodbav:"ini,omitempty"`
	CreatedOn         int64             `dynamodbav:"con"`
	EditedOn          int64             `dynamodbav:"edt,omitempty"`
	DeletedOn         int64             `dynamodbav:"dlt,omitempty"`
	Version           int64             `dynamodbav:"ver"`
	Metadata          map[string]string `dynamodbav:"md,omitempty"`
}

func newMessageItem(threadID string, m chat.Message) messageItem {
	it := messageItem{
		PK: threadPK(threadID), SK: msgSK(m.Seq), Seq: m.Seq, Type: m.Type, SenderID: m.SenderID,
		SenderDisplayName: m.SenderDisplayName, Body: m.Body, Topic: m.Topic, InitiatorID: m.InitiatorID,
		CreatedOn: toMS(m.CreatedOn), EditedOn: toMS(m.EditedOn), DeletedOn: toMS(m.DeletedOn), Version: m.Version, Metadata: m.Metadata,
	}
	for _, p := range m.Participants {
		it.Participants = append(it.Participants, partRef{UserID: p.UserID, DisplayName: p.DisplayName, ShareHistoryTime: toMS(p.ShareHistoryTime), Metadata: p.Metadata})
	}
	return it
}

func (it messageItem) message() chat.Message {
	m := chat.Message{
		Seq: it.Seq, Type: it.Type, SenderID: it.SenderID, SenderDisplayName: it.SenderDisplayName, Body: it.Body,
		Topic: it.Topic, InitiatorID: it.InitiatorID, CreatedOn: ms(it.CreatedOn), EditedOn: ms(it.EditedOn),
		DeletedOn: ms(it.DeletedOn), Version: it.Version, Metadata: it.Metadata,
	}
	for _, p := range it.Participants {
		m.Participants = append(m.Participants, chat.Participant{UserID: p.UserID, DisplayName: p.DisplayName, ShareHistoryTime: ms(p.ShareHistoryTime), Metadata: p.Metadata})
	}
	return m
}

func putRequest(v any) (types.WriteRequest, error) {
	item, err := attributevalue.MarshalMap(v)
	if err != nil {
		return types.WriteRequest{}, fmt.Errorf("marshal item: %w", err)
	}
	return types.WriteRequest{PutRequest: &types.PutRequest{Item: item}}, nil
}

// CreateThread writes participants and system messages first and the META
// item last. Readers treat a thread without META as nonexistent, so a crash
// part-way leaves nothing visible, and a retry rewrites the same items.
func (s *Store) CreateThread(ctx context.Context, d chat.ThreadDraft) error {
	var reqs []types.WriteRequest
	for _, p := range d.Participants {
		r, err := putRequest(newParticipantItem(d.Thread.ID, p))
		if err != nil {
			return err
		}
		reqs = append(reqs, r)
	}
	for _, m := range d.Messages {
		r, err := putRequest(newMessageItem(d.Thread.ID, m))
		if err != nil {
			return err
		}
		reqs = append(reqs, r)
	}
	if err := s.batchWrite(ctx, reqs); err != nil {
		return err
	}
	t := d.Thread
	meta, err := attributevalue.MarshalMap(threadItem{
		PK: threadPK(t.ID), SK: skThread, Topic: t.Topic, CreatedBy: t.CreatedBy, CreatedOn: toMS(t.CreatedOn),
		Metadata: t.Metadata, RetKind: t.Retention.Kind, RetDays: t.Retention.Days,
		LastMessageAt: toMS(t.LastMessageAt), Seq: t.Seq, Rev: t.Rev, Members: t.Members,
	})
	if err != nil {
		return fmt.Errorf("marshal thread: %w", err)
	}
	_, err = s.DB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.Table, Item: meta, ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	if conditionFailed(err) {
		return nil // committed by an earlier attempt of the same request
	}
	if err != nil {
		return fail("PutItem", err)
	}
	return nil
}

// ThreadView reads the thread and the user's participant item in one
// strongly consistent call: authorization must see the latest membership.
func (s *Store) ThreadView(ctx context.Context, threadID, userID string) (chat.View, error) {
	items, err := s.batchGet(ctx, []map[string]types.AttributeValue{
		key(threadPK(threadID), skThread), key(threadPK(threadID), prefixP+userID),
	}, true, nil, nil)
	if err != nil {
		return chat.View{}, err
	}
	s.noteThread(threadID, items)
	return viewOf(items)
}

// UpdateThread applies a property change. With a system message, the META
// update and the message commit in one transaction conditioned on the
// revision and sequence id read by the caller; otherwise one conditional
// update is enough (and costs half). Either way the META update also counts
// the request against c.Quota (quota.go).
func (s *Store) UpdateThread(ctx context.Context, c chat.ThreadChange) error {
	// Built afresh for every attempt: the builders share their lists.
	change := func() (expression.UpdateBuilder, expression.ConditionBuilder) {
		upd := expression.Set(expression.Name("topic"), expression.Value(c.Topic)).
			Set(expression.Name("rev"), expression.Value(c.ExpectRev+1)).
			Set(expression.Name("upd"), expression.Value(toMS(c.At))).
			Set(expression.Name("uby"), expression.Value(c.By))
		if len(c.Metadata) > 0 {
			upd = upd.Set(expression.Name("md"), expression.Value(c.Metadata))
		} else {
			upd = upd.Remove(expression.Name("md"))
		}
		if c.Retention.Kind != "" {
			upd = upd.Set(expression.Name("rk"), expression.Value(c.Retention.Kind)).Set(expression.Name("rd"), expression.Value(c.Retention.Days))
		} else {
			upd = upd.Remove(expression.Name("rk")).Remove(expression.Name("rd"))
		}
		cond := expression.Name("rev").Equal(expression.Value(c.ExpectRev)).
			And(expression.AttributeNotExists(expression.Name("del")))
		if c.Message != nil {
			upd = upd.Set(expression.Name("seq"), expression.Value(c.Message.Seq)).
				Set(expression.Name("lma"), expression.Value(toMS(c.At)))
			cond = cond.And(expression.Name("seq").Equal(expression.Value(c.ExpectSeq)))
		}
		return upd, cond
	}
	var msg map[string]types.AttributeValue
	if c.Message != nil {
		var err error
		if msg, err = attributevalue.MarshalMap(newMessageItem(c.ThreadID, *c.Message)); err != nil {
			return fmt.Errorf("marshal message: %w", err)
		}
	}
	counting := s.guess(c.ThreadID, c.Quota, c.At)
	for attempt := 1; ; attempt++ {
		u, cd := counting.apply(change())
		expr, err := expression.NewBuilder().WithUpdate(u).WithCondition(cd).Build()
		if err != nil {
			return fmt.Errorf("build update: %w", err)
		}
		old, err := s.updateThread(ctx, c.ThreadID, expr, msg)
		if err != nil || old == nil {
			if err == nil {
				s.counters.set(c.ThreadID, counting.counted())
			}
			return err
		}
		// The condition failed: the thread changed (the caller reads it
		// again), or the counters were not as guessed.
		if old[attrPK] == nil || old["del"] != nil || intAttr(old, "rev") != c.ExpectRev || (c.Message != nil && intAttr(old, "seq") != c.ExpectSeq) {
			return chat.ErrRaced
		}
		s.counters.note(c.ThreadID, old)
		if refused := counting.correct(old); refused != nil {
			return refused
		}
		if attempt == countingAttempts {
			return fault.Busy(time.Second, "Thread %s is too busy; retry after a second.", c.ThreadID)
		}
	}
}

// updateThread runs one attempt of UpdateThread. When the META update's
// condition fails it returns the item as it was (ALL_OLD, empty when there
// is none); any other refusal is ErrRaced.
func (s *Store) updateThread(ctx context.Context, threadID string, expr expression.Expression, msg map[string]types.AttributeValue) (map[string]types.AttributeValue, error) {
	meta := types.Update{
		TableName: &s.Table, Key: key(threadPK(threadID), skThread),
		UpdateExpression: expr.Update(), ConditionExpression: expr.Condition(),
		ExpressionAttributeNames: expr.Names(), ExpressionAttributeValues: expr.Values(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
	if msg == nil {
		_, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: meta.TableName, Key: meta.Key, UpdateExpression: meta.UpdateExpression, ConditionExpression: meta.ConditionExpression,
			ExpressionAttributeNames: meta.ExpressionAttributeNames, ExpressionAttributeValues: meta.ExpressionAttributeValues,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		var ccf *types.ConditionalCheckFailedException
		switch {
		case asErr(err, &ccf):
			return orEmpty(ccf.Item), nil
		case err != nil:
			return nil, fail("UpdateItem", err)
		}
		return nil, nil
	}
	_, err := s.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &meta},
		{Put: &types.Put{TableName: &s.Table, Item: msg, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
	}})
	var tce *types.TransactionCanceledException
	switch {
	case err == nil:
		return nil, nil
	case !asErr(err, &tce) || !canceledByCondition(err):
		return nil, fail("TransactWriteItems", err)
	case len(tce.CancellationReasons) > 0 && aws.ToString(tce.CancellationReasons[0].Code) == "ConditionalCheckFailed":
		return orEmpty(tce.CancellationReasons[0].Item), nil
	default:
		return nil, chat.ErrRaced // the message's own condition: the sequence id was taken
	}
}

// orEmpty makes "no item" distinguishable from "no failure".
func orEmpty(item map[string]types.AttributeValue) map[string]types.AttributeValue {
	if item == nil {
		return map[string]types.AttributeValue{}
	}
	return item
}

func canceledByCondition(err error) bool {
	var tce *types.TransactionCanceledException
	if !asErr(err, &tce) {
		return false
	}
	for _, r := range tce.CancellationReasons {
		if aws.ToString(r.Code) == "ConditionalCheckFailed" {
			return true
		}
	}
	return false
}

// MarkThreadDeleted sets the deletion time once; a second delete is a no-op.
func (s *Store) MarkThreadDeleted(ctx context.Context, threadID string, at time.Time, by string) error {
	_, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.Table, Key: key(threadPK(threadID), skThread),
		UpdateExpression:    aws.String("SET del = :at, dby = :by"),
		ConditionExpression: aws.String("attribute_exists(pk) AND attribute_not_exists(del)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":at": &types.AttributeValueMemberN{Value: fmt.Sprint(toMS(at))}, ":by": &types.AttributeValueMemberS{Value: by},
		},
	})
	if conditionFailed(err) {
		return nil
	}
	if err != nil {
		return fail("UpdateItem", err)
	}
	return nil
}

// Memberships lists the threads a user is or was in, from the ByUser index.
func (s *Store) Memberships(ctx context.Context, userID string) ([]chat.Membership, error) {
	var out []chat.Membership
	p := dynamodb.NewQueryPaginator(s.DB, &dynamodb.QueryInput{
		TableName: &s.Table, IndexName: aws.String(IndexByUser),
		KeyConditionExpression:    aws.String("gsi1pk = :u"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":u": &types.AttributeValueMemberS{Value: prefixU + userID}},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fail("Query", err)
		}
		for _, it := range page.Items {
			var pi participantItem
			if err := attributevalue.UnmarshalMap(it, &pi); err != nil {
				return nil, fmt.Errorf("unmarshal membership: %w", err)
			}
			out = append(out, chat.Membership{ThreadID: strings.TrimPrefix(pi.PK, prefixT), RemovedOn: ms(pi.RemovedOn)})
		}
	}
	return out, nil
}

// Threads reads the META items of the given threads; ids without one (never
// committed) are absent from the result.
func (s *Store) Threads(ctx context.Context, ids []string) (map[string]chat.Thread, error) {
	keys := make([]map[string]types.AttributeValue, len(ids))
	for i, id := range ids {
		keys[i] = key(threadPK(id), skThread)
	}
	items, err := s.batchGet(ctx, keys, false, nil, nil)
	if err != nil {
		return nil, err
	}
	out := make(map[string]chat.Thread, len(items))
	for _, it := range items {
		var ti threadItem
		if err := attributevalue.UnmarshalMap(it, &ti); err != nil {
			return nil, fmt.Errorf("unmarshal thread: %w", err)
		}
		t := ti.thread()
		out[t.ID] = t
	}
	return out, nil
}
