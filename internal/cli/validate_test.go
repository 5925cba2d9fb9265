package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		golden   string
	}{
		{"good", []string{"validate", "--repo", "../repo/testdata/good"}, 0, "validate/good.txt"},
		{"good json", []string{"validate", "--repo", "../repo/testdata/good", "-o", "json"}, 0, "validate/good.json"},
		{"bad", []string{"validate", "--repo", "../repo/testdata/bad"}, 1, "validate/bad.txt"},
		{"bad json", []string{"validate", "--repo", "../repo/testdata/bad", "-o", "json"}, 1, "validate/bad.json"},
		{"one cluster", []string{"validate", "--repo", "../repo/testdata/bad", "--cluster", "edge"}, 1, "validate/bad-edge.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := Execute(tt.args, &out, &errOut); code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.wantCode, errOut.String())
			}
			if errOut.Len() > 0 {
				t.Errorf("unexpected stderr %q", errOut.String())
			}
			assertGolden(t, tt.golden, out.Bytes())
		})
	}
}

func TestValidateJSONIsMachineReadable(t *testing.T) {
	var out, errOut bytes.Buffer
	Execute([]string{"validate", "--repo", "../repo/testdata/bad", "-o", "json"}, &out, &errOut)
	var rep validateReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Valid || rep.Errors == 0 || len(rep.Problems) != rep.Errors+rep.Warnings {
		t.Errorf("report %+v", rep)
	}
	for _, p := range rep.Problems {
		if p.File == "" || p.Message == "" || (p.Severity != "error" && p.Severity != "warning") {
			t.Errorf("incomplete problem %+v", p)
		}
	}
}

func TestValidateCannotRun(t *testing.T) {
	for _, args := range [][]string{
		{"validate", "--repo", t.TempDir()},
		{"validate", "--repo", "../repo/testdata/good", "--cluster", "qa"},
		{"validate", "--repo", "../repo/testdata/good", "-o", "xml"},
	} {
		var out, errOut bytes.Buffer
		if code := Execute(args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		if !strings.HasPrefix(errOut.String(), "Error: ") {
			t.Errorf("%v: stderr %q", args, errOut.String())
		}
	}
}
