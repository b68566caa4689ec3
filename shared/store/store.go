// Package store is the only package that talks to DynamoDB. It keeps every
// Threadline item in one table (layout in docs/data-model.md) and implements
// the storage interfaces the domain packages define.
package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/threadline/threadline/shared/fault"
)

// DB is the part of the DynamoDB client the store uses.
type DB interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Store implements the domain's storage interfaces on one table.
type Store struct {
	DB    DB
	Table string
	Now   func() time.Time // for TTL checks; time.Now when nil

	counters counterCache // the rate-limit windows last seen per thread (quota.go)
}

// Index names, as template.yaml defines them.
const (
	IndexByUser = "ByUser" // a user's thread memberships
)

// Key attribute names, as template.yaml defines them.
const (
	attrPK     = "pk"
	attrSK     = "sk"
	attrGSI1PK = "gsi1pk"
	attrGSI1SK = "gsi1sk"
	attrTTL    = "ttl"
)

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrPK: &types.AttributeValueMemberS{Value: pk},
		attrSK: &types.AttributeValueMemberS{Value: sk},
	}
}

// fail wraps a DynamoDB error. Throttling and DynamoDB's own transient
// failures, once the SDK's retries are spent, become a 503 with Retry-After,
// so clients back off and retry instead of seeing a 500.
func fail(op string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
			"TransactionConflictException", "InternalServerError", "ServiceUnavailable":
			return fmt.Errorf("dynamodb %s: %w (%w)", op, fault.Busy(time.Second, "The service is busy; retry after a second."), err)
		}
	}
	if transientCancel(err) {
		return fmt.Errorf("dynamodb %s: %w (%w)", op, fault.Busy(time.Second, "The service is busy; retry after a second."), err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("dynamodb %s: %w (%w)", op, fault.Busy(time.Second, "The request timed out inside the service; retry it."), err)
	}
	return fmt.Errorf("dynamodb %s: %w", op, err)
}

// transientCancel reports a transaction DynamoDB cancelled because it was
// throttled or conflicted with another: that is how a throttled
// TransactWriteItems answers (a TransactionCanceledException, which the SDK
// does not retry), and, like a throttle, it is worth retrying whole.
func transientCancel(err error) bool {
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) {
		return false
	}
	for _, r := range tce.CancellationReasons {
		switch aws.ToString(r.Code) {
		case "ThrottlingError", "ProvisionedThroughputExceeded", "TransactionConflict", "RequestLimitExceeded":
			return true
		}
	}
	return false
}

func conditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// retryUnprocessed runs call until DynamoDB has processed everything, backing
// off between rounds: BatchWriteItem and BatchGetItem return unprocessed work
// under load, and dropping it would silently lose data.
func retryUnprocessed(ctx context.Context, op string, call func() (more bool, err error)) error {
	backoff := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		more, err := call()
		if err != nil {
			return fail(op, err)
		}
		if !more {
			return nil
		}
		if attempt == 8 {
			return fail(op, errors.New("unprocessed items remain after retries"))
		}
		sleep := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return fail(op, ctx.Err())
		case <-time.After(sleep):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// batchWrite writes requests in chunks of 25, one after another, retrying
// unprocessed items.
func (s *Store) batchWrite(ctx context.Context, reqs []types.WriteRequest) error {
	return s.batchWriteParallel(ctx, reqs, 1)
}

// batchWriteParallel is batchWrite with up to limit chunks in flight. A
// request must not repeat a key another in its chunk has (DynamoDB rejects
// the chunk). It waits for every chunk and fails if any did.
func (s *Store) batchWriteParallel(ctx context.Context, reqs []types.WriteRequest, limit int) error {
	write := func(chunk []types.WriteRequest) error {
		pending := map[string][]types.WriteRequest{s.Table: chunk}
		return retryUnprocessed(ctx, "BatchWriteItem", func() (bool, error) {
			out, err := s.DB.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				return false, err
			}
			pending = out.UnprocessedItems
			return len(pending[s.Table]) > 0, nil
		})
	}
	if limit <= 1 || len(reqs) <= 25 {
		for start := 0; start < len(reqs); start += 25 {
			if err := write(reqs[start:min(start+25, len(reqs))]); err != nil {
				return err
			}
		}
		return nil
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for start := 0; start < len(reqs); start += 25 {
		chunk := reqs[start:min(start+25, len(reqs))]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := write(chunk); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// batchGet reads keys in chunks of 100, retrying unprocessed keys.
func (s *Store) batchGet(ctx context.Context, keys []map[string]types.AttributeValue, consistent bool, projection *string, names map[string]string) ([]map[string]types.AttributeValue, error) {
	var items []map[string]types.AttributeValue
	for start := 0; start < len(keys); start += 100 {
		pending := map[string]types.KeysAndAttributes{s.Table: {
			Keys: keys[start:min(start+100, len(keys))], ConsistentRead: aws.Bool(consistent),
			ProjectionExpression: projection, ExpressionAttributeNames: names,
		}}
		err := retryUnprocessed(ctx, "BatchGetItem", func() (bool, error) {
			out, err := s.DB.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: pending})
			if err != nil {
				return false, err
			}
			items = append(items, out.Responses[s.Table]...)
			pending = out.UnprocessedKeys
			return len(pending[s.Table].Keys) > 0, nil
		})
		if err != nil {
			return nil, err
		}
	}
	return items, nil
}

func str(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func ms(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func toMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func asErr[T any](err error, target *T) bool { return errors.As(err, target) }
