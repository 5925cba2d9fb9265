package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mygitops/mgo/internal/gitrepo"
)

// gitFlags are the flags that reach the gitops repository. Credentials are
// named by file or environment variable, never given on the command line.
type gitFlags struct {
	url, branch, workdir                string
	username, passwordFile, passwordEnv string
	bearerFile, bearerEnv, caFile       string
	sshKeyFile, sshKeyEnv, knownHosts   string
	insecureIgnoreHostKey, allowHTTP    bool
}

func (f *gitFlags) register(fs *pflag.FlagSet, urlFlag string) {
	fs.StringVar(&f.url, urlFlag, "", "gitops repository: https://, ssh:// or scp-like URL, file:// URL or local path")
	fs.StringVar(&f.branch, "branch", "main", "branch to commit to and sync from")
	fs.StringVar(&f.workdir, "git-workdir", "", "where mgo keeps its clone (default: a directory under the cache, one per URL)")
	fs.StringVar(&f.username, "git-username", "", "HTTPS basic-auth user (\"git\" when a password is set and this is empty)")
	fs.StringVar(&f.passwordFile, "git-password-file", "", "file holding the HTTPS password or access token")
	fs.StringVar(&f.passwordEnv, "git-password-env", "", "environment variable holding the HTTPS password or access token")
	fs.StringVar(&f.bearerFile, "git-bearer-token-file", "", "file holding an HTTPS bearer token")
	fs.StringVar(&f.bearerEnv, "git-bearer-token-env", "", "environment variable holding an HTTPS bearer token")
	fs.StringVar(&f.caFile, "git-ca-file", "", "extra CA bundle (PEM) trusted for HTTPS")
	fs.StringVar(&f.sshKeyFile, "ssh-key-file", "", "SSH private key for ssh URLs")
	fs.StringVar(&f.sshKeyEnv, "ssh-key-env", "", "environment variable holding the SSH private key")
	fs.StringVar(&f.knownHosts, "known-hosts", "", "known_hosts file holding the SSH server's host key (default ~/.ssh/known_hosts for ssh URLs)")
	fs.BoolVar(&f.insecureIgnoreHostKey, "insecure-ignore-host-key", false, "accept any SSH host key (tests only)")
	fs.BoolVar(&f.allowHTTP, "insecure-allow-http", false, "allow http:// repository URLs (tests and local demos only)")
}

// options builds gitrepo.Options; dataDir is where the clone goes when
// --git-workdir is not given.
func (f *gitFlags) options(dataDir string) (gitrepo.Options, error) {
	o := gitrepo.DefaultOptions()
	url := f.url
	if url == "" {
		return o, fmt.Errorf("a gitops repository URL or path is required")
	}
	if !strings.Contains(url, "://") && !strings.Contains(url, "@") {
		// A local path (a bare repository or a clone).
		abs, err := filepath.Abs(url)
		if err != nil {
			return o, err
		}
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			return o, fmt.Errorf("repository %s: not a URL and not a directory", url)
		}
		url = "file://" + abs
	}
	o.URL, o.Branch, o.InsecureAllowHTTP = url, f.branch, f.allowHTTP
	o.Dir = f.workdir
	if o.Dir == "" {
		sum := sha256.Sum256([]byte(url + "#" + f.branch))
		o.Dir = filepath.Join(dataDir, "clone-"+hex.EncodeToString(sum[:6]))
	}
	if err := os.MkdirAll(filepath.Dir(o.Dir), 0o700); err != nil {
		return o, err
	}
	a := &o.Auth
	a.Username, a.CAFile, a.InsecureIgnoreHostKey = f.username, f.caFile, f.insecureIgnoreHostKey
	a.Password = gitrepo.SecretRef{File: f.passwordFile, Env: f.passwordEnv}
	a.BearerToken = gitrepo.SecretRef{File: f.bearerFile, Env: f.bearerEnv}
	a.SSHKey = gitrepo.SecretRef{File: f.sshKeyFile, Env: f.sshKeyEnv}
	a.KnownHosts = f.knownHosts
	isSSH := strings.HasPrefix(url, "ssh://") || (!strings.Contains(url, "://") && strings.Contains(url, "@"))
	if isSSH && a.KnownHosts == "" && !a.InsecureIgnoreHostKey {
		if home, err := os.UserHomeDir(); err == nil {
			a.KnownHosts = filepath.Join(home, ".ssh", "known_hosts")
		}
	}
	return o, nil
}

// cacheBase is ~/.cache/mgo (or $XDG_CACHE_HOME/mgo).
func cacheBase() string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "mgo")
}
