package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Report is docs/benchmarks.json: the flat keys the goals are about, then
// the details behind them.
type Report struct {
	Date      string  `json:"date"`
	Machine   Machine `json:"machine"`
	GoVersion string  `json:"go_version"`
	Command   string  `json:"command"`

	// Costs with the template's UserLevelEvents default, and each way.
	CostN20        *float64          `json:"cost_usd_per_million_messages_n20,omitempty"`
	CostN250       *float64          `json:"cost_usd_per_million_messages_n250,omitempty"`
	CostN20On      *float64          `json:"cost_usd_per_million_messages_n20_user_level_events_on,omitempty"`
	CostN20Off     *float64          `json:"cost_usd_per_million_messages_n20_user_level_events_off,omitempty"`
	CostN250On     *float64          `json:"cost_usd_per_million_messages_n250_user_level_events_on,omitempty"`
	CostN250Off    *float64          `json:"cost_usd_per_million_messages_n250_user_level_events_off,omitempty"`
	DDBPerSend     *float64          `json:"dynamodb_requests_per_send,omitempty"`
	PollIntervalMs *float64          `json:"stream_poll_interval_ms,omitempty"`
	L20P50         *float64          `json:"e2e_latency_ms_n20_p50,omitempty"`
	L20P99         *float64          `json:"e2e_latency_ms_n20_p99,omitempty"`
	L250P50        *float64          `json:"e2e_latency_ms_n250_p50,omitempty"`
	L250P99        *float64          `json:"e2e_latency_ms_n250_p99,omitempty"`
	B20P50         *float64          `json:"e2e_latency_beyond_poll_ms_n20_p50,omitempty"`
	B20P99         *float64          `json:"e2e_latency_beyond_poll_ms_n20_p99,omitempty"`
	B250P50        *float64          `json:"e2e_latency_beyond_poll_ms_n250_p50,omitempty"`
	B250P99        *float64          `json:"e2e_latency_beyond_poll_ms_n250_p99,omitempty"`
	Sustained      *float64          `json:"sustained_messages_per_second,omitempty"`
	Lost           *float64          `json:"lost_messages,omitempty"`
	InitRatio      *float64          `json:"init_ratio_vs_hello_world_max,omitempty"`
	BootstrapBytes *float64          `json:"bootstrap_bytes_max,omitempty"`
	Goals          []Goal            `json:"goals,omitempty"`
	CarriedOver    map[string]string `json:"carried_over,omitempty"`
	Details        Details           `json:"details"`
}

// Machine is where the numbers were taken.
type Machine struct {
	CPU     string `json:"cpu"`
	Cores   int    `json:"cores"`
	OS      string `json:"os"`
	LoadAvg string `json:"load_average_at_start,omitempty"`
}

// Details are the measurements behind the keys.
type Details struct {
	Settings   *Settings                 `json:"settings,omitempty"`
	Prices     *Prices                   `json:"prices,omitempty"`
	Operations []OpRow                   `json:"operations,omitempty"`
	Estimator  *EstimatorCheck           `json:"transaction_estimator_check,omitempty"`
	Cost       map[string]Breakdown      `json:"cost,omitempty"`
	Latency    map[string]*LatencyResult `json:"latency,omitempty"`
	Throughput *ThroughputResult         `json:"throughput,omitempty"`
	Coldstart  map[string]any            `json:"coldstart,omitempty"`
}

// Settings records how the run was made.
type Settings struct {
	PollIntervalMs        float64 `json:"stream_poll_interval_ms"`
	Runs                  int     `json:"runs"`
	Samples20             int     `json:"latency_samples_per_run_n20"`
	Samples250            int     `json:"latency_samples_per_run_n250"`
	SpacingMs             float64 `json:"latency_spacing_ms"`
	DurationS             float64 `json:"throughput_duration_s"`
	MessageBytes          int     `json:"message_bytes"`
	ConnMinutesPerMessage float64 `json:"connection_minutes_per_participant_per_message"`
	PingEveryMin          float64 `json:"keepalive_ping_every_min"`
	RateLimits            string  `json:"acs_rate_limits"`
	UserLevelDefault      string  `json:"user_level_events_template_default"`
}

// Goal is one key's target.
type Goal struct {
	Key   string   `json:"key"`
	Goal  string   `json:"goal"`
	Value *float64 `json:"value,omitempty"`
	Pass  *bool    `json:"pass,omitempty"`
}

