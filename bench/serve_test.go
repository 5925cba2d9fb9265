package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHelmDiffPluginFromGivenBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "helm-diff")
	script := []byte("#!/bin/sh\n[ \"$1\" = version ] && echo 3.15.11\n")
	if err := os.WriteFile(bin, script, 0o755); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	got := helmDiffPlugin(context.Background(), cache, bin)
	if !got.ok() || got.Version != "v3.15.11" || got.Cached {
		t.Fatalf("first call: %+v", got)
	}
	if filepath.Base(got.Path) != "plugins" {
		t.Errorf("Path %s is not a plugins directory", got.Path)
	}
	yaml, err := os.ReadFile(filepath.Join(got.Path, "diff", "plugin.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`name: "diff"`, `version: "3.15.11"`, "${HELM_PLUGIN_DIR}/bin/diff"} {
		if !strings.Contains(string(yaml), want) {
			t.Errorf("plugin.yaml lacks %q:\n%s", want, yaml)
		}
	}
	copied, err := os.ReadFile(filepath.Join(got.Path, "diff", "bin", "diff"))
	if err != nil || !bytes.Equal(copied, script) {
		t.Errorf("bin/diff is not the given binary (err %v)", err)
	}
	again := helmDiffPlugin(context.Background(), cache, bin)
	if !again.ok() || !again.Cached || again.Path != got.Path {
		t.Errorf("second call: %+v, want the cached %s", again, got.Path)
	}
}

func TestHelmDiffPluginRefusesOtherBinaries(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "not-diff")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	got := helmDiffPlugin(context.Background(), filepath.Join(dir, "cache"), bin)
	if got.ok() || !strings.Contains(got.Error, "not a helm-diff binary") {
		t.Errorf("got %+v, want an error naming the binary", got)
	}
	missing := helmDiffPlugin(context.Background(), filepath.Join(dir, "cache"), filepath.Join(dir, "absent"))
	if missing.ok() || !strings.Contains(missing.Error, "-helm-diff") {
		t.Errorf("missing binary: got %+v", missing)
	}
}

func TestLineWatchKeepsMatchingLinesAcrossWrites(t *testing.T) {
	l := newLineWatch(startupLine, driftLine)
	for _, chunk := range []string{"level=INFO msg=\"listening\"\nlevel=INFO msg=\"initial ", "sync done\" cluster=bench\n", "partial " + driftLine} {
		if _, err := l.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if !l.matching(startupOK) {
		t.Error("the line split over two writes was not seen")
	}
	if l.matching("listening") {
		t.Error("a line without the strings was kept")
	}
	if l.matching(driftLine) {
		t.Error("an incomplete line was taken")
	}
	if _, ok := l.first(startupLine); !ok {
		t.Error("first: no time for the start-up line")
	}
	if got := l.firstLine(startupLine); got != `level=INFO msg="initial sync done" cluster=bench` {
		t.Errorf("firstLine = %q", got)
	}
}

func TestMgoOverFloor(t *testing.T) {
	ms := []Measure{
		{Contender: "mgo", Scenario: firstSync, Status: "ok", WallSeconds: 33},
		{Contender: "floor", Scenario: noopSync, Status: "ok", WallSeconds: 1},
		{Contender: "floor", Scenario: firstSync, Status: "ok", WallSeconds: 30},
	}
	if r := mgoOverFloor(ms); r == nil || *r < 1.0999 || *r > 1.1001 {
		t.Errorf("mgoOverFloor = %v, want 1.1", r)
	}
	ms[2].Status = "failed"
	if r := mgoOverFloor(ms); r != nil {
		t.Errorf("with the floor's first sync failed: %v, want nil", *r)
	}
}

func TestBeyondWatches(t *testing.T) {
	if got := beyondWatches(Requests{"watch": 5, "list": 1, "get": 2}); got != 3 {
		t.Errorf("beyondWatches = %d, want 3", got)
	}
	if got := beyondWatches(Requests{"watch": 2}); got != 0 {
		t.Errorf("beyondWatches of watches only = %d, want 0", got)
	}
}
