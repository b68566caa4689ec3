package store

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/threadline/threadline/shared/obs"
)

// Instrument is a DynamoDB client option that asks every call for its
// consumed capacity and adds it, with the call itself, to the invocation's
// metrics (obs.Recorder in the context): the cost of each operation is
// measured, not guessed. Throttling is counted per attempt, below the SDK's
// retries, so throttles the retries absorbed still show.
func Instrument(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		if err := stack.Initialize.Add(middleware.InitializeMiddlewareFunc("ThreadlineCapacity", capacity), middleware.After); err != nil {
			return err
		}
		return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("ThreadlineThrottles", throttles), middleware.After)
	})
}

func throttles(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleFinalize(ctx, in)
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded":
			obs.From(ctx).Add(obs.DynamoDBThrottles, 1)
		}
	}
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		for _, r := range tce.CancellationReasons {
			if c := aws.ToString(r.Code); c == "ThrottlingError" || c == "ProvisionedThroughputExceeded" {
				obs.From(ctx).Add(obs.DynamoDBThrottles, 1) // a throttled transaction is cancelled, not retried
				break
			}
		}
	}
	return out, md, err
}

var total = types.ReturnConsumedCapacityTotal

func capacity(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	switch v := in.Parameters.(type) {
	case *dynamodb.GetItemInput:
		v.ReturnConsumedCapacity = total
	case *dynamodb.PutItemInput:
		v.ReturnConsumedCapacity = total
	case *dynamodb.UpdateItemInput:
		v.ReturnConsumedCapacity = total
	case *dynamodb.DeleteItemInput:
		v.ReturnConsumedCapacity = total
	case *dynamodb.QueryInput:
		v.ReturnConsumedCapacity = total
	case *dynamodb.ScanInput:
		v.ReturnConsumedCapacity = total
	case *dynamodb.BatchGetItemInput:
		v.ReturnConsumedCapacity = total
	case *dynamodb.BatchWriteItemInput:
		v.ReturnConsumedCapacity = total
	case *dynamodb.TransactWriteItemsInput:
		v.ReturnConsumedCapacity = total
	case *dynamodb.TransactGetItemsInput:
		v.ReturnConsumedCapacity = total
	}
	out, md, err := next.HandleInitialize(ctx, in)
	rec := obs.From(ctx)
	rec.Add(obs.DynamoDBRequests, 1)
	read, write := consumed(out.Result)
	rec.Add(obs.DynamoDBReadUnits, read)
	rec.Add(obs.DynamoDBWriteUnits, write)
	return out, md, err
}

// consumed splits a response's consumed capacity into read and write units.
func consumed(result any) (read, write float64) {
	units := func(cs ...*types.ConsumedCapacity) float64 {
		var n float64
		for _, c := range cs {
			if c != nil {
				n += aws.ToFloat64(c.CapacityUnits)
			}
		}
		return n
	}
	list := func(cs []types.ConsumedCapacity) float64 {
		var n float64
		for i := range cs {
			n += units(&cs[i])
		}
		return n
	}
	switch v := result.(type) {
	case *dynamodb.GetItemOutput:
		return units(v.ConsumedCapacity), 0
	case *dynamodb.QueryOutput:
		return units(v.ConsumedCapacity), 0
	case *dynamodb.ScanOutput:
		return units(v.ConsumedCapacity), 0
	case *dynamodb.BatchGetItemOutput:
		return list(v.ConsumedCapacity), 0
	case *dynamodb.TransactGetItemsOutput:
		return list(v.ConsumedCapacity), 0
	case *dynamodb.PutItemOutput:
		return 0, units(v.ConsumedCapacity)
	case *dynamodb.UpdateItemOutput:
		return 0, units(v.ConsumedCapacity)
	case *dynamodb.DeleteItemOutput:
		return 0, units(v.ConsumedCapacity)
	case *dynamodb.BatchWriteItemOutput:
		return 0, list(v.ConsumedCapacity)
	case *dynamodb.TransactWriteItemsOutput:
		return 0, list(v.ConsumedCapacity)
	}
	return 0, 0
}
