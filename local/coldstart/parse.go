package coldstart

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// initReportLine is what the emulator's rapid core logs (at INFO) when the
// runtime has finished INIT, that is when the bootstrap first asks the
// Runtime API for an invocation: "INIT REPORT(durationMs: 2.895000)". The
// clock starts before the bootstrap is exec'd, so the figure covers process
// start, the Go runtime, every package init and main up to lambda.Start:
// the same span Lambda bills and reports as Init Duration.
var (
	initReportLine = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)
	initDoneLine   = regexp.MustCompile(`INIT RTDONE\(status: ([a-z_]+)`)
)

// ErrNoInitReport is ParseInitReport's error for a log without the line,
// for instance one read before the emulator wrote it.
var ErrNoInitReport = errors.New("no INIT REPORT line in the emulator's log")

// ParseInitReport finds the emulator's INIT REPORT in its log and returns
// its duration in milliseconds. A log whose INIT RTDONE status is not
// success (the bootstrap exited or failed during init) is an error.
func ParseInitReport(log []byte) (float64, error) {
	if m := initDoneLine.FindSubmatch(log); m != nil && string(m[1]) != "success" {
		return 0, fmt.Errorf("init ended with status %s", m[1])
	}
	m := initReportLine.FindSubmatch(log)
	if m == nil {
		return 0, ErrNoInitReport
	}
	ms, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return 0, fmt.Errorf("INIT REPORT duration %q: %w", m[1], err)
	}
	return ms, nil
}

// PackageInit is one line of GODEBUG=inittrace=1 output: the time and the
// heap one package's init functions took.
type PackageInit struct {
	Package string  `json:"package"`
	ClockMs float64 `json:"clock_ms"`
	Bytes   int64   `json:"bytes"`
	Allocs  int64   `json:"allocs"`
}

// "init github.com/x/y @1.2 ms, 0.31 ms clock, 12345 bytes, 67 allocs"
var inittraceLine = regexp.MustCompile(`init (\S+) @[0-9.]+ ms, ([0-9.]+) ms clock, ([0-9]+) bytes, ([0-9]+) allocs`)

// ParseInittrace reads the per-package lines GODEBUG=inittrace=1 prints to
// stderr; other lines are skipped.
func ParseInittrace(out []byte) []PackageInit {
	var inits []PackageInit
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		m := inittraceLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		clock, _ := strconv.ParseFloat(m[2], 64)
		b, _ := strconv.ParseInt(m[3], 10, 64)
		a, _ := strconv.ParseInt(m[4], 10, 64)
		inits = append(inits, PackageInit{Package: m[1], ClockMs: clock, Bytes: b, Allocs: a})
	}
	return inits
}

// MedianInittrace merges several inittrace runs of one binary. A binary
// runs its package inits in a fixed order, so when every run lists the same
// packages the result is the per-package median of each figure; otherwise
// it is the run whose total clock time is the median.
func MedianInittrace(runs [][]PackageInit) []PackageInit {
	if len(runs) == 0 {
		return nil
	}
	same := true
	for _, r := range runs[1:] {
		if len(r) != len(runs[0]) {
			same = false
			break
		}
		for i := range r {
			if r[i].Package != runs[0][i].Package {
				same = false
			}
		}
	}
	if !same {
		totals := make([]float64, len(runs))
		for i, r := range runs {
			totals[i] = Summarize(r, 0).TotalClockMs
		}
		med := Percentile(totals, 50)
		return runs[slices.Index(totals, med)]
	}
	out := make([]PackageInit, len(runs[0]))
	for i := range out {
		var clock, b, a []float64
		for _, r := range runs {
			clock = append(clock, r[i].ClockMs)
			b = append(b, float64(r[i].Bytes))
			a = append(a, float64(r[i].Allocs))
		}
		out[i] = PackageInit{Package: runs[0][i].Package, ClockMs: round3(Median(clock)), Bytes: int64(Median(b)), Allocs: int64(Median(a))}
	}
	return out
}

// InittraceSummary totals a bootstrap's package inits and keeps the n
// heaviest by clock time.
type InittraceSummary struct {
	Packages     int           `json:"packages"`
	TotalClockMs float64       `json:"total_clock_ms"`
	TotalBytes   int64         `json:"total_bytes"`
	TotalAllocs  int64         `json:"total_allocs"`
	Heaviest     []PackageInit `json:"heaviest"`
}

