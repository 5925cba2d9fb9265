package install

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"debug/macho"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/mygitops/mgo/internal/version"
)

// `make dist` builds mgo for linux and darwin, amd64 and arm64, each a
// static executable for its platform stamped with the version, and a
// SHA256SUMS file that checks them all.
func TestDist(t *testing.T) {
	dist := filepath.Join(build(t), "dist")
	platforms := []string{"linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64"}

	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q is not `<sum>  <file>`", line)
		}
		listed[name] = sum
	}
	var names []string
	for _, p := range platforms {
		name := "mgo-" + p
		names = append(names, name)
		b, err := os.ReadFile(filepath.Join(dist, name))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); listed[name] != got {
			t.Errorf("SHA256SUMS says %s is %q, it is %s", name, listed[name], got)
		}
		goos, goarch, _ := strings.Cut(p, "-")
		if err := checkExecutable(b, goos, goarch); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !bytes.Contains(b, []byte(testVersion)) {
			t.Errorf("%s does not carry the version %s", name, testVersion)
		}
	}
	got := slices.Sorted(func(yield func(string) bool) {
		for n := range listed {
			if !yield(n) {
				return
			}
		}
	})
	if slices.Sort(names); !slices.Equal(got, names) {
		t.Errorf("SHA256SUMS lists %v, want %v", got, names)
	}

	// The binary of this machine runs and says which build it is.
	host := filepath.Join(dist, "mgo-"+runtime.GOOS+"-"+runtime.GOARCH)
	out, err := exec.Command(host, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("%s version: %v", host, err)
	}
	var info version.Info
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("mgo version -o json: %v: %s", err, out)
	}
	if info.Version != testVersion || info.Commit != testCommit || info.Date != testDate {
		t.Errorf("mgo version: %+v, want %s %s %s", info, testVersion, testCommit, testDate)
	}
	if info.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("mgo version: platform %s", info.Platform)
	}
}

// checkExecutable checks that b is an executable for goos/goarch, and for
// linux a static one (no dynamic loader: it runs on an empty image).
func checkExecutable(b []byte, goos, goarch string) error {
	switch goos {
	case "linux":
		f, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			return err
		}
		want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[goarch]
		if f.Machine != want || f.Type != elf.ET_EXEC {
			return fmt.Errorf("ELF %s %s, want an executable for %s", f.Type, f.Machine, want)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				return fmt.Errorf("dynamically linked")
			}
		}
	case "darwin":
		f, err := macho.NewFile(bytes.NewReader(b))
		if err != nil {
			return err
		}
		want := map[string]macho.Cpu{"amd64": macho.CpuAmd64, "arm64": macho.CpuArm64}[goarch]
		if f.Cpu != want || f.Type != macho.TypeExec {
			return fmt.Errorf("Mach-O %s %s, want an executable for %s", f.Type, f.Cpu, want)
		}
	default:
		return fmt.Errorf("unexpected OS %s", goos)
	}
	return nil
}