func ptr(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

// NewReport turns results into the report (no cold start yet).
func NewReport(res *Results, command string) *Report {
	o := res.Options
	r := &Report{
		Date: time.Now().UTC().Format(time.RFC3339), Machine: machine(), GoVersion: runtime.Version(), Command: command,
		PollIntervalMs: ptr(ms(o.PollInterval)),
	}
	prices := ReferencePrices
	r.Details.Prices = &prices
	r.Details.Settings = &Settings{
		PollIntervalMs: ms(o.PollInterval), Runs: o.Runs, Samples20: o.Samples20, Samples250: o.Samples250,
		SpacingMs: ms(o.Spacing), DurationS: o.Duration.Seconds(), MessageBytes: o.MessageBytes,
		ConnMinutesPerMessage: o.ConnMinutesPerMessage, PingEveryMin: o.PingEvery.Minutes(), RateLimits: res.RateLimits,
		UserLevelDefault: onOff(res.UserLevelDef),
	}
	if len(res.Operations) > 0 {
		r.Details.Operations = res.Operations
		est := res.Estimator
		r.Details.Estimator = &est
		for _, op := range res.Operations {
			if op.Operation == "SendMessage" {
				r.DDBPerSend = ptr(round(op.DDBRequests, 2))
			}
		}
	}
	if len(res.Cost) > 0 {
		r.Details.Cost = res.Cost
		get := func(k string) *float64 {
			if b, ok := res.Cost[k]; ok {
				return ptr(round(b.Total, 2))
			}
			return nil
		}
		r.CostN20, r.CostN250 = get(costKey(20, res.UserLevelDef)), get(costKey(250, res.UserLevelDef))
		r.CostN20On, r.CostN250On = get(costKey(20, true)), get(costKey(250, true))
		r.CostN20Off, r.CostN250Off = get(costKey(20, false)), get(costKey(250, false))
		// The send path's requests as measured on the sends the cost is for.
		for _, u := range res.Cost[costKey(20, res.UserLevelDef)].Scenario.Uses {
			if u.Profile.Operation == "SendMessage" {
				r.DDBPerSend = ptr(round(u.Profile.Requests, 2))
			}
		}
	}
	if len(res.Latency) > 0 {
		r.Details.Latency = map[string]*LatencyResult{}
		for n, l := range res.Latency {
			r.Details.Latency[fmt.Sprintf("n%d", n)] = l
		}
		if l := res.Latency[20]; l != nil {
			r.L20P50, r.L20P99, r.B20P50, r.B20P99 = ptr(l.P50), ptr(l.P99), ptr(l.BeyondPollP50), ptr(l.BeyondPollP99)
		}
		if l := res.Latency[250]; l != nil {
			r.L250P50, r.L250P99, r.B250P50, r.B250P99 = ptr(l.P50), ptr(l.P99), ptr(l.BeyondPollP50), ptr(l.BeyondPollP99)
		}
	}
	if t := res.Throughput; t != nil {
		r.Details.Throughput = t
		r.Sustained, r.Lost = ptr(t.Sustained), ptr(float64(t.Lost))
	}
	return r
}

// metaKeys are a cold-start document's own bookkeeping, not measurements.
var metaKeys = map[string]bool{"date": true, "machine": true, "go_version": true, "command": true, "details": true, "goals": true}

// MergeColdstart adds the cold-start tool's output: its known keys at the
// top level, the whole document under details.coldstart.
func (r *Report) MergeColdstart(doc map[string]any) {
	if len(doc) == 0 {
		return
	}
	r.Details.Coldstart = doc
	num := func(k string) *float64 {
		if v, ok := doc[k].(float64); ok {
			return ptr(v)
		}
		return nil
	}
	r.InitRatio, r.BootstrapBytes = num("init_ratio_vs_hello_world_max"), num("bootstrap_bytes_max")
}

// Merge fills what this run did not measure from the previous report (a
// skipped phase, a cold start measured last time), recording where each
// carried value came from, so the file always holds every key measured.
func Merge(cur *Report, prevJSON []byte) (*Report, error) {
	if len(bytes.TrimSpace(prevJSON)) == 0 {
		cur.finishGoals()
		return cur, nil
	}
	var prev map[string]any
	if err := json.Unmarshal(prevJSON, &prev); err != nil {
		return nil, fmt.Errorf("bench: previous report: %w", err)
	}
	b, err := json.Marshal(cur)
	if err != nil {
		return nil, err
	}
	var now map[string]any
	if err := json.Unmarshal(b, &now); err != nil {
		return nil, err
	}
	prevDate, _ := prev["date"].(string)
	prevCarried, _ := prev["carried_over"].(map[string]any)
	carried := map[string]string{}
	from := func(key string) string {
		if s, ok := prevCarried[key].(string); ok {
			return s
		}
		return prevDate
	}
	for k, v := range prev {
		if metaKeys[k] || k == "carried_over" {
			continue
		}
		if _, ok := now[k]; !ok {
			now[k] = v
			carried[k] = from(k)
		}
	}
	pd, _ := prev["details"].(map[string]any)
	nd, _ := now["details"].(map[string]any)
	if nd == nil {
		nd = map[string]any{}
		now["details"] = nd
	}
	for k, v := range pd {
		if _, ok := nd[k]; !ok {
			nd[k] = v
			carried["details."+k] = from("details." + k)
		}
	}
	b, err = json.Marshal(now)
	if err != nil {
		return nil, err
	}
	out := &Report{}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, err
	}
	if len(carried) > 0 {
		out.CarriedOver = carried
	} else {
		out.CarriedOver = nil
	}
	out.finishGoals()
	return out, nil
}

