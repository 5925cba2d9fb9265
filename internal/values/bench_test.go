package values

import (
	"fmt"
	"strings"
	"testing"
)

// generatedValues returns a values file of about lines lines: the header
// with a few images, then chart values that reach it through merges.
func generatedValues(lines int) []byte {
	var b strings.Builder
	b.WriteString("# Generated values file for benchmarks.\n__mygitops:\n  chart: acme/big\n  version: 1.0.0\n  name: big\n  namespace: big\n  images:\n")
	for i := range 10 {
		fmt.Fprintf(&b, "    gitlab.com/acme/svc-%d: &svc%d\n      repository: registry.acme.io/big/svc-%d   # service %d\n      tag: \"1.0.%d\"\n", i, i, i, i, i)
	}
	for i := 0; strings.Count(b.String(), "\n") < lines; i++ {
		fmt.Fprintf(&b, "svc%d:\n  image:\n    <<: *svc%d\n    pullPolicy: IfNotPresent\n  replicas: %d  # scaled by hand\n  env:\n", i, i%10, i%5+1)
		for j := range 10 {
			fmt.Fprintf(&b, "    - {name: VAR_%d, value: \"%d\"}\n", j, i*j)
		}
		b.WriteString("  resources:\n    requests: {cpu: 100m, memory: 128Mi}\n\n")
	}
	return []byte(b.String())
}

func BenchmarkSetImage(b *testing.B) {
	src := generatedValues(5000)
	imgs := []Image{
		{Repository: "registry.acme.io/big/svc-7", Tag: "2.0.0"},
		{Repository: "registry.acme.io/big/svc-7", Tag: "2.0.1"},
	}
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_, changed, err := SetImage(src, "gitlab.com/acme/svc-7", imgs[i%2])
		if err != nil || !changed {
			b.Fatal(changed, err)
		}
		i++
	}
}

func TestGeneratedValues(t *testing.T) {
	src := generatedValues(5000)
	if n := strings.Count(string(src), "\n"); n < 5000 || n > 5100 {
		t.Fatalf("%d lines", n)
	}
	out, changed, err := SetImage(src, "gitlab.com/acme/svc-7", Image{Repository: "registry.acme.io/big/svc-7", Tag: "2.0.0"})
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	if want := strings.Replace(string(src), `tag: "1.0.7"`, `tag: "2.0.0"`, 1); string(out) != want {
		t.Errorf("unexpected output:\n%s", diff(want, string(out)))
	}
}
