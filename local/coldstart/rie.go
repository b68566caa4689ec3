package coldstart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RIEModule and RIEVersion are the AWS Lambda Runtime Interface Emulator the
// benchmark runs bootstraps under. The proxy has no version list for the
// module, so the version is pinned exactly.
const (
	RIEModule  = "github.com/aws/aws-lambda-runtime-interface-emulator"
	RIEVersion = "v0.0.0-20261030222936-bef5c4ba774d"
	riePackage = RIEModule + "/cmd/aws-lambda-rie"
)

// InstallRIE builds the emulator into dir (go install with GOBIN=dir) unless
// dir already holds it, and returns its path.
func InstallRIE(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "aws-lambda-rie")
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "install", "-trimpath", riePackage+"@"+RIEVersion)
	cmd.Dir = dir // outside any module: go install pkg@version ignores the current one anyway
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %v\n%s", riePackage, RIEVersion, err, out)
	}
	return bin, nil
}

// awsStub stands in for every AWS endpoint a bootstrap may call: the SDK is
// pointed at it with AWS_ENDPOINT_URL. It answers Secrets Manager's
// GetSecretValue (the identity functions read two secrets at init) and
// refuses everything else, recording each call so the report shows which
// AWS operations a cold start makes.
type awsStub struct {
	ln      net.Listener
	srv     *http.Server
	secrets map[string]string

	mu    sync.Mutex
	calls []string
}

func startAWSStub(secrets map[string]string) (*awsStub, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &awsStub{ln: ln, secrets: secrets}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *awsStub) URL() string { return "http://" + s.ln.Addr().String() }

func (s *awsStub) Close() error { return s.srv.Close() }

// take returns the calls since the last take and forgets them.
func (s *awsStub) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

func (s *awsStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := r.Header.Get("X-Amz-Target")
	if op == "" {
		op = r.Method + " " + r.URL.Path
	}
	s.mu.Lock()
	s.calls = append(s.calls, op)
	s.mu.Unlock()

	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if op == "secretsmanager.GetSecretValue" {
		var in struct{ SecretId string }
		_ = json.Unmarshal(body, &in)
		if v, ok := s.secrets[in.SecretId]; ok {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"ARN": in.SecretId, "Name": in.SecretId, "SecretString": v,
				"VersionId": "coldstart", "VersionStages": []string{"AWSCURRENT"}, "CreatedDate": 1.7e9,
			})
			return
		}
		awsError(w, "ResourceNotFoundException", "no such secret in the cold-start stub: "+in.SecretId)
		return
	}
	awsError(w, "UnknownOperationException", "the cold-start stub answers only secretsmanager.GetSecretValue")
}

func awsError(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}

// run is one cold start: a fresh emulator process with one bootstrap, one
// invocation, and what the emulator and the stub saw.
type run struct {
	InitMs       float64  // the emulator's INIT REPORT
	ColdInvokeMs float64  // client-side: POST of the first invocation to its response (INIT + handler + emulator)
	Calls        []string // AWS operations the stub received during the cold invocation
	// CPUMs and RunqueueWaitMs are the bootstrap's on-CPU time and time
	// spent runnable but waiting for a CPU, summed over its threads, from
	// exec to the end of the first invocation (INIT and a trivial handler
	// call). CPU time barely moves when other programs load the machine; a
	// large wait says the INIT figure was stretched by them.
	CPUMs          float64
	RunqueueWaitMs float64
	Log            []byte // the emulator's stdout and stderr, which carry the bootstrap's too
	// InitLog is the part of Log written after the emulator started
	// listening: the bootstrap's output without the emulator's own start
	// (which, being a Go program given the same GODEBUG, would otherwise
	// add its own inittrace lines).
	InitLog []byte
}

type emulator struct {
	bin     string
	work    string
	stub    *awsStub
	timeout time.Duration
}

// coldStart starts the emulator on bootstrap with env (and nothing else:
// the emulator hands its own environment to the runtime), invokes it once
// and stops both processes.
func (e *emulator) coldStart(ctx context.Context, bootstrap string, env []string) (run, error) {
	var r run
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()

	addrs, err := freeAddrs(2)
	if err != nil {
		return r, err
	}
	invokeAddr, apiAddr := addrs[0], addrs[1]
	logf, err := os.CreateTemp(e.work, "rie-*.log")
	if err != nil {
		return r, err
	}
	defer os.Remove(logf.Name())
	defer logf.Close()

	cmd := exec.Command(e.bin, "--log-level", "info",
		"--runtime-interface-emulator-address", invokeAddr,
		"--runtime-api-address", apiAddr,
		bootstrap)
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf // files, so both processes write straight to it
	if err := cmd.Start(); err != nil {
		return r, fmt.Errorf("start emulator: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer stop(cmd.Process.Pid, exited)

	readLog := func() []byte { b, _ := os.ReadFile(logf.Name()); return b }
	if err := waitListening(ctx, invokeAddr, exited); err != nil {
		return run{Log: readLog()}, err
	}

	var offset int64
	if fi, err := logf.Stat(); err == nil {
		offset = fi.Size()
	}
	e.stub.take()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+invokeAddr+"/2015-03-31/functions/function/invocations", strings.NewReader("{}"))
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return run{Log: readLog()}, fmt.Errorf("invoke: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	r.ColdInvokeMs = float64(time.Since(t0).Microseconds()) / 1000
	r.Calls = e.stub.take()
	for _, child := range childPIDs(cmd.Process.Pid) {
		run, wait := processSchedstat(child)
		r.CPUMs += float64(run) / 1e6
		r.RunqueueWaitMs += float64(wait) / 1e6
	}

	// The emulator logs INIT REPORT before it passes the invocation on, so
	// it is in the file by now; poll briefly in case of a slow write.
	deadline := time.Now().Add(2 * time.Second)
	for {
		r.Log = readLog()
		r.InitMs, err = ParseInitReport(r.Log)
		if !errors.Is(err, ErrNoInitReport) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if int64(len(r.Log)) >= offset {
		r.InitLog = r.Log[offset:]
	}
	if err != nil {
		return r, fmt.Errorf("%w (invocation answered %s)", err, resp.Status)
	}
	return r, nil
}

// freeAddrs finds n distinct free loopback ports, holding each open until
// all are found so that none is handed out twice.
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

func waitListening(ctx context.Context, addr string, exited <-chan struct{}) error {
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("the emulator exited before listening")
		case <-ctx.Done():
			return fmt.Errorf("the emulator did not listen on %s: %w", addr, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// stop kills the emulator and the bootstrap it started. The emulator puts
// the runtime in a process group of its own, so the bootstrap is found as
// the emulator's child in /proc and killed by its pid first.
func stop(pid int, exited <-chan struct{}) {
	for _, child := range childPIDs(pid) {
		_ = syscall.Kill(child, syscall.SIGKILL)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
	}
}

// processSchedstat sums /proc/<pid>/task/*/schedstat: nanoseconds on a CPU
// and waiting on a run queue, over every thread of the process.
func processSchedstat(pid int) (run, wait int64) {
	tasks, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", t.Name(), "schedstat"))
		if err != nil {
			continue
		}
		if r, w, ok := ParseSchedstat(string(b)); ok {
			run += r
			wait += w
		}
	}
	return run, wait
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if ppid, ok := parentFromStat(string(stat)); ok && ppid == pid {
			kids = append(kids, p)
		}
	}
	return kids
}

// parentFromStat reads the ppid field of /proc/<pid>/stat: "pid (comm) state
// ppid ...", where comm may itself hold spaces and parentheses.
func parentFromStat(stat string) (int, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}
