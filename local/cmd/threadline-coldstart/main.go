// Command threadline-coldstart measures every function's cold start (INIT)
// under the AWS Lambda Runtime Interface Emulator against a hello-world
// bootstrap, and every bootstrap's linux/arm64 size, and writes the report
// as JSON (see package local/coldstart).
//
//	go run ./local/cmd/threadline-coldstart -out .local/bench/coldstart.json
//
// It exits 1 when the measurement fails, and with -strict also when a goal
// is missed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/threadline/threadline/local/coldstart"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var (
		out       = flag.String("out", "", "write the JSON report to this file (default: stdout)")
		repeats   = flag.Int("repeats", 7, "cold starts per function, each paired with a hello-world one")
		functions = flag.String("functions", "", "comma-separated logical ids or functions/ folders (default: all in the Makefile)")
		rie       = flag.String("rie", "", "aws-lambda-rie binary (default: go install it into .local/bench/bin)")
		work      = flag.String("work", "", "scratch dir, emptied first (default: .local/bench/coldstart)")
		inittrace = flag.Bool("inittrace", true, "also run each bootstrap once with GODEBUG=inittrace=1 and report its heaviest package inits")
		timeout   = flag.Duration("timeout", 30*time.Second, "limit on one cold start")
		quiet     = flag.Bool("q", false, "no progress on stderr")
		strict    = flag.Bool("strict", false, "exit 1 when a goal is missed")
		env       listFlag
	)
	flag.Var(&env, "env", "KEY=VALUE for every bootstrap's environment (repeatable; replaces a default)")
	flag.Parse()

	root, err := repoRoot()
	if err != nil {
		fail(err)
	}
	opt := coldstart.Options{
		Root: root, Work: *work, RIE: *rie, Repeats: *repeats, Env: env,
		Timeout: *timeout, Inittrace: *inittrace, Log: os.Stderr,
	}
	if *quiet {
		opt.Log = io.Discard
	}
	if *functions != "" {
		opt.Functions = strings.Split(*functions, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := coldstart.Run(ctx, opt)
	if err != nil {
		fail(err)
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		fail(err)
	}
	b = append(b, '\n')
	if *out == "" {
		_, err = os.Stdout.Write(b)
	} else {
		if err = os.MkdirAll(filepath.Dir(*out), 0o755); err == nil {
			err = os.WriteFile(*out, b, 0o644)
		}
	}
	if err != nil {
		fail(err)
	}
	if !*quiet {
		printTable(os.Stderr, rep)
	}
	if *strict && (!rep.GoalsMet.InitRatioVsHelloWorldMax || !rep.GoalsMet.BootstrapBytesMax) {
		fmt.Fprintln(os.Stderr, "threadline-coldstart: a goal is missed")
		os.Exit(1)
	}
}

func printTable(w io.Writer, rep *coldstart.Report) {
	fmt.Fprintf(w, "\n%-26s %9s %9s %9s %7s %8s %9s %11s %11s\n", "function", "INIT p50", "INIT p90", "hello p50", "ratio", "CPU p50", "CPU ratio", "arm64 B", "local B")
	h := rep.HelloWorld
	fmt.Fprintf(w, "%-26s %9.2f %9.2f %9s %7s %8.2f %9s %11d %11d\n", "(hello-world)", h.InitMsMedian, h.InitMsP90, "", "", h.InitCPUMsMedian, "", h.BootstrapBytesArm64, h.BootstrapBytesLocal)
	for _, f := range rep.Functions {
		fmt.Fprintf(w, "%-26s %9.2f %9.2f %9.2f %7.2f %8.2f %9.2f %11d %11d\n", f.LogicalID, f.InitMsMedian, f.InitMsP90, f.HelloInitMsMedian, f.Ratio, f.InitCPUMsMedian, f.CPURatio, f.BootstrapBytesArm64, f.BootstrapBytesLocal)
	}
	fmt.Fprintf(w, "\ninit_ratio_vs_hello_world_max %.3f (%s; goal <= %.1f: %v)\n", rep.InitRatioVsHelloWorldMax, rep.InitRatioMaxFunction, rep.Goals.InitRatioVsHelloWorldMax, rep.GoalsMet.InitRatioVsHelloWorldMax)
	fmt.Fprintf(w, "init_cpu_ratio_vs_hello_world_max %.3f; load average %.1f at start, %.1f at end on %d cores\n", rep.CPURatioMax, rep.Machine.LoadAverageStart, rep.Machine.LoadAverageEnd, rep.Machine.Cores)
	fmt.Fprintf(w, "bootstrap_bytes_max %d (%s; goal <= %d: %v)\n", rep.BootstrapBytesMax, rep.BootstrapBytesMaxFunc, rep.Goals.BootstrapBytesMax, rep.GoalsMet.BootstrapBytesMax)
}

// repoRoot is the nearest directory at or above the working directory that
// holds go.mod and a Makefile.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isFile(filepath.Join(dir, "go.mod")) && isFile(filepath.Join(dir, "Makefile")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod with a Makefile beside it at or above the working directory")
		}
		dir = parent
	}
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "threadline-coldstart:", err)
	os.Exit(1)
}
