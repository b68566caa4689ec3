package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/threadline/threadline/shared/chat"
)

var (
	_ chat.ParticipantStore = (*Store)(nil)
	_ chat.ReceiptStore     = (*Store)(nil)
)

const prefixR = "R#"

// Roster reads META and every P# item with one Query: in the partition's
// sort order "META" < "P#…" < "R#…", and messages ("M#…") sort before both.
func (s *Store) Roster(ctx context.Context, threadID string) (*chat.Thread, []chat.Participant, error) {
	p := dynamodb.NewQueryPaginator(s.DB, &dynamodb.QueryInput{
		TableName:              &s.Table,
		KeyConditionExpression: aws.String("pk = :pk AND sk BETWEEN :lo AND :hi"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": &types.AttributeValueMemberS{Value: threadPK(threadID)},
			":lo": &types.AttributeValueMemberS{Value: skThread},
			":hi": &types.AttributeValueMemberS{Value: prefixP + "\uffff"},
		},
		ConsistentRead: aws.Bool(true),
	})
	var t *chat.Thread
	var ps []chat.Participant
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, nil, fail("Query", err)
		}
		s.noteThread(threadID, page.Items)
		v, err := viewOf(page.Items)
		if err != nil {
			return nil, nil, err
		}
		if v.Thread != nil {
			t = v.Thread
		}
		for _, it := range page.Items {
			if strings.HasPrefix(str(it, attrSK), prefixP) {
				var pi participantItem
				if err := attributevalue.UnmarshalMap(it, &pi); err != nil {
					return nil, nil, fmt.Errorf("unmarshal participant: %w", err)
				}
				ps = append(ps, pi.participant())
			}
		}
	}
	return t, ps, nil
}

// AddParticipants commits participants, the member count and the
// participantAdded message in one transaction. The count's condition keeps
// the thread within its limit under concurrent adds; each participant's
// condition (absent or removed) keeps a concurrent add of the same user from
// counting twice.
func (s *Store) AddParticipants(ctx context.Context, c chat.RosterChange) error {
	n := len(c.Add)
	items := []types.TransactWriteItem{{Update: &types.Update{
		TableName: &s.Table, Key: key(threadPK(c.ThreadID), skThread),
		UpdateExpression:          aws.String("ADD pc :n"),
		ConditionExpression:       aws.String("attribute_exists(pk) AND attribute_not_exists(del) AND (attribute_not_exists(pc) OR pc <= :room)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":n": num(int64(n)), ":room": num(int64(c.MaxMembers - n))},
	}}}
	for _, p := range c.Add {
		item, err := attributevalue.MarshalMap(newParticipantItem(c.ThreadID, p))
		if err != nil {
			return fmt.Errorf("marshal participant: %w", err)
		}
		items = append(items, types.TransactWriteItem{Put: &types.Put{
			TableName: &s.Table, Item: item, ConditionExpression: aws.String("attribute_not_exists(pk) OR attribute_exists(rmv)"),
		}})
	}
	msg, err := attributevalue.MarshalMap(newMessageItem(c.ThreadID, c.Message))
	if err != nil {
		return fmt.Errorf("marshal message: %w", err)
	}
	items = append(items, types.TransactWriteItem{Put: &types.Put{TableName: &s.Table, Item: msg}})
	_, err = s.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	return s.rosterError(ctx, c.ThreadID, err, c.MaxMembers-n)
}

// RemoveParticipant marks the participant removed (keeping the item: a
// removed user still reads the history up to its removal and still lists the
// thread), lowers the member count and writes participantRemoved, together.
func (s *Store) RemoveParticipant(ctx context.Context, c chat.RosterChange) error {
	msg, err := attributevalue.MarshalMap(newMessageItem(c.ThreadID, c.Message))
	if err != nil {
		return fmt.Errorf("marshal message: %w", err)
	}
	_, err = s.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{
			TableName: &s.Table, Key: key(threadPK(c.ThreadID), skThread),
			UpdateExpression:          aws.String("ADD pc :minus"),
			ConditionExpression:       aws.String("attribute_exists(pk) AND attribute_not_exists(del)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":minus": num(-1)},
		}},
		{Update: &types.Update{
			TableName: &s.Table, Key: key(threadPK(c.ThreadID), prefixP+c.Remove),
			UpdateExpression:          aws.String("SET rmv = :at, rseq = :seq"),
			ConditionExpression:       aws.String("attribute_exists(pk) AND attribute_not_exists(rmv)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":at": num(toMS(c.At)), ":seq": num(c.Message.Seq)},
		}},
		{Put: &types.Put{TableName: &s.Table, Item: msg}},
	}})
	return s.rosterError(ctx, c.ThreadID, err, -1)
}

