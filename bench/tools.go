package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Pinned versions. Helm is the version mgo's own go.mod requires (read from
// it); helmfile is the version bench/tools/helmfile/go.mod requires.
const (
	helmDiffModule  = "github.com/databus23/helm-diff/v3"
	helmDiffVersion = "v3.14.1"
)

// tool is a contender binary built into the benchmark cache.
type tool struct {
	Name         string  `json:"name"`
	Version      string  `json:"version"`
	Path         string  `json:"path,omitempty"`
	Cached       bool    `json:"cached"`
	BuildSeconds float64 `json:"buildSeconds,omitempty"`
	Error        string  `json:"error,omitempty"`
}

func (t tool) ok() bool { return t.Error == "" }

// benchCache is where contender binaries are built:
// $MGO_BENCH_CACHE, else $XDG_CACHE_HOME/mgo/bench (~/.cache/mgo/bench).
func benchCache() (string, error) {
	if d := os.Getenv("MGO_BENCH_CACHE"); d != "" {
		return d, nil
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "mgo", "bench"), nil
}

// requiredVersion reads the version of module mod that the go.mod at path
// requires.
func requiredVersion(gomod, mod string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	re := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(mod) + `\s+(v\S+)`)
	m := re.FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("%s does not require %s", gomod, mod)
	}
	return string(m[1]), nil
}

// goBuild runs the go command in dir, logging its output to logf, and
// returns its output tail on failure.
func goBuild(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, tail(out.String(), 6))
	}
	return nil
}

// cached builds a binary once into cache/<name>-<version>/<name>: build is
// called with a temporary directory and must leave the binary there as
// <name>; it is moved into place only when complete.
func cached(ctx context.Context, cache, name, version string, build func(tmp string) error) tool {
	t := tool{Name: name, Version: version}
	dir := filepath.Join(cache, name+"-"+version)
	t.Path = filepath.Join(dir, name)
	if fi, err := os.Stat(t.Path); err == nil && fi.Mode()&0o111 != 0 {
		t.Cached = true
		return t
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Error = err.Error()
		return t
	}
	tmp, err := os.MkdirTemp(cache, "build-"+name+"-")
	if err != nil {
		t.Error = err.Error()
		return t
	}
	defer os.RemoveAll(tmp)
	logf("building %s %s (once; cached in %s)", name, version, dir)
	start := time.Now()
	err = build(tmp)
	t.BuildSeconds = time.Since(start).Seconds()
	if err == nil {
		_ = os.RemoveAll(dir)
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		t.Error = err.Error()
		t.Path = ""
		logf("%s %s: cannot be built: %v", name, version, err)
		return t
	}
	logf("built %s %s in %.0fs", name, version, t.BuildSeconds)
	return t
}

// buildHelm installs the helm CLI from its Go module at the version mgo
// itself is built with.
func buildHelm(ctx context.Context, root, cache string) tool {
	version, err := requiredVersion(filepath.Join(root, "go.mod"), "helm.sh/helm/v4")
	if err != nil {
		return tool{Name: "helm", Error: err.Error()}
	}
	return cached(ctx, cache, "helm", version, func(tmp string) error {
		return goBuild(ctx, root, []string{"GOBIN=" + tmp, "GOFLAGS=-mod=mod"},
			"install", "-trimpath",
			"-ldflags", "-s -w -X helm.sh/helm/v4/internal/version.version="+version,
			"helm.sh/helm/v4/cmd/helm@"+version)
	})
}

// buildHelmfile builds helmfile from bench/tools/helmfile, a module that
// requires it and repeats its replace directives (which `go install
// module@version` refuses).
func buildHelmfile(ctx context.Context, root, cache string) tool {
	mod := filepath.Join(root, "bench", "tools", "helmfile")
	version, err := requiredVersion(filepath.Join(mod, "go.mod"), "github.com/helmfile/helmfile")
	if err != nil {
		return tool{Name: "helmfile", Error: err.Error()}
	}
	return cached(ctx, cache, "helmfile", version, func(tmp string) error {
		return goBuild(ctx, mod, nil, "build", "-trimpath",
			"-ldflags", "-s -w -X go.szostok.io/version.version="+version,
			"-o", filepath.Join(tmp, "helmfile"), "github.com/helmfile/helmfile")
	})
}

// buildHelmDiff installs the helm-diff plugin: its binary and plugin.yaml in
// <cache>/helm-diff-<version>/plugins/diff, a directory for HELM_PLUGINS.
// Path is that plugins directory.
func buildHelmDiff(ctx context.Context, root, cache string) tool {
	t := cached(ctx, cache, "helm-diff", helmDiffVersion, func(tmp string) error {
		plugin := filepath.Join(tmp, "plugins", "diff")
		if err := goBuild(ctx, root, []string{"GOBIN=" + filepath.Join(plugin, "bin"), "GOFLAGS=-mod=mod"},
			"install", "-trimpath", "-ldflags", "-s -w", helmDiffModule+"@"+helmDiffVersion); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(plugin, "plugin.yaml"), []byte(helmDiffPluginYAML(strings.TrimPrefix(helmDiffVersion, "v"))), 0o644); err != nil {
			return err
		}
		// cached() wants <tmp>/helm-diff: a marker that the build finished.
		return os.WriteFile(filepath.Join(tmp, "helm-diff"), []byte("#!/bin/sh\nexit 0\n"), 0o755)
	})
	if t.ok() {
		t.Path = filepath.Join(filepath.Dir(t.Path), "plugins")
	}
	return t
}

