// Command ws-authorizer is the WebSocket API's $connect authorizer: it
// checks the access_token query parameter.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/threadline/threadline/shared/identity"
	"github.com/threadline/threadline/shared/lambdaenv"
	"github.com/threadline/threadline/shared/wsapi"
)

func main() {
	st := lambdaenv.Store(lambdaenv.AWS())
	lambda.Start(wsapi.Authorizer(identity.NewAuthenticator(st, st), lambdaenv.Logger("ws-authorizer")))
}
