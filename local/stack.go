// Package local is Threadline's local stack: DynamoDB Local, and every
// function's real handler hosted in one process behind an emulated API
// Gateway, all wired from template.yaml. `make run` starts it on fixed ports;
// tests start it in-process on free ports.
package local

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/uuid"

	"github.com/threadline/threadline/local/ddblocal"
	"github.com/threadline/threadline/local/eventbus"
	"github.com/threadline/threadline/local/httpapi"
	"github.com/threadline/threadline/local/lambdahost"
	"github.com/threadline/threadline/local/samtemplate"
	"github.com/threadline/threadline/local/streams"
	"github.com/threadline/threadline/local/tlsca"
	"github.com/threadline/threadline/local/wsgateway"
	"github.com/threadline/threadline/shared/obs"
	"github.com/threadline/threadline/shared/store"
)

// Config says where and how to run the stack.
type Config struct {
	Root     string // the repository root (template.yaml); found from the working directory when empty
	StateDir string // data, TLS material, secrets and stack.json; default <Root>/.local
	HTTPAddr string // default 127.0.0.1:8443; "127.0.0.1:0" picks a free port

	// DynamoDB: either an endpoint already running (tests share one), or
	// DynamoDB Local started from DDBDir with data in StateDir/ddb (or in
	// memory when InMemory).
	DynamoEndpoint string
	DDBDir         string
	DDBAddr        string // default 127.0.0.1:8000
	InMemory       bool
	TablePrefix    string // prefixed to each table's logical id

	WSAddr             string                         // default 127.0.0.1:8444: the WebSocket API and its @connections API
	WSLimits           wsgateway.Limits               // zero fields take API Gateway's limits
	StreamPollInterval time.Duration                  // how often an idle stream is polled; default 50 ms
	FeedRetention      time.Duration                  // overrides the template's FeedRetentionHours default
	Wrap               func(Invoker) Invoker          // tests wrap the function host to inject faults
	WrapDB             func(store.DB) store.DB        // tests wrap the functions' DynamoDB client to inject faults
	DynamoDBOptions    []func(*dynamodb.Options)      // added to the functions' DynamoDB client (SDK middleware for faults and benchmarks)
	EventsAddr         string                         // default 127.0.0.1:8445: the EventBridge PutEvents endpoint
	EventReject        func(eventbus.Entry, int) bool // fault injection: the local bus refuses these entries
	UserLevelEvents    *bool                          // overrides the template's UserLevelEvents default
	RateLimitScale     *float64                       // overrides the template's RateLimitScale default (1: ACS's limits; 0: none, as benchmarks run)

	// Fault injection for the reliability suite (local/reliability_e2e_test.go);
	// nil in normal use. (DynamoDB faults go through WrapDB above.)
	//   PushFault: the @connections API fails a PostToConnection to an open
	//   connection with the status it returns (0 = deliver); see
	//   wsgateway.Gateway.PostFault.
	PushFault func(connectionID string, data []byte) int

	AuthorizerTTL *time.Duration // overrides the template's cache TTL
	FunctionLog   io.Writer      // the functions' JSON logs; default StateDir/logs/functions.log
	AccessLog     io.Writer      // one line per request; nil discards
	DDBLog        io.Writer      // DynamoDB Local's output; nil discards
}

// Stack is a running local stack.
type Stack struct {
	Info      Info
	Template  *samtemplate.Template
	Gateway   *httpapi.Gateway
	WebSocket *wsgateway.Gateway
	Bus       *eventbus.Bus
	Host      *lambdahost.Host
	Streams   []*streams.Run
	Store     *store.Store
	Realtime  *store.Realtime
	DynamoDB  *dynamodb.Client
	CA        *tlsca.CA
	Secrets   Secrets

	servers []*http.Server
	ddb     *ddblocal.Server
	closers []io.Closer
}

// Invoker runs a function by logical id, like Lambda (lambdahost.Host).
type Invoker interface {
	Invoke(ctx context.Context, function string, payload []byte) ([]byte, error)
}

