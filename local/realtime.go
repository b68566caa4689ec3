package local

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/threadline/threadline/local/samtemplate"
	"github.com/threadline/threadline/local/streams"
	"github.com/threadline/threadline/local/tlsca"
	"github.com/threadline/threadline/local/wsgateway"
	"github.com/threadline/threadline/shared/bus"
	"github.com/threadline/threadline/shared/obs"
	"github.com/threadline/threadline/shared/push"
)

// listen opens a loopback listener; addr "" takes the default port.
func listen(addr, def string) (net.Listener, error) {
	if addr == "" {
		addr = def
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("local: listen on %s (is another stack running?): %w", addr, err)
	}
	return ln, nil
}

// newPusher is the real @connections client, pointed at the local WebSocket
// API and trusting the local CA, exactly as the functions use it in AWS.
func newPusher(endpoint string, ca *tlsca.CA) (push.Pusher, error) {
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.TLSClientConfig = &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
		t.MaxIdleConnsPerHost = 256
	})
	return push.Pusher{API: apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
		Region: Region, BaseEndpoint: aws.String(endpoint), HTTPClient: hc,
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
	})}, nil
}

// newPartners is the real EventBridge client, pointed at the local bus.
func newPartners(endpoint, busName, source string) bus.Publisher {
	client := eventbridge.New(eventbridge.Options{
		Region: Region, BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
	})
	return bus.Publisher{API: client, Bus: busName, Source: source, Metrics: obs.Counter{}}
}

// newWebSocketGateway wires the template's WebSocket API.
func newWebSocketGateway(t *samtemplate.Template, invoker Invoker, cfg Config) (*wsgateway.Gateway, error) {
	apis, err := t.WebSocketAPIs()
	if err != nil {
		return nil, err
	}
	if len(apis) != 1 {
		return nil, fmt.Errorf("local: the template has %d WebSocket APIs; the local stack serves exactly one", len(apis))
	}
	api := apis[0]
	g := &wsgateway.Gateway{
		Invoker: invoker, Authorizer: api.AuthorizerFunction, IdentityQuery: api.IdentityQuery,
		Connect: api.Routes["$connect"], Disconnect: api.Routes["$disconnect"], Default: api.Routes["$default"],
		Stage: api.Stage, Limits: cfg.WSLimits, PostFault: cfg.PushFault,
	}
	if cfg.AccessLog != nil {
		g.Log = slog.New(slog.NewTextHandler(cfg.AccessLog, nil))
	}
	return g, nil
}

// startStreams runs each of the template's stream mappings like Lambda's
// event source mapping, with dead letters in StateDir/dead-letters.
func (s *Stack) startStreams(ctx context.Context, endpoint string, invoker Invoker, tables map[string]string, cfg Config) error {
	p := &streams.Poller{Streams: streams.NewStreamsClient(endpoint), DynamoDB: s.DynamoDB, Invoker: invoker, Region: Region}
	for _, m := range s.Template.StreamMappings() {
		run, err := p.Start(ctx, streams.Mapping{
			Function: m.Function, Table: tables[m.Table], StartingPosition: m.StartingPosition, BatchSize: m.BatchSize,
			MaxBatchingWindow: m.MaxBatchingWindow, MaxRetryAttempts: m.MaxRetryAttempts, MaxRecordAge: m.MaxRecordAge,
			BisectOnError: m.Bisect, ReportBatchItemFailures: m.ReportBatchItemFailures, Filters: m.Filters,
			PollInterval: cfg.StreamPollInterval, DeadLetterDir: filepath.Join(cfg.StateDir, "dead-letters"),
		})
		if err != nil {
			return fmt.Errorf("local: stream of %s for %s: %w", m.Table, m.Function, err)
		}
		s.Streams = append(s.Streams, run)
	}
	return nil
}

// WaitStreams returns once every record written so far has been through
// its stream mapping: tests use it instead of sleeping.
func (s *Stack) WaitStreams(ctx context.Context) error {
	for _, r := range s.Streams {
		if err := r.WaitIdle(ctx); err != nil {
			return err
		}
	}
	return nil
}
