// Package eventbus emulates Amazon EventBridge's PutEvents API on one machine
// for the real github.com/aws/aws-sdk-go-v2/service/eventbridge client.
//
// It speaks awsJson1_1 the way the SDK does (POST / with
// X-Amz-Target: AWSEvents.PutEvents, Content-Type application/x-amz-json-1.1,
// Time as epoch seconds, errors as {"__type":…,"message":…}), validates like
// EventBridge (whole-request ValidationException for more than 10 entries or an
// entry over 256 KB; per-entry InvalidArgument / MalformedDetail /
// NotAuthorizedForSourceException in the index-aligned Entries of the
// response), and turns every accepted entry into the envelope EventBridge
// would deliver to a rule target. Accepted events are kept in memory and, when
// Config.Log is set, appended to it as one compact JSON line each
// (events.jsonl). There are no rules or targets: the bus records, it does not
// route.
//
// Signatures are not verified, but like AWS a request without an
// Authorization header is refused.
//
// Besides PutEvents on POST /, the handler serves GET /events (the accepted
// events as a JSON array, filtered by detail-type= and source=) and
// GET /healthz.
package eventbus

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Config configures a Bus. The zero value is usable.
type Config struct {
	// Log receives one compact JSON Event per line for every accepted entry
	// (events.jsonl). nil keeps events in memory only. Writes are serialized,
	// so the writer need not be safe for concurrent use. An entry whose line
	// cannot be written fails with InternalFailure and is not kept.
	Log io.Writer

	// Reject, when set, is asked about every entry that passed validation;
	// returning true makes it fail with ErrorCode "InternalFailure" (fault
	// injection). attempt counts how many times an identical entry (same
	// Source, DetailType and Detail) was submitted before, from 0, so
	// "reject only the first try" is `attempt == 0`. entry is as submitted:
	// EventBusName and Time are empty / zero when the request left them out.
	// Reject is called without the bus's lock held and may run concurrently.
	Reject func(entry Entry, attempt int) bool

	Account string           // default "000000000000"
	Region  string           // default "us-east-1"
	Now     func() time.Time // default time.Now; the time of entries without Time
}

// RejectShare returns a Config.Reject that fails each attempt with
// probability share, independently; nil when share is 0.
func RejectShare(share float64) func(Entry, int) bool {
	if share <= 0 {
		return nil
	}
	return func(Entry, int) bool { return rand.Float64() < share }
}

// Entry is one PutEvents request entry (TraceHeader is accepted and ignored).
type Entry struct {
	Source       string
	DetailType   string
	Detail       string
	EventBusName string
	Resources    []string
	Time         time.Time
}

// Event is what EventBridge would deliver to a rule target: the standard
// event envelope, plus the bus name for local inspection.
type Event struct {
	Version      string          `json:"version"` // "0"
	ID           string          `json:"id"`      // a new UUID per accepted entry
	DetailType   string          `json:"detail-type"`
	Source       string          `json:"source"`
	Account      string          `json:"account"`
	Time         string          `json:"time"` // RFC 3339, seconds precision, UTC "Z"
	Region       string          `json:"region"`
	Resources    []string        `json:"resources"` // [] rather than null when none
	Detail       json.RawMessage `json:"detail"`    // compacted
	EventBusName string          `json:"eventBusName"`
}

// Stats counts what the bus has seen.
type Stats struct {
	Requests int // PutEvents requests received, including ones refused whole
	Accepted int // entries accepted (each became an Event)
	Rejected int // entries that came back with an ErrorCode (invalid or Reject)
}

// Bus is an in-memory EventBridge event bus. It is safe for concurrent use.
type Bus struct {
	cfg Config

	mu       sync.Mutex
	events   []Event
	attempts map[[sha256.Size]byte]int
	stats    Stats
}

const (
	// target is the X-Amz-Target the SDK sends: the service shape name
	// (AWSEvents) and the operation name.
	target = "AWSEvents.PutEvents"
	// contentType is what awsJson1_1 uses both ways.
	contentType = "application/x-amz-json-1.1"
	// maxEntries is PutEvents' limit on Entries.
	maxEntries = 10
	// maxEntrySize is EventBridge's classic event size limit, computed the
	// way the EventBridge user guide does (see entrySize).
	maxEntrySize = 256 * 1024
	// maxBody bounds what is read of a request: ten maximal entries even
	// with every byte \u-escaped fit comfortably.
	maxBody = 24 << 20
	// timeLayout renders envelope times as EventBridge does.
	timeLayout = "2006-01-02T15:04:05Z"
)

// New returns a Bus configured by cfg.
func New(cfg Config) *Bus {
	if cfg.Account == "" {
		cfg.Account = "000000000000"
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Bus{cfg: cfg, attempts: map[[sha256.Size]byte]int{}}
}

// Events returns the events accepted so far, in order of acceptance (the
// order of the log's lines).
func (b *Bus) Events() []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Event, len(b.events))
	for i, e := range b.events {
		out[i] = cloneEvent(e)
	}
	return out
}

// Stats returns the counters so far.
func (b *Bus) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

