package coldstart

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// From the emulator's log, as it prints it (its own lines on stderr, the
// bootstrap's and the REPORT line on stdout, here in one file).
const rieLog = `26 Nov 2026 03:19:11,810 [INFO] (rapid) exec './out/bootstrap' (cwd=/tmp/cs-hello, handler=)
26 Nov 2026 03:19:12,335 [INFO] (rapid) INIT START(type: on-demand, phase: init)
26 Nov 2026 03:19:12,335 [INFO] (rapid) The extension's directory "/opt/extensions" does not exist, assuming no extensions to be loaded.
init internal/bytealg @0.005 ms, 0.003 ms clock, 0 bytes, 0 allocs
init github.com/microcosm-cc/bluemonday @1.9 ms, 2.41 ms clock, 1482736 bytes, 12011 allocs
init github.com/aws/aws-sdk-go-v2/service/dynamodb @4.4 ms, 0.11 ms clock, 60312 bytes, 503 allocs
26 Nov 2026 03:19:12,338 [INFO] (rapid) INIT RTDONE(status: success)
26 Nov 2026 03:19:12,338 [INFO] (rapid) INIT REPORT(durationMs: 2.895000)
START RequestId: 25763183-8c72-435b-b10e-51e2e5a000be Version: $LATEST
REPORT RequestId: 25763183-8c72-435b-b10e-51e2e5a000be	Init Duration: 0.07 ms	Duration: 3.75 ms	Billed Duration: 4 ms	Memory Size: 3008 MB	Max Memory Used: 3008 MB	
`

func TestParseInitReport(t *testing.T) {
	ms, err := ParseInitReport([]byte(rieLog))
	if err != nil || ms != 2.895 {
		t.Fatalf("ParseInitReport = %v, %v; want 2.895 (INIT REPORT, not the REPORT line's Init Duration)", ms, err)
	}
	if _, err := ParseInitReport([]byte("START RequestId: x\n")); !errors.Is(err, ErrNoInitReport) {
		t.Errorf("no INIT REPORT: err = %v, want ErrNoInitReport", err)
	}
	failed := `[INFO] (rapid) INIT RTDONE(status: error)
[INFO] (rapid) INIT REPORT(durationMs: 1.500000)
`
	if _, err := ParseInitReport([]byte(failed)); err == nil || errors.Is(err, ErrNoInitReport) {
		t.Errorf("failed init: err = %v, want a status error", err)
	}
}

func TestParseInittrace(t *testing.T) {
	got := ParseInittrace([]byte(rieLog))
	want := []PackageInit{
		{"internal/bytealg", 0.003, 0, 0},
		{"github.com/microcosm-cc/bluemonday", 2.41, 1482736, 12011},
		{"github.com/aws/aws-sdk-go-v2/service/dynamodb", 0.11, 60312, 503},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseInittrace =\n%v\nwant\n%v", got, want)
	}
	s := Summarize(got, 2)
	if s.Packages != 3 || s.TotalClockMs != 2.523 || s.TotalBytes != 1543048 || s.TotalAllocs != 12514 {
		t.Errorf("Summarize totals = %+v", s)
	}
	if len(s.Heaviest) != 2 || s.Heaviest[0].Package != "github.com/microcosm-cc/bluemonday" || s.Heaviest[1].ClockMs != 0.11 {
		t.Errorf("Summarize heaviest = %v", s.Heaviest)
	}
}

func TestMedianInittrace(t *testing.T) {
	a := []PackageInit{{"x", 1, 100, 1}, {"y", 5, 10, 2}}
	b := []PackageInit{{"x", 3, 100, 1}, {"y", 0.5, 12, 2}}
	c := []PackageInit{{"x", 2, 100, 1}, {"y", 0.7, 14, 2}}
	got := MedianInittrace([][]PackageInit{a, b, c})
	if want := []PackageInit{{"x", 2, 100, 1}, {"y", 0.7, 12, 2}}; !reflect.DeepEqual(got, want) {
		t.Errorf("per-package medians = %v, want %v", got, want)
	}
	// Different package lists: the run with the median total (6, 7, 10).
	d := []PackageInit{{"x", 7, 1, 1}}
	e := []PackageInit{{"x", 1, 1, 1}, {"z", 9, 1, 1}}
	if got := MedianInittrace([][]PackageInit{a, d, e}); !reflect.DeepEqual(got, d) {
		t.Errorf("mixed runs = %v, want %v", got, d)
	}
	if MedianInittrace(nil) != nil {
		t.Error("no runs must give nil")
	}
}

