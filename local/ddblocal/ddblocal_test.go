package ddblocal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// installedDir returns the DynamoDB Local folder, failing (never skipping)
// when it or Java is missing so a broken dev setup cannot pass silently.
func installedDir(t *testing.T) string {
	t.Helper()
	dir, err := DefaultDir()
	if err != nil {
		t.Fatalf("DefaultDir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, jarName)); err != nil {
		t.Fatalf("DynamoDB Local is not installed in %s (no %s); run \"make deps\" to install it, or point THREADLINE_DDB_DIR at an install", dir, jarName)
	}
	if p := JavaProblem(); p != "" {
		t.Fatal(p)
	}
	return dir
}

// logBuffer collects java's output; it is printed only when a test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServer starts DynamoDB Local with o (filling Dir and Log) and closes
// it when the test ends.
func startServer(t *testing.T, o Options) (*Server, *logBuffer) {
	t.Helper()
	if o.Dir == "" {
		o.Dir = installedDir(t)
	}
	logs := &logBuffer{}
	o.Log = logs
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	s, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("Start: %v\nlog:\n%s", err, logs)
	}
	t.Logf("started in %v: endpoint %s, isolated %v", time.Since(began).Round(time.Millisecond), s.Endpoint, s.Isolated)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})
	return s, logs
}

// newClient builds an SDK client the way application code does.
func newClient(t *testing.T, endpoint string) *dynamodb.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("local", "local", "")),
	)
	if err != nil {
		t.Fatalf("load AWS config: %v", err)
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.DisableValidateResponseChecksum = true
	})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func createTable(t *testing.T, c *dynamodb.Client, table string) {
	t.Helper()
	_, err := c.CreateTable(testCtx(t), &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatalf("CreateTable %s: %v", table, err)
	}
}

func putItem(t *testing.T, c *dynamodb.Client, table, id, value string) {
	t.Helper()
	_, err := c.PutItem(testCtx(t), &dynamodb.PutItemInput{
		TableName: aws.String(table),
		Item: map[string]types.AttributeValue{
			"id":    &types.AttributeValueMemberS{Value: id},
			"value": &types.AttributeValueMemberS{Value: value},
		},
	})
	if err != nil {
		t.Fatalf("PutItem: %v", err)
	}
}

// getValue returns the "value" attribute of item id, failing if absent.
func getValue(t *testing.T, c *dynamodb.Client, table, id string) string {
	t.Helper()
	out, err := c.GetItem(testCtx(t), &dynamodb.GetItemInput{
		TableName:      aws.String(table),
		Key:            map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: id}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("GetItem: %v", err)
	}
	v, ok := out.Item["value"].(*types.AttributeValueMemberS)
	if !ok {
		t.Fatalf("GetItem %s/%s: no string attribute \"value\" in %v", table, id, out.Item)
	}
	return v.Value
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		onDisk bool
	}{
		{name: "in-memory"},
		{name: "dbPath", onDisk: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var o Options
			if tc.onDisk {
				o.DBPath = filepath.Join(t.TempDir(), "data") // does not exist yet: Start creates it
			}
			s, _ := startServer(t, o)
			c := newClient(t, s.Endpoint)
			createTable(t, c, "Widgets")
			putItem(t, c, "Widgets", "w1", "blue "+tc.name)
			if got, want := getValue(t, c, "Widgets", "w1"), "blue "+tc.name; got != want {
				t.Errorf("value = %q, want %q", got, want)
			}

			// -sharedDb with -dbPath keeps one sqlite file in DBPath,
			// which proves the option reached java.
			if tc.onDisk {
				if _, err := os.Stat(filepath.Join(o.DBPath, "shared-local-instance.db")); err != nil {
					t.Errorf("database file not in DBPath: %v", err)
				}
			}
		})
	}
}

func TestPersistsAcrossRestart(t *testing.T) {
	t.Parallel()
	dbPath := t.TempDir()

	first, _ := startServer(t, Options{DBPath: dbPath})
	c := newClient(t, first.Endpoint)
	createTable(t, c, "Notes")
	putItem(t, c, "Notes", "n1", "survives restarts")
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	second, _ := startServer(t, Options{DBPath: dbPath})
	if got, want := getValue(t, newClient(t, second.Endpoint), "Notes", "n1"), "survives restarts"; got != want {
		t.Errorf("after restart value = %q, want %q", got, want)
	}
}

