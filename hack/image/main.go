// Command image builds the OCI image of mgo from static binaries, without a
// container engine (`make image`): an OCI image layout directory, an
// oci-archive tarball of it and, with --push, the index in a registry.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mygitops/mgo/internal/image"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		binDir   = flag.String("binaries", "bin/dist", "directory holding mgo-linux-amd64 and mgo-linux-arm64")
		version  = flag.String("version", "", "version of mgo (image tag and label)")
		revision = flag.String("revision", "", "git commit of the build (label)")
		created  = flag.String("created", "", "build time, RFC 3339 (default: now)")
		caBundle = flag.String("ca-bundle", image.DefaultCABundle, "PEM file of CA certificates to ship")
		out      = flag.String("out", "bin/image", "OCI image layout directory to write")
		archive  = flag.String("archive", "bin/mgo-image.tar", "oci-archive tarball of the layout to write (\"\": none)")
		push     = flag.String("push", "", "registry/repository[:tag] to push the image to (tag default: the version)")
		insecure = flag.Bool("insecure", false, "push over plain HTTP (local registries only)")
	)
	flag.Parse()
	opts := image.Options{CABundle: *caBundle, Version: *version, Revision: *revision, Binaries: map[string]string{}}
	if *created != "" {
		t, err := time.Parse(time.RFC3339, *created)
		if err != nil {
			return fmt.Errorf("--created: %w", err)
		}
		opts.Created = t
	}
	for _, p := range image.Platforms {
		opts.Binaries[p.OS+"/"+p.Architecture] = fmt.Sprintf("%s/mgo-%s-%s", *binDir, p.OS, p.Architecture)
	}
	start := time.Now()
	idx, err := image.Build(opts)
	if err != nil {
		return err
	}
	tag := strings.NewReplacer("+", "_").Replace(opts.Version)
	if err := image.WriteLayout(*out, idx, tag); err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("image %s (linux/amd64, linux/arm64) written to %s in %s\n", digest, *out, time.Since(start).Round(time.Millisecond))
	if *archive != "" {
		if err := image.WriteArchive(*out, *archive); err != nil {
			return err
		}
		fmt.Printf("oci-archive: %s\n", *archive)
	}
	if *push != "" {
		ref := *push
		if i := strings.LastIndex(ref, "/"); !strings.Contains(ref[i+1:], ":") && !strings.Contains(ref, "@") {
			ref += ":" + tag
		}
		d, err := image.Push(context.Background(), ref, idx, *insecure)
		if err != nil {
			return err
		}
		fmt.Printf("pushed %s\n", d)
	}
	return nil
}
