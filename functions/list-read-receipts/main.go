// Command list-read-receipts is the Lambda behind GET /chat/threads/{chatThreadId}/readReceipts.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/chatapi"
	"github.com/threadline/threadline/shared/lambdaenv"
)

func main() {
	api := chatapi.New(lambdaenv.Store(lambdaenv.AWS()), lambdaenv.RateLimits())
	lambda.Start(apigw.HTTP("ListReadReceipts", lambdaenv.Logger("list-read-receipts"), api.ListReadReceipts))
}
