// Package coldstart measures every Lambda function's cold start (INIT) under
// the AWS Lambda Runtime Interface Emulator, against a hello-world bootstrap
// built the same way in the same run, and every bootstrap's size for
// linux/arm64.
//
// INIT is the emulator's own figure: its rapid core logs
// "INIT REPORT(durationMs: …)" from just before it execs the bootstrap to the
// bootstrap's first call for an invocation, the span Lambda reports as Init
// Duration. (The "Init Duration" on the emulator's REPORT line is not used:
// it only times handing the init to a goroutine, about 0.1 ms.)
//
// Each function is built for the local architecture with the Makefile's
// build-% rule (make build-<LogicalId> with GOARCH swapped in GO_BUILD), run
// R times with a hello-world cold start before each of its runs, round-robin
// over the functions so that drift on a shared machine hits the function and
// its baseline alike. A function's ratio is the median of its INITs over the
// median of the hello-world INITs run next to it.
//
// Each bootstrap gets its environment from template.yaml (parameter
// defaults; made-up names for tables, secrets and endpoints) plus what
// Lambda sets. AWS is not needed: the SDK is pointed at a local stub
// (AWS_ENDPOINT_URL) that serves the two secrets the identity functions read
// at init and refuses any other call, with static fake credentials and IMDS
// disabled.
package coldstart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/threadline/threadline/local/samtemplate"
)

// Goals the report is checked against.
const (
	// GoalInitRatio is the largest allowed median INIT of a function over
	// the hello-world's.
	GoalInitRatio = 1.5
	// GoalBootstrapBytes is the largest allowed linux/arm64 bootstrap:
	// 12 MiB.
	GoalBootstrapBytes = 12 << 20
)

// inittraceRuns is how many GODEBUG=inittrace=1 runs of each bootstrap are
// merged (per-package medians) into its inittrace summary.
const inittraceRuns = 3

// HelloPackage is the hello-world bootstrap's package, relative to the
// repository root (under testdata/ so ./... leaves it out).
const HelloPackage = "./local/coldstart/testdata/hello"

// Options configure Run. The zero value of every field but Root has a
// default.
type Options struct {
	Root      string        // repository root (holds the Makefile and go.mod)
	Work      string        // scratch dir for builds and logs; default <Root>/.local/bench/coldstart
	RIE       string        // emulator binary; default: go install it into <Root>/.local/bench/bin
	Repeats   int           // cold starts per function (and hello-worlds); default 7
	Functions []string      // logical ids or folders to measure; default every function in the Makefile
	Env       []string      // KEY=VALUE added to (or replacing) every bootstrap's environment
	Timeout   time.Duration // limit on one cold start; default 30s
	Inittrace bool          // also run each bootstrap with GODEBUG=inittrace=1 (3 times, untimed) and summarize its package inits
	Log       io.Writer     // progress; default io.Discard
}

// Report is the benchmark's result; its JSON is what `make bench` merges.
type Report struct {
	InitRatioVsHelloWorldMax float64 `json:"init_ratio_vs_hello_world_max"`
	InitRatioMaxFunction     string  `json:"init_ratio_max_function"`
	BootstrapBytesMax        int64   `json:"bootstrap_bytes_max"`
	BootstrapBytesMaxFunc    string  `json:"bootstrap_bytes_max_function"`
	Goals                    Goals   `json:"goals"`
	GoalsMet                 GoalsOK `json:"goals_met"`
	// CPURatioMax is the largest Function.CPURatio, reported beside the
	// goal's wall-clock ratio.
	CPURatioMax float64 `json:"init_cpu_ratio_vs_hello_world_max"`

	HelloWorld Bootstrap  `json:"hello_world"`
	Functions  []Function `json:"functions"`

	Method  Method  `json:"method"`
	Machine Machine `json:"machine"`
	Date    string  `json:"date"`
	Seconds float64 `json:"seconds"`
}

// Goals are the thresholds checked.
type Goals struct {
	InitRatioVsHelloWorldMax float64 `json:"init_ratio_vs_hello_world_max"`
	BootstrapBytesMax        int64   `json:"bootstrap_bytes_max"`
}

