package install

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/mygitops/mgo/internal/image"
	"github.com/mygitops/mgo/internal/version"
)

// pulled returns the image index `make image PUSH=...` pushed to the
// in-process registry, pulled back from it.
func pulled(t *testing.T) v1.ImageIndex {
	t.Helper()
	build(t)
	ref, err := name.ParseReference(registryHost+"/"+imageRepo+":"+testVersion, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("pulling %s: %v", ref, err)
	}
	return idx
}

// The image `make image` built and pushed is one OCI index of a linux/amd64
// and a linux/arm64 image; each runs mgo as the non-root user, has the OCI
// labels of the build, the CA certificates and no shell; the binary in the
// amd64 layer runs and prints the build's version.
func TestImage(t *testing.T) {
	idx := pulled(t)
	dir := build(t)

	// What was pushed is what was written to the layout.
	local, err := image.ReadLayout(filepath.Join(dir, "image"))
	if err != nil {
		t.Fatal(err)
	}
	dl, _ := local.Digest()
	dp, _ := idx.Digest()
	if dl != dp {
		t.Errorf("pushed index %s, layout index %s", dp, dl)
	}
	if mt, _ := idx.MediaType(); mt != types.OCIImageIndex {
		t.Errorf("index media type %s, want %s", mt, types.OCIImageIndex)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, d := range m.Manifests {
		platforms = append(platforms, d.Platform.String())
	}
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(platforms, want) {
		t.Fatalf("platforms %v, want %v", platforms, want)
	}
	if m.Annotations["org.opencontainers.image.version"] != testVersion {
		t.Errorf("index annotations %v", m.Annotations)
	}
	ca, err := os.ReadFile(image.DefaultCABundle)
	if err != nil {
		t.Fatal(err)
	}

	for _, d := range m.Manifests {
		t.Run(d.Platform.String(), func(t *testing.T) {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			c := cf.Config
			if cf.OS != d.Platform.OS || cf.Architecture != d.Platform.Architecture {
				t.Errorf("config platform %s/%s", cf.OS, cf.Architecture)
			}
			if c.User != "65532:65532" {
				t.Errorf("user %q, want 65532:65532 (non-root)", c.User)
			}
			if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/mgo"}) || !slices.Equal(c.Cmd, []string{"serve"}) {
				t.Errorf("entrypoint %q cmd %q", c.Entrypoint, c.Cmd)
			}
			want := map[string]string{
				"org.opencontainers.image.version":  testVersion,
				"org.opencontainers.image.revision": testCommit,
				"org.opencontainers.image.source":   "https://github.com/mygitops/mgo",
				"org.opencontainers.image.created":  testDate,
				"org.opencontainers.image.title":    "mgo",
			}
			for k, v := range want {
				if c.Labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
				}
			}

			files := imageFiles(t, img)
			for _, sh := range []string{"bin/sh", "bin/bash", "bin/ash", "bin/busybox", "usr/bin/sh"} {
				if _, ok := files[sh]; ok {
					t.Errorf("the image has a shell: /%s", sh)
				}
			}
			names := slices.Sorted(maps.Keys(files))
			wantNames := []string{"etc/", "etc/group", "etc/passwd", "etc/ssl/", "etc/ssl/certs/", "etc/ssl/certs/ca-certificates.crt",
				"home/", "home/nonroot/", "tmp/", "usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/mgo"}
			if !slices.Equal(names, wantNames) {
				t.Errorf("files %v\nwant %v", names, wantNames)
			}
			if h := files["home/nonroot/"].hdr; h.Uid != 65532 || h.Gid != 65532 {
				t.Errorf("/home/nonroot owned by %d:%d", h.Uid, h.Gid)
			}
			if h := files["usr/local/bin/mgo"].hdr; h.Uid != 0 || h.Mode != 0o755 {
				t.Errorf("mgo binary: uid %d mode %o (root-owned, not writable by the user)", h.Uid, h.Mode)
			}
			if string(files["etc/ssl/certs/ca-certificates.crt"].data) != string(ca) {
				t.Errorf("CA certificates differ from %s", image.DefaultCABundle)
			}
			passwd := files["etc/passwd"].data
			if !strings.Contains(string(passwd), "nonroot:x:65532:65532:") || strings.Contains(string(passwd), "/bin/sh") {
				t.Errorf("/etc/passwd:\n%s", passwd)
			}

			bin := files["usr/local/bin/mgo"].data
			if err := checkExecutable(bin, d.Platform.OS, d.Platform.Architecture); err != nil {
				t.Fatal(err)
			}
			if d.Platform.Architecture != runtime.GOARCH {
				return
			}
			info := runVersion(t, bin)
			if info.Version != testVersion || info.Commit != testCommit {
				t.Errorf("the image's mgo says %+v, want version %s commit %s", info, testVersion, testCommit)
			}
		})
	}

	// The oci-archive is a tarball of the layout.
	f, err := os.Open(filepath.Join(dir, "mgo-image.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[h.Name] = true
	}
	if !seen["oci-layout"] || !seen["index.json"] || !seen["blobs/sha256/"+dp.Hex] {
		t.Errorf("mgo-image.tar lacks oci-layout, index.json or the index blob")
	}
}

// imageFile is one entry of an image's layers, with its content.
type imageFile struct {
	hdr  *tar.Header
	data []byte
}

// imageFiles reads every entry of the image's layers (later layers win), in
// one pass over each layer.
func imageFiles(t *testing.T, img v1.Image) map[string]imageFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]imageFile{}
	for _, l := range layers {
		if mt, _ := l.MediaType(); mt != types.OCILayer {
			t.Errorf("layer media type %s, want %s", mt, types.OCILayer)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = imageFile{hdr: h, data: b}
		}
		rc.Close()
	}
	return files
}

// runVersion writes the mgo binary b to a file and returns what its
// `version -o json` says.
func runVersion(t *testing.T, b []byte) version.Info {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mgo")
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(path, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("mgo version: %v", err)
	}
	var info version.Info
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return info
}

// imageBinary returns the mgo binary of this machine's platform, as the
// pushed image holds it (image.ReadFile), written to a file once per run.
func imageBinary(t *testing.T) string {
	t.Helper()
	fromImage.once.Do(func() {
		idx := pulled(t)
		img, err := idx.Image(platformDigest(t, idx, runtime.GOARCH))
		if err != nil {
			fromImage.err = err
			return
		}
		b, err := image.ReadFile(img, image.BinaryPath)
		if err != nil {
			fromImage.err = err
			return
		}
		fromImage.path = filepath.Join(build(t), "mgo-from-image")
		fromImage.err = os.WriteFile(fromImage.path, b, 0o755)
	})
	if fromImage.err != nil || fromImage.path == "" {
		t.Fatalf("no mgo binary from the image: %v", fromImage.err)
	}
	return fromImage.path
}

var fromImage struct {
	once sync.Once
	path string
	err  error
}

func platformDigest(t *testing.T, idx v1.ImageIndex, arch string) v1.Hash {
	t.Helper()
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == arch {
			return d.Digest
		}
	}
	t.Fatalf("the image has no linux/%s", arch)
	return v1.Hash{}
}
