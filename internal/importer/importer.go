package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mygitops/mgo/internal/kube"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/render"
	"github.com/mygitops/mgo/internal/repo"
)

// EncryptFunc encrypts a secrets file for age recipients (SOPS), as
// secrets.Encrypt.
type EncryptFunc func(plain []byte, ageRecipients []string) ([]byte, error)

// DecryptFunc decrypts a SOPS-encrypted secrets file read from path.
type DecryptFunc func(path string, data []byte) ([]byte, error)

// Options say what to import and where.
type Options struct {
	// RepoDir is the gitops repository; it is created when missing.
	RepoDir string
	// Namespaces limits the import to releases of these namespaces (all
	// when empty).
	Namespaces []string
	// ChartRepos are chart repositories added to mygitops.yaml (when it
	// does not list them yet) and searched for the releases' charts.
	ChartRepos []ChartRepo
	// Images maps an image repository (registry.acme.io/acme/app) to the
	// trigger repo (gitlab.com/acme/app) whose header entry feeds it.
	Images map[string]string
	// SecretKeys are value key names (or path.Match patterns) that hold
	// secrets, beside the built-in ones (password, token, secret, key...).
	SecretKeys []string
	// AgeRecipients encrypt the secrets files with SOPS, through Encrypt.
	AgeRecipients []string
	Encrypt       EncryptFunc
	// Decrypt, when set, opens the encrypted secrets file a release
	// already has: when it holds the same values, the file is kept as it
	// is (encryption is not deterministic), so importing again changes
	// nothing.
	Decrypt DecryptFunc
	// AllowPlaintextSecrets writes secrets files in clear when there are
	// no AgeRecipients. Without it such an import is refused.
	AllowPlaintextSecrets bool
	// RawSelector, a label selector, also exports the matching objects no
	// Helm release owns as raw manifests.
	RawSelector string
	// Force writes the files even when they do not render the live
	// cluster.
	Force bool
}

// Importer imports the Helm releases of one cluster.
type Importer struct {
	cluster *kube.Cluster
	charts  *render.Charts
	engine  *reconcile.Engine
	log     *slog.Logger
}

