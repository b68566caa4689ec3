// Package ddblocal starts and stops AWS's DynamoDB Local (the Java jar) for
// the local development stack and for Go tests.
//
// The jar cannot bind to a single address: Jetty always listens on every
// interface. Our rule is that local servers listen on loopback only, so on
// Linux java runs in its own network namespace and this package serves it on
// a loopback address through a small TCP proxy (see ddblocal_linux.go). Where
// that is impossible java runs directly and a warning is logged.
package ddblocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

const (
	jarName = "DynamoDBLocal.jar"
	libName = "DynamoDBLocal_lib"

	defaultAddr   = "127.0.0.1:0"
	defaultHeapMB = 384

	// startTimeout bounds how long Start waits for the first successful
	// ListTables; a healthy start takes about 2 s.
	startTimeout = 60 * time.Second
	// stopGrace is how long Close lets java shut down after SIGTERM.
	stopGrace = 5 * time.Second
	// tailLines is how much of java's output goes into startup errors.
	tailLines = 20

	// nsJavaPort is java's fixed port inside its own network namespace
	// (Linux); the namespace is private, so it never clashes with the host.
	nsJavaPort = 8000

	minJavaMajor    = 17
	javaInstallHint = "Install it with `sudo apt-get install -y openjdk-17-jre-headless` " +
		"(Debian/Ubuntu) or `brew install openjdk@17` (macOS, then follow brew's " +
		"instructions to put it on PATH), and make sure `java -version` reports 17 or newer."
)

// Options configures Start.
type Options struct {
	Dir    string    // folder holding DynamoDBLocal.jar and DynamoDBLocal_lib/ (required)
	DBPath string    // folder for -dbPath (created if missing); "" runs -inMemory
	Addr   string    // host address to serve on; default "127.0.0.1:0" (a free port)
	HeapMB int       // default 384
	Log    io.Writer // java's stdout/stderr and our warnings; nil discards
}

// Server is a running DynamoDB Local.
type Server struct {
	Endpoint string // "http://127.0.0.1:<port>", what SDK clients use as BaseEndpoint
	Isolated bool   // true when java runs in its own network namespace

	proc    *javaProc
	proxy   *proxy    // nil when java listens on the host directly
	netns   io.Closer // java's network namespace handle, when isolated
	scratch string    // temp folder we made (java.io.tmpdir, in-memory cwd)
	out     *outputLog

	closeOnce sync.Once
	closeErr  error
}

// launchSpec is everything the platform-specific launch code needs to build
// and run the java command.
type launchSpec struct {
	addr    *net.TCPAddr // validated loopback address to serve on
	dir     string       // absolute path of the DynamoDB Local folder
	dbPath  string       // absolute -dbPath, or "" for -inMemory
	workDir string       // java's cwd, so metadata files stay out of the repo
	tmpDir  string       // java.io.tmpdir, where the sqlite native lib is copied
	heapMB  int
}

// command builds the java command for DynamoDB Local listening on port.
func (l *launchSpec) command(port int, out io.Writer) *exec.Cmd {
	args := []string{
		"-Xmx" + strconv.Itoa(l.heapMB) + "m",
		"-XX:+UseSerialGC", // fewer threads and less memory than G1 for a dev server
		"-Djava.io.tmpdir=" + l.tmpDir,
		"-jar", filepath.Join(l.dir, jarName),
		"-port", strconv.Itoa(port),
		"-sharedDb", // one database regardless of access key and region
		"-disableTelemetry",
	}
	if l.dbPath != "" {
		args = append(args, "-dbPath", l.dbPath)
	} else {
		args = append(args, "-inMemory")
	}
	cmd := exec.Command("java", args...)
	cmd.Dir = l.workDir
	// Policy: telemetry off through both the flag and the environment, so
	// neither a jar upgrade nor a changed default can turn it back on.
	cmd.Env = append(os.Environ(), "DDB_LOCAL_TELEMETRY=0")
	cmd.Stdout = out
	cmd.Stderr = out
	return cmd
}

