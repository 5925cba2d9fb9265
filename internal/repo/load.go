package repo

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v4/pkg/chart/common"

	"github.com/mygitops/mgo/internal/secrets"
	"github.com/mygitops/mgo/internal/yamlnode"
)

// InstallationsDir holds one directory per cluster.
const InstallationsDir = "installations"

// File name suffixes inside a cluster directory.
const (
	ValuesSuffix  = "-values.yaml"
	SecretsSuffix = "-secrets.yaml"
	RawSuffix     = "-raw.yaml"
)

// Sentinel errors for lookups that find nothing. Callers map them to
// "refused" answers (exit code 1, HTTP 404).
var (
	ErrNotARepo       = errors.New("not a gitops repository")
	ErrUnknownCluster = errors.New("unknown cluster")
)

// Repo is a loaded gitops repository.
type Repo struct {
	Dir      string // root directory
	Config   *Config
	Clusters map[string]*Cluster
	// Problems found while loading, in file and line order.
	Problems Problems
}

// Cluster is the content of installations/<name>/.
type Cluster struct {
	Name     string
	Releases []*Release // in file name order
	Raw      []*RawFile // in file name order
}

// Release is one Helm release: a values file and its optional secrets file.
type Release struct {
	Cluster     string
	File        string // values file, relative to the repo root
	SecretsFile string // "" when there is none
	Header      Header
	// Valid is false when the release has errors and must not be synced.
	Valid bool

	root string
	keys secrets.Keys // decrypt a SOPS-encrypted secrets file with these
	// secretsRead holds the secrets file's values once read (a sync reads
	// them to render, to install and to mask); nil: no caching.
	secretsRead *secretsCache
}

// RawFile is a file of raw Kubernetes manifests.
type RawFile struct {
	File    string // relative to the repo root
	Objects []RawObject
	// Skipped counts the documents left out because of errors (at least 1
	// when the file could not be read or parsed at all). Objects is then
	// not all the file defines: applying it with pruning would delete the
	// objects of the skipped documents.
	Skipped int
	// DependsOn are the releases of the cluster its objects are applied
	// after: its first document may be a header `__mygitops: {dependsOn:
	// [...]}` (a ClusterIssuer after cert-manager's CRDs, say).
	DependsOn []Dependency
}

// RawObject is one document of a raw manifest file.
type RawObject struct {
	APIVersion, Kind, Name, Namespace string
	Line                              int
	Object                            map[string]any
}

// ID identifies the object for messages and duplicate checks.
func (o RawObject) ID() string {
	if o.Namespace != "" {
		return fmt.Sprintf("%s %s/%s", o.Kind, o.Namespace, o.Name)
	}
	return fmt.Sprintf("%s %s", o.Kind, o.Name)
}

// LoadOptions select what Load reads.
type LoadOptions struct {
	// Cluster limits loading to one cluster ("" loads all). An unknown name
	// is an ErrUnknownCluster error.
	Cluster string
	// Keys decrypt SOPS-encrypted secrets files: Load checks that each
	// decrypts and that its MAC is intact, and Release.Values decrypts
	// with them. Without keys an encrypted file is a warning (not
	// checked) and its release cannot be rendered.
	Keys secrets.Keys
	// Cache, when set, keeps what values files say by their content, for
	// the next Load of a tree that differs in a few files only.
	Cache *ParseCache
}

