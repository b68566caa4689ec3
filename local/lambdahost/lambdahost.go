// Package lambdahost runs Go Lambda handlers in-process the way the Lambda
// runtime runs them: JSON in, JSON out through aws-lambda-go's own handler
// wrapper, a Lambda context with a request id, the trace header, and the
// function's timeout as the context deadline.
package lambdahost

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/uuid"
)

// Host holds the registered functions.
type Host struct {
	OnAsyncError func(function string, err error) // where InvokeAsync failures are reported

	mu  sync.RWMutex
	fns map[string]function
}

type function struct {
	h       lambda.Handler
	timeout time.Duration
}

// ErrUnknownFunction is returned for an id nothing was registered under.
var ErrUnknownFunction = errors.New("lambdahost: unknown function")

// Register adds a handler (any signature lambda.Start accepts).
func (h *Host) Register(id string, handler any, timeout time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fns == nil {
		h.fns = map[string]function{}
	}
	h.fns[id] = function{h: lambda.NewHandler(handler), timeout: timeout}
}

// Invoke runs a function with a JSON event and returns its JSON result. A
// handler error is returned as an error, as Lambda reports a function error.
func (h *Host) Invoke(ctx context.Context, id string, payload []byte) ([]byte, error) {
	h.mu.RLock()
	fn, ok := h.fns[id]
	h.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownFunction, id)
	}
	// Lambda runs the handler detached from the caller's connection, but
	// bounded by the function timeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fn.timeout)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID:       uuid.NewString(),
		InvokedFunctionArn: "arn:aws:lambda:local:000000000000:function:" + id,
	})
	// The runtime stores the X-Ray header under this plain string key.
	ctx = context.WithValue(ctx, "x-amzn-trace-id", traceHeader()) //nolint:staticcheck // the runtime's own key
	out, err := fn.h.Invoke(ctx, payload)
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", id, err)
	}
	return out, nil
}

// Has reports whether a function is registered.
func (h *Host) Has(id string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	_, ok := h.fns[id]
	return ok
}

func traceHeader() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	var p [8]byte
	_, _ = rand.Read(p[:])
	return "Root=1-" + strconv.FormatInt(time.Now().Unix(), 16) + "-" + hex.EncodeToString(b[:]) +
		";Parent=" + hex.EncodeToString(p[:]) + ";Sampled=1"
}

// InvokeAsync runs a function without waiting, like an InvocationType=Event
// invoke; failures go to onError (Lambda would retry twice, then drop or
// send to a destination).
func (h *Host) InvokeAsync(ctx context.Context, id string, payload []byte) error {
	if !h.Has(id) {
		return fmt.Errorf("%w %q", ErrUnknownFunction, id)
	}
	go func() {
		if _, err := h.Invoke(context.WithoutCancel(ctx), id, payload); err != nil && h.OnAsyncError != nil {
			h.OnAsyncError(id, err)
		}
	}()
	return nil
}
