package bench

import (
	"math"
	"sort"
)

// Percentile is the p-th percentile (0–100) of xs by linear interpolation
// between the two nearest ranks (the definition numpy and Excel's
// PERCENTILE.INC use): sorted xs at position (n-1)·p/100. xs need not be
// sorted and is not modified. NaN for no samples.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	switch {
	case p <= 0:
		return s[0]
	case p >= 100:
		return s[len(s)-1]
	}
	pos := float64(len(s)-1) * p / 100
	lo := int(math.Floor(pos))
	if lo+1 >= len(s) {
		return s[lo]
	}
	frac := pos - float64(lo)
	return s[lo] + (s[lo+1]-s[lo])*frac
}

// Median is the 50th percentile.
func Median(xs []float64) float64 { return Percentile(xs, 50) }

// Mean is the arithmetic mean; NaN for no samples.
func Mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// round rounds to the given number of decimals (for the report: the JSON
// should not carry fifteen digits of noise).
func round(x float64, decimals int) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	p := math.Pow(10, float64(decimals))
	return math.Round(x*p) / p
}