func TestMedianPercentile(t *testing.T) {
	for _, tc := range []struct {
		xs          []float64
		median, p90 float64
	}{
		{[]float64{5}, 5, 5},
		{[]float64{4, 1}, 2.5, 4},
		{[]float64{7, 1, 3, 2, 6, 5, 4}, 4, 7}, // nearest rank: ceil(0.9*7) = 7th
		{[]float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 5.5, 9},
	} {
		in := slices.Clone(tc.xs)
		if m := Median(tc.xs); m != tc.median {
			t.Errorf("Median(%v) = %v, want %v", tc.xs, m, tc.median)
		}
		if p := Percentile(tc.xs, 90); p != tc.p90 {
			t.Errorf("Percentile(%v, 90) = %v, want %v", tc.xs, p, tc.p90)
		}
		if !slices.Equal(in, tc.xs) {
			t.Errorf("input reordered: %v", tc.xs)
		}
	}
	if !math.IsNaN(Median(nil)) || !math.IsNaN(Percentile(nil, 90)) {
		t.Error("empty samples must give NaN")
	}
	if p := Percentile([]float64{1, 2, 3}, 0); p != 1 {
		t.Errorf("p0 = %v, want the smallest", p)
	}
}

func TestParseMakefile(t *testing.T) {
	const text = `SHELL := bash
GO_BUILD := CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -tags lambda.norpc -trimpath -ldflags='-s -w'

# comment := ignored
CreateThreadFunction      := create-thread
SendMessageFunction       := send-message

FUNCTIONS := SendMessageFunction \
	CreateThreadFunction

build-%: ## doc
	$(GO_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/$($*)
`
	mf, err := ParseMakefile(text)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"}; !slices.Equal(mf.Env, want) {
		t.Errorf("Env = %q, want %q", mf.Env, want)
	}
	if want := []string{"go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w"}; !slices.Equal(mf.Args, want) {
		t.Errorf("Args = %q, want %q", mf.Args, want)
	}
	if want := []string{"SendMessageFunction", "CreateThreadFunction"}; !slices.Equal(mf.Functions, want) {
		t.Errorf("Functions = %q, want %q", mf.Functions, want)
	}
	if mf.Dirs["SendMessageFunction"] != "send-message" || len(mf.Dirs) != 2 {
		t.Errorf("Dirs = %v", mf.Dirs)
	}
	if got := rawGoBuild(text); got != `CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -tags lambda.norpc -trimpath -ldflags='-s -w'` {
		t.Errorf("rawGoBuild = %q", got)
	}

	ids, err := selectFunctions(mf, []string{"create-thread"})
	if err != nil || !slices.Equal(ids, []string{"CreateThreadFunction"}) {
		t.Errorf("selectFunctions(create-thread) = %v, %v", ids, err)
	}
	if _, err := selectFunctions(mf, []string{"NopeFunction"}); err == nil {
		t.Error("selectFunctions accepted an unknown name")
	}

	for name, bad := range map[string]string{
		"no GO_BUILD":      "FUNCTIONS := AFunction\nAFunction := a\n",
		"unmapped id":      "GO_BUILD := go build\nFUNCTIONS := AFunction\n",
		"not go build":     "GO_BUILD := CGO_ENABLED=0 tinygo build\nFUNCTIONS := AFunction\nAFunction := a\n",
		"make variable":    "GO_BUILD := go build $(FLAGS)\nFUNCTIONS := AFunction\nAFunction := a\n",
		"unbalanced quote": "GO_BUILD := go build -ldflags='-s\nFUNCTIONS := AFunction\nAFunction := a\n",
	} {
		if _, err := ParseMakefile(bad); err == nil {
			t.Errorf("%s: ParseMakefile accepted %q", name, bad)
		}
	}
}

