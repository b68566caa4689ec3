// Package push sends frames to WebSocket connections through API Gateway's
// @connections management API.
package push

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"

	"github.com/threadline/threadline/shared/realtime"
)

// API is the part of the management client used here.
type API interface {
	PostToConnection(context.Context, *apigatewaymanagementapi.PostToConnectionInput, ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.PostToConnectionOutput, error)
	DeleteConnection(context.Context, *apigatewaymanagementapi.DeleteConnectionInput, ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.DeleteConnectionOutput, error)
}

// Pusher implements realtime.Pusher and realtime.Disconnecter.
type Pusher struct{ API API }

var (
	_ realtime.Pusher       = Pusher{}
	_ realtime.Disconnecter = Pusher{}
)

// New builds a Pusher for the WebSocket API stage at endpoint
// (https://{api}.execute-api.{region}.amazonaws.com/{stage}).
func New(cfg aws.Config, endpoint string) Pusher {
	return Pusher{API: apigatewaymanagementapi.NewFromConfig(cfg, func(o *apigatewaymanagementapi.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	})}
}

// Push sends one frame; a connection that no longer exists is realtime.ErrGone.
func (p Pusher) Push(ctx context.Context, connectionID string, frame []byte) error {
	_, err := p.API.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(connectionID), Data: frame})
	var gone *types.GoneException
	switch {
	case err == nil:
		return nil
	case errors.As(err, &gone):
		return fmt.Errorf("push %s: %w", connectionID, realtime.ErrGone)
	default:
		return fmt.Errorf("push %s: %w", connectionID, err)
	}
}

// Disconnect closes a connection; one that no longer exists is
// realtime.ErrGone.
func (p Pusher) Disconnect(ctx context.Context, connectionID string) error {
	_, err := p.API.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(connectionID)})
	var gone *types.GoneException
	switch {
	case err == nil:
		return nil
	case errors.As(err, &gone):
		return fmt.Errorf("close %s: %w", connectionID, realtime.ErrGone)
	default:
		return fmt.Errorf("close %s: %w", connectionID, err)
	}
}