// New returns an importer for a cluster. engine must be an engine of that
// cluster (it proves the import with its Diff); the cluster's name is the
// directory installations/<name> of the repo.
func New(cluster *kube.Cluster, charts *render.Charts, engine *reconcile.Engine, log *slog.Logger) (*Importer, error) {
	if cluster == nil || charts == nil || engine == nil {
		return nil, errors.New("importer: a cluster, a chart source and an engine are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Importer{cluster: cluster, charts: charts, engine: engine, log: log.With("cluster", cluster.Name)}, nil
}

// release is one release on its way into the repo.
type release struct {
	rls     *releasev1.Release
	res     *ReleaseResult
	chart   *resolvedChart
	values  []byte
	secrets []byte // plaintext
}

// Run imports the cluster's releases into opts.RepoDir: list, resolve
// charts, build files, prove them against the live cluster, write. It
// returns ErrNotProven (nothing written unless Force) or
// ErrPlaintextSecrets (nothing written) with a Result that says why.
func (im *Importer) Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.RepoDir == "" {
		return nil, errors.New("importer: a repository directory is required")
	}
	if len(opts.AgeRecipients) > 0 && opts.Encrypt == nil {
		return nil, errors.New("importer: age recipients given but no SOPS encryption available")
	}
	res := &Result{Cluster: im.cluster.Name}
	clusterDir := path.Join(repo.InstallationsDir, im.cluster.Name)

	// The proof renders from a private copy of what the import writes.
	stage, err := os.MkdirTemp("", "mgo-import-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	files := map[string][]byte{} // repo-relative path -> content

	config, err := configWithRepos(opts.RepoDir, opts.ChartRepos)
	if err != nil {
		return nil, err
	}
	if config != nil {
		files[repo.ConfigFile] = config
	}
	if err := writeFiles(stage, map[string][]byte{repo.ConfigFile: config, path.Join(clusterDir, ".keep"): nil}); err != nil {
		return nil, err
	}
	staged, err := repo.Load(stage, repo.LoadOptions{Cluster: im.cluster.Name})
	if err != nil {
		return nil, err
	}
	if errs := staged.Problems.Errors(); len(errs) > 0 {
		return nil, fmt.Errorf("%s: %v", repo.ConfigFile, errors.Join(problemErrors(errs)...))
	}
	existing := existingFiles(opts.RepoDir, im.cluster.Name)

	rels, err := im.list(opts.Namespaces)
	if err != nil {
		return nil, err
	}
	fileNames := releaseFileNames(rels, existing)
	taken := map[string]takenChart{}
	var imported []*release
	// Each release keeps a pointer to its result: the slice never grows
	// past its capacity.
	res.Releases = make([]ReleaseResult, 0, len(rels))
	for _, rls := range rels {
		res.Releases = append(res.Releases, ReleaseResult{Namespace: rls.Namespace, Name: rls.Name, Revision: rls.Version})
		r := &release{rls: rls, res: &res.Releases[len(res.Releases)-1]}
		if st := rls.Info.Status.String(); st != "deployed" {
			r.res.Error = fmt.Sprintf("release is %s (revision %d): import it once it is deployed", st, rls.Version)
			continue
		}
		if err := im.build(ctx, opts, staged.Config, r, taken); err != nil {
			r.res.Error = err.Error()
			continue
		}
		base := fileNames[rls.Namespace+"/"+rls.Name]
		r.res.File = path.Join(clusterDir, base+repo.ValuesSuffix)
		files[r.res.File] = r.values
		if r.secrets != nil {
			r.res.SecretsFile = path.Join(clusterDir, base+repo.SecretsSuffix)
			files[r.res.SecretsFile] = r.secrets
		}
		imported = append(imported, r)
	}
	var plaintext []string
	for _, r := range imported {
		if r.secrets != nil && len(opts.AgeRecipients) == 0 && !opts.AllowPlaintextSecrets {
			plaintext = append(plaintext, fmt.Sprintf("%s/%s (%s)", r.rls.Namespace, r.rls.Name, strings.Join(r.res.Secrets, ", ")))
		}
	}
	if len(plaintext) > 0 {
		return res, fmt.Errorf("%w: %s; give --age-recipient to encrypt them with SOPS, or --allow-plaintext-secrets", ErrPlaintextSecrets, strings.Join(plaintext, "; "))
	}

	var rawObjects []*unstructured.Unstructured
	if opts.RawSelector != "" {
		raw, objs, err := im.exportRaw(ctx, opts.RawSelector, opts.Namespaces, clusterDir)
		if err != nil {
			return nil, err
		}
		for f, b := range raw.files {
			files[f] = b
		}
		res.Raw, rawObjects = raw.results, objs
	}

	// Prove: render the staged files and diff them with the live cluster.
	stagedFiles, err := existingRaw(opts.RepoDir, clusterDir)
	if err != nil {
		return nil, err
	}
	for f, b := range files {
		stagedFiles[f] = b
	}
	for _, r := range imported {
		if r.chart.Files != nil {
			for f, b := range r.chart.Files {
				stagedFiles[path.Join(r.chart.Dir, f)] = b
			}
		} else if r.chart.Source == FromRepoDir {
			if err := os.CopyFS(filepath.Join(stage, filepath.FromSlash(r.chart.Dir)), os.DirFS(filepath.Join(opts.RepoDir, filepath.FromSlash(r.chart.Dir)))); err != nil && !errors.Is(err, os.ErrExist) {
				return nil, err
			}
		}
	}
	if err := writeFiles(stage, stagedFiles); err != nil {
		return nil, err
	}
	if err := im.prove(ctx, stage, res, imported, rawObjects); err != nil {
		return nil, err
	}
	res.Proven = !res.Failed()
	if !res.Proven && !opts.Force {
		return res, ErrNotProven
	}
	res.Forced = !res.Proven

	// Encrypt the secrets (an unchanged secrets file is kept as it is) and
	// write what changed.
	for _, r := range imported {
		if r.secrets == nil || len(opts.AgeRecipients) == 0 {
			continue
		}
		if keepEncrypted(opts, r) {
			files[r.res.SecretsFile] = nil // stays as it is
			continue
		}
		enc, err := opts.Encrypt(r.secrets, opts.AgeRecipients)
		if err != nil {
			return res, fmt.Errorf("%s: encrypting: %w", r.res.SecretsFile, err)
		}
		files[r.res.SecretsFile] = enc
	}
	for _, r := range imported {
		if r.chart.Files == nil {
			continue
		}
		for f, b := range r.chart.Files {
			files[path.Join(r.chart.Dir, f)] = b
		}
	}
	res.Files, err = writeChanged(opts.RepoDir, files, chartDirOf(imported))
	if err != nil {
		return res, err
	}
	res.Written = true
	if !res.Proven {
		return res, ErrNotProven
	}
	return res, nil
}

// keepEncrypted reports whether the release's secrets file in the repo
// already holds its secret values, encrypted.
func keepEncrypted(opts Options, r *release) bool {
	if opts.Decrypt == nil {
		return false
	}
	cur, err := os.ReadFile(filepath.Join(opts.RepoDir, filepath.FromSlash(r.res.SecretsFile)))
	if err != nil {
		return false
	}
	plain, err := opts.Decrypt(r.res.SecretsFile, cur)
	if err != nil {
		return false
	}
	a, err1 := common.ReadValues(plain)
	b, err2 := common.ReadValues(r.secrets)
	return err1 == nil && err2 == nil && jsonEqual(a, b)
}

func problemErrors(ps []repo.Problem) []error {
	var out []error
	for _, p := range ps {
		out = append(out, errors.New(p.String()))
	}
	return out
}

// list returns the latest revision of every release of the cluster (of
// namespaces, when given), by namespace and name.
func (im *Importer) list(namespaces []string) ([]*releasev1.Release, error) {
	cfg, err := im.cluster.Helm("", nil)
	if err != nil {
		return nil, err
	}
	l := action.NewList(cfg)
	l.AllNamespaces = true
	l.StateMask = action.ListAll
	out, err := l.Run()
	if err != nil {
		return nil, fmt.Errorf("listing Helm releases: %w", err)
	}
	var rels []*releasev1.Release
	for _, o := range out {
		r, ok := o.(*releasev1.Release)
		if !ok {
			return nil, fmt.Errorf("listing Helm releases: unexpected release type %T", o)
		}
		if len(namespaces) > 0 && !slices.Contains(namespaces, r.Namespace) {
			continue
		}
		rels = append(rels, r)
	}
	slices.SortFunc(rels, func(a, b *releasev1.Release) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return rels, nil
}

// build resolves the chart of a release and builds its values and secrets
// files.
func (im *Importer) build(ctx context.Context, opts Options, cfg *repo.Config, r *release, taken map[string]takenChart) error {
	rls := r.rls
	if rls.Chart == nil || rls.Chart.Metadata == nil {
		return errors.New("the release stores no chart")
	}
	rc, err := im.resolveChart(ctx, opts.RepoDir, cfg, rls.Chart, taken)
	if err != nil {
		return err
	}
	r.chart = rc
	r.res.Chart, r.res.Version, r.res.ChartSource = rc.Chart, rc.Version, rc.Source

	user, _ := deepCopy(rls.Config).(map[string]any)
	if user == nil {
		user = map[string]any{}
	}
	links, warnings, err := im.imageLinks(opts.Images, rls, user)
	if err != nil {
		return err
	}
	r.res.Warnings = warnings
	for _, l := range links {
		r.res.Images = append(r.res.Images, l.TriggerRepo)
	}
	secrets, moved := splitSecrets(user, opts.SecretKeys, "")
	r.res.Secrets = moved
	h := repo.Header{Chart: rc.Chart, Version: rc.Version, Name: rls.Name, Namespace: rls.Namespace}
	if r.values, err = valuesFile(h, links, user); err != nil {
		return err
	}
	if len(secrets) > 0 {
		if r.secrets, err = secretsFile(secrets); err != nil {
			return err
		}
	}
	return nil
}

// imageLinks finds, for every image of opts the release runs, the values
// mapping that sets it.
func (im *Importer) imageLinks(images map[string]string, rls *releasev1.Release, user map[string]any) ([]imageLink, []string, error) {
	if len(images) == 0 {
		return nil, nil, nil
	}
	objs, err := render.DecodeManifest(rls.Manifest)
	if err != nil {
		return nil, nil, fmt.Errorf("manifest of revision %d: %w", rls.Version, err)
	}
	running := map[string]bool{}
	for _, o := range objs {
		collectImages(o.Object, running)
	}
	effective := repo.MergeValues(rls.Chart.Values, user, repo.NullsDelete)
	var links []imageLink
	var warnings []string
	for _, img := range sortedKeys(images) {
		runs := false
		for ref := range running {
			if repo.SameRepository(repo.ImageRepository(ref), img) {
				runs = true
			}
		}
		if !runs {
			continue
		}
		p, repository, tag, ok := findImageField(effective, img)
		if !ok {
			warnings = append(warnings, fmt.Sprintf("runs %s, but no values mapping has repository: %s; add its header image entry by hand", img, img))
			continue
		}
		links = append(links, imageLink{TriggerRepo: images[img], Repository: repository, Tag: tag, Path: p})
	}
	return links, warnings, nil
}

// collectImages records every string under an "image" key.
func collectImages(v any, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "image" {
				out[s] = true
				continue
			}
			collectImages(e, out)
		}
	case []any:
		for _, e := range x {
			collectImages(e, out)
		}
	}
}

// existingRaw returns the raw manifest files the cluster already has in
// the repo: the proof diffs them too, so that their objects do not count
// as removed.
func existingRaw(repoDir, clusterDir string) (map[string][]byte, error) {
	out := map[string][]byte{}
	ents, err := os.ReadDir(filepath.Join(repoDir, filepath.FromSlash(clusterDir)))
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), repo.RawSuffix) {
			b, err := os.ReadFile(filepath.Join(repoDir, filepath.FromSlash(clusterDir), e.Name()))
			if err != nil {
				return nil, err
			}
			out[path.Join(clusterDir, e.Name())] = b
		}
	}
	return out, nil
}

