package server_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
)

// manifestImage is the first container image of a rendered manifest.
var manifestImage = regexp.MustCompile(`(?m)^\s*image:\s*"?([^"\s]+)"?\s*$`)

// cmdHelm prints the Helm history of a release, as the release's Secrets
// store it: one line per revision, oldest first, "REVISION STATUS IMAGE".
//
//	helm NS RELEASE
func cmdHelm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: helm NS RELEASE")
	}
	d := driver.NewSecrets(env.Client.CoreV1().Secrets(args[0]))
	list, err := d.Query(map[string]string{"name": args[1], "owner": "helm"})
	ts.Check(err)
	var revs []*releasev1.Release
	for _, r := range list {
		rel, ok := r.(*releasev1.Release)
		if !ok {
			ts.Fatalf("release %s/%s: unexpected type %T", args[0], args[1], r)
		}
		revs = append(revs, rel)
	}
	slices.SortFunc(revs, func(a, b *releasev1.Release) int { return a.Version - b.Version })
	var b strings.Builder
	for _, r := range revs {
		image := "-"
		if m := manifestImage.FindStringSubmatch(r.Manifest); m != nil {
			image = m[1]
		}
		status := "-"
		if r.Info != nil {
			status = string(r.Info.Status)
		}
		fmt.Fprintf(&b, "%d %s %s\n", r.Version, status, image)
	}
	_, _ = ts.Stdout().Write([]byte(b.String()))
}