func TestShellWords(t *testing.T) {
	for in, want := range map[string][]string{
		`a  b	c`:                  {"a", "b", "c"},
		`-ldflags='-s -w' -x`:     {"-ldflags=-s -w", "-x"},
		`"a \"b\" c" d\ e`:        {`a "b" c`, "d e"},
		`''`:                      {""},
		`-X 'main.v=1'"2"3 tail `: {"-X", "main.v=123", "tail"},
	} {
		got, err := shellWords(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("shellWords(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestCPUModel(t *testing.T) {
	const cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7R13 Processor\nflags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7R13 Processor\n"
	if got := CPUModel(cpuinfo); got != "AMD EPYC 7R13 Processor" {
		t.Errorf("CPUModel = %q", got)
	}
	if got := CPUModel("processor : 0\n"); got != "" {
		t.Errorf("CPUModel without a model name = %q", got)
	}
}

func TestParentFromStat(t *testing.T) {
	for stat, want := range map[string]int{
		"4242 (bootstrap) S 4100 4242 4100 0 -1":     4100,
		"77 (we ird) (name)) R 1 77 77 0 -1 4194560": 1,
	} {
		if got, ok := parentFromStat(stat); !ok || got != want {
			t.Errorf("parentFromStat(%q) = %d, %v; want %d", stat, got, ok, want)
		}
	}
	if _, ok := parentFromStat("garbage"); ok {
		t.Error("parentFromStat accepted garbage")
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"A=1", "B=2"}, []string{"C=3", "A=9"}, nil, []string{"B="})
	if want := []string{"A=9", "B=", "C=3"}; !slices.Equal(got, want) {
		t.Errorf("mergeEnv = %q, want %q", got, want)
	}
}

func TestTemplateEnv(t *testing.T) {
	const tpl = `Parameters:
  FeedRetentionHours: {Type: Number, Default: 24}
  Namespace: {Type: String, Default: Threadline}
  NoDefault: {Type: String}
Globals:
  Function:
    Environment:
      Variables:
        TABLE_NAME: !Ref ChatTable
        FEED_RETENTION_HOURS: !Ref FeedRetentionHours
Resources:
  ChatTable: {Type: AWS::DynamoDB::Table}
  AFunction:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables: &shared
          METRICS_NAMESPACE: !Ref Namespace
          LITERAL: "on"
          OTHER: !Ref NoDefault
  BFunction:
    Type: AWS::Serverless::Function
    Properties:
      Environment: {Variables: *shared}
`
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "template.yaml"), []byte(tpl), 0o644); err != nil {
		t.Fatal(err)
	}
	env, err := templateEnv(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"FEED_RETENTION_HOURS=24", "LITERAL=on", "METRICS_NAMESPACE=Threadline", "OTHER=coldstart-placeholder", "TABLE_NAME=coldstart-placeholder"}
	if !slices.Equal(env["AFunction"], want) || !slices.Equal(env["BFunction"], want) || len(env) != 2 {
		t.Errorf("templateEnv = %q, want %q for both functions", env, want)
	}
}

func TestParseSchedstat(t *testing.T) {
	if run, wait, ok := ParseSchedstat("225224845 1222682511 695\n"); !ok || run != 225224845 || wait != 1222682511 {
		t.Errorf("ParseSchedstat = %d, %d, %v", run, wait, ok)
	}
	if _, _, ok := ParseSchedstat("12"); ok {
		t.Error("ParseSchedstat accepted one field")
	}
	if got := LoadAverage("21.98 18.50 12.30 16/323 31443\n"); got != 21.98 {
		t.Errorf("LoadAverage = %v", got)
	}
	if !math.IsNaN(LoadAverage("")) {
		t.Error("LoadAverage of nothing must be NaN")
	}
}