// Info is what .local/stack.json holds, for tools and tests to find the stack.
type Info struct {
	HTTPAPI          string            `json:"httpApi"`
	WebSocket        string            `json:"webSocket"`
	EventBridge      string            `json:"eventBridge"` // PutEvents; GET /events lists what arrived
	EventsLog        string            `json:"eventsLog"`
	Connections      string            `json:"connections"` // the @connections management API
	ConnectionString string            `json:"connectionString"`
	CACert           string            `json:"caCert"`
	DynamoDB         string            `json:"dynamodb"`
	Region           string            `json:"region"`
	Tables           map[string]string `json:"tables"`
	ResourceID       string            `json:"resourceId"`
	PID              int               `json:"pid"`
}

// Secrets are the local stand-ins for the deployment's Secrets Manager
// values, kept in StateDir/secrets.json so tokens survive a restart.
type Secrets struct {
	ResourceID    string `json:"resourceId"`
	AccessKey     string `json:"accessKey"` // base64, as in a connection string
	SigningSecret string `json:"signingSecret"`
}

// Region is the region every local client uses.
const Region = "us-east-1"

// Start brings the stack up; Close takes it down.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	if cfg.Root == "" {
		if cfg.Root, err = RepoRoot(); err != nil {
			return nil, err
		}
	}
	if cfg.StateDir == "" {
		cfg.StateDir = filepath.Join(cfg.Root, ".local")
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:8443"
	}
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "logs"), 0o755); err != nil {
		return nil, err
	}
	s := &Stack{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.Template, err = samtemplate.Load(filepath.Join(cfg.Root, "template.yaml")); err != nil {
		return nil, err
	}
	endpoint := cfg.DynamoEndpoint
	if endpoint == "" {
		o := ddblocal.Options{Dir: cfg.DDBDir, Addr: cfg.DDBAddr, Log: cfg.DDBLog}
		if o.Dir == "" {
			if o.Dir, err = ddblocal.DefaultDir(); err != nil {
				return nil, err
			}
		}
		if o.Addr == "" {
			o.Addr = "127.0.0.1:8000"
		}
		if !cfg.InMemory {
			o.DBPath = filepath.Join(cfg.StateDir, "ddb")
		}
		if s.ddb, err = ddblocal.Start(ctx, o); err != nil {
			return nil, err
		}
		endpoint = s.ddb.Endpoint
	}
	s.DynamoDB = NewDynamoDB(endpoint, cfg.DynamoDBOptions...)
	tables, err := EnsureTables(ctx, s.DynamoDB, s.Template, cfg.TablePrefix)
	if err != nil {
		return nil, err
	}
	var db store.DB = s.DynamoDB
	if cfg.WrapDB != nil {
		db = cfg.WrapDB(db)
	}
	s.Store = &store.Store{DB: db, Table: tables["ChatTable"]}
	s.Realtime = &store.Realtime{DB: db, Connections: tables["ConnectionsTable"], Feed: tables["FeedTable"]}
	if s.Secrets, err = loadSecrets(filepath.Join(cfg.StateDir, "secrets.json")); err != nil {
		return nil, err
	}
	key, _ := base64.StdEncoding.DecodeString(s.Secrets.AccessKey)

	funcLog := cfg.FunctionLog
	if funcLog == nil {
		f, err := os.OpenFile(filepath.Join(cfg.StateDir, "logs", "functions.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, f)
		funcLog = f
	}
	if s.CA, err = tlsca.Ensure(filepath.Join(cfg.StateDir, "tls")); err != nil {
		return nil, err
	}
	cert, err := s.CA.ServerCertificate()
	if err != nil {
		return nil, err
	}
	httpLn, err := listen(cfg.HTTPAddr, "127.0.0.1:8443")
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, httpLn)
	wsLn, err := listen(cfg.WSAddr, "127.0.0.1:8444")
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, wsLn)
	wsURL := "https://" + wsLn.Addr().String()
	busLn, err := listen(cfg.EventsAddr, "127.0.0.1:8445")
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, busLn)
	eventsLog := filepath.Join(cfg.StateDir, "events.jsonl")
	ef, err := os.OpenFile(eventsLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, ef)
	s.Bus = eventbus.New(eventbus.Config{Log: ef, Reject: cfg.EventReject, Region: Region})
	busURL := "http://" + busLn.Addr().String()

	s.Host = &lambdahost.Host{OnAsyncError: func(fn string, err error) {
		fmt.Fprintf(funcLog, `{"level":"ERROR","msg":"async invocation failed","function":%q,"error":%q}`+"\n", fn, err.Error())
	}}
	var invoker Invoker = s.Host
	if cfg.Wrap != nil {
		invoker = cfg.Wrap(s.Host)
	}
	pusher, err := newPusher(wsURL, s.CA)
	if err != nil {
		return nil, err
	}
	retention := cfg.FeedRetention
	if retention == 0 {
		h, _ := s.Template.ParameterDefault("FeedRetentionHours").(int)
		retention = time.Duration(h) * time.Hour
	}
	userLevel, _ := s.Template.ParameterDefault("UserLevelEvents").(string)
	if cfg.UserLevelEvents != nil {
		userLevel = fmt.Sprint(*cfg.UserLevelEvents)
	}
	source, _ := s.Template.ParameterDefault("EventSource").(string)
	rateScale := 1.0
	switch v := s.Template.ParameterDefault("RateLimitScale").(type) {
	case int:
		rateScale = float64(v)
	case float64:
		rateScale = v
	}
	if cfg.RateLimitScale != nil {
		rateScale = *cfg.RateLimitScale
	}
	d := deps{
		store: s.Store, rt: s.Realtime, pusher: pusher, async: s.Host, feedRetention: retention,
		partners: newPartners(busURL, "local-chat", source), userLevelEvents: userLevel == "true", rateLimitScale: rateScale,
		resourceID: s.Secrets.ResourceID, accessKey: key, signingSecret: []byte(s.Secrets.SigningSecret),
		log: func(fn string) *slog.Logger { return obs.NewLogger(funcLog, fn) },
	}
	for _, f := range s.Template.Functions() {
		build, ok := handlers[f.ID]
		if !ok {
			return nil, fmt.Errorf("local: template function %s has no handler in local/registry.go", f.ID)
		}
		h, err := build(d)
		if err != nil {
			return nil, fmt.Errorf("local: build %s: %w", f.ID, err)
		}
		s.Host.Register(f.ID, h, f.Timeout)
	}
	if s.Gateway, err = newGateway(s.Template, s.Host, invoker, cfg); err != nil {
		return nil, err
	}
	if s.WebSocket, err = newWebSocketGateway(s.Template, invoker, cfg); err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	for _, sv := range []struct {
		ln net.Listener
		h  http.Handler
	}{{httpLn, s.Gateway}, {wsLn, s.WebSocket}, {busLn, s.Bus}} {
		srv := &http.Server{Handler: sv.h, TLSConfig: tlsConf.Clone(), // ServeTLS mutates its config for HTTP/2
			ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		s.servers = append(s.servers, srv)
		if sv.ln == busLn {
			go func(ln net.Listener) { _ = srv.Serve(ln) }(sv.ln) // plain HTTP, as the SDK's endpoint override allows
			continue
		}
		go func(ln net.Listener) { _ = srv.ServeTLS(ln, "", "") }(sv.ln)
	}
	if err := s.startStreams(ctx, endpoint, invoker, tables, cfg); err != nil {
		return nil, err
	}

	s.Info = Info{
		HTTPAPI:          "https://" + httpLn.Addr().String(),
		WebSocket:        "wss://" + wsLn.Addr().String(),
		EventBridge:      busURL,
		EventsLog:        eventsLog,
		Connections:      wsURL,
		ConnectionString: "endpoint=https://" + httpLn.Addr().String() + "/;accesskey=" + s.Secrets.AccessKey,
		CACert:           s.CA.CertFile,
		DynamoDB:         endpoint,
		Region:           Region,
		Tables:           tables,
		ResourceID:       s.Secrets.ResourceID,
		PID:              os.Getpid(),
	}
	b, _ := json.MarshalIndent(s.Info, "", "  ")
	if err := os.WriteFile(filepath.Join(cfg.StateDir, "stack.json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return s, nil
}

func newGateway(t *samtemplate.Template, host *lambdahost.Host, invoker Invoker, cfg Config) (*httpapi.Gateway, error) {
	g := &httpapi.Gateway{Invoker: invoker, Authorizers: map[string]httpapi.Authorizer{}}
	if cfg.AccessLog != nil {
		g.Log = slog.New(slog.NewTextHandler(cfg.AccessLog, &slog.HandlerOptions{
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.LevelKey {
					return slog.Attr{}
				}
				return a
			},
		}))
	}
	for _, r := range t.Routes() {
		g.Routes = append(g.Routes, httpapi.Route{Method: r.Method, Path: r.Path, Function: r.Function, Authorizer: r.Authorizer})
		if r.Authorizer == "" {
			continue
		}
		if _, done := g.Authorizers[r.Authorizer]; done {
			continue
		}
		a, err := t.Authorizer(r.Api, r.Authorizer)
		if err != nil {
			return nil, err
		}
		if !host.Has(a.Function) {
			return nil, fmt.Errorf("local: authorizer function %s is not hosted", a.Function)
		}
		ttl := a.CacheTTL
		if cfg.AuthorizerTTL != nil {
			ttl = *cfg.AuthorizerTTL
		}
		g.Authorizers[r.Authorizer] = httpapi.Authorizer{Function: a.Function, IdentityHeader: a.IdentityHeader, CacheTTL: ttl}
	}
	return g, nil
}

// NewDynamoDB is the real SDK client pointed at a local endpoint, with the
// functions' instrumentation and any extra options (SDK middleware that
// tests and benchmarks add).
func NewDynamoDB(endpoint string, opts ...func(*dynamodb.Options)) *dynamodb.Client {
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = 256 // the default of 10 churns connections under concurrency
	})
	return dynamodb.New(dynamodb.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
		HTTPClient:   hc,
		// DynamoDB Local sends no CRC header on error responses.
		DisableValidateResponseChecksum: true,
	}, append([]func(*dynamodb.Options){store.Instrument}, opts...)...)
}