// Start launches DynamoDB Local and returns once a ListTables call succeeds.
// It gives up after 60 s or when ctx ends, killing java and returning an
// error that includes the last lines java printed. ctx only bounds startup;
// java runs until Close.
func Start(ctx context.Context, o Options) (*Server, error) {
	spec, err := prepare(o)
	if err != nil {
		return nil, err
	}

	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	s := &Server{out: newOutputLog(logw, tailLines)}

	s.scratch, err = os.MkdirTemp("", "ddblocal-")
	if err != nil {
		return nil, fmt.Errorf("ddblocal: create scratch folder: %w", err)
	}
	spec.tmpDir = filepath.Join(s.scratch, "tmp")
	spec.workDir = spec.dbPath
	if spec.workDir == "" {
		spec.workDir = filepath.Join(s.scratch, "work")
	}
	for _, d := range []string{spec.tmpDir, spec.workDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			s.shutdown(0)
			return nil, fmt.Errorf("ddblocal: create folder for java: %w", err)
		}
	}

	if err := s.launch(spec); err != nil {
		s.shutdown(0)
		return nil, fmt.Errorf("ddblocal: start DynamoDB Local: %w", err)
	}
	if err := s.waitReady(ctx); err != nil {
		s.shutdown(0)
		return nil, err
	}
	if s.proxy != nil {
		s.proxy.startupDone()
	}
	return s, nil
}

// prepare validates Options and checks the install before anything is
// started, so the common mistakes fail fast with an actionable message.
func prepare(o Options) (*launchSpec, error) {
	if o.Dir == "" {
		return nil, errors.New("ddblocal: Options.Dir is required (use DefaultDir to find .local/dynamodb)")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("ddblocal: resolve Options.Dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, jarName)); err != nil {
		return nil, fmt.Errorf("DynamoDB Local is not installed in %s (no %s); run \"make deps\" to install it", dir, jarName)
	}
	if fi, err := os.Stat(filepath.Join(dir, libName)); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("DynamoDB Local in %s is incomplete (no %s/); run \"make deps\" to reinstall it", dir, libName)
	}

	addrStr := o.Addr
	if addrStr == "" {
		addrStr = defaultAddr
	}
	addr, err := loopbackAddr(addrStr)
	if err != nil {
		return nil, err
	}

	heap := o.HeapMB
	switch {
	case heap == 0:
		heap = defaultHeapMB
	case heap < 0:
		return nil, fmt.Errorf("ddblocal: Options.HeapMB must be positive, got %d", heap)
	}

	if p := JavaProblem(); p != "" {
		return nil, errors.New(p)
	}

	var dbPath string
	if o.DBPath != "" {
		if dbPath, err = filepath.Abs(o.DBPath); err != nil {
			return nil, fmt.Errorf("ddblocal: resolve Options.DBPath: %w", err)
		}
		if err := os.MkdirAll(dbPath, 0o755); err != nil {
			return nil, fmt.Errorf("ddblocal: create Options.DBPath: %w", err)
		}
	}
	return &launchSpec{addr: addr, dir: dir, dbPath: dbPath, heapMB: heap}, nil
}

// loopbackAddr resolves addr and refuses anything that is not loopback,
// because the local stack must never be reachable from the network.
func loopbackAddr(addr string) (*net.TCPAddr, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ddblocal: bad Options.Addr %q: %w", addr, err)
	}
	if ta.IP == nil || !ta.IP.IsLoopback() {
		return nil, fmt.Errorf("ddblocal: Options.Addr %q is not a loopback address; local servers must listen on loopback only (e.g. 127.0.0.1:0)", addr)
	}
	return ta, nil
}

