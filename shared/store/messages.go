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

var _ chat.MessageStore = (*Store)(nil)

// sinceSlack bounds how far a newest-first scan reads past its Since bound:
// creation times follow sequence ids only up to clock skew between functions.
const sinceSlack = time.Minute

// SendCheck reads the caller's participant item (and the request record)
// with one strongly consistent BatchGetItem.
func (s *Store) SendCheck(ctx context.Context, threadID, userID, requestKey string) (*chat.Participant, *chat.RequestRecord, error) {
	keys := []map[string]types.AttributeValue{key(threadPK(threadID), prefixP+userID)}
	if requestKey != "" {
		keys = append(keys, key(prefixRQ+requestKey, skRQ))
	}
	items, err := s.batchGet(ctx, keys, true, nil, nil)
	if err != nil {
		return nil, nil, err
	}
	var p *chat.Participant
	var rec *chat.RequestRecord
	for _, it := range items {
		switch sk := str(it, attrSK); {
		case strings.HasPrefix(sk, prefixP):
			var pi participantItem
			if err := attributevalue.UnmarshalMap(it, &pi); err != nil {
				return nil, nil, fmt.Errorf("unmarshal participant: %w", err)
			}
			v := pi.participant()
			p = &v
		case sk == skRQ:
			var ri requestItem
			if err := attributevalue.UnmarshalMap(it, &ri); err != nil {
				return nil, nil, fmt.Errorf("unmarshal request: %w", err)
			}
			if ri.TTL > s.now().Unix() { // an expired record is as good as gone
				rec = &chat.RequestRecord{Hash: ri.Hash, ThreadID: ri.ThreadID, Created: ms(ri.Created), Done: ri.Done, Result: ri.Result}
			}
		}
	}
	return p, rec, nil
}

// NextSeq is one atomic counter update on the thread's META item; it never
// conflicts with concurrent senders, so sequence ids are distinct and
// increasing under any load (a failed send may leave a gap). The same update
// counts the request against q (quota.go); a refused request consumes no
// sequence id, and a wrong guess of q's windows costs one more update.
func (s *Store) NextSeq(ctx context.Context, threadID string, at time.Time, q chat.Quota) (chat.Thread, error) {
	c := s.guess(threadID, q, at)
	for attempt := 1; ; attempt++ {
		upd, cond := c.apply(
			expression.Add(expression.Name("seq"), expression.Value(1)).Set(expression.Name("lma"), expression.Value(toMS(at))),
			expression.AttributeExists(expression.Name(attrPK)).And(expression.AttributeNotExists(expression.Name("del"))))
		expr, err := expression.NewBuilder().WithUpdate(upd).WithCondition(cond).Build()
		if err != nil {
			return chat.Thread{}, fmt.Errorf("build update: %w", err)
		}
		out, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: &s.Table, Key: key(threadPK(threadID), skThread),
			UpdateExpression: expr.Update(), ConditionExpression: expr.Condition(),
			ExpressionAttributeNames: expr.Names(), ExpressionAttributeValues: expr.Values(),
			ReturnValues:                        types.ReturnValueAllNew,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		var ccf *types.ConditionalCheckFailedException
		switch {
		case asErr(err, &ccf):
			old := ccf.Item
			if len(old) == 0 || old["del"] != nil {
				return chat.Thread{}, chat.ErrThreadGone
			}
			s.counters.note(threadID, old)
			if refused := c.correct(old); refused != nil {
				return chat.Thread{}, refused
			}
			if attempt == countingAttempts {
				return chat.Thread{}, fault.Busy(time.Second, "Thread %s is too busy; retry after a second.", threadID)
			}
			continue
		case err != nil:
			return chat.Thread{}, fail("UpdateItem", err)
		}
		s.counters.note(threadID, out.Attributes)
		var ti threadItem
		if err := attributevalue.UnmarshalMap(out.Attributes, &ti); err != nil {
			return chat.Thread{}, fmt.Errorf("unmarshal thread: %w", err)
		}
		return ti.thread(), nil
	}
}

// PutMessage writes a new message; with a request record both commit in one
// transaction, so a retried send can never produce a second message.
func (s *Store) PutMessage(ctx context.Context, threadID string, m chat.Message, requestKey string, rec *chat.RequestRecord) error {
	item, err := attributevalue.MarshalMap(newMessageItem(threadID, m))
	if err != nil {
		return fmt.Errorf("marshal message: %w", err)
	}
	if rec == nil {
		_, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.Table, Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)")})
		if err != nil {
			return fail("PutItem", err)
		}
		return nil
	}
	ri, err := attributevalue.MarshalMap(requestItem{
		PK: prefixRQ + requestKey, SK: skRQ, Hash: rec.Hash, ThreadID: rec.ThreadID, Created: toMS(rec.Created),
		Done: rec.Done, Result: rec.Result, TTL: rec.Expires.Unix(),
	})
	if err != nil {
		return fmt.Errorf("marshal request: %w", err)
	}
	_, err = s.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: &s.Table, Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
		{Put: &types.Put{
			TableName: &s.Table, Item: ri,
			ConditionExpression:       aws.String("attribute_not_exists(pk) OR #ttl < :now"),
			ExpressionAttributeNames:  map[string]string{"#ttl": attrTTL},
			ExpressionAttributeValues: map[string]types.AttributeValue{":now": num(s.now().Unix())},
		}},
	}})
	if canceledByCondition(err) {
		return chat.ErrRaced
	}
	if err != nil {
		return fail("TransactWriteItems", err)
	}
	return nil
}