// GoalsOK says which goals hold.
type GoalsOK struct {
	InitRatioVsHelloWorldMax bool `json:"init_ratio_vs_hello_world_max"`
	BootstrapBytesMax        bool `json:"bootstrap_bytes_max"`
}

// Bootstrap is the measurements of one binary.
type Bootstrap struct {
	InitMsMedian       float64   `json:"init_ms_median"`
	InitMsP90          float64   `json:"init_ms_p90"`
	InitMsMin          float64   `json:"init_ms_min"`
	InitMsSamples      []float64 `json:"init_ms_samples"`
	ColdInvokeMsMedian float64   `json:"cold_invoke_ms_median"`
	// CPU time of the bootstrap's threads from exec to the end of the first
	// invocation, and their time waiting for a CPU (see run.CPUMs).
	InitCPUMsMedian      float64           `json:"init_cpu_ms_median"`
	RunqueueWaitMsMedian float64           `json:"runqueue_wait_ms_median"`
	BootstrapBytesArm64  int64             `json:"bootstrap_bytes_arm64"`
	BootstrapBytesLocal  int64             `json:"bootstrap_bytes_local"`
	AWSCallsOnColdStart  []string          `json:"aws_calls_on_cold_invoke"`
	Inittrace            *InittraceSummary `json:"inittrace,omitempty"`
}

// Function is one function's measurements and its ratio to the hello-world.
type Function struct {
	LogicalID string `json:"logical_id"`
	Dir       string `json:"dir"`
	Bootstrap
	// HelloInitMsMedian is the median of the hello-world runs interleaved
	// with this function's; Ratio is InitMsMedian over it.
	HelloInitMsMedian float64 `json:"hello_init_ms_median"`
	Ratio             float64 `json:"ratio"`
	// RatioVsAllHello is InitMsMedian over the median of every hello-world
	// run in the benchmark.
	RatioVsAllHello float64 `json:"ratio_vs_all_hello"`
	// CPURatio is InitCPUMsMedian over the interleaved hello-worlds' CPU
	// median: the same comparison in CPU time, which other load on the
	// machine disturbs far less than wall time.
	HelloInitCPUMsMedian float64 `json:"hello_init_cpu_ms_median"`
	CPURatio             float64 `json:"cpu_ratio"`
}

// Method records how the figures were taken.
type Method struct {
	Tool          string   `json:"tool"`
	Emulator      string   `json:"emulator"`
	InitFigure    string   `json:"init_figure"`
	Schedule      string   `json:"schedule"`
	Ratio         string   `json:"ratio"`
	Percentile    string   `json:"percentile"`
	Repeats       int      `json:"repeats"`
	GoBuild       string   `json:"go_build"`
	LocalArch     string   `json:"local_arch"`
	Environment   []string `json:"environment"`
	AWSEndpoint   string   `json:"aws_endpoint"`
	InvokePayload string   `json:"invoke_payload"`
	// Retries counts cold starts that failed once and were run again.
	Retries int `json:"retries"`
}

// Machine is where the benchmark ran.
type Machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel,omitempty"`
	// 1-minute load averages when the measurement started and ended: other
	// programs' load on the machine, which stretches INIT wall times.
	LoadAverageStart float64 `json:"load_average_start"`
	LoadAverageEnd   float64 `json:"load_average_end"`
}

// Secret ARNs and values the stub serves; the identity functions' init reads
// them the way it reads Secrets Manager in AWS.
const (
	accessKeyARN  = "arn:aws:secretsmanager:us-east-1:123456789012:secret:threadline-coldstart-access-key"
	signingARN    = "arn:aws:secretsmanager:us-east-1:123456789012:secret:threadline-coldstart-signing"
	accessKeyJSON = `{"accesskey":"Y29sZHN0YXJ0LWJlbmNobWFyay1hY2Nlc3Mta2V5LTMyYg=="}`
	signingSecret = "coldstart-benchmark-signing-secret-0123456789"
)

