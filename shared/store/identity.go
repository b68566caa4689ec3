package store

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/identity"
	"github.com/threadline/threadline/shared/token"
)

var (
	_ identity.Store        = (*Store)(nil)
	_ identity.KeyPublisher = (*Store)(nil)
	_ token.KeySource       = (*Store)(nil)
	_ chat.Directory        = (*Store)(nil)
)

const (
	skIdentity = "ID"
	skKey      = "KEY"
	prefixKey  = "KEY#"
)

// identityItem is a user's U#<id>/ID item.
type identityItem struct {
	PK        string `dynamodbav:"pk"`
	SK        string `dynamodbav:"sk"`
	CreatedOn int64  `dynamodbav:"con"`
	TokenGen  int64  `dynamodbav:"gen"`
	RevokedOn int64  `dynamodbav:"rvk,omitempty"`
	DeletedOn int64  `dynamodbav:"del,omitempty"`
}

// CreateIdentity stores a new user.
func (s *Store) CreateIdentity(ctx context.Context, id identity.Identity) error {
	item, err := attributevalue.MarshalMap(identityItem{PK: prefixU + id.ID, SK: skIdentity, CreatedOn: toMS(id.CreatedOn)})
	if err != nil {
		return fmt.Errorf("marshal identity: %w", err)
	}
	_, err = s.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.Table, Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)")})
	if err != nil {
		return fail("PutItem", err)
	}
	return nil
}

// Identity reads a user, deleted or not; nil when it never existed. The read
// is strongly consistent: a revocation must bite on the very next check.
func (s *Store) Identity(ctx context.Context, id string) (*identity.Identity, error) {
	out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.Table, Key: key(prefixU+id, skIdentity), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fail("GetItem", err)
	}
	if out.Item == nil {
		return nil, nil
	}
	var it identityItem
	if err := attributevalue.UnmarshalMap(out.Item, &it); err != nil {
		return nil, fmt.Errorf("unmarshal identity: %w", err)
	}
	return &identity.Identity{ID: id, CreatedOn: ms(it.CreatedOn), TokenGen: it.TokenGen, RevokedOn: ms(it.RevokedOn), DeletedOn: ms(it.DeletedOn)}, nil
}

// RevokeTokens bumps the user's token generation.
func (s *Store) RevokeTokens(ctx context.Context, id string, at time.Time) error {
	_, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.Table, Key: key(prefixU+id, skIdentity),
		UpdateExpression:          aws.String("ADD gen :one SET rvk = :at"),
		ConditionExpression:       aws.String("attribute_exists(pk) AND attribute_not_exists(del)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": num(1), ":at": num(toMS(at))},
	})
	if conditionFailed(err) {
		return identity.ErrNoIdentity
	}
	if err != nil {
		return fail("UpdateItem", err)
	}
	return nil
}

// DeleteIdentity marks the user deleted (a tombstone, so a retried delete
// still succeeds and the id is never reissued) and voids its tokens.
func (s *Store) DeleteIdentity(ctx context.Context, id string, at time.Time) error {
	_, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.Table, Key: key(prefixU+id, skIdentity),
		UpdateExpression:          aws.String("ADD gen :one SET del = :at"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": num(1), ":at": num(toMS(at))},
	})
	if conditionFailed(err) {
		return identity.ErrNoIdentity
	}
	if err != nil {
		return fail("UpdateItem", err)
	}
	return nil
}

// ExistingUsers reports which of ids are live identities.
func (s *Store) ExistingUsers(ctx context.Context, ids []string) (map[string]bool, error) {
	keys := make([]map[string]types.AttributeValue, 0, len(ids))
	seen := map[string]bool{}
	for _, id := range ids {
		if !seen[id] && id != "" {
			seen[id] = true
			keys = append(keys, key(prefixU+id, skIdentity))
		}
	}
	items, err := s.batchGet(ctx, keys, false, aws.String("pk, #del"), map[string]string{"#del": "del"})
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(items))
	for _, it := range items {
		if _, deleted := it["del"]; !deleted {
			out[strings.TrimPrefix(str(it, attrPK), prefixU)] = true
		}
	}
	return out, nil
}

// PublishKey stores a token-signing public key under its key id, once.
func (s *Store) PublishKey(ctx context.Context, kid string, pub ed25519.PublicKey) error {
	_, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.Table,
		Item: map[string]types.AttributeValue{
			attrPK: &types.AttributeValueMemberS{Value: prefixKey + kid},
			attrSK: &types.AttributeValueMemberS{Value: skKey},
			"pub":  &types.AttributeValueMemberB{Value: pub},
		},
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	if err != nil && !conditionFailed(err) {
		return fail("PutItem", err)
	}
	return nil
}

// PublicKey finds a published key; nil when there is none.
func (s *Store) PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.Table, Key: key(prefixKey+kid, skKey), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fail("GetItem", err)
	}
	b, ok := out.Item["pub"].(*types.AttributeValueMemberB)
	if !ok {
		return nil, nil
	}
	if len(b.Value) != ed25519.PublicKeySize {
		return nil, errors.New("store: published key has the wrong size")
	}
	return ed25519.PublicKey(b.Value), nil
}

func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}
