// Command send-read-receipt is the Lambda behind POST /chat/threads/{chatThreadId}/readReceipts.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/chatapi"
	"github.com/threadline/threadline/shared/lambdaenv"
)

func main() {
	api := chatapi.New(lambdaenv.Store(lambdaenv.AWS()), lambdaenv.RateLimits())
	lambda.Start(apigw.HTTP("SendReadReceipt", lambdaenv.Logger("send-read-receipt"), api.SendReadReceipt))
}