// knownEnv are values for the variables template.yaml fills from resources
// (tables, secrets, endpoints), which a local run has to make up; they also
// replace the template's parameter defaults for the same names.
func knownEnv(awsEndpoint string) []string {
	return []string{
		"TABLE_NAME=threadline-chat",
		"CONNECTIONS_TABLE=threadline-connections",
		"FEED_TABLE=threadline-feed",
		"FEED_RETENTION_HOURS=24",
		"WS_ENDPOINT=" + awsEndpoint + "/prod",
		"METRICS_NAMESPACE=Threadline",
		"RESOURCE_ID=00000000-0000-4000-8000-00000000c01d",
		"ACCESS_KEY_SECRET_ARN=" + accessKeyARN,
		"SIGNING_SECRET_ARN=" + signingARN,
		"EVENT_BUS_NAME=threadline-events",
		"EVENT_SOURCE=threadline.chat",
		"USER_LEVEL_EVENTS=true",
		"DEFAULT_FUNCTION=threadline-ws-default",
	}
}

// lambdaEnv is what Lambda itself sets that a Go bootstrap can notice, plus
// what keeps the SDK off the network and off this machine's AWS settings.
func lambdaEnv(home, awsEndpoint, name string) []string {
	return []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + home,
		"TZ=:UTC",
		"LAMBDA_TASK_ROOT=/var/task",
		"AWS_REGION=us-east-1",
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIACOLDSTARTEXAMPLE",
		"AWS_SECRET_ACCESS_KEY=coldstart/benchmark/fake/secret/key/000",
		"AWS_SESSION_TOKEN=coldstart-benchmark-session-token",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(home, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "no-aws-credentials"),
		"AWS_ENDPOINT_URL=" + awsEndpoint,
		"AWS_LAMBDA_FUNCTION_NAME=" + name,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=10",
		"AWS_LAMBDA_LOG_FORMAT=JSON",
	}
}

// templateEnv is each function's environment from template.yaml (Globals
// merged with its own): literal values and parameter defaults as they are,
// anything else (a !Ref to a resource, a !Sub…) as a placeholder that
// knownEnv or Options.Env is expected to replace. The hello-world gets every
// function's variables.
func templateEnv(root string) (map[string][]string, error) {
	tpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, f := range tpl.Functions() {
		keys := slices.Sorted(maps.Keys(f.Env))
		for _, k := range keys {
			v := f.Env[k]
			if p := samtemplate.Ref(v); p != "" && tpl.ParameterDefault(p) != nil {
				v = tpl.ParameterDefault(p)
			}
			switch v.(type) {
			case string, int, bool, float64:
			default:
				v = "coldstart-placeholder"
			}
			out[f.ID] = append(out[f.ID], fmt.Sprintf("%s=%v", k, v))
		}
	}
	return out, nil
}