// buildMgo builds bin/mgo from the working tree.
func buildMgo(ctx context.Context, root string) tool {
	t := tool{Name: "mgo", Version: "working tree", Path: filepath.Join(root, "bin", "mgo")}
	start := time.Now()
	if err := goBuild(ctx, root, nil, "build", "-trimpath", "-o", t.Path, "./cmd/mgo"); err != nil {
		t.Error = err.Error()
		t.Path = ""
	}
	t.BuildSeconds = time.Since(start).Seconds()
	return t
}

// tail returns the last n non-empty lines of s, on one line.
func tail(s string, n int) string {
	var lines []string
	for l := range strings.SplitSeq(strings.TrimSpace(s), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// buildMgoRev builds mgo from a git revision (git archive into a temporary
// directory), cached by commit: the benchmark of a revision does not depend
// on what is being edited in the working tree.
func buildMgoRev(ctx context.Context, root, cache, rev string) tool {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--verify", rev+"^{commit}").Output()
	if err != nil {
		return tool{Name: "mgo", Version: rev, Error: fmt.Sprintf("git rev-parse %s: %v", rev, err)}
	}
	commit := strings.TrimSpace(string(out))
	return cached(ctx, cache, "mgo", commit[:12], func(tmp string) error {
		src := filepath.Join(tmp, "src")
		if err := os.MkdirAll(src, 0o755); err != nil {
			return err
		}
		archive := exec.CommandContext(ctx, "sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", root, commit, src)
		if out, err := archive.CombinedOutput(); err != nil {
			return fmt.Errorf("git archive %s: %v: %s", commit, err, tail(string(out), 3))
		}
		err := goBuild(ctx, src, nil, "build", "-trimpath", "-o", filepath.Join(tmp, "mgo"), "./cmd/mgo")
		_ = os.RemoveAll(src)
		return err
	})
}

// buildFloor builds bench/floor from the working tree into bin/mgo-bench-floor.
func buildFloor(ctx context.Context, root string) tool {
	t := tool{Name: "floor", Version: "working tree", Path: filepath.Join(root, "bin", "mgo-bench-floor")}
	start := time.Now()
	if err := goBuild(ctx, root, nil, "build", "-trimpath", "-o", t.Path, "./bench/floor"); err != nil {
		t.Error = err.Error()
		t.Path = ""
	}
	t.BuildSeconds = time.Since(start).Seconds()
	return t
}

// helmDiffPlugin makes a Helm plugin directory from a helm-diff binary the
// operator built (-helm-diff, MGO_BENCH_HELM_DIFF): plugin.yaml and the
// binary as bin/diff in <cache>/helm-diff-given-<digest>/plugins/diff, a
// directory for HELM_PLUGINS. Path is that plugins directory; Version is
// what the binary says (`helm-diff version`).
func helmDiffPlugin(ctx context.Context, cache, bin string) tool {
	t := tool{Name: "helm-diff", Version: "given"}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Error = fmt.Sprintf("-helm-diff: %v", err)
		return t
	}
	sum := sha256.Sum256(b)
	version := "0.0.0"
	cmd := exec.CommandContext(ctx, bin, "version")
	cmd.Env = append(os.Environ(), "HELM_DEBUG=false")
	out, err := cmd.Output()
	if v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v"); err == nil && regexp.MustCompile(`^\d+\.\d+\.\d+\S*$`).MatchString(v) {
		version = v
	} else {
		t.Error = fmt.Sprintf("-helm-diff %s: `version` does not print a version (%v: %q): not a helm-diff binary?", bin, err, tail(string(out), 2))
		return t
	}
	t.Version = "v" + version
	r := cached(ctx, cache, "helm-diff", "given-"+hex.EncodeToString(sum[:6]), func(tmp string) error {
		plugin := filepath.Join(tmp, "plugins", "diff")
		if err := os.MkdirAll(filepath.Join(plugin, "bin"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(plugin, "bin", "diff"), b, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(plugin, "plugin.yaml"), []byte(helmDiffPluginYAML(version)), 0o644); err != nil {
			return err
		}
		// cached() wants <tmp>/helm-diff: a marker that the copy finished.
		return os.WriteFile(filepath.Join(tmp, "helm-diff"), []byte("#!/bin/sh\nexit 0\n"), 0o755)
	})
	if !r.ok() {
		t.Error = r.Error
		return t
	}
	t.Path, t.Cached = filepath.Join(filepath.Dir(r.Path), "plugins"), r.Cached
	return t
}

// helmDiffPluginYAML is helm-diff's plugin.yaml, without its install hooks
// (the binary is in place already).
func helmDiffPluginYAML(version string) string {
	return fmt.Sprintf(`name: "diff"
version: "%s"
usage: "Preview helm upgrade changes as a diff"
description: "Preview helm upgrade changes as a diff"
useTunnel: true
platformCommand:
  - command: ${HELM_PLUGIN_DIR}/bin/diff
`, version)
}
