package local

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threadline/threadline/local/acsclient"
	"github.com/threadline/threadline/local/ddblocal"
)

// One DynamoDB Local serves every test of this package; each test's stack
// gets its own tables (a unique prefix), so tests cannot see each other.
var sharedDDB *ddblocal.Server

func TestMain(m *testing.M) {
	os.Exit(ddblocal.RunTests(m, "local", func(s *ddblocal.Server) { sharedDDB = s }))
}

var stackSeq atomic.Int64

// testStack is a running stack plus ready-made clients.
type testStack struct {
	*Stack
	ids  *acsclient.Identity
	http *acsclient.Chat // no token: set Token per call via chatAs
}

type stackOption func(*Config)

func withAuthorizerTTL(d time.Duration) stackOption {
	return func(c *Config) { c.AuthorizerTTL = &d }
}

// startStack starts a stack on free ports with fresh tables and state.
func startStack(t testing.TB, opts ...stackOption) *testStack {
	t.Helper()
	cfg := Config{
		StateDir:       t.TempDir(),
		HTTPAddr:       "127.0.0.1:0",
		WSAddr:         "127.0.0.1:0",
		EventsAddr:     "127.0.0.1:0",
		DynamoEndpoint: sharedDDB.Endpoint,
		TablePrefix:    fmt.Sprintf("t%d_%d_", os.Getpid(), stackSeq.Add(1)),
		FunctionLog:    io.Discard,
		// Off: many tests send in bursts no ACS rate limit allows;
		// ratelimit_e2e_test.go turns the limits on.
		RateLimitScale: new(float64),
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	hc, err := acsclient.HTTPClient(s.Info.CACert)
	if err != nil {
		t.Fatal(err)
	}
	endpoint, key, err := acsclient.ParseConnectionString(s.Info.ConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	return &testStack{
		Stack: s,
		ids:   &acsclient.Identity{Endpoint: endpoint, Key: key, HTTP: hc},
		http:  &acsclient.Chat{Endpoint: s.Info.HTTPAPI, HTTP: hc},
	}
}

// user creates an identity with a token of the given scopes (default chat).
func (s *testStack) user(t testing.TB, scopes ...string) acsclient.User {
	t.Helper()
	if len(scopes) == 0 {
		scopes = []string{"chat"}
	}
	u, err := s.ids.CreateUser(context.Background(), scopes...)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// chat returns a chat client with the user's token.
func (s *testStack) chat(token string) *acsclient.Chat {
	c := *s.http
	c.Token = token
	return &c
}

// do sends a chat request and fails the test on a transport error.
func (s *testStack) do(t testing.TB, token string, r acsclient.Request) acsclient.Response {
	t.Helper()
	resp, err := s.chat(token).Do(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