// rosterError turns a cancelled roster transaction into the domain's errors
// by looking at which condition failed.
func (s *Store) rosterError(ctx context.Context, threadID string, err error, room int) error {
	if err == nil {
		return nil
	}
	var tce *types.TransactionCanceledException
	if !asErr(err, &tce) {
		return fail("TransactWriteItems", err)
	}
	for i, r := range tce.CancellationReasons {
		if aws.ToString(r.Code) != "ConditionalCheckFailed" {
			continue
		}
		if i > 0 {
			return chat.ErrRaced // a participant's condition: the roster moved
		}
		t, _, rerr := s.Roster(ctx, threadID)
		switch {
		case rerr != nil:
			return rerr
		case t == nil || !t.DeletedOn.IsZero():
			return chat.ErrThreadGone
		case room >= 0 && t.Members > room:
			return chat.ErrThreadFull
		default:
			return chat.ErrRaced
		}
	}
	return fail("TransactWriteItems", err) // cancelled for another reason, e.g. a conflict: transient
}

// receiptItem is a user's R#<user> read pointer.
type receiptItem struct {
	PK               string `dynamodbav:"pk"`
	SK               string `dynamodbav:"sk"`
	Seq              int64  `dynamodbav:"seq"`
	ReadOn           int64  `dynamodbav:"rd"`
	MessageCreatedOn int64  `dynamodbav:"mcon"`
}

// PutReceipt moves the pointer forward only.
func (s *Store) PutReceipt(ctx context.Context, threadID string, r chat.Receipt) error {
	item, err := attributevalue.MarshalMap(receiptItem{
		PK: threadPK(threadID), SK: prefixR + r.UserID, Seq: r.Seq, ReadOn: toMS(r.ReadOn), MessageCreatedOn: toMS(r.MessageCreatedOn),
	})
	if err != nil {
		return fmt.Errorf("marshal receipt: %w", err)
	}
	_, err = s.DB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.Table, Item: item,
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR seq < :seq"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":seq": num(r.Seq)},
	})
	if err != nil && !conditionFailed(err) {
		return fail("PutItem", err)
	}
	return nil
}

// Receipts lists every read pointer of a thread.
func (s *Store) Receipts(ctx context.Context, threadID string) ([]chat.Receipt, error) {
	p := dynamodb.NewQueryPaginator(s.DB, &dynamodb.QueryInput{
		TableName:              &s.Table,
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :r)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": &types.AttributeValueMemberS{Value: threadPK(threadID)},
			":r":  &types.AttributeValueMemberS{Value: prefixR},
		},
	})
	var out []chat.Receipt
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fail("Query", err)
		}
		for _, it := range page.Items {
			var ri receiptItem
			if err := attributevalue.UnmarshalMap(it, &ri); err != nil {
				return nil, fmt.Errorf("unmarshal receipt: %w", err)
			}
			out = append(out, chat.Receipt{UserID: strings.TrimPrefix(ri.SK, prefixR), Seq: ri.Seq, ReadOn: ms(ri.ReadOn), MessageCreatedOn: ms(ri.MessageCreatedOn)})
		}
	}
	return out, nil
}