func TestIsolation(t *testing.T) {
	t.Parallel()
	s, logs := startServer(t, Options{})

	u, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatalf("parse endpoint: %v", err)
	}
	if u.Hostname() != "127.0.0.1" {
		t.Errorf("endpoint host = %q, want 127.0.0.1", u.Hostname())
	}

	if runtime.GOOS != "linux" || !s.Isolated {
		// Without isolation the one thing we promise is a loud warning.
		if s.Isolated {
			t.Errorf("Isolated = true on %s, where namespaces do not exist", runtime.GOOS)
		}
		if !strings.Contains(logs.String(), "EVERY network interface") {
			t.Errorf("not isolated, but no warning about listening on every interface was logged")
		}
		t.Logf("not isolated on this machine; only the warning was checked")
		return
	}

	pid := s.proc.cmd.Process.Pid
	ours, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatalf("read our network namespace: %v", err)
	}
	javas, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		t.Fatalf("read java's network namespace: %v", err)
	}
	if ours == javas {
		t.Errorf("java runs in our network namespace %s", ours)
	}

	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("endpoint port: %v", err)
	}
	var proxySeen bool
	for _, l := range tcpListeners(t, "/proc/net/tcp", "/proc/net/tcp6") {
		if l.Port != port {
			continue
		}
		if !l.IP.IsLoopback() {
			t.Errorf("something in our namespace listens on %s, not loopback", l)
		}
		proxySeen = true
	}
	if !proxySeen {
		t.Errorf("no listener on port %d found in /proc/net/tcp{,6}; is the parser broken?", port)
	}

	// Java itself listens on every interface, but only of its own namespace.
	var javaSeen bool
	for _, l := range tcpListeners(t, fmt.Sprintf("/proc/%d/net/tcp", pid), fmt.Sprintf("/proc/%d/net/tcp6", pid)) {
		javaSeen = javaSeen || l.Port == nsJavaPort
	}
	if !javaSeen {
		t.Errorf("java's namespace has no listener on port %d", nsJavaPort)
	}
}

// tcpListeners parses the LISTEN rows of /proc/net/tcp-format files.
func tcpListeners(t *testing.T, paths ...string) []*net.TCPAddr {
	t.Helper()
	var out []*net.TCPAddr
	for _, path := range paths {
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) && strings.HasSuffix(path, "6") {
			continue // IPv6 disabled
		}
		if err != nil {
			t.Fatalf("open %s: %v", path, err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			const listenState = "0A"
			if len(fields) < 4 || fields[3] != listenState {
				continue
			}
			addr, err := parseProcAddr(fields[1])
			if err != nil {
				f.Close()
				t.Fatalf("%s: %v", path, err)
			}
			out = append(out, addr)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
	}
	return out
}

// parseProcAddr decodes "0100007F:1F40": the address is printed as 32-bit
// words in host byte order, the port in plain hex.
func parseProcAddr(s string) (*net.TCPAddr, error) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return nil, fmt.Errorf("bad address %q", s)
	}
	raw, err := hex.DecodeString(ipHex)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return nil, fmt.Errorf("bad address %q", s)
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(ip[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return nil, fmt.Errorf("bad port in %q: %w", s, err)
	}
	return &net.TCPAddr{IP: ip, Port: int(port)}, nil
}

func TestParseProcAddr(t *testing.T) {
	// /proc prints each 32-bit word of the address in host byte order.
	little := binary.NativeEndian.Uint16([]byte{1, 0}) == 1
	tests := []struct {
		little, big string // the same address as each kind of host prints it
		want        string
		loopback    bool
	}{
		{"0100007F:1F40", "7F000001:1F40", "127.0.0.1:8000", true},
		{"00000000:0050", "00000000:0050", "0.0.0.0:80", false},
		{"00000000000000000000000001000000:1F40", "00000000000000000000000000000001:1F40", "[::1]:8000", true},
		{"00000000000000000000000000000000:1F40", "00000000000000000000000000000000:1F40", "[::]:8000", false},
		{"0000000000000000FFFF00000100007F:0016", "00000000000000000000FFFF7F000001:0016", "127.0.0.1:22", true},
	}
	for _, tc := range tests {
		in := tc.big
		if little {
			in = tc.little
		}
		got, err := parseProcAddr(in)
		if err != nil {
			t.Errorf("parseProcAddr(%q): %v", in, err)
			continue
		}
		if got.String() != tc.want || got.IP.IsLoopback() != tc.loopback {
			t.Errorf("parseProcAddr(%q) = %s (loopback %v), want %s (loopback %v)", in, got, got.IP.IsLoopback(), tc.want, tc.loopback)
		}
	}
}