// Load reads the repository at dir. It returns an error only when it cannot
// run at all (dir is not a gitops repository, unknown cluster); everything
// wrong inside the files is collected in Repo.Problems.
func Load(dir string, opts LoadOptions) (*Repo, error) {
	inst := filepath.Join(dir, InstallationsDir)
	fi, err := os.Lstat(inst)
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%w: %s/%s %s", ErrNotARepo, dir, InstallationsDir, errSymlink)
	}
	if err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s has no %s/ directory", ErrNotARepo, dir, InstallationsDir)
	}
	ps := &problems{}
	r := &Repo{Dir: dir, Clusters: map[string]*Cluster{}}
	r.Config = parseConfig(dir, ps)

	ents, err := os.ReadDir(inst)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", inst, err)
	}
	var names []string
	for _, e := range ents {
		rel := path.Join(InstallationsDir, e.Name())
		switch {
		case strings.HasPrefix(e.Name(), "."):
		case e.Type()&fs.ModeSymlink != 0:
			ps.errorf(rel, 0, "%s", errSymlink)
		case !e.IsDir():
			ps.warnf(rel, 0, "not a cluster directory; files belong in %s/<cluster>/", InstallationsDir)
		default:
			names = append(names, e.Name())
		}
	}
	if opts.Cluster != "" {
		if !slices.Contains(names, opts.Cluster) {
			return nil, fmt.Errorf("%w %q: no directory %s/%s in %s (clusters: %s)",
				ErrUnknownCluster, opts.Cluster, InstallationsDir, opts.Cluster, dir, listOrNone(names))
		}
		names = []string{opts.Cluster}
	}
	lc := newLoadContext(dir, opts.Cache)
	for _, name := range names {
		r.Clusters[name] = loadCluster(dir, name, r.Config, opts.Keys, ps, lc)
	}
	for name, s := range r.Config.Clusters {
		if opts.Cluster == "" && r.Clusters[name] == nil {
			ps.warnf(ConfigFile, s.Line, "clusters.%s: no directory %s/%s", name, InstallationsDir, name)
		}
	}
	ps.list.sort()
	r.Problems = ps.list
	return r, nil
}