func cloneEvent(e Event) Event {
	e.Resources = slices.Clone(e.Resources)
	e.Detail = slices.Clone(e.Detail)
	return e
}

// ServeHTTP serves PutEvents on POST /, GET /events and GET /healthz.
func (b *Bus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		b.serveAPI(w, r)
	case "/events":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		b.serveEvents(w, r)
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	default:
		http.NotFound(w, r)
	}
}

// serveEvents lists accepted events, keeping those whose detail-type and
// source are among the query's values for each key given.
func (b *Bus) serveEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	types, sources := q["detail-type"], q["source"]
	out := []Event{}
	for _, e := range b.Events() {
		if len(types) > 0 && !slices.Contains(types, e.DetailType) {
			continue
		}
		if len(sources) > 0 && !slices.Contains(sources, e.Source) {
			continue
		}
		out = append(out, e)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(buf.Bytes())
}

// apiError is a whole-request error in awsJson's shape.
type apiError struct {
	status  int
	typ     string
	message string
}

func (e *apiError) Error() string { return e.typ + ": " + e.message }

func validationError(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "ValidationException", fmt.Sprintf(format, args...)}
}

// serveAPI handles one awsJson1_1 request.
func (b *Bus) serveAPI(w http.ResponseWriter, r *http.Request) {
	reqID := uuid.NewString()
	w.Header().Set("X-Amzn-Requestid", reqID)
	if r.Header.Get("X-Amz-Target") == target {
		b.mu.Lock()
		b.stats.Requests++
		b.mu.Unlock()
	}
	resp, err := b.handleAPI(r)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{http.StatusInternalServerError, "InternalException", err.Error()}
		}
		writeJSON(w, ae.status, map[string]string{"__type": ae.typ, "message": ae.message})
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		fmt.Fprintf(&buf, `{"__type":"InternalException","message":%q}`, err.Error())
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// handleAPI checks authentication and the operation, then runs PutEvents.
func (b *Bus) handleAPI(r *http.Request) (*putEventsResponse, error) {
	if r.Header.Get("Authorization") == "" {
		return nil, &apiError{http.StatusBadRequest, "MissingAuthenticationTokenException", "Missing Authentication Token"}
	}
	if t := r.Header.Get("X-Amz-Target"); t != target {
		return nil, &apiError{http.StatusBadRequest, "UnknownOperationException", fmt.Sprintf("operation %q is not supported by this emulator (only %s)", t, target)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &apiError{http.StatusRequestEntityTooLarge, "RequestEntityTooLargeException", "Request must be smaller than " + fmt.Sprint(maxBody) + " bytes"}
		}
		return nil, &apiError{http.StatusBadRequest, "SerializationException", "reading request body: " + err.Error()}
	}
	var req putEventsRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, &apiError{http.StatusBadRequest, "SerializationException", err.Error()}
	}
	return b.putEvents(req.Entries)
}

// putEventsRequest is PutEvents' input on the wire.
type putEventsRequest struct {
	Entries    []wireEntry
	EndpointId string // global endpoints; accepted and ignored
}

// wireEntry is one PutEventsRequestEntry on the wire.
type wireEntry struct {
	Source       string
	DetailType   string
	Detail       string
	EventBusName string
	Resources    []string
	Time         epochTime
	TraceHeader  string
}

// epochTime is an awsJson timestamp: a JSON number of (possibly fractional)
// epoch seconds, which is how the SDK serializes Time.
type epochTime struct {
	set bool
	t   time.Time
}

