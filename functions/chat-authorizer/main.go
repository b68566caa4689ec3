// Command chat-authorizer is the HTTP API's Lambda authorizer for every chat
// route: it verifies the bearer token and passes the caller to the operation.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/identity"
	"github.com/threadline/threadline/shared/lambdaenv"
)

func main() {
	st := lambdaenv.Store(lambdaenv.AWS())
	lambda.Start(apigw.Authorizer(identity.NewAuthenticator(st, st), lambdaenv.Logger("chat-authorizer")))
}
