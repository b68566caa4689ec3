package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Invocation is one function invocation as its EMF line tells it: every
// function writes exactly one such line per invocation (docs/operations.md,
// "Metrics").
type Invocation struct {
	Function  string             // the logger's "function" field (send-message, dispatch, …)
	Operation string             // the EMF "Operation" (SendMessage, Dispatch, WsConnect, …)
	Values    map[string]float64 // every metric the line's CloudWatchMetrics directives name
}

// ParseEMF reads one log line. ok is false for lines that are not EMF
// metric lines (ordinary log lines); err is set for EMF lines that break the
// format (a metric named in a directive but missing or not a number).
func ParseEMF(line []byte) (inv Invocation, ok bool, err error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' || !bytes.Contains(line, []byte(`"_aws"`)) {
		return Invocation{}, false, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(line, &top); err != nil {
		return Invocation{}, false, nil // not JSON: not ours to judge
	}
	raw, found := top["_aws"]
	if !found {
		return Invocation{}, false, nil
	}
	var meta struct {
		Timestamp         *int64 `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Namespace  string     `json:"Namespace"`
			Dimensions [][]string `json:"Dimensions"`
			Metrics    []struct {
				Name string `json:"Name"`
				Unit string `json:"Unit"`
			} `json:"Metrics"`
		} `json:"CloudWatchMetrics"`
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return Invocation{}, true, fmt.Errorf("emf: _aws: %w", err)
	}
	if meta.Timestamp == nil || len(meta.CloudWatchMetrics) == 0 {
		return Invocation{}, true, errors.New("emf: _aws needs Timestamp and CloudWatchMetrics")
	}
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(top[k], &s)
		return s
	}
	inv = Invocation{Function: str("function"), Operation: str("Operation"), Values: map[string]float64{}}
	for _, d := range meta.CloudWatchMetrics {
		for _, dims := range d.Dimensions {
			for _, dim := range dims {
				if _, ok := top[dim]; !ok {
					return Invocation{}, true, fmt.Errorf("emf: dimension %q has no value", dim)
				}
			}
		}
		for _, m := range d.Metrics {
			v, found := top[m.Name]
			if !found {
				return Invocation{}, true, fmt.Errorf("emf: metric %q has no value", m.Name)
			}
			var n float64
			if err := json.Unmarshal(v, &n); err != nil {
				return Invocation{}, true, fmt.Errorf("emf: metric %q is not a number: %s", m.Name, v)
			}
			inv.Values[m.Name] = n
		}
	}
	return inv, true, nil
}

// OpStats sums the EMF lines of one Operation.
type OpStats struct {
	Operation   string
	Function    string
	Invocations int
	Sums        map[string]float64
	Latencies   []float64 // the Latency metric of each invocation, ms
}

// Mean is a metric's mean per invocation.
func (o *OpStats) Mean(metric string) float64 {
	if o == nil || o.Invocations == 0 {
		return 0
	}
	return o.Sums[metric] / float64(o.Invocations)
}

// FuncLog is what one function wrote: every line, EMF or not, since each is
// billed CloudWatch Logs ingestion.
type FuncLog struct {
	Lines, Bytes int
}

// Snapshot is everything the collector saw in one phase.
type Snapshot struct {
	Ops       map[string]*OpStats
	Logs      map[string]*FuncLog // by function
	BadLines  []string            // EMF lines that broke the format
	Problems  []string            // WARN and ERROR lines (the first 50)
	LineCount int
}

// Op returns an operation's stats (an empty one when it never ran).
func (s Snapshot) Op(name string) *OpStats {
	if o, ok := s.Ops[name]; ok {
		return o
	}
	return &OpStats{Operation: name, Sums: map[string]float64{}}
}

// LogBytesPerInvocation is a function's log volume per invocation.
func (s Snapshot) LogBytesPerInvocation(function string) float64 {
	l := s.Logs[function]
	inv := 0
	for _, o := range s.Ops {
		if o.Function == function {
			inv += o.Invocations
		}
	}
	if l == nil || inv == 0 {
		return 0
	}
	return float64(l.Bytes) / float64(inv)
}

// OperationNames lists the operations seen, sorted.
func (s Snapshot) OperationNames() []string {
	names := make([]string, 0, len(s.Ops))
	for n := range s.Ops {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Collector is an io.Writer for local.Config.FunctionLog: it parses every
// line the functions write and sums them per operation until Take.
type Collector struct {
	mu      sync.Mutex
	partial []byte
	cur     Snapshot
}

// NewCollector returns an empty collector.
func NewCollector() *Collector {
	c := &Collector{}
	c.cur = emptySnapshot()
	return c
}

func emptySnapshot() Snapshot {
	return Snapshot{Ops: map[string]*OpStats{}, Logs: map[string]*FuncLog{}}
}

// Write takes log output; lines may arrive split across writes.
func (c *Collector) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		c.line(c.partial[:i+1])
		c.partial = c.partial[i+1:]
	}
	if len(c.partial) == 0 {
		c.partial = nil // let the buffer go
	}
	return len(p), nil
}

func (c *Collector) line(b []byte) {
	c.cur.LineCount++
	var head struct {
		Function string `json:"function"`
		Level    string `json:"level"`
	}
	_ = json.Unmarshal(b, &head)
	if (head.Level == "WARN" || head.Level == "ERROR") && len(c.cur.Problems) < 50 {
		c.cur.Problems = append(c.cur.Problems, string(bytes.TrimSpace(b)))
	}
	fn := head.Function
	if fn == "" {
		fn = "(stack)"
	}
	l := c.cur.Logs[fn]
	if l == nil {
		l = &FuncLog{}
		c.cur.Logs[fn] = l
	}
	l.Lines++
	l.Bytes += len(b)
	inv, ok, err := ParseEMF(b)
	if !ok {
		return
	}
	if err != nil {
		c.cur.BadLines = append(c.cur.BadLines, err.Error()+": "+string(bytes.TrimSpace(b)))
		return
	}
	o := c.cur.Ops[inv.Operation]
	if o == nil {
		o = &OpStats{Operation: inv.Operation, Function: inv.Function, Sums: map[string]float64{}}
		c.cur.Ops[inv.Operation] = o
	}
	o.Invocations++
	for k, v := range inv.Values {
		o.Sums[k] += v
	}
	if v, ok := inv.Values["Latency"]; ok {
		o.Latencies = append(o.Latencies, v)
	}
}

// Take returns what was collected since the last Take and starts afresh.
func (c *Collector) Take() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.cur
	c.cur = emptySnapshot()
	return s
}

// Count is how many invocations of an operation were seen since the last Take.
func (c *Collector) Count(operation string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o := c.cur.Ops[operation]; o != nil {
		return o.Invocations
	}
	return 0
}