// ClusterNames returns the cluster names in order.
func (r *Repo) ClusterNames() []string {
	names := make([]string, 0, len(r.Clusters))
	for n := range r.Clusters {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func loadCluster(root, name string, cfg *Config, keys secrets.Keys, ps *problems, lc *loadContext) *Cluster {
	c := &Cluster{Name: name}
	dir := path.Join(InstallationsDir, name)
	ents, err := os.ReadDir(filepath.Join(root, dir))
	if err != nil {
		ps.errorf(dir, 0, "cannot read: %v", err)
		return c
	}
	files := map[string]bool{}
	for _, e := range ents {
		files[e.Name()] = !e.IsDir()
	}
	released := map[string]string{} // namespace/name -> file
	badSecrets := map[string]bool{}
	for _, e := range ents {
		fname, rel := e.Name(), path.Join(dir, e.Name())
		switch {
		case strings.HasPrefix(fname, "."):
		case e.Type()&fs.ModeSymlink != 0 && !strings.HasSuffix(fname, ValuesSuffix) && !strings.HasSuffix(fname, RawSuffix):
			ps.errorf(rel, 0, "%s", errSymlink)
			badSecrets[rel] = true
		case e.IsDir():
			ps.warnf(rel, 0, "subdirectories of a cluster directory are ignored")
		case strings.HasSuffix(fname, ValuesSuffix):
			rl := loadRelease(root, name, rel, cfg, ps, lc)
			rl.keys, rl.secretsRead = keys, &secretsCache{}
			secrets := strings.TrimSuffix(fname, ValuesSuffix) + SecretsSuffix
			if files[secrets] {
				rl.SecretsFile = path.Join(dir, secrets)
			}
			if rl.Header.Name != "" && rl.Header.Namespace != "" {
				key := rl.Header.Namespace + "/" + rl.Header.Name
				if first, dup := released[key]; dup {
					ps.errorf(rel, rl.Header.Line, "release %s in namespace %s is already defined by %s", rl.Header.Name, rl.Header.Namespace, first)
					rl.Valid = false
				} else {
					released[key] = rel
				}
			}
			c.Releases = append(c.Releases, rl)
		case strings.HasSuffix(fname, SecretsSuffix):
			values := strings.TrimSuffix(fname, SecretsSuffix) + ValuesSuffix
			if !files[values] {
				ps.errorf(rel, 0, "secrets file without its values file %s", path.Join(dir, values))
			} else if !checkSecrets(root, rel, keys, ps) {
				badSecrets[rel] = true
			}
		case strings.HasSuffix(fname, RawSuffix):
			c.Raw = append(c.Raw, loadRaw(root, rel, ps))
		default:
			ps.warnf(rel, 0, "not recognized: files here are <release>%s, <release>%s or <name>%s", ValuesSuffix, SecretsSuffix, RawSuffix)
		}
	}
	for _, rl := range c.Releases {
		if rl.SecretsFile != "" && badSecrets[rl.SecretsFile] {
			rl.Valid = false // its values would be incomplete
		}
	}
	checkRawDuplicates(c, ps)
	checkDependencies(c, ps)
	return c
}

func loadRelease(root, cluster, rel string, cfg *Config, ps *problems, lc *loadContext) *Release {
	rl := &Release{Cluster: cluster, File: rel, root: root}
	b, err := readRepoFile(root, rel, MaxValuesFileSize)
	if err != nil {
		readProblem(rel, err, ps)
		return rl
	}
	p, ok := lc.lookup(cluster, rel, b)
	if !ok {
		p = parseRelease(cluster, rel, b, cfg)
		lc.store(cluster, rel, b, p)
	}
	rl.Header, rl.Valid = p.header.clone(), p.valid
	ps.list = append(ps.list, p.problems...)
	if !p.parsed {
		return rl
	}
	if ref, err := ParseChartRef(rl.Header.Chart); err == nil && ref.Kind == ChartInRepo {
		if msg := lc.chartLinks(root, ref.Path); msg != "" {
			ps.errorf(rel, p.chartLine, "header: chart %s: %s", rl.Header.Chart, msg)
			rl.Valid = false
		}
	}
	return rl
}

// parseRelease is what a values file says, read from its content and the
// configuration alone (nothing else of the tree): the header, whether the
// release may be synced, and the problems found.
func parseRelease(cluster, rel string, b []byte, cfg *Config) parsedRelease {
	ps := &problems{}
	var p parsedRelease
	doc, ok := singleDocument(rel, b, ps)
	if !ok {
		p.problems = ps.list
		return p
	}
	p.parsed = true
	p.header, p.valid = parseHeader(rel, doc, cfg, ps)
	if !helmReads(rel, b, ps) {
		p.valid = false
	}
	hn := yamlnode.Lookup(doc, HeaderKey)
	p.chartLine = valueLine(hn, "chart", p.header.Line)
	if s := cfg.Cluster(cluster); s.IgnoreInvalid && p.header.Line > 0 {
		ps.errorf(rel, p.header.Line, "not synced until clusters.%s.ignoreDifferences in %s (line %d) is fixed: a sync without its rules would revert the fields they leave alone",
			cluster, ConfigFile, s.IgnoreLine)
		p.valid = false
	}
	if s := cfg.Cluster(cluster); s.HealthInvalid && p.header.Line > 0 {
		ps.errorf(rel, p.header.Line, "not synced until clusters.%s.health in %s (line %d) is fixed: a wait without its rules would call objects ready that are not",
			cluster, ConfigFile, s.HealthLine)
		p.valid = false
	}
	if s := cfg.Cluster(cluster); len(s.AllowedImages) > 0 {
		for _, img := range p.header.Images {
			name := img.Repository
			if img.Image != "" {
				name = ImageRepository(img.Image)
			}
			if !s.ImageAllowed(name) {
				ps.errorf(rel, img.Line, "header: images.%s: image repository %q is not allowed in cluster %s (clusters.%s.allowedImages in %s: %s)",
					img.TriggerRepo, name, cluster, cluster, ConfigFile, strings.Join(s.AllowedImages, ", "))
				p.valid = false
			}
		}
	}
	p.problems = ps.list
	return p
}

// helmReads reports whether Helm reads the values file as mgo does (its
// YAML reader is another one: it refuses, for one, a !!binary value that
// is not base64). The file has passed yamlnode's checks.
func helmReads(rel string, b []byte, ps *problems) bool {
	if _, err := common.ReadValues(b); err != nil {
		ps.errorf(rel, yamlnode.ErrorLine(err), "Helm cannot read these values: %v", err)
		return false
	}
	return true
}

// yamlProblem reports an error of yamlnode.Parse or the YAML parser.
func yamlProblem(rel, what string, err error, ps *problems) {
	var e *yamlnode.Error
	if errors.As(err, &e) {
		ps.errorf(rel, e.Line, "%s%s", what, e.Msg)
		return
	}
	ps.errorf(rel, yamlnode.ErrorLine(err), "%sinvalid YAML: %v", what, err)
}

// singleDocument parses a values or secrets file: one YAML document (a
// leading `---` and a trailing `...` are fine, a second document is not,
// since Helm would ignore it).
func singleDocument(rel string, b []byte, ps *problems) (*yaml.Node, bool) {
	docs, err := yamlnode.Parse(b)
	switch {
	case err != nil:
		yamlProblem(rel, "", err, ps)
		return nil, false
	case len(docs) == 0:
		ps.errorf(rel, 0, "file is empty")
		return nil, false
	case len(docs) > 1:
		ps.errorf(rel, docs[1].Line, "a values file holds one YAML document; Helm ignores this second one")
		return nil, false
	}
	doc := docs[0]
	if len(doc.Content) == 0 {
		ps.errorf(rel, 0, "file is empty")
		return nil, false
	}
	return doc.Content[0], true
}

// checkSecrets reports the problems of a secrets file; false when it has
// errors. A SOPS-encrypted file is decrypted with keys (its MAC checked)
// and its clear content checked; without keys it is a warning that names
// it as not checked. A clear-text file is a warning.
func checkSecrets(root, rel string, keys secrets.Keys, ps *problems) bool {
	b, err := readRepoFile(root, rel, MaxValuesFileSize)
	if err != nil {
		readProblem(rel, err, ps)
		return false
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return true // an empty secrets file adds nothing
	}
	// yamlnode's checks (alias bombs, nesting) come before any other
	// reader sees the file, SOPS's included.
	if _, err := yamlnode.Parse(b); err != nil {
		yamlProblem(rel, "", err, ps)
		return false
	}
	if secrets.IsEncrypted(b) {
		if keys.Empty() {
			ps.warnf(rel, 0, "SOPS-encrypted; not checked: no age key (set --age-key-file, %s or %s)", secrets.EnvAgeKeyFile, secrets.EnvAgeKey)
			return true
		}
		clear, err := secrets.Decrypt(rel, b, keys)
		if err != nil {
			ps.errorf(rel, 0, "%s", secrets.Reason(err))
			return false
		}
		return checkSecretsContent(rel, clear, true, ps)
	}
	ps.warnf(rel, 0, "not encrypted: anyone who reads the repository reads these values; encrypt it with `sops --encrypt --age <recipient> --in-place %s` (docs/secrets.md)", rel)
	return checkSecretsContent(rel, b, false, ps)
}

// checkSecretsContent checks the clear YAML of a secrets file. Lines of a
// decrypted file are not those of the file in the repository: its
// problems name the file only.
func checkSecretsContent(rel string, b []byte, decrypted bool, ps *problems) bool {
	if decrypted {
		sub := &problems{}
		ok := checkSecretsContent(rel, b, false, sub)
		for _, p := range sub.list {
			p.Line = 0
			p.Message = "decrypted: " + p.Message
			ps.list = append(ps.list, p)
		}
		return ok
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return true
	}
	doc, ok := singleDocument(rel, b, ps)
	if !ok {
		return false
	}
	es, isMap := yamlnode.Entries(doc)
	if !isMap {
		ps.errorf(rel, doc.Line, "a secrets file must be a mapping of values, not %s", yamlnode.KindName(doc))
		return false
	}
	ok = helmReads(rel, b, ps)
	for _, e := range es {
		if e.Key == HeaderKey {
			ps.errorf(rel, e.KeyNode.Line, "the %s header belongs in the values file, not the secrets file", HeaderKey)
			ok = false
		}
	}
	return ok
}

func loadRaw(root, rel string, ps *problems) *RawFile {
	rf := &RawFile{File: rel}
	b, err := readRepoFile(root, rel, MaxRawFileSize)
	if err != nil {
		readProblem(rel, err, ps)
		rf.Skipped = 1
		return rf
	}
	if err := yamlnode.CheckUTF8(b); err != nil {
		yamlProblem(rel, "", err, ps)
		rf.Skipped = 1
		return rf
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	for i := 1; ; i++ {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			err = yamlnode.Check(&doc)
		}
		if err != nil {
			yamlProblem(rel, fmt.Sprintf("document %d: ", i), err, ps)
			rf.Skipped++
			return rf
		}
		if len(doc.Content) == 0 || yamlnode.Resolve(doc.Content[0]).Tag == "!!null" {
			continue // empty documents (`---` twice) are allowed
		}
		n := doc.Content[0]
		if i == 1 && n.Kind == yaml.MappingNode && yamlnode.Lookup(n, HeaderKey) != nil {
			if !parseRawHeader(rel, n, rf, ps) {
				rf.Skipped++ // the file is not applied as it means to be
			}
			continue
		}
		if n.Kind != yaml.MappingNode {
			ps.errorf(rel, n.Line, "document %d must be a Kubernetes object (a mapping), not %s", i, yamlnode.KindName(n))
			rf.Skipped++
			continue
		}
		var obj map[string]any
		if err := n.Decode(&obj); err != nil {
			ps.errorf(rel, yamlnode.ErrorLine(err), "document %d: %v", i, err)
			rf.Skipped++
			continue
		}
		obj = jsonValues(obj).(map[string]any)
		o := RawObject{Line: n.Line, Object: obj}
		o.APIVersion, _ = yamlnode.Scalar(yamlnode.Lookup(n, "apiVersion"))
		o.Kind, _ = yamlnode.Scalar(yamlnode.Lookup(n, "kind"))
		if md := yamlnode.Lookup(n, "metadata"); md != nil {
			o.Name, _ = yamlnode.Scalar(yamlnode.Lookup(md, "name"))
			o.Namespace, _ = yamlnode.Scalar(yamlnode.Lookup(md, "namespace"))
		}
		var missing []string
		for _, m := range []struct{ key, val string }{{"apiVersion", o.APIVersion}, {"kind", o.Kind}, {"metadata.name", o.Name}} {
			if m.val == "" {
				missing = append(missing, m.key)
			}
		}
		if len(missing) > 0 {
			ps.errorf(rel, n.Line, "document %d: %s missing", i, strings.Join(missing, ", "))
			rf.Skipped++
			continue
		}
		if strings.HasSuffix(o.Kind, "List") {
			ps.errorf(rel, n.Line, "document %d: %s: write the items as separate documents", i, o.Kind)
			rf.Skipped++
			continue
		}
		if !checkStringData(rel, i, n, o, ps) {
			rf.Skipped++
			continue
		}
		rf.Objects = append(rf.Objects, o)
	}
	return rf
}

// stringMaps are the fields whose values the API server accepts only as
// strings, by core (apiVersion v1) kind. yaml.v3 reads `replicas: 3` as a
// number, and the apply would fail in the middle of a sync.
var stringMaps = map[string][]string{
	"ConfigMap": {"data", "binaryData"},
	"Secret":    {"data", "stringData"},
}

// checkStringData reports the values of a ConfigMap's or Secret's string
// maps that are not strings; false when there are any.
func checkStringData(rel string, doc int, n *yaml.Node, o RawObject, ps *problems) bool {
	if o.APIVersion != "v1" {
		return true
	}
	ok := true
	for _, field := range stringMaps[o.Kind] {
		m := yamlnode.Lookup(n, field)
		if m == nil || yamlnode.IsNull(m) {
			continue
		}
		es, isMap := yamlnode.Entries(m)
		if !isMap {
			ps.errorf(rel, m.Line, "document %d: %s %s: %s must be a mapping of strings, not %s", doc, o.Kind, o.Name, field, yamlnode.KindName(m))
			ok = false
			continue
		}
		for _, e := range es {
			if v := e.Value; v == nil || v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
				ps.errorf(rel, e.Raw.Line, "document %d: %s %s: %s.%s must be a string, not %s (the API server refuses it; quote the value)",
					doc, o.Kind, o.Name, field, e.Key, scalarKind(v))
				ok = false
			}
		}
	}
	return ok
}

// scalarKind names what a node holds, for messages about strings.
func scalarKind(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return yamlnode.KindName(n)
	}
	switch n.Tag {
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "null"
	case "!!timestamp":
		return "a timestamp"
	}
	return "a scalar tagged " + n.Tag
}

// checkRawDuplicates reports an object defined twice in a cluster's raw
// files: the second would silently win.
func checkRawDuplicates(c *Cluster, ps *problems) {
	seen := map[string]string{}
	for _, rf := range c.Raw {
		for _, o := range rf.Objects {
			group, _, _ := strings.Cut(o.APIVersion, "/")
			if !strings.Contains(o.APIVersion, "/") {
				group = ""
			}
			key := group + "|" + o.Kind + "|" + o.Namespace + "|" + o.Name
			where := fmt.Sprintf("%s:%d", rf.File, o.Line)
			if first, dup := seen[key]; dup {
				ps.errorf(rf.File, o.Line, "%s is already defined at %s", o.ID(), first)
				continue
			}
			seen[key] = where
		}
	}
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
