// Command delete-identity is the Lambda behind DELETE /identities/{id} (Identity API, HMAC-signed).
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/lambdaenv"
	"github.com/threadline/threadline/shared/push"
	"github.com/threadline/threadline/shared/realtime"
	"github.com/threadline/threadline/shared/secrets"
)

func main() {
	ctx := context.Background()
	cfg := lambdaenv.AWS()
	api := secrets.IdentityAPI(ctx, cfg, lambdaenv.Store(cfg), lambdaenv.Require("RESOURCE_ID"))
	// Open WebSockets were authorized once, at the handshake: close them.
	api.Identity.Connections = realtime.ConnectionCloser{Connections: lambdaenv.Realtime(cfg), Closer: push.New(cfg, lambdaenv.Require("WS_ENDPOINT"))}
	lambda.Start(apigw.HTTP("DeleteIdentity", lambdaenv.Logger("delete-identity"), api.DeleteIdentity))
}