// existingFiles maps namespace/name of the releases already in the repo
// for the cluster to their values file base name.
func existingFiles(repoDir, cluster string) map[string]string {
	out := map[string]string{}
	r, err := repo.Load(repoDir, repo.LoadOptions{Cluster: cluster})
	if err != nil {
		return out
	}
	for _, rel := range r.Clusters[cluster].Releases {
		if rel.Header.Name != "" {
			out[rel.Header.Namespace+"/"+rel.Header.Name] = strings.TrimSuffix(path.Base(rel.File), repo.ValuesSuffix)
		}
	}
	return out
}

// releaseFileNames names each release's files: the file it already has,
// else its name, else (two releases of one name) namespace-name.
func releaseFileNames(rels []*releasev1.Release, existing map[string]string) map[string]string {
	count := map[string]int{}
	for _, r := range rels {
		count[r.Name]++
	}
	used := map[string]bool{}
	for _, b := range existing {
		used[b] = true
	}
	out := map[string]string{}
	for _, r := range rels {
		key := r.Namespace + "/" + r.Name
		if b, ok := existing[key]; ok {
			out[key] = b
			continue
		}
		b := r.Name
		if count[r.Name] > 1 || used[b] {
			b = r.Namespace + "-" + r.Name
		}
		used[b] = true
		out[key] = b
	}
	return out
}