// EnsureTables creates the template's tables that do not exist yet and
// returns the table name of each logical id.
func EnsureTables(ctx context.Context, db *dynamodb.Client, t *samtemplate.Template, prefix string) (map[string]string, error) {
	defs, err := t.Tables(func(id string) string { return prefix + id })
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, d := range defs {
		name := *d.Create.TableName
		names[d.ID] = name
		_, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &name})
		var nf *types.ResourceNotFoundException
		switch {
		case err == nil:
			continue
		case !errors.As(err, &nf):
			return nil, fmt.Errorf("local: describe %s: %w", name, err)
		}
		if _, err := db.CreateTable(ctx, d.Create); err != nil {
			return nil, fmt.Errorf("local: create table %s: %w", name, err)
		}
		if d.TTL != "" {
			if _, err := db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
				TableName: &name, TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(d.TTL), Enabled: aws.Bool(true)},
			}); err != nil {
				return nil, fmt.Errorf("local: enable TTL on %s: %w", name, err)
			}
		}
	}
	return names, nil
}

func loadSecrets(path string) (Secrets, error) {
	var s Secrets
	b, err := os.ReadFile(path)
	if err == nil {
		if err := json.Unmarshal(b, &s); err != nil {
			return s, fmt.Errorf("local: %s: %w", path, err)
		}
		return s, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	key := make([]byte, 32)
	sig := make([]byte, 32)
	_, _ = rand.Read(key)
	_, _ = rand.Read(sig)
	s = Secrets{ResourceID: uuid.NewString(), AccessKey: base64.StdEncoding.EncodeToString(key), SigningSecret: hex.EncodeToString(sig)}
	b, _ = json.MarshalIndent(s, "", "  ")
	return s, os.WriteFile(path, b, 0o600)
}

// Close stops the stack; data in StateDir stays.
func (s *Stack) Close() {
	for _, r := range s.Streams {
		r.Stop()
	}
	if s.WebSocket != nil {
		s.WebSocket.Close()
	}
	for _, srv := range s.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(ctx)
		cancel()
	}
	if s.ddb != nil {
		_ = s.ddb.Close()
	}
	for _, c := range s.closers {
		_ = c.Close()
	}
}

// FunctionIDs lists the functions the local stack can host.
func FunctionIDs() []string {
	ids := make([]string, 0, len(handlers))
	for id := range handlers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// RepoRoot finds the folder holding go.mod, walking up from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("local: no go.mod above the working directory; run from the repository")
		}
		dir = parent
	}
}
