// Package lambdainvoke starts another function asynchronously: $connect
// uses it to replay missed events once the connection is open, which
// $connect itself cannot do.
package lambdainvoke

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// Async invokes functions with InvocationType Event.
type Async struct{ Client *lambda.Client }

// InvokeAsync queues an invocation of function (a name or ARN).
func (a Async) InvokeAsync(ctx context.Context, function string, payload []byte) error {
	_, err := a.Client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(function), InvocationType: types.InvocationTypeEvent, Payload: payload})
	if err != nil {
		return fmt.Errorf("invoke %s: %w", function, err)
	}
	return nil
}
