package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/threadline/threadline/local/acsclient"
	"github.com/threadline/threadline/local/eventbus"
	"github.com/threadline/threadline/shared/obs"
)

// lockedBuffer is a log sink many function goroutines write to at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(l.b.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// faultOnlyMetrics are only emitted when something goes wrong; the
// reliability suite (reliability_e2e_test.go) provokes each of them.
var faultOnlyMetrics = []string{obs.ServerErrors, obs.PushesGone, obs.PushesFailed, obs.DynamoDBThrottles}

// TestMetricsAndLogs drives a stack through a chat with a listener, a bad
// request and an event the bus refuses, then reads every line the functions
// logged: each must be JSON, every metric line valid Embedded Metric Format,
// every metric the dashboard and alarms chart must have been emitted, and no
// message text, topic, display name, token or key may appear anywhere.
func TestMetricsAndLogs(t *testing.T) {
	logs := &lockedBuffer{}
	s := startStack(t, func(c *Config) {
		c.FunctionLog = logs
		c.EventReject = func(e eventbus.Entry, _ int) bool { return strings.Contains(e.Detail, "refused by the bus") }
	})
	alice, bob := s.user(t), s.user(t)
	ws := s.mustDial(t, bob.Token, "")
	const secretText, secretTopic, secretName = "body-1f9c2e never log me", "topic-7a41 private", "Name-93bd Secret"
	resp := s.do(t, alice.Token, acsclient.Request{Method: http.MethodPost, Path: "/chat/threads?api-version=2025-03-15",
		Body: map[string]any{"topic": secretTopic, "participants": []any{acsclient.Participant(bob.ID, secretName)}}})
	var created createResult
	if resp.Status != http.StatusCreated || resp.JSON(&created) != nil {
		t.Fatalf("create thread: %s", resp)
	}
	thread := created.ChatThread.ID
	msg := s.send(t, alice.Token, thread, secretText)
	ws.waitFor(t, "the message push", func(fs []frame) bool {
		return has(fs, "chatMessageReceived", func(f frame) bool { return f.str("id") == msg })
	})
	s.send(t, alice.Token, thread, "refused by the bus")
	if resp := s.do(t, alice.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "messages"),
		Body: map[string]any{"content": secretText, "type": "nonsense"}}); resp.Status != http.StatusBadRequest {
		t.Fatalf("bad request answered %s", resp)
	}
	if err := s.WaitStreams(context.Background()); err != nil {
		t.Fatal(err)
	}

	emitted := map[string]bool{}
	lines := logs.lines()
	if len(lines) < 10 {
		t.Fatalf("only %d log lines", len(lines))
	}
	secrets := map[string]string{
		"message text": secretText, "topic": secretTopic, "display name": secretName,
		"alice's token": alice.Token, "bob's token": bob.Token,
		"access key": s.Secrets.AccessKey, "signing secret": s.Secrets.SigningSecret,
	}
	for _, line := range lines {
		for what, v := range secrets {
			if strings.Contains(line, v) {
				t.Errorf("the %s was logged: %.300s", what, line)
			}
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON log line: %.300s", line)
			continue
		}
		// Lines the host writes itself (async invocation failures) are
		// outside any invocation; every other line carries its ids.
		keys := []string{"level", "msg", "function", "requestId", "traceId"}
		if rec["msg"] == "async invocation failed" {
			keys = keys[:3]
		}
		for _, k := range keys {
			if _, ok := rec[k]; !ok {
				t.Errorf("log line without %q: %.300s", k, line)
			}
		}
		if _, ok := rec["_aws"]; ok {
			for _, n := range checkEMF(t, rec, line) {
				emitted[n] = true
			}
		}
	}

	charted := chartedMetrics(t)
	for _, n := range charted {
		if !slices.Contains(obs.Names, n) {
			t.Errorf("template.yaml charts or alarms on %s, which no function emits (not in obs.Names)", n)
		}
	}
	for _, n := range obs.Names {
		if !emitted[n] && !slices.Contains(faultOnlyMetrics, n) {
			t.Errorf("metric %s was never emitted", n)
		}
	}
	for _, line := range lines {
		if strings.Contains(line, `"msg":"request"`) {
			for _, k := range []string{`"operation":`, `"status":`, `"durationMs":`, `"apiRequestId":`} {
				if !strings.Contains(line, k) {
					t.Errorf("request line without %s: %.300s", k, line)
				}
			}
		}
	}
	if !emitted[obs.EventsFailed] {
		t.Error("the refused event was not counted in EventsFailed")
	}
}