// MessageView reads the thread, the caller's participant item and a message
// with one strongly consistent BatchGetItem.
func (s *Store) MessageView(ctx context.Context, threadID, userID string, seq int64) (chat.View, *chat.Message, error) {
	pk := threadPK(threadID)
	items, err := s.batchGet(ctx, []map[string]types.AttributeValue{key(pk, skThread), key(pk, prefixP+userID), key(pk, msgSK(seq))}, true, nil, nil)
	if err != nil {
		return chat.View{}, nil, err
	}
	s.noteThread(threadID, items)
	v, err := viewOf(items)
	if err != nil {
		return chat.View{}, nil, err
	}
	for _, it := range items {
		if strings.HasPrefix(str(it, attrSK), prefixM) {
			var mi messageItem
			if err := attributevalue.UnmarshalMap(it, &mi); err != nil {
				return chat.View{}, nil, fmt.Errorf("unmarshal message: %w", err)
			}
			m := mi.message()
			return v, &m, nil
		}
	}
	return v, nil, nil
}

// Messages queries the thread's messages newest first. A Since bound is a
// filter, and DynamoDB's Limit counts items before the filter, so it pages
// until the page is full, the range ends, or the scan is past Since.
func (s *Store) Messages(ctx context.Context, threadID string, r chat.MessageRange) ([]chat.Message, error) {
	hi := int64(999999999999)
	if r.Before > 0 {
		hi = r.Before - 1
	}
	if r.MaxSeq > 0 && r.MaxSeq < hi {
		hi = r.MaxSeq
	}
	if hi < 1 {
		return nil, nil
	}
	in := &dynamodb.QueryInput{
		TableName:              &s.Table,
		KeyConditionExpression: aws.String("pk = :pk AND sk BETWEEN :lo AND :hi"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": &types.AttributeValueMemberS{Value: threadPK(threadID)},
			":lo": &types.AttributeValueMemberS{Value: msgSK(1)},
			":hi": &types.AttributeValueMemberS{Value: msgSK(hi)},
		},
		ScanIndexForward: aws.Bool(false),
		ConsistentRead:   aws.Bool(true),
		Limit:            aws.Int32(int32(r.Limit)),
	}
	var out []chat.Message
	for {
		page, err := s.DB.Query(ctx, in)
		if err != nil {
			return nil, fail("Query", err)
		}
		for _, it := range page.Items {
			var mi messageItem
			if err := attributevalue.UnmarshalMap(it, &mi); err != nil {
				return nil, fmt.Errorf("unmarshal message: %w", err)
			}
			m := mi.message()
			if m.CreatedOn.Before(r.Since) {
				if m.CreatedOn.Before(r.Since.Add(-sinceSlack)) {
					return out, nil // everything older is older still
				}
				continue
			}
			out = append(out, m)
			if len(out) == r.Limit {
				return out, nil
			}
		}
		if page.LastEvaluatedKey == nil {
			return out, nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

// ReplaceMessage writes the whole message if nobody changed it meanwhile.
func (s *Store) ReplaceMessage(ctx context.Context, threadID string, m chat.Message, expectVersion int64) error {
	item, err := attributevalue.MarshalMap(newMessageItem(threadID, m))
	if err != nil {
		return fmt.Errorf("marshal message: %w", err)
	}
	_, err = s.DB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.Table, Item: item,
		ConditionExpression:       aws.String("ver = :v"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(expectVersion)},
	})
	if conditionFailed(err) {
		return chat.ErrRaced
	}
	if err != nil {
		return fail("PutItem", err)
	}
	return nil
}

// noteThread remembers the rate-limit windows of the META item among items
// (reads the store makes anyway), so the next counted write guesses right.
func (s *Store) noteThread(threadID string, items []map[string]types.AttributeValue) {
	for _, it := range items {
		if str(it, attrSK) == skThread {
			s.counters.note(threadID, it)
		}
	}
}

// viewOf picks the thread and participant out of a batch of items.
func viewOf(items []map[string]types.AttributeValue) (chat.View, error) {
	var v chat.View
	for _, it := range items {
		switch sk := str(it, attrSK); {
		case sk == skThread:
			var ti threadItem
			if err := attributevalue.UnmarshalMap(it, &ti); err != nil {
				return chat.View{}, fmt.Errorf("unmarshal thread: %w", err)
			}
			t := ti.thread()
			v.Thread = &t
		case strings.HasPrefix(sk, prefixP):
			var pi participantItem
			if err := attributevalue.UnmarshalMap(it, &pi); err != nil {
				return chat.View{}, fmt.Errorf("unmarshal participant: %w", err)
			}
			p := pi.participant()
			v.Participant = &p
		}
	}
	return v, nil
}
