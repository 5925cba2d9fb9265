package install

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/image"
)

// dockerfile is the final stage of a Dockerfile: its base and its
// instructions (continuation lines joined), keyed by instruction.
type dockerfile struct {
	base   string
	stages int
	instr  map[string][]string
	goTag  string // the golang image tag of the build stage
}

func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := dockerfile{}
	sc := bufio.NewScanner(f)
	var line string
	for sc.Scan() {
		s := strings.TrimSpace(sc.Text())
		if line == "" && (s == "" || strings.HasPrefix(s, "#")) {
			continue
		}
		if strings.HasSuffix(s, "\\") {
			line += strings.TrimSuffix(s, "\\") + " "
			continue
		}
		line += s
		kw, rest, _ := strings.Cut(line, " ")
		kw, rest, line = strings.ToUpper(kw), strings.TrimSpace(rest), ""
		if kw == "FROM" {
			d.stages++
			fields := strings.Fields(rest)
			for _, f := range fields {
				if m := regexp.MustCompile(`^golang:([0-9.]+)`).FindStringSubmatch(f); m != nil {
					d.goTag = m[1]
				}
			}
			d.base = fields[len(fields)-1]
			if len(fields) >= 3 && strings.EqualFold(fields[len(fields)-2], "AS") {
				d.base = fields[len(fields)-3]
			}
			d.instr = map[string][]string{}
			continue
		}
		d.instr[kw] = append(d.instr[kw], rest)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return d
}

// The Dockerfile builds the image `make image` builds: same base (none),
// files, user, environment, working directory, port, labels, entrypoint
// and command; its Go is the go.mod's.
func TestDockerfileMatchesImage(t *testing.T) {
	d := parseDockerfile(t, filepath.Join(repoRoot(), "Dockerfile"))
	if d.stages != 2 || d.base != "scratch" {
		t.Fatalf("want a build stage and a final stage FROM scratch; got %d stages, final FROM %s", d.stages, d.base)
	}
	one := func(kw string) string {
		t.Helper()
		if len(d.instr[kw]) != 1 {
			t.Fatalf("final stage: %d %s instructions, want 1", len(d.instr[kw]), kw)
		}
		return d.instr[kw][0]
	}
	var entrypoint, cmd []string
	if err := json.Unmarshal([]byte(one("ENTRYPOINT")), &entrypoint); err != nil || !slices.Equal(entrypoint, image.Entrypoint) {
		t.Errorf("ENTRYPOINT %s, want %q (%v)", one("ENTRYPOINT"), image.Entrypoint, err)
	}
	if err := json.Unmarshal([]byte(one("CMD")), &cmd); err != nil || !slices.Equal(cmd, image.Cmd) {
		t.Errorf("CMD %s, want %q (%v)", one("CMD"), image.Cmd, err)
	}
	if got := one("USER"); got != image.User {
		t.Errorf("USER %s, want %s", got, image.User)
	}
	if got := one("WORKDIR"); got != image.Home {
		t.Errorf("WORKDIR %s, want %s", got, image.Home)
	}
	if got := one("EXPOSE"); got != image.Port {
		t.Errorf("EXPOSE %s, want %s", got, image.Port)
	}
	if got := strings.Fields(one("ENV")); !slices.Equal(got, image.Env) {
		t.Errorf("ENV %q, want %q", got, image.Env)
	}
	if d.instr["RUN"] != nil {
		t.Errorf("the final stage runs commands (it has no shell): %q", d.instr["RUN"])
	}

	// Files: the same passwd and group, the CA bundle, the home and tmp
	// directories, the binary; nothing else.
	wantCopies := []string{
		"internal/image/rootfs/ /",
		"--from=build /etc/ssl/certs/ca-certificates.crt " + image.CAPath,
		"--from=build --chown=65532:65532 /rootfs/home/nonroot " + image.Home,
		"--from=build /rootfs/tmp /tmp",
		"--from=build /out/mgo " + image.BinaryPath,
	}
	if got := d.instr["COPY"]; !slices.Equal(got, wantCopies) {
		t.Errorf("COPY %q\nwant %q", got, wantCopies)
	}
	for _, f := range []string{"etc/passwd", "etc/group"} {
		b, err := os.ReadFile(filepath.Join(repoRoot(), "internal/image/rootfs", f))
		want := map[string][]byte{"etc/passwd": image.Passwd, "etc/group": image.Group}[f]
		if err != nil || string(b) != string(want) {
			t.Errorf("internal/image/rootfs/%s is not what make image ships (%v)", f, err)
		}
	}

	// Labels: the same keys; the static ones with the same values.
	labels := map[string]string{}
	for _, l := range d.instr["LABEL"] {
		for _, m := range regexp.MustCompile(`([a-z.]+)="([^"]*)"`).FindAllStringSubmatch(l, -1) {
			labels[m[1]] = m[2]
		}
	}
	want := image.Labels("$VERSION", "$COMMIT", mustTime(t, testDate))
	want["org.opencontainers.image.created"] = "$DATE"
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("LABEL %s=%q, want %q", k, labels[k], v)
		}
	}
	if len(labels) != len(want) {
		t.Errorf("LABEL keys %v, want those of %v", labels, want)
	}

	gomod, err := os.ReadFile(filepath.Join(repoRoot(), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil || d.goTag != string(m[1]) {
		t.Errorf("the build stage uses golang:%s, go.mod says go %s", d.goTag, m[1])
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}
