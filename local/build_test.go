package local

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBuildEveryFunction builds every function the way `sam build` does
// (make build-<LogicalId> ARTIFACTS_DIR=…) and checks the result is what
// provided.al2023 on arm64 runs: a static linux/arm64 ELF named bootstrap.
func TestBuildEveryFunction(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is not installed")
	}
	root := repoFile(t)
	mapping, _ := makefileFunctions(t)
	for id := range mapping {
		t.Run(id, func(t *testing.T) {
			t.Parallel()
			out := t.TempDir()
			cmd := exec.Command("make", "--no-print-directory", "build-"+id, "ARTIFACTS_DIR="+out)
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("make build-%s: %v\n%s", id, err, b)
			}
			entries, _ := os.ReadDir(out)
			if len(entries) != 1 || entries[0].Name() != "bootstrap" {
				t.Fatalf("ARTIFACTS_DIR holds %v, want only bootstrap", entries)
			}
			f, err := elf.Open(filepath.Join(out, "bootstrap"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != elf.EM_AARCH64 || f.Class != elf.ELFCLASS64 || f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
				t.Errorf("bootstrap is %v %v %v, want a 64-bit arm64 Linux ELF", f.Machine, f.Class, f.OSABI)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("bootstrap is dynamically linked (%v); CGO_ENABLED=0 must make it static", p.Type)
				}
			}
			if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
				t.Errorf("bootstrap needs shared libraries %v", libs)
			}
			if fi, err := os.Stat(filepath.Join(out, "bootstrap")); err == nil && fi.Mode()&0o111 == 0 {
				t.Error("bootstrap is not executable")
			}
		})
	}
}