// launchDirect runs java in the host network namespace on the requested
// port. Jetty then listens on every interface, so callers log a warning.
func (s *Server) launchDirect(spec *launchSpec) error {
	port := spec.addr.Port
	if port == 0 {
		// Borrow a free port from the kernel; the race until java binds it
		// is acceptable for a development server.
		ln, err := net.ListenTCP("tcp", spec.addr)
		if err != nil {
			return fmt.Errorf("find a free port on %s: %w", spec.addr, err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		spec.addr = &net.TCPAddr{IP: spec.addr.IP, Port: port, Zone: spec.addr.Zone}
	}
	p, err := startJava(spec.command(port, s.out), directProcAttr())
	if err != nil {
		return fmt.Errorf("run java: %w", err)
	}
	s.proc = p
	s.Isolated = false
	s.Endpoint = "http://" + net.JoinHostPort(spec.addr.IP.String(), strconv.Itoa(port))
	return nil
}

// waitReady polls ListTables through the endpoint until it succeeds, java
// exits, 60 s pass or ctx ends.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	client := probeClient(s.Endpoint)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		_, err := client.ListTables(attempt, &dynamodb.ListTablesInput{Limit: aws.Int32(1)})
		cancelAttempt()
		if err == nil {
			return nil
		}
		lastErr = err

		select {
		case <-s.proc.exited:
			return fmt.Errorf("ddblocal: java exited before DynamoDB Local became ready (%v); last output from java:\n%s",
				s.proc.waitErr, s.out.tail())
		case <-ctx.Done():
			return fmt.Errorf("ddblocal: DynamoDB Local at %s was not ready: %w (last probe error: %v); last output from java:\n%s",
				s.Endpoint, context.Cause(ctx), lastErr, s.out.tail())
		case <-tick.C:
		}
	}
}

// probeClient is a hermetic SDK client for the readiness probe: fixed
// credentials and region, no shared-config lookups, no SDK retries (we poll
// ourselves) and no keep-alive so no idle connection outlives the probe.
func probeClient(endpoint string) *dynamodb.Client {
	cfg := aws.Config{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("local", "local", ""),
		HTTPClient:       &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		RetryMaxAttempts: 1,
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		// DynamoDB Local omits the CRC32 header on error responses.
		o.DisableValidateResponseChecksum = true
	})
}

// Close stops java (SIGTERM, up to 5 s, then SIGKILL), stops the proxy and
// removes the scratch folders Start made. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.shutdown(stopGrace) })
	return s.closeErr
}

// shutdown tears down whatever has been set up so far; Start also uses it
// (with no grace period) to clean up after a failed start.
func (s *Server) shutdown(grace time.Duration) error {
	var errs []error
	if s.proxy != nil {
		s.proxy.close()
	}
	if s.proc != nil {
		s.proc.stop(grace)
	}
	if s.netns != nil {
		if err := s.netns.Close(); err != nil {
			errs = append(errs, fmt.Errorf("ddblocal: close network namespace handle: %w", err))
		}
	}
	if s.scratch != "" {
		if err := os.RemoveAll(s.scratch); err != nil {
			errs = append(errs, fmt.Errorf("ddblocal: remove scratch folder: %w", err))
		}
	}
	return errors.Join(errs...)
}

// javaProc is a started java process and the goroutine waiting for it.
type javaProc struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed once Wait has returned
	waitErr error         // valid after exited is closed
}

// startJava starts cmd from a goroutine pinned to its OS thread which then
// blocks in Wait. On Linux Pdeathsig fires when the thread that forked the
// child exits, not the process, so that thread must outlive the child.
func startJava(cmd *exec.Cmd, attr *syscall.SysProcAttr) (*javaProc, error) {
	cmd.SysProcAttr = attr
	p := &javaProc{cmd: cmd, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// stop asks java to exit, escalating to SIGKILL after grace, and waits for
// it to be reaped.
func (p *javaProc) stop(grace time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	if grace > 0 && p.cmd.Process.Signal(syscall.SIGTERM) == nil {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-p.exited:
			return
		case <-t.C:
		}
	}
	_ = p.cmd.Process.Kill() // fails only if it already exited
	<-p.exited
}

// outputLog forwards java's output and our warnings to Options.Log and
// remembers the last lines for error messages. exec may write stdout and
// stderr from different goroutines, hence the mutex.
type outputLog struct {
	mu    sync.Mutex
	w     io.Writer
	buf   []byte
	lines int
}

func newOutputLog(w io.Writer, lines int) *outputLog {
	return &outputLog{w: w, lines: lines}
}

const outputKeepBytes = 16 << 10

func (l *outputLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) > outputKeepBytes {
		l.buf = append(l.buf[:0], l.buf[len(l.buf)-outputKeepBytes:]...)
	}
	// A failing log writer must not stall or kill java, so its error is
	// dropped and the full length reported.
	_, _ = l.w.Write(p)
	return len(p), nil
}