func TestCloseTwice(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Options{})
	scratch := s.scratch
	host := strings.TrimPrefix(s.Endpoint, "http://")

	if err := s.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case <-s.proc.exited:
	default:
		t.Errorf("java still running after Close")
	}
	if _, err := os.Stat(scratch); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("scratch folder %s not removed (stat: %v)", scratch, err)
	}
	if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Close", host)
	}
	// java's cwd is a scratch folder, so it must never drop files here.
	if _, err := os.Stat("dynamodb-local-metadata.json"); err == nil {
		t.Errorf("dynamodb-local-metadata.json was written into the package folder")
	}
}

func TestStartRejects(t *testing.T) {
	missing := t.TempDir()
	tests := []struct {
		name      string
		installed bool // needs the real install, so only the option is wrong
		opts      func(dir string) Options
		want      string
	}{
		{
			name: "missing jar",
			opts: func(string) Options { return Options{Dir: missing} },
			want: `DynamoDB Local is not installed in ` + missing + ` (no DynamoDBLocal.jar); run "make deps" to install it`,
		},
		{
			name: "no Dir",
			opts: func(string) Options { return Options{} },
			want: "Options.Dir is required",
		},
		{
			name:      "non-loopback Addr",
			installed: true,
			opts:      func(dir string) Options { return Options{Dir: dir, Addr: "0.0.0.0:0"} },
			want:      "not a loopback address",
		},
		{
			name:      "negative heap",
			installed: true,
			opts:      func(dir string) Options { return Options{Dir: dir, HeapMB: -1} },
			want:      "HeapMB must be positive",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := ""
			if tc.installed {
				dir = installedDir(t)
			}
			s, err := Start(context.Background(), tc.opts(dir))
			if err == nil {
				s.Close()
				t.Fatalf("Start succeeded, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestStartGivesUpWhenContextEnds(t *testing.T) {
	t.Parallel()
	dir := installedDir(t)
	// A unique DBPath lets us find this test's java among the others'.
	dbPath := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()

	s, err := Start(ctx, Options{Dir: dir, DBPath: dbPath})
	if err == nil {
		s.Close()
		t.Fatal("Start succeeded despite a 300ms deadline")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error does not wrap context.DeadlineExceeded: %v", err)
	}
	if !strings.Contains(err.Error(), "last output from java") {
		t.Errorf("error lacks java's output: %v", err)
	}
	if runtime.GOOS == "linux" {
		if pids := javaChildren(t, dbPath); len(pids) > 0 {
			t.Errorf("java still running after failed Start: pids %v", pids)
		}
	}
}

// javaChildren lists our child processes whose command line mentions tag.
func javaChildren(t *testing.T, tag string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("read /proc: %v", err)
	}
	self := strconv.Itoa(os.Getpid())
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // exited meanwhile
		}
		// Fields after the parenthesised command name: state, ppid, ...
		_, rest, ok := bytes.Cut(stat, []byte(") "))
		if f := strings.Fields(string(rest)); !ok || len(f) < 2 || f[1] != self {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(cmdline, []byte(tag)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestJavaMajor(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"17.0.15", 17, true},
		{"1.8.0_392", 8, true},
		{"21-ea", 21, true},
		{"11", 11, true},
		{"banana", 0, false},
	}
	for _, tc := range tests {
		got, ok := javaMajor(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("javaMajor(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("THREADLINE_DDB_DIR", "")
	got, err := DefaultDir()
	if err != nil {
		t.Fatalf("DefaultDir: %v", err)
	}
	// This package lives at <root>/local/ddblocal.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(wd, "..", "..", ".local", "dynamodb"); got != filepath.Clean(want) {
		t.Errorf("DefaultDir() = %s, want %s", got, filepath.Clean(want))
	}

	override := t.TempDir()
	t.Setenv("THREADLINE_DDB_DIR", override)
	if got, err := DefaultDir(); err != nil || got != override {
		t.Errorf("with THREADLINE_DDB_DIR=%s: DefaultDir() = %q, %v", override, got, err)
	}
}