// prove diffs the staged repo against the live cluster and records, per
// release, the objects that differ.
func (im *Importer) prove(ctx context.Context, stage string, res *Result, imported []*release, raw []*unstructured.Unstructured) error {
	staged, err := repo.Load(stage, repo.LoadOptions{Cluster: im.cluster.Name})
	if err != nil {
		return err
	}
	byFile := map[string]*ReleaseResult{}
	for _, r := range imported {
		byFile[r.res.File] = r.res
	}
	for _, p := range staged.Problems.Errors() {
		if rr, ok := byFile[p.File]; ok {
			rr.Error = p.String()
		}
	}
	d, err := im.engine.Diff(ctx, staged, reconcile.Options{})
	if err != nil {
		return err
	}
	for _, rd := range d.Releases {
		rr, ok := byFile[rd.File]
		if !ok {
			continue
		}
		if rd.Error != "" && rr.Error == "" {
			rr.Error = fmt.Sprintf("%s: %s", rd.Stage, rd.Error)
		}
		for _, o := range rd.Objects {
			if o.Action != reconcile.ObjectUnchanged {
				rr.Objects = append(rr.Objects, o)
			}
		}
	}
	if d.RawError != "" {
		return fmt.Errorf("raw manifests: %s", d.RawError)
	}
	res.RawDiff = im.rawDifferences(d.Raw)
	return nil
}

// writeFiles writes files under dir, creating directories.
func writeFiles(dir string, files map[string][]byte) error {
	for rel, b := range files {
		if b == nil && !strings.HasSuffix(rel, ".keep") {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// chartDirOf maps each file of a written chart to its chart directory, so
// that a chart is reported once.
func chartDirOf(imported []*release) map[string]string {
	out := map[string]string{}
	for _, r := range imported {
		for f := range r.chart.Files {
			out[path.Join(r.chart.Dir, f)] = r.chart.Dir
		}
	}
	return out
}

// writeChanged writes the files whose content differs from the repo's
// (each through a temporary file and a rename) and reports every file:
// created, updated or unchanged; a chart's files are reported as its
// directory.
func writeChanged(repoDir string, files map[string][]byte, chartDir map[string]string) ([]FileResult, error) {
	actions := map[string]string{}
	for _, rel := range sortedKeys(files) {
		b := files[rel]
		p := filepath.Join(repoDir, filepath.FromSlash(rel))
		action := Created
		if cur, err := os.ReadFile(p); err == nil {
			action = Updated
			if b == nil || bytes.Equal(cur, b) {
				action = Unchanged
			}
		} else if b == nil {
			continue
		}
		if action != Unchanged {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, err
			}
			tmp := p + ".mgo-import"
			if err := os.WriteFile(tmp, b, 0o644); err != nil {
				return nil, err
			}
			if err := os.Rename(tmp, p); err != nil {
				return nil, err
			}
		}
		key := rel
		if d, ok := chartDir[rel]; ok {
			key = d + "/"
			if prev, ok := actions[key]; ok && prev != Unchanged && action == Unchanged {
				continue
			}
			if prev, ok := actions[key]; ok && prev == Created {
				continue
			}
		}
		actions[key] = action
	}
	if err := os.MkdirAll(filepath.Join(repoDir, repo.InstallationsDir), 0o755); err != nil {
		return nil, err
	}
	var out []FileResult
	for _, k := range sortedKeys(actions) {
		out = append(out, FileResult{Path: k, Action: actions[k]})
	}
	return out, nil
}