func (e *epochTime) UnmarshalJSON(p []byte) error {
	if string(p) == "null" {
		*e = epochTime{}
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(p, &n); err != nil || len(p) == 0 || p[0] == '"' {
		return fmt.Errorf("Time: expected epoch seconds as a JSON number, got %s", p)
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return fmt.Errorf("Time: invalid epoch seconds %s", p)
	}
	sec, frac := math.Modf(f)
	*e = epochTime{set: true, t: time.Unix(int64(sec), int64(math.Round(frac*1e3))*int64(time.Millisecond)).UTC()}
	return nil
}

// putEventsResponse is PutEvents' output on the wire.
type putEventsResponse struct {
	FailedEntryCount int
	Entries          []resultEntry
}

// resultEntry is one PutEventsResultEntry: an EventId or an error.
type resultEntry struct {
	EventId      string `json:",omitempty"`
	ErrorCode    string `json:",omitempty"`
	ErrorMessage string `json:",omitempty"`
}

// entrySize is an entry's size as the EventBridge user guide computes it
// ("Calculating PutEvents event entry size"): 14 bytes for Time if present,
// plus the UTF-8 lengths of Source, DetailType, Detail and each Resource.
func entrySize(e wireEntry) int {
	n := len(e.Source) + len(e.DetailType) + len(e.Detail)
	if e.Time.set {
		n += 14
	}
	for _, r := range e.Resources {
		n += len(r)
	}
	return n
}

// validateEntry returns the per-entry error EventBridge would report, if any.
func validateEntry(e wireEntry) *resultEntry {
	for _, f := range []struct{ name, v string }{{"Source", e.Source}, {"DetailType", e.DetailType}, {"Detail", e.Detail}} {
		if f.v == "" {
			return &resultEntry{ErrorCode: "InvalidArgument", ErrorMessage: fmt.Sprintf("Parameter %s is not valid. Reason: %s is a required argument.", f.name, f.name)}
		}
	}
	if !isJSONObject(e.Detail) {
		return &resultEntry{ErrorCode: "MalformedDetail", ErrorMessage: "Detail is malformed."}
	}
	if strings.HasPrefix(e.Source, "aws.") {
		return &resultEntry{ErrorCode: "NotAuthorizedForSourceException", ErrorMessage: "Not authorized for the source."}
	}
	return nil
}

func isJSONObject(s string) bool {
	t := strings.TrimLeft(s, " \t\r\n")
	return strings.HasPrefix(t, "{") && json.Valid([]byte(s))
}

// attemptKey identifies "an identical entry" for Config.Reject.
func attemptKey(e wireEntry) [sha256.Size]byte {
	h := sha256.New()
	for _, s := range []string{e.Source, e.DetailType, e.Detail} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		io.WriteString(h, s)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// putEvents validates, consults Reject, and records the accepted entries.
func (b *Bus) putEvents(entries []wireEntry) (*putEventsResponse, error) {
	if entries == nil {
		return nil, validationError("1 validation error detected: Value null at 'entries' failed to satisfy constraint: Member must not be null")
	}
	if len(entries) < 1 {
		return nil, validationError("1 validation error detected: Value '[]' at 'entries' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	if len(entries) > maxEntries {
		return nil, validationError("1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length less than or equal to %d", maxEntries)
	}
	for i, e := range entries {
		if n := entrySize(e); n > maxEntrySize {
			return nil, validationError("Entry %d is %d bytes; the size of an event entry must not exceed %d bytes", i, n, maxEntrySize)
		}
	}

	results := make([]resultEntry, len(entries))
	valid := make([]bool, len(entries))
	for i, e := range entries {
		if bad := validateEntry(e); bad != nil {
			results[i] = *bad
		} else {
			valid[i] = true
		}
	}

	// Number the attempts under the lock, then ask Reject without it.
	attempts := make([]int, len(entries))
	b.mu.Lock()
	for i, e := range entries {
		if valid[i] {
			k := attemptKey(e)
			attempts[i] = b.attempts[k]
			b.attempts[k]++
		}
	}
	b.mu.Unlock()

	now := b.cfg.Now()
	pending := make([]Event, len(entries))
	for i, e := range entries {
		if !valid[i] {
			continue
		}
		if b.cfg.Reject != nil && b.cfg.Reject(e.entry(), attempts[i]) {
			valid[i] = false
			results[i] = resultEntry{ErrorCode: "InternalFailure", ErrorMessage: "Internal service failure (injected by eventbus Config.Reject)"}
			continue
		}
		pending[i] = b.envelope(e, now)
	}

	// Record under the lock so memory and log share one order.
	b.mu.Lock()
	defer b.mu.Unlock()
	var line bytes.Buffer
	enc := json.NewEncoder(&line)
	enc.SetEscapeHTML(false)
	for i := range entries {
		if !valid[i] {
			continue
		}
		ev := pending[i]
		if b.cfg.Log != nil {
			line.Reset()
			err := enc.Encode(ev)
			if err == nil {
				_, err = b.cfg.Log.Write(line.Bytes())
			}
			if err != nil {
				valid[i] = false
				results[i] = resultEntry{ErrorCode: "InternalFailure", ErrorMessage: "writing the event log: " + err.Error()}
				continue
			}
		}
		b.events = append(b.events, ev)
		results[i] = resultEntry{EventId: ev.ID}
	}
	resp := &putEventsResponse{Entries: results}
	for i := range entries {
		if valid[i] {
			b.stats.Accepted++
		} else {
			b.stats.Rejected++
			resp.FailedEntryCount++
		}
	}
	return resp, nil
}

// entry converts the wire form to the Entry handed to Reject.
func (e wireEntry) entry() Entry {
	return Entry{
		Source:       e.Source,
		DetailType:   e.DetailType,
		Detail:       e.Detail,
		EventBusName: e.EventBusName,
		Resources:    slices.Clone(e.Resources),
		Time:         e.Time.t,
	}
}

// envelope builds the event EventBridge would deliver for a valid entry.
func (b *Bus) envelope(e wireEntry, now time.Time) Event {
	t := now
	if e.Time.set {
		t = e.Time.t
	}
	var detail bytes.Buffer
	json.Compact(&detail, []byte(e.Detail)) // valid: checked by validateEntry
	resources := slices.Clone(e.Resources)
	if resources == nil {
		resources = []string{}
	}
	bus := e.EventBusName
	if bus == "" {
		bus = "default"
	}
	return Event{
		Version:      "0",
		ID:           uuid.NewString(),
		DetailType:   e.DetailType,
		Source:       e.Source,
		Account:      b.cfg.Account,
		Time:         t.UTC().Truncate(time.Second).Format(timeLayout),
		Region:       b.cfg.Region,
		Resources:    resources,
		Detail:       detail.Bytes(),
		EventBusName: bus,
	}
}
