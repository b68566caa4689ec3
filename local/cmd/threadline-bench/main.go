// Command threadline-bench measures Threadline against the local stack
// (cost per operation and per million messages, delivery latency,
// throughput), merges the cold-start tool's figures, and writes
// docs/benchmarks.json and docs/benchmarks.md. `make bench` runs it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/threadline/threadline/local"
	"github.com/threadline/threadline/local/bench"
)

func main() {
	var o bench.Options
	out := flag.String("out", "docs/benchmarks.json", "the JSON report (relative to the repository root); values it holds that this run does not measure are kept")
	md := flag.String("md", "docs/benchmarks.md", "the Markdown report, generated from the JSON")
	coldstart := flag.String("coldstart", "", "cold-start JSON to merge; default: run ./local/cmd/threadline-coldstart when it exists; \"skip\" keeps the previous figures")
	flag.DurationVar(&o.Duration, "duration", 60*time.Second, "each throughput run")
	flag.IntVar(&o.Runs, "runs", 3, "repetitions of each latency series and throughput run (medians are reported)")
	flag.IntVar(&o.Samples20, "samples20", 200, "latency samples per run, 20 participants")
	flag.IntVar(&o.Samples250, "samples250", 50, "latency samples per run, 250 participants")
	flag.DurationVar(&o.PollInterval, "poll", 50*time.Millisecond, "stream poll interval (local.Config.StreamPollInterval)")
	flag.DurationVar(&o.Spacing, "spacing", 20*time.Millisecond, "pause after each latency sample (plus a random part of the poll interval)")
	flag.IntVar(&o.TPThreads, "tp-threads", 40, "throughput: threads")
	flag.IntVar(&o.TPParticipants, "tp-participants", 5, "throughput: participants per thread (one WebSocket each)")
	flag.IntVar(&o.TPSenders, "tp-senders", 40, "throughput: concurrent senders")
	flag.Float64Var(&o.TPRate, "tp-rate", 0, "throughput: cap on sends per second (0 = as fast as the senders go)")
	flag.IntVar(&o.MessageBytes, "message-bytes", 1024, "message content size")
	flag.Float64Var(&o.ConnMinutesPerMessage, "conn-minutes", 1, "cost model: minutes each participant's WebSocket is open per message sent into the thread")
	flag.BoolVar(&o.SkipThroughput, "skip-throughput", false, "skip the throughput runs (their previous figures are kept)")
	flag.BoolVar(&o.SkipLatency, "skip-latency", false, "measure the cost with a few sends only, without latency figures (previous ones are kept)")
	mdOnly := flag.Bool("md-only", false, "measure nothing: rewrite the Markdown report from the JSON one (after a change to the report's layout)")
	quiet := flag.Bool("q", false, "no progress lines")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process (the stack and the clients; not DynamoDB Local) to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}

	root, err := local.RepoRoot()
	if err != nil {
		fail(err)
	}
	o.Root = root
	if *mdOnly {
		b, err := os.ReadFile(abs(root, *out))
		if err != nil {
			fail(err)
		}
		var rep bench.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			fail(fmt.Errorf("%s: %w", *out, err))
		}
		if err := os.WriteFile(abs(root, *md), []byte(rep.Markdown()), 0o644); err != nil {
			fail(err)
		}
		fmt.Fprintf(os.Stderr, "wrote %s from %s\n", *md, *out)
		return
	}
	if !*quiet {
		o.Log = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	res, err := bench.Run(ctx, o)
	if err != nil {
		fail(err)
	}
	rep := bench.NewReport(res, command())
	cs, err := coldstartDoc(ctx, root, *coldstart)
	if err != nil {
		fmt.Fprintln(os.Stderr, "threadline-bench: cold start not merged:", err)
	}
	rep.MergeColdstart(cs)

	outPath := abs(root, *out)
	prev, err := os.ReadFile(outPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		fail(err)
	}
	rep, err = bench.Merge(rep, prev)
	if err != nil {
		fail(err)
	}
	b, err := rep.JSON()
	if err != nil {
		fail(err)
	}
	if err := os.WriteFile(outPath, b, 0o644); err != nil {
		fail(err)
	}
	if err := os.WriteFile(abs(root, *md), []byte(rep.Markdown()), 0o644); err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s and %s\n", *out, *md)
	for _, g := range rep.Goals {
		verdict := ""
		if g.Pass != nil {
			verdict = map[bool]string{true: "pass", false: "FAIL"}[*g.Pass]
		}
		fmt.Printf("%-58s %10.2f  %-36s %s\n", g.Key, *g.Value, g.Goal, verdict)
	}
}

func command() string {
	args := strings.Join(os.Args[1:], " ")
	if os.Getenv("MAKELEVEL") != "" {
		if args == "" {
			return "make bench"
		}
		return fmt.Sprintf("make bench BENCH_FLAGS='%s'", args)
	}
	return strings.TrimSpace("go run ./local/cmd/threadline-bench " + args)
}

// coldstartDoc reads the cold-start figures: from the file given, or by
// running the cold-start tool when the tree has it.
func coldstartDoc(ctx context.Context, root, flagValue string) (map[string]any, error) {
	path := flagValue
	switch flagValue {
	case "skip":
		return nil, nil
	case "":
		if _, err := os.Stat(filepath.Join(root, "local", "cmd", "threadline-coldstart")); err != nil {
			return nil, nil // not in this tree (yet): previous figures, if any, are carried over
		}
		f, err := os.CreateTemp("", "coldstart-*.json")
		if err != nil {
			return nil, err
		}
		path = f.Name()
		_ = f.Close()
		defer os.Remove(path)
		fmt.Fprintln(os.Stderr, "running go run ./local/cmd/threadline-coldstart -out", path)
		cmd := exec.CommandContext(ctx, "go", "run", "./local/cmd/threadline-coldstart", "-out", path)
		cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("threadline-coldstart: %w", err)
		}
	default:
		path = abs(root, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return doc, nil
}

func abs(root, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(root, p)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "threadline-bench:", err)
	os.Exit(1)
}
