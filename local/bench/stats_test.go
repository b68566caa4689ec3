package bench

import (
	"math"
	"testing"
)

func TestPercentile(t *testing.T) {
	xs := []float64{15, 20, 35, 40, 50} // sorted positions 0..4
	for _, c := range []struct{ p, want float64 }{
		{0, 15}, {25, 20}, {50, 35}, {75, 40}, {100, 50},
		{40, 29}, // position 1.6: 20 + 0.6·15
		{99, 49.6},
	} {
		if got := Percentile(xs, c.p); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	shuffled := []float64{40, 15, 50, 35, 20}
	if got := Percentile(shuffled, 50); got != 35 || shuffled[0] != 40 {
		t.Errorf("unsorted input: p50 %v, input now %v", got, shuffled)
	}
	if !math.IsNaN(Percentile(nil, 50)) || !math.IsNaN(Mean(nil)) {
		t.Error("no samples should give NaN")
	}
	if got := Percentile([]float64{7}, 99); got != 7 {
		t.Errorf("one sample: %v", got)
	}
	// 200 samples 1..200: p99 sits at position 197.01, between 198 and 199.
	var hundreds []float64
	for i := 1; i <= 200; i++ {
		hundreds = append(hundreds, float64(i))
	}
	if got := Percentile(hundreds, 99); math.Abs(got-198.01) > 1e-9 {
		t.Errorf("p99 of 1..200 = %v, want 198.01", got)
	}
	if Median([]float64{1, 2, 3, 4}) != 2.5 || Mean([]float64{1, 2, 3, 4}) != 2.5 {
		t.Error("median/mean of 1..4")
	}
}

func TestSummarizeAndMedianOfRuns(t *testing.T) {
	l := &LatencyResult{Runs: []LatencyRun{
		{E2E: summarize([]float64{10, 12, 14, 100})},
		{E2E: summarize([]float64{8, 9, 10, 11})},
		{E2E: summarize([]float64{20, 21, 22, 23})},
	}}
	l.finish()
	// p50s 13, 9.5, 21.5 → 13; p99s 97.42, 10.97, 22.97 → 22.97.
	if l.P50 != 13 || l.P99 != 22.97 {
		t.Errorf("median p50 %v, p99 %v", l.P50, l.P99)
	}
}

func TestBilledMs(t *testing.T) {
	if got := billedMs([]float64{0.2, 1.0, 2.1}); got != (1+1+3)/3.0 {
		t.Errorf("billed %v", got)
	}
}
