package local

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestACSSDKSuite runs the official ACS JavaScript SDKs (local/sdktest, run
// with node --test) against a stack started here on free ports.
func TestACSSDKSuite(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "local", "sdktest")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@azure", "communication-chat")); err != nil {
		t.Fatalf("the ACS SDK suite's npm packages are not installed; run `make deps` (npm ci in %s)", dir)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed; the ACS SDK suite needs Node.js 20")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.test.mjs"))
	if len(files) == 0 {
		t.Fatal("no *.test.mjs files in local/sdktest")
	}
	s := startStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"--test", "--test-reporter=spec"}, files...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"THREADLINE_STACK="+filepath.Join(filepath.Dir(filepath.Dir(s.Info.CACert)), "stack.json"),
		"NODE_EXTRA_CA_CERTS="+s.Info.CACert,
		"NO_COLOR=1",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatalf("node --test failed: %v", err)
	}
}