// warnf writes one of our own messages to the log (not to the tail).
func (l *outputLog) warnf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = fmt.Fprintf(l.w, "ddblocal: "+format+"\n", args...)
}

// tail returns the last lines java printed, indented for error messages.
func (l *outputLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	text := strings.TrimRight(string(l.buf), "\n")
	if text == "" {
		return "    (no output)"
	}
	lines := strings.Split(text, "\n")
	if len(lines) > l.lines {
		lines = lines[len(lines)-l.lines:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

var javaVersionRE = regexp.MustCompile(`version "([^"]+)"`)

// JavaProblem returns "" when `java` on PATH is version 17 or newer,
// otherwise a one-paragraph message saying what is wrong and how to fix it.
func JavaProblem() string {
	path, err := exec.LookPath("java")
	if err != nil {
		return "DynamoDB Local needs Java 17 or newer, but no `java` was found on PATH. " + javaInstallHint
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-version").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("DynamoDB Local needs Java 17 or newer, but `%s -version` failed (%v: %s). %s",
			path, err, firstLine(out), javaInstallHint)
	}
	m := javaVersionRE.FindSubmatch(out)
	if m == nil {
		return fmt.Sprintf("DynamoDB Local needs Java 17 or newer, but the version of %s could not be read from `java -version` (%q). %s",
			path, firstLine(out), javaInstallHint)
	}
	version := string(m[1])
	major, ok := javaMajor(version)
	if !ok {
		return fmt.Sprintf("DynamoDB Local needs Java 17 or newer, but %s reports an unrecognised version %q. %s",
			path, version, javaInstallHint)
	}
	if major < minJavaMajor {
		return fmt.Sprintf("DynamoDB Local needs Java 17 or newer, but %s is version %s. %s",
			path, version, javaInstallHint)
	}
	return ""
}

// javaMajor extracts the feature release from a java version string:
// "1.8.0_392" is 8 (old scheme), "17.0.15" and "21-ea" are 17 and 21.
func javaMajor(v string) (int, bool) {
	v = strings.TrimPrefix(v, "1.")
	end := 0
	for end < len(v) && v[end] >= '0' && v[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(v[:end])
	return n, err == nil
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte("\n"))
	return string(line)
}

// DefaultDir returns <repo root>/.local/dynamodb, where the repo root is the
// nearest folder at or above the current directory holding go.mod. The
// environment variable THREADLINE_DDB_DIR overrides it.
func DefaultDir() (string, error) {
	if d := os.Getenv("THREADLINE_DDB_DIR"); d != "" {
		abs, err := filepath.Abs(d)
		if err != nil {
			return "", fmt.Errorf("ddblocal: resolve THREADLINE_DDB_DIR: %w", err)
		}
		return abs, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("ddblocal: find repo root: %w", err)
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".local", "dynamodb"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("ddblocal: no go.mod in %s or any parent folder; set THREADLINE_DDB_DIR to the DynamoDB Local folder", wd)
		}
		dir = parent
	}
}

// RunTests is a TestMain body for packages whose tests share one DynamoDB
// Local: it starts the server from DefaultDir, hands it to use, runs the
// tests and stops it. A server that cannot start fails the run rather than
// skipping it: end-to-end claims need the real thing.
func RunTests(m interface{ Run() int }, pkg string, use func(*Server)) int {
	dir, err := DefaultDir()
	var srv *Server
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		srv, err = Start(ctx, Options{Dir: dir})
		cancel()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s tests need DynamoDB Local (run `make deps`): %v\n", pkg, err)
		return 1
	}
	defer srv.Close()
	use(srv)
	return m.Run()
}