// checkEMF validates one metric line against the EMF specification and
// returns the metric names it carries.
func checkEMF(t *testing.T, rec map[string]any, line string) []string {
	t.Helper()
	if len(line) > 256<<10 {
		t.Errorf("EMF line over 256 KB")
	}
	var meta struct {
		Timestamp         *int64
		CloudWatchMetrics []struct {
			Namespace  string
			Dimensions [][]string
			Metrics    []struct{ Name, Unit string }
		}
	}
	raw, _ := json.Marshal(rec["_aws"])
	if err := json.Unmarshal(raw, &meta); err != nil || meta.Timestamp == nil || len(meta.CloudWatchMetrics) == 0 {
		t.Errorf("bad _aws block (%v): %.300s", err, line)
		return nil
	}
	var names []string
	units := []string{"Count", "Milliseconds"}
	for _, d := range meta.CloudWatchMetrics {
		if d.Namespace != "Threadline" {
			t.Errorf("namespace %q", d.Namespace)
		}
		if len(d.Metrics) == 0 || len(d.Metrics) > 100 || len(d.Dimensions) == 0 {
			t.Errorf("%d metrics, %d dimension sets in one directive: %.300s", len(d.Metrics), len(d.Dimensions), line)
		}
		for _, set := range d.Dimensions {
			if len(set) > 30 {
				t.Errorf("dimension set of %d", len(set))
			}
			for _, k := range set {
				if k != "Operation" {
					t.Errorf("dimension %s: only Operation is allowed (never a user or thread)", k)
				}
				if v, ok := rec[k].(string); !ok || v == "" {
					t.Errorf("dimension %s has no string value: %.300s", k, line)
				}
			}
		}
		for _, m := range d.Metrics {
			if _, ok := rec[m.Name].(float64); !ok {
				t.Errorf("metric %s has no numeric value: %.300s", m.Name, line)
			}
			if !slices.Contains(units, m.Unit) {
				t.Errorf("metric %s unit %q", m.Name, m.Unit)
			}
			if slices.Contains(names, m.Name) {
				t.Errorf("metric %s defined twice in one line", m.Name)
			}
			names = append(names, m.Name)
		}
	}
	return names
}

var (
	// MetricStat / alarm forms: MetricName next to our namespace.
	alarmMetric = regexp.MustCompile(`Namespace: !Ref MetricsNamespace,?\s+MetricName: (\w+)`)
	// Dashboard SEARCH expressions over our namespace.
	searchMetric = regexp.MustCompile(`\{\$\{MetricsNamespace\},Operation\} MetricName=\\"(\w+)\\"`)
	// Dashboard rows ["${MetricsNamespace}","X"] and [".","Y"] that follow them.
	rowMetric = regexp.MustCompile(`\["(?:\$\{MetricsNamespace\}|\.)","(\w+)"\]`)
)

// chartedMetrics lists the custom metrics template.yaml's alarms and
// dashboard refer to.
func chartedMetrics(t *testing.T) []string {
	b, err := os.ReadFile(repoFile(t, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, re := range []*regexp.Regexp{alarmMetric, searchMetric} {
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			set[m[1]] = true
		}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `["${MetricsNamespace}"`) || strings.HasPrefix(strings.TrimSpace(line), `[".",`) {
			for _, m := range rowMetric.FindAllStringSubmatch(line, -1) {
				set[m[1]] = true
			}
		}
	}
	out := sortedKeys(set)
	sort.Strings(out)
	// A parse that finds little means the template's shape changed under
	// the regexps, not that the dashboard is empty.
	if len(out) < 12 {
		t.Fatalf("found only %v in template.yaml's alarms and dashboard", out)
	}
	return out
}
