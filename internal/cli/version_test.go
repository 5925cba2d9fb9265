package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mygitops/mgo/internal/version"
)

func TestVersion(t *testing.T) {
	old := version.Version
	version.Version, version.Commit, version.Date = "v1.2.3", "abc1234", "2026-01-02T03:04:05Z"
	t.Cleanup(func() { version.Version = old })

	var out, errOut bytes.Buffer
	if code := Execute([]string{"version"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	for _, want := range []string{"mgo v1.2.3", "commit abc1234", "built 2026-01-02T03:04:05Z"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %q lacks %q", out.String(), want)
		}
	}

	out.Reset()
	if code := Execute([]string{"version", "-o", "json"}, &out, &errOut); code != 0 {
		t.Fatalf("json: exit %d, stderr %q", code, errOut.String())
	}
	var info version.Info
	if err := json.Unmarshal(out.Bytes(), &info); err != nil {
		t.Fatalf("json output %q: %v", out.String(), err)
	}
	if info.Version != "v1.2.3" || info.Commit != "abc1234" {
		t.Errorf("json info = %+v", info)
	}
}

func TestVersionBadOutput(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Execute([]string{"version", "-o", "yaml"}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errOut.String(), `unknown format "yaml"`) {
		t.Errorf("stderr %q does not name the bad format", errOut.String())
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Execute([]string{"nope"}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errOut.String(), `unknown command "nope"`) {
		t.Errorf("stderr %q", errOut.String())
	}
}
