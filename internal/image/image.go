// Package image builds the container image of mgo without a container
// engine: a static mgo binary per platform on an empty base, with the CA
// certificates, a passwd entry for the non-root user and no shell, as one
// OCI image index (linux/amd64 and linux/arm64). It writes the index as an
// OCI image layout (and an oci-archive tarball of it) or pushes it to a
// registry.
//
// The Dockerfile at the root of the repository builds the same image with a
// container engine; the constants below are what both agree on, and a test
// holds the Dockerfile to them.
package image

import (
	"archive/tar"
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What the image is, shared with the Dockerfile.
const (
	// UID and GID of the user mgo runs as (distroless's "nonroot").
	UID = 65532
	GID = 65532
	// User is the image config's user.
	User = "65532:65532"
	// Home is the user's home directory and the working directory.
	Home = "/home/nonroot"
	// BinaryPath is where the mgo binary is.
	BinaryPath = "/usr/local/bin/mgo"
	// CAPath is where the CA certificates are (Go's crypto/x509 looks there).
	CAPath = "/etc/ssl/certs/ca-certificates.crt"
	// Port is the port `mgo serve` listens on by default.
	Port = "8080/tcp"
	// Source is the source repository of mgo.
	Source = "https://github.com/mygitops/mgo"
)

// Entrypoint and Cmd of the image: `mgo serve`, arguments appended.
var (
	Entrypoint = []string{BinaryPath}
	Cmd        = []string{"serve"}
	// Env is the image's environment.
	Env = []string{"PATH=/usr/local/bin", "HOME=" + Home, "SSL_CERT_FILE=" + CAPath}
)

// Passwd and Group are /etc/passwd and /etc/group of the image: root and
// the non-root user, neither with a login shell. The Dockerfile copies the
// same files (internal/image/rootfs).
var (
	//go:embed rootfs/etc/passwd
	Passwd []byte
	//go:embed rootfs/etc/group
	Group []byte
)

// Platforms are the platforms of the image index, in order.
var Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// Options say what to build the image from.
type Options struct {
	// Binaries maps "os/arch" of each of Platforms to a static mgo binary
	// built for it.
	Binaries map[string]string
	// CABundle is a PEM file of CA certificates (the build machine's, e.g.
	// /etc/ssl/certs/ca-certificates.crt from Debian's ca-certificates).
	CABundle string
	// Version and Revision of mgo (labels org.opencontainers.image.version
	// and .revision); Created is the build time (default: now).
	Version  string
	Revision string
	Created  time.Time
}

// DefaultCABundle is the CA bundle of Debian and Ubuntu machines.
const DefaultCABundle = "/etc/ssl/certs/ca-certificates.crt"

// Labels returns the OCI labels of an image of a version and revision.
func Labels(version, revision string, created time.Time) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "mgo",
		"org.opencontainers.image.description": "mygitops: GitOps delivery of Helm releases to Kubernetes",
		"org.opencontainers.image.version":     version,
		"org.opencontainers.image.revision":    revision,
		"org.opencontainers.image.source":      Source,
		"org.opencontainers.image.url":         Source,
		"org.opencontainers.image.created":     created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
}

// Build returns the image index of mgo for every platform in Platforms.
func Build(opts Options) (v1.ImageIndex, error) {
	if opts.Version == "" || opts.Revision == "" {
		return nil, errors.New("image: version and revision are required")
	}
	if opts.Created.IsZero() {
		opts.Created = time.Now()
	}
	ca, err := os.ReadFile(opts.CABundle)
	if err != nil {
		return nil, fmt.Errorf("image: CA certificates (install Debian's ca-certificates or give another bundle): %w", err)
	}
	if !bytes.Contains(ca, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("image: CA certificates: %s holds no PEM certificate", opts.CABundle)
	}
	base, err := layer([]entry{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: Passwd},
		{name: "etc/group", mode: 0o644, data: Group},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: strings.TrimPrefix(CAPath, "/"), mode: 0o644, data: ca},
		{name: "home/", mode: 0o755, dir: true},
		{name: strings.TrimPrefix(Home, "/") + "/", mode: 0o700, dir: true, uid: UID, gid: GID},
		{name: "tmp/", mode: 0o1777, dir: true},
	})
	if err != nil {
		return nil, err
	}
	labels := Labels(opts.Version, opts.Revision, opts.Created)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range Platforms {
		key := p.OS + "/" + p.Architecture
		path, ok := opts.Binaries[key]
		if !ok {
			return nil, fmt.Errorf("image: no mgo binary for %s", key)
		}
		img, err := platformImage(p, path, base, labels, opts.Created)
		if err != nil {
			return nil, fmt.Errorf("image: %s: %w", key, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{
				Platform:    &v1.Platform{OS: p.OS, Architecture: p.Architecture},
				Annotations: maps.Clone(labels),
			},
		})
	}
	return mutate.Annotations(idx, labels).(v1.ImageIndex), nil
}

func platformImage(p v1.Platform, binary string, base v1.Layer, labels map[string]string, created time.Time) (v1.Image, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	if err := checkBinary(bin, p); err != nil {
		return nil, fmt.Errorf("%s: %w", binary, err)
	}
	app, err := layer([]entry{
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/local/", mode: 0o755, dir: true},
		{name: "usr/local/bin/", mode: 0o755, dir: true},
		{name: strings.TrimPrefix(BinaryPath, "/"), mode: 0o755, data: bin},
	})
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{
			Created: v1.Time{Time: created}, CreatedBy: "mgo image: CA certificates, passwd, group, " + Home + ", /tmp", Comment: "base"}},
		mutate.Addendum{Layer: app, MediaType: types.OCILayer, History: v1.History{
			Created: v1.Time{Time: created}, CreatedBy: "mgo image: " + BinaryPath, Comment: "mgo " + labels["org.opencontainers.image.version"]}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = p.OS, p.Architecture
	cf.Created = v1.Time{Time: created}
	cf.Author = Source
	cf.Config = v1.Config{
		User:         User,
		Entrypoint:   slices.Clone(Entrypoint),
		Cmd:          slices.Clone(Cmd),
		Env:          slices.Clone(Env),
		WorkingDir:   Home,
		ExposedPorts: map[string]struct{}{Port: {}},
		Labels:       maps.Clone(labels),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, labels).(v1.Image), nil
}

// entry is one file or directory of a layer, owned by root unless said.
type entry struct {
	name     string
	mode     int64
	data     []byte
	uid, gid int
	dir      bool
}

// layer builds an OCI layer from entries, with fixed times so that the same
// files give the same digest.
func layer(entries []entry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			ModTime: time.Unix(0, 0).UTC(), Format: tar.FormatPAX,
			Typeflag: tar.TypeReg, Size: int64(len(e.data)),
		}
		if e.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}