// mergeEnv appends over to base, a later KEY replacing an earlier one.
func mergeEnv(base []string, over ...[]string) []string {
	idx := map[string]int{}
	var out []string
	for _, list := range append([][]string{base}, over...) {
		for _, kv := range list {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := idx[k]; ok {
				out[i] = kv
				continue
			}
			idx[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

type target struct {
	id, dir string
	local   string // bootstrap for this machine
	runs    []run
	hello   []run // the hello-world runs interleaved with this target's
	trace   []PackageInit
	calls   []string
	bytesL  int64
	bytesA  int64
}

// Run builds, measures and reports. It needs Linux (the emulator and the
// bootstraps are Linux programs), Go and make.
func Run(ctx context.Context, opt Options) (*Report, error) {
	start := time.Now()
	if runtime.GOOS != "linux" {
		return nil, errors.New("coldstart: the emulator runs Linux bootstraps; run this on Linux")
	}
	if opt.Root == "" {
		return nil, errors.New("coldstart: Options.Root is required")
	}
	if opt.Work == "" {
		opt.Work = filepath.Join(opt.Root, ".local", "bench", "coldstart")
	}
	if opt.Repeats <= 0 {
		opt.Repeats = 7
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 30 * time.Second
	}
	logw := opt.Log
	if logw == nil {
		logw = io.Discard
	}
	logf := func(format string, a ...any) { fmt.Fprintf(logw, format+"\n", a...) }

	mfText, err := os.ReadFile(filepath.Join(opt.Root, "Makefile"))
	if err != nil {
		return nil, err
	}
	mf, err := ParseMakefile(string(mfText))
	if err != nil {
		return nil, err
	}
	ids, err := selectFunctions(mf, opt.Functions)
	if err != nil {
		return nil, err
	}
	tplEnv, err := templateEnv(opt.Root)
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(opt.Work); err != nil {
		return nil, err
	}
	home := filepath.Join(opt.Work, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	if opt.RIE == "" {
		logf("installing %s@%s", riePackage, RIEVersion)
		if opt.RIE, err = InstallRIE(ctx, filepath.Join(opt.Root, ".local", "bench", "bin")); err != nil {
			return nil, err
		}
	}
	localArch, goVersion, err := goEnv(ctx)
	if err != nil {
		return nil, err
	}

	// Builds.
	hello := &target{id: "HelloWorld", dir: HelloPackage}
	targets := []*target{}
	for _, id := range ids {
		targets = append(targets, &target{id: id, dir: mf.Dirs[id]})
	}
	goBuildLine := rawGoBuild(string(mfText))
	localGoBuild := goarchRe.ReplaceAllString(goBuildLine, "GOARCH="+localArch)
	archs := []string{localArch}
	if localArch != "arm64" {
		archs = append(archs, "arm64")
	}
	for _, t := range append([]*target{hello}, targets...) {
		for _, arch := range archs {
			out := filepath.Join(opt.Work, "build", arch, t.id)
			logf("build %s linux/%s", t.id, arch)
			if t == hello {
				err = buildWithFlags(ctx, opt.Root, mf, arch, HelloPackage, out)
			} else {
				goBuild := "" // arm64: the Makefile exactly as sam build runs it
				if arch != "arm64" {
					goBuild = localGoBuild
				}
				err = makeBuild(ctx, opt.Root, t.id, goBuild, out)
			}
			if err != nil {
				return nil, err
			}
			fi, err := os.Stat(filepath.Join(out, "bootstrap"))
			if err != nil {
				return nil, err
			}
			if arch == "arm64" {
				t.bytesA = fi.Size()
			}
			if arch == localArch {
				t.bytesL = fi.Size()
				t.local = filepath.Join(out, "bootstrap")
			}
		}
	}

	stub, err := startAWSStub(map[string]string{accessKeyARN: accessKeyJSON, signingARN: signingSecret})
	if err != nil {
		return nil, err
	}
	defer stub.Close()
	emu := &emulator{bin: opt.RIE, work: opt.Work, stub: stub, timeout: opt.Timeout}
	var allTemplateEnv []string
	for _, id := range slices.Sorted(maps.Keys(tplEnv)) {
		allTemplateEnv = mergeEnv(allTemplateEnv, tplEnv[id])
	}
	envFor := func(t *target, extra ...string) []string {
		name, fnEnv := t.dir, tplEnv[t.id]
		if t == hello {
			name, fnEnv = "hello-world", allTemplateEnv
		}
		return mergeEnv(lambdaEnv(home, stub.URL(), name), fnEnv, knownEnv(stub.URL()), opt.Env, extra)
	}
	retries := 0
	// once is one cold start. A failed one is tried once more, as a port
	// taken by another program between choosing and binding it looks the
	// same as a failed init; a bootstrap that fails twice stops the run.
	once := func(t *target, extra ...string) (run, error) {
		r, err := emu.coldStart(ctx, t.local, envFor(t, extra...))
		if err != nil && ctx.Err() == nil {
			logf("retrying %s after: %v", t.id, err)
			retries++
			r, err = emu.coldStart(ctx, t.local, envFor(t, extra...))
		}
		if err != nil {
			return r, fmt.Errorf("%s: %w\n--- emulator log ---\n%s", t.id, err, tail(r.Log, 4000))
		}
		return r, nil
	}

	mach := machine(localArch, goVersion)

	// Warm-up (page cache, and a check that INIT succeeds), then inittrace.
	for _, t := range append([]*target{hello}, targets...) {
		r, err := once(t)
		if err != nil {
			return nil, err
		}
		t.calls = r.Calls
		logf("warm-up %-26s INIT %.2f ms, AWS calls %v", t.id, r.InitMs, r.Calls)
		if opt.Inittrace {
			var traces [][]PackageInit
			for range inittraceRuns {
				r, err := once(t, "GODEBUG=inittrace=1")
				if err != nil {
					return nil, err
				}
				traces = append(traces, ParseInittrace(r.InitLog))
			}
			t.trace = MedianInittrace(traces)
		}
	}

	// Measurement: round-robin, a hello-world before every function run.
	for round := 1; round <= opt.Repeats; round++ {
		for _, t := range targets {
			h, err := once(hello)
			if err != nil {
				return nil, err
			}
			f, err := once(t)
			if err != nil {
				return nil, err
			}
			hello.runs = append(hello.runs, h)
			t.hello = append(t.hello, h)
			t.runs = append(t.runs, f)
			logf("round %d/%d %-26s INIT %7.2f ms  hello %6.2f ms", round, opt.Repeats, t.id, f.InitMs, h.InitMs)
		}
	}

	rep := &Report{
		Goals: Goals{InitRatioVsHelloWorldMax: GoalInitRatio, BootstrapBytesMax: GoalBootstrapBytes},
		Method: Method{
			Tool:       "go run ./local/cmd/threadline-coldstart (package local/coldstart)",
			Emulator:   riePackage + "@" + RIEVersion,
			InitFigure: "the emulator's INIT REPORT(durationMs) log line: from just before it execs the bootstrap to the bootstrap's first GET /runtime/invocation/next, as Lambda's Init Duration",
			Schedule: fmt.Sprintf("one untimed warm-up per bootstrap; then %d rounds, each running every function once, "+
				"a hello-world cold start immediately before each function run; one fresh emulator process per cold start, sequentially", opt.Repeats),
			Ratio:         "init_ms_median / median of the hello-world runs interleaved with that function",
			Percentile:    "nearest rank (p90 of 7 samples is the largest)",
			Repeats:       opt.Repeats,
			GoBuild:       localGoBuild + "  (Makefile GO_BUILD with GOARCH=" + localArch + ", via make build-<LogicalId>; arm64 sizes from the unchanged rule)",
			LocalArch:     "linux/" + localArch,
			Environment:   envFor(hello), // every function's variables; each function got its own subset
			AWSEndpoint:   "local stub: GetSecretValue for the two identity secrets, every other operation refused and recorded",
			InvokePayload: "{}",
		},
		Machine: mach,
		Date:    start.UTC().Format(time.RFC3339),
	}
	rep.HelloWorld = summarize(hello, hello.runs)
	allHello := rep.HelloWorld.InitMsMedian
	rep.GoalsMet.InitRatioVsHelloWorldMax = true
	rep.GoalsMet.BootstrapBytesMax = true
	for _, t := range targets {
		f := Function{LogicalID: t.id, Dir: t.dir, Bootstrap: summarize(t, t.runs)}
		f.HelloInitMsMedian = round3(Median(initsOf(t.hello)))
		f.Ratio = round3(f.InitMsMedian / f.HelloInitMsMedian)
		f.RatioVsAllHello = round3(f.InitMsMedian / allHello)
		helloCPU := make([]float64, len(t.hello))
		for i, h := range t.hello {
			helloCPU[i] = h.CPUMs
		}
		f.HelloInitCPUMsMedian = round3(Median(helloCPU))
		if f.HelloInitCPUMsMedian > 0 {
			f.CPURatio = round3(f.InitCPUMsMedian / f.HelloInitCPUMsMedian)
		}
		rep.CPURatioMax = max(rep.CPURatioMax, f.CPURatio)
		if f.Ratio > rep.InitRatioVsHelloWorldMax {
			rep.InitRatioVsHelloWorldMax, rep.InitRatioMaxFunction = f.Ratio, t.id
		}
		if f.BootstrapBytesArm64 > rep.BootstrapBytesMax {
			rep.BootstrapBytesMax, rep.BootstrapBytesMaxFunc = f.BootstrapBytesArm64, t.id
		}
		rep.Functions = append(rep.Functions, f)
	}
	rep.GoalsMet.InitRatioVsHelloWorldMax = rep.InitRatioVsHelloWorldMax <= GoalInitRatio
	rep.GoalsMet.BootstrapBytesMax = rep.BootstrapBytesMax <= GoalBootstrapBytes
	rep.Method.Retries = retries
	rep.Machine.LoadAverageEnd = loadAverage()
	rep.Seconds = math.Round(time.Since(start).Seconds())
	return rep, nil
}

func initsOf(runs []run) []float64 {
	xs := make([]float64, len(runs))
	for i, r := range runs {
		xs[i] = r.InitMs
	}
	return xs
}

func summarize(t *target, runs []run) Bootstrap {
	inits := initsOf(runs)
	cold := make([]float64, len(runs))
	cpu := make([]float64, len(runs))
	wait := make([]float64, len(runs))
	for i, r := range runs {
		cold[i], cpu[i], wait[i] = r.ColdInvokeMs, r.CPUMs, r.RunqueueWaitMs
	}
	b := Bootstrap{
		InitMsMedian:         round3(Median(inits)),
		InitMsP90:            round3(Percentile(inits, 90)),
		InitMsMin:            round3(slices.Min(inits)),
		InitMsSamples:        inits,
		ColdInvokeMsMedian:   round3(Median(cold)),
		InitCPUMsMedian:      round3(Median(cpu)),
		RunqueueWaitMsMedian: round3(Median(wait)),
		BootstrapBytesArm64:  t.bytesA,
		BootstrapBytesLocal:  t.bytesL,
		AWSCallsOnColdStart:  t.calls,
	}
	if b.AWSCallsOnColdStart == nil {
		b.AWSCallsOnColdStart = []string{}
	}
	if t.trace != nil {
		s := Summarize(t.trace, 8)
		b.Inittrace = &s
	}
	return b
}

// selectFunctions returns the logical ids to measure, in Makefile order;
// names may be logical ids or functions/ folders.
func selectFunctions(mf Makefile, names []string) ([]string, error) {
	if len(names) == 0 {
		return mf.Functions, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		found := false
		for _, id := range mf.Functions {
			if n == id || n == mf.Dirs[id] {
				want[id], found = true, true
			}
		}
		if !found {
			return nil, fmt.Errorf("coldstart: %q is neither a logical id nor a folder in the Makefile", n)
		}
	}
	var ids []string
	for _, id := range mf.Functions {
		if want[id] {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

var goarchRe = regexp.MustCompile(`GOARCH=\S+`)

// rawGoBuild is GO_BUILD's text as written, to hand back to make.
func rawGoBuild(makefile string) string {
	for line := range strings.SplitSeq(makefile, "\n") {
		if m := makeAssign.FindStringSubmatch(line); m != nil && m[1] == "GO_BUILD" {
			return m[2]
		}
	}
	return ""
}

// makeBuild runs the Makefile's own rule, as sam build does; a non-empty
// goBuild is given on the command line, which overrides the Makefile's
// GO_BUILD.
func makeBuild(ctx context.Context, root, id, goBuild, outDir string) error {
	args := []string{"--no-print-directory", "build-" + id, "ARTIFACTS_DIR=" + outDir}
	if goBuild != "" {
		args = append(args, "GO_BUILD="+goBuild)
	}
	cmd := exec.CommandContext(ctx, "make", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("make build-%s: %v\n%s", id, err, out)
	}
	return nil
}

// buildWithFlags builds pkg with GO_BUILD's environment and arguments, with
// GOARCH=arch.
func buildWithFlags(ctx context.Context, root string, mf Makefile, arch, pkg, outDir string) error {
	env := os.Environ()
	for _, kv := range mf.Env {
		if strings.HasPrefix(kv, "GOARCH=") {
			kv = "GOARCH=" + arch
		}
		env = append(env, kv)
	}
	args := append(slices.Clone(mf.Args[1:]), "-o", filepath.Join(outDir, "bootstrap"), pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func goEnv(ctx context.Context) (arch, version string, err error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOARCH", "GOVERSION").Output()
	if err != nil {
		return "", "", fmt.Errorf("go env: %w", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return "", "", fmt.Errorf("go env GOARCH GOVERSION: %q", out)
	}
	return f[0], f[1], nil
}

func machine(arch, goVersion string) Machine {
	m := Machine{Cores: runtime.NumCPU(), GOOS: "linux", GOARCH: arch, GoVersion: goVersion}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPU = CPUModel(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.LoadAverageStart = loadAverage()
	return m
}

// loadAverage is the 1-minute load average, 0 when unknown.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	if v := LoadAverage(string(b)); !math.IsNaN(v) {
		return v
	}
	return 0
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
