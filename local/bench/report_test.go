package bench

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestMergeCarriesOverWhatThisRunDidNotMeasure(t *testing.T) {
	prev := `{"date":"2026-01-01T00:00:00Z","command":"make bench","sustained_messages_per_second":412,"lost_messages":0,
		"init_ratio_vs_hello_world_max":1.7,"bootstrap_bytes_max":9000000,"carried_over":{"bootstrap_bytes_max":"2025-12-01T00:00:00Z"},
		"details":{"throughput":{"threads":40,"participants":5,"sustained_messages_per_second":412,"lost_messages":0},"coldstart":{"init_ratio_vs_hello_world_max":1.7}}}`
	res := &Results{UserLevelDef: true, Options: Options{PollInterval: 50 * time.Millisecond, Runs: 1}, Cost: map[string]Breakdown{
		costKey(20, true): {Scenario: Scenario{Participants: 20, UserLevelEvents: true}, Total: 40},
	}}
	cur := NewReport(res, "make bench BENCH_FLAGS='-skip-throughput'")
	got, err := Merge(cur, []byte(prev))
	if err != nil {
		t.Fatal(err)
	}
	if got.Sustained == nil || *got.Sustained != 412 || got.Details.Throughput == nil || got.Details.Throughput.Threads != 40 {
		t.Errorf("throughput not carried: %+v", got)
	}
	if got.InitRatio == nil || *got.InitRatio != 1.7 || got.Details.Coldstart == nil {
		t.Error("cold start not carried")
	}
	if got.CarriedOver["sustained_messages_per_second"] != "2026-01-01T00:00:00Z" || got.CarriedOver["bootstrap_bytes_max"] != "2025-12-01T00:00:00Z" ||
		got.CarriedOver["details.throughput"] == "" {
		t.Errorf("carried over %v", got.CarriedOver)
	}
	if got.CostN20 == nil || *got.CostN20 != 40 || got.Command != "make bench BENCH_FLAGS='-skip-throughput'" {
		t.Errorf("this run's values lost: %+v", got)
	}
	goals := map[string]Goal{}
	for _, g := range got.Goals {
		goals[g.Key] = g
	}
	if g := goals["cost_usd_per_million_messages_n20"]; g.Pass == nil || *g.Pass {
		t.Errorf("$40 should fail ≤ 35: %+v", g)
	}
	if g := goals["sustained_messages_per_second"]; g.Pass == nil || !*g.Pass {
		t.Errorf("412 should pass ≥ 300: %+v", g)
	}
	// A fresh measurement replaces the carried one and clears its note.
	cur2 := NewReport(res, "make bench")
	cur2.MergeColdstart(map[string]any{"init_ratio_vs_hello_world_max": 1.2, "bootstrap_bytes_max": 8e6,
		"goals": map[string]any{"init_ratio_vs_hello_world_max": 1.5, "bootstrap_bytes_max": 7e6}})
	b, _ := got.JSON()
	got2, err := Merge(cur2, b)
	if err != nil {
		t.Fatal(err)
	}
	if *got2.InitRatio != 1.2 || got2.CarriedOver["init_ratio_vs_hello_world_max"] != "" {
		t.Errorf("cold start not replaced: %v %v", *got2.InitRatio, got2.CarriedOver)
	}
	for _, g := range got2.Goals {
		switch g.Key {
		case "init_ratio_vs_hello_world_max":
			if g.Goal != "≤ 1.50" || g.Pass == nil || !*g.Pass {
				t.Errorf("init ratio goal %+v", g)
			}
		case "bootstrap_bytes_max":
			if g.Pass == nil || *g.Pass {
				t.Errorf("8 MB should fail ≤ 7 MB: %+v", g)
			}
		}
	}
	md := got2.Markdown()
	for _, want := range []string{"# Benchmarks", "`cost_usd_per_million_messages_n20` | 40 |", "**FAIL**", "## Cold start", "carried over"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	var round map[string]any
	if err := json.Unmarshal(b, &round); err != nil || round["goals"] == nil {
		t.Errorf("JSON: %v", err)
	}
}

func TestMergeWithoutPrevious(t *testing.T) {
	got, err := Merge(NewReport(&Results{Options: Options{PollInterval: 50 * time.Millisecond}}, "x"), nil)
	if err != nil || got.CarriedOver != nil || got.Date == "" || got.Machine.Cores == 0 {
		t.Errorf("%+v %v", got, err)
	}
}
