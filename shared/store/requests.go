package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/threadline/threadline/shared/chat"
)

var _ chat.RequestLog = (*Store)(nil)

const (
	prefixRQ = "RQ#"
	skRQ     = "RQ"
)

// requestItem remembers a repeatability-request-id. ttl lets DynamoDB drop
// it eventually; reads check the expiry themselves (TTL deletion is lazy).
type requestItem struct {
	PK       string `dynamodbav:"pk"`
	SK       string `dynamodbav:"sk"`
	Hash     string `dynamodbav:"hash"`
	ThreadID string `dynamodbav:"tid"`
	Created  int64  `dynamodbav:"con"`
	Done     bool   `dynamodbav:"done"`
	Result   []byte `dynamodbav:"res,omitempty"`
	TTL      int64  `dynamodbav:"ttl"`
}

// Claim stores rec unless a live record holds the key; then it returns it.
func (s *Store) Claim(ctx context.Context, k string, rec chat.RequestRecord) (*chat.RequestRecord, error) {
	item, err := attributevalue.MarshalMap(requestItem{
		PK: prefixRQ + k, SK: skRQ, Hash: rec.Hash, ThreadID: rec.ThreadID, Created: toMS(rec.Created), TTL: rec.Expires.Unix(),
	})
	if err != nil {
		return nil, fmt.Errorf("marshal request: %w", err)
	}
	_, err = s.DB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.Table, Item: item,
		ConditionExpression:                 aws.String("attribute_not_exists(pk) OR #ttl < :now"),
		ExpressionAttributeNames:            map[string]string{"#ttl": attrTTL},
		ExpressionAttributeValues:           map[string]types.AttributeValue{":now": num(s.now().Unix())},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil {
		return nil, nil
	}
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return nil, fail("PutItem", err)
	}
	var old requestItem
	if err := attributevalue.UnmarshalMap(ccf.Item, &old); err != nil {
		return nil, fmt.Errorf("unmarshal request: %w", err)
	}
	return &chat.RequestRecord{Hash: old.Hash, ThreadID: old.ThreadID, Created: ms(old.Created), Done: old.Done, Result: old.Result}, nil
}

// Complete records the outcome of a claimed request.
func (s *Store) Complete(ctx context.Context, k string, result []byte) error {
	_, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.Table, Key: key(prefixRQ+k, skRQ),
		UpdateExpression:          aws.String("SET done = :t, res = :r"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberBOOL{Value: true}, ":r": &types.AttributeValueMemberB{Value: result}},
	})
	if err != nil {
		return fail("UpdateItem", err)
	}
	return nil
}