// finishGoals judges every key that has a goal.
func (r *Report) finishGoals() {
	le := func(limit float64) func(float64) bool { return func(v float64) bool { return v <= limit } }
	ge := func(limit float64) func(float64) bool { return func(v float64) bool { return v >= limit } }
	goals := []struct {
		key  string
		v    *float64
		goal string
		ok   func(float64) bool
	}{
		{"cost_usd_per_million_messages_n20", r.CostN20, "≤ 35 (ACS: 800)", le(35)},
		{"cost_usd_per_million_messages_n20_user_level_events_on", r.CostN20On, "≤ 35 (ACS: 800)", le(35)},
		{"cost_usd_per_million_messages_n20_user_level_events_off", r.CostN20Off, "≤ 35 (ACS: 800)", le(35)},
		{"cost_usd_per_million_messages_n250", r.CostN250, "(ACS: 800)", nil},
		{"cost_usd_per_million_messages_n250_user_level_events_on", r.CostN250On, "(ACS: 800)", nil},
		{"cost_usd_per_million_messages_n250_user_level_events_off", r.CostN250Off, "(ACS: 800)", nil},
		{"dynamodb_requests_per_send", r.DDBPerSend, "≤ 3", le(3)},
		{"e2e_latency_beyond_poll_ms_n20_p50", r.B20P50, "≤ 15", le(15)},
		{"e2e_latency_beyond_poll_ms_n20_p99", r.B20P99, "≤ 50", le(50)},
		{"e2e_latency_ms_n20_p50", r.L20P50, "(poll interval + 15; informational)", nil},
		{"e2e_latency_ms_n20_p99", r.L20P99, "(poll interval + 50; informational)", nil},
		{"e2e_latency_ms_n250_p50", r.L250P50, "—", nil},
		{"e2e_latency_ms_n250_p99", r.L250P99, "—", nil},
		{"sustained_messages_per_second", r.Sustained, "≥ 300", ge(300)},
		{"lost_messages", r.Lost, "= 0", func(v float64) bool { return v == 0 }},
		{"init_ratio_vs_hello_world_max", r.InitRatio, "(the cold-start tool's)", nil},
		{"bootstrap_bytes_max", r.BootstrapBytes, "(the cold-start tool's)", nil},
	}
	// The cold-start tool states its own thresholds.
	if cg, ok := r.Details.Coldstart["goals"].(map[string]any); ok {
		for i := range goals {
			if limit, ok := cg[goals[i].key].(float64); ok && strings.HasPrefix(goals[i].goal, "(the cold-start") {
				goals[i].goal, goals[i].ok = "≤ "+num(limit), le(limit)
			}
		}
	}
	for i := range goals {
		if r.PollIntervalMs == nil {
			break
		}
		p := *r.PollIntervalMs
		switch goals[i].key {
		case "e2e_latency_ms_n20_p50":
			goals[i].goal, goals[i].ok = fmt.Sprintf("≤ %s (poll interval + 15)", num(p+15)), le(p+15)
		case "e2e_latency_ms_n20_p99":
			goals[i].goal, goals[i].ok = fmt.Sprintf("≤ %s (poll interval + 50)", num(p+50)), le(p+50)
		}
	}
	r.Goals = nil
	for _, g := range goals {
		if g.v == nil {
			continue
		}
		out := Goal{Key: g.key, Goal: g.goal, Value: g.v}
		if g.ok != nil {
			pass := g.ok(*g.v)
			out.Pass = &pass
		}
		r.Goals = append(r.Goals, out)
	}
}

// JSON is the report as written to docs/benchmarks.json.
func (r *Report) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func machine() Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return m
}

// sortedCostKeys lists cost scenarios in a stable, readable order.
func sortedCostKeys(m map[string]Breakdown) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := m[keys[i]].Scenario, m[keys[j]].Scenario
		if a.Participants != b.Participants {
			return a.Participants < b.Participants
		}
		return a.UserLevelEvents && !b.UserLevelEvents
	})
	return keys
}