// Summarize totals inits and keeps the n heaviest by clock time (ties by
// bytes).
func Summarize(inits []PackageInit, n int) InittraceSummary {
	s := InittraceSummary{Packages: len(inits)}
	for _, p := range inits {
		s.TotalClockMs += p.ClockMs
		s.TotalBytes += p.Bytes
		s.TotalAllocs += p.Allocs
	}
	s.TotalClockMs = round3(s.TotalClockMs)
	sorted := slices.Clone(inits)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].ClockMs != sorted[j].ClockMs {
			return sorted[i].ClockMs > sorted[j].ClockMs
		}
		return sorted[i].Bytes > sorted[j].Bytes
	})
	if len(sorted) > n {
		sorted = sorted[:n]
	}
	s.Heaviest = sorted
	return s
}

// Median is the middle sample, or the mean of the two middle ones.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Percentile is the nearest-rank percentile: the smallest sample with at
// least p% of the samples at or below it. It never invents a value between
// samples; with 7 samples p90 is the largest.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// ParseSchedstat reads /proc/<pid>/task/<tid>/schedstat: "<ns on cpu> <ns
// waiting on a run queue> <timeslices>".
func ParseSchedstat(s string) (run, wait int64, ok bool) {
	f := strings.Fields(s)
	if len(f) < 2 {
		return 0, 0, false
	}
	run, err1 := strconv.ParseInt(f[0], 10, 64)
	wait, err2 := strconv.ParseInt(f[1], 10, 64)
	return run, wait, err1 == nil && err2 == nil
}

// LoadAverage is the 1-minute load average in /proc/loadavg's text.
func LoadAverage(loadavg string) float64 {
	f := strings.Fields(loadavg)
	if len(f) == 0 {
		return math.NaN()
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// CPUModel is the first "model name" in /proc/cpuinfo's text.
func CPUModel(cpuinfo string) string {
	for line := range strings.SplitSeq(cpuinfo, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Makefile is what the benchmark takes from the project's Makefile: the
// build command of the build-% rule and the logical id -> functions/ folder
// map, in the order of its FUNCTIONS list.
type Makefile struct {
	// Env and Args are GO_BUILD split into its leading VAR=value words and
	// the rest, e.g. [CGO_ENABLED=0 GOOS=linux GOARCH=arm64] and
	// [go build -tags lambda.norpc -trimpath -ldflags=-s -w].
	Env, Args []string
	// Functions are the logical ids in FUNCTIONS order; Dirs maps each to
	// its folder under functions/.
	Functions []string
	Dirs      map[string]string
}

var (
	makeAssign   = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s*:?=\s*(.*?)\s*$`)
	logicalIDVar = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*Function$`)
)

// ParseMakefile reads GO_BUILD, the FUNCTIONS list and each
// <LogicalId>Function := <dir> line.
func ParseMakefile(text string) (Makefile, error) {
	mf := Makefile{Dirs: map[string]string{}}
	var goBuild, functions string
	lines := strings.Split(strings.ReplaceAll(text, "\\\n", " "), "\n")
	for _, line := range lines {
		if strings.HasPrefix(line, "\t") || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		m := makeAssign.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		switch name, value := m[1], m[2]; {
		case name == "GO_BUILD":
			goBuild = value
		case name == "FUNCTIONS":
			functions = value
		case logicalIDVar.MatchString(name):
			mf.Dirs[name] = value
		}
	}
	if goBuild == "" {
		return mf, errors.New("Makefile: no GO_BUILD := line")
	}
	if strings.Contains(goBuild, "$") {
		return mf, fmt.Errorf("Makefile: GO_BUILD uses make variables, which this parser does not expand: %q", goBuild)
	}
	words, err := shellWords(goBuild)
	if err != nil {
		return mf, fmt.Errorf("Makefile: GO_BUILD: %w", err)
	}
	for len(words) > 0 && strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-") {
		mf.Env = append(mf.Env, words[0])
		words = words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		return mf, fmt.Errorf("Makefile: GO_BUILD is not a go build command: %q", goBuild)
	}
	mf.Args = words
	mf.Functions = strings.Fields(functions)
	if len(mf.Functions) == 0 {
		return mf, errors.New("Makefile: empty FUNCTIONS list")
	}
	for _, id := range mf.Functions {
		if mf.Dirs[id] == "" {
			return mf, fmt.Errorf("Makefile: %s is in FUNCTIONS but maps to no folder", id)
		}
	}
	return mf, nil
}

// shellWords splits a command line the way sh would for the simple cases a
// Makefile variable uses: blanks separate words, and single or double quotes
// group (no escapes inside single quotes, backslash escapes inside double).
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
