package gitrepo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Options configures a Repo. Start from DefaultOptions and set URL, Dir and
// Auth.
type Options struct {
	// URL of the gitops repository: https://host/path, ssh://user@host/path,
	// user@host:path (scp-like), or file:///path. Credentials must not be
	// part of the URL; they go in Auth.
	URL string `json:"url"`
	// Branch that mgo commits to and syncs from.
	Branch string `json:"branch"`
	// Dir is the working directory of the clone. mgo owns it: it is cloned
	// into on first use, reopened on restart when it holds a clone of URL,
	// and hard-reset before every change.
	Dir string `json:"dir"`
	// Auth holds the credentials for URL's protocol.
	Auth Auth `json:"auth"`
	// Committer is mgo's own identity, the committer of every commit (the
	// author is the requester).
	Committer Identity `json:"committer"`
	// PushRetries bounds how often a push that lost a race with another
	// pusher is retried (on a fresh fetch, with the change re-applied).
	PushRetries int `json:"pushRetries"`
	// RetryBackoff is the delay before the first retry; it doubles on each
	// further retry up to MaxRetryBackoff. Each delay is jittered uniformly
	// in [d/2, d).
	RetryBackoff    time.Duration `json:"retryBackoff"`
	MaxRetryBackoff time.Duration `json:"maxRetryBackoff"`
	// Timeout bounds each fetch and each push, from the connection to the
	// last byte of the answer. A remote that hangs fails a change within
	// about this long (twice when it starts hanging during the push: the
	// push, then the fetch that checks whether it landed), with ErrTimeout.
	Timeout time.Duration `json:"timeout"`
	// CloneTimeout bounds the first clone, which transfers the whole
	// history; Timeout when zero.
	CloneTimeout time.Duration `json:"cloneTimeout,omitempty"`
	// InsecureAllowHTTP allows http:// URLs, whose credentials and content
	// travel in clear text. For tests and local demos only.
	InsecureAllowHTTP bool `json:"insecureAllowHTTP,omitempty"`
	// Now returns the commit time; time.Now when nil.
	Now func() time.Time `json:"-"`
}

// Auth holds credentials by reference (file, environment variable) or as
// already-read Secrets. Which fields apply depends on the URL's protocol.
type Auth struct {
	// Username for HTTPS basic auth; "git" when a Password is set and this
	// is empty. With an access token as Password, GitHub accepts any name
	// (e.g. "x-access-token") and GitLab "oauth2".
	Username string `json:"username,omitempty"`
	// Password is the HTTPS basic-auth password or access token.
	Password SecretRef `json:"password,omitzero"`
	// BearerToken is sent as "Authorization: Bearer" over HTTPS instead of
	// basic auth.
	BearerToken SecretRef `json:"bearerToken,omitzero"`
	// CAFile is a PEM bundle of extra CAs trusted for HTTPS (on top of the
	// system roots).
	CAFile string `json:"caFile,omitempty"`

	// SSHKey is a PEM private key (OpenSSH, PKCS#1/#8) for ssh URLs. The
	// user is the one in the URL, "git" when it names none.
	SSHKey SecretRef `json:"sshKey,omitzero"`
	// SSHKeyPassphrase decrypts SSHKey when it is encrypted.
	SSHKeyPassphrase SecretRef `json:"sshKeyPassphrase,omitzero"`
	// KnownHosts is a known_hosts file that must hold the server's host
	// key; required for ssh URLs.
	KnownHosts string `json:"knownHosts,omitempty"`
	// InsecureIgnoreHostKey accepts any SSH host key, so a man in the middle
	// goes unnoticed. For tests only.
	InsecureIgnoreHostKey bool `json:"insecureIgnoreHostKey,omitempty"`
}

// DefaultOptions returns the defaults: branch main, committer
// "mgo <mgo@users.noreply.mgo>", 5 push retries (after lost races only)
// with backoff from 100ms doubling up to 3s, a 30 second timeout per fetch
// and push and 10 minutes for the first clone.
//
// 30 seconds: a fetch or push of a deploy moves a few objects and takes
// well under a second against a healthy host, so a remote silent for 30
// seconds is down, and the deploy waiting on it should fail with a clear
// error while its client still waits, rather than after minutes.
func DefaultOptions() Options {
	return Options{
		Branch:          "main",
		Committer:       Identity{Name: "mgo", Email: "mgo@" + NoReplyDomain},
		PushRetries:     5,
		RetryBackoff:    100 * time.Millisecond,
		MaxRetryBackoff: 3 * time.Second,
		Timeout:         30 * time.Second,
		CloneTimeout:    10 * time.Minute,
	}
}

func (o *Options) cloneTimeout() time.Duration {
	if o.CloneTimeout > 0 {
		return o.CloneTimeout
	}
	return o.Timeout
}

// ErrInvalidOptions is wrapped by every error New returns for bad options.
var ErrInvalidOptions = errors.New("invalid git repository options")

// validate checks o and returns every problem it finds. It reads every
// credential once, so a missing file or an unparseable key fails here.
func (o *Options) validate() (*transport.Endpoint, error) {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	ep, err := parseURL(o.URL, o.InsecureAllowHTTP)
	if err != nil {
		add("url: %w", err)
	}
	if o.Branch == "" {
		add("branch is empty")
	} else if err := plumbing.NewBranchReferenceName(o.Branch).Validate(); err != nil || strings.HasPrefix(o.Branch, "refs/") {
		add("branch %q is not a valid branch name", o.Branch)
	}
	if o.Dir == "" {
		add("dir is empty")
	} else if abs, err := filepath.Abs(o.Dir); err != nil {
		add("dir: %w", err)
	} else {
		o.Dir = abs
		if parent := filepath.Dir(abs); !isDir(parent) {
			add("dir: parent directory %s does not exist", parent)
		}
	}
	if err := o.Committer.validate(); err != nil {
		add("committer: %w", err)
	}
	if o.PushRetries < 0 {
		add("pushRetries %d is negative", o.PushRetries)
	}
	if o.RetryBackoff <= 0 || o.MaxRetryBackoff < o.RetryBackoff {
		add("retry backoff %v..%v: want 0 < retryBackoff <= maxRetryBackoff", o.RetryBackoff, o.MaxRetryBackoff)
	}
	if o.Timeout <= 0 {
		add("timeout %v is not positive", o.Timeout)
	}
	if o.CloneTimeout < 0 {
		add("cloneTimeout %v is negative", o.CloneTimeout)
	}
	if ep != nil {
		if err := o.Auth.validate(ep); err != nil {
			add("auth: %w", err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	return ep, nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// parseURL accepts https, ssh (URL or scp-like) and file URLs, and http
// when allowed. Errors never repeat a password found in the URL.
func parseURL(raw string, allowHTTP bool) (*transport.Endpoint, error) {
	if raw == "" {
		return nil, errors.New("is empty")
	}
	if strings.ContainsAny(raw, " \t\r\n") {
		return nil, errors.New("contains white space")
	}
	ep, err := transport.NewEndpoint(raw)
	if err != nil {
		return nil, errors.New("cannot be parsed")
	}
	if ep.Password != "" {
		return nil, errors.New("must not hold a password; set auth instead")
	}
	switch ep.Protocol {
	case "https", "ssh", "file":
	case "http":
		if !allowHTTP {
			return nil, errors.New("http:// sends credentials in clear text; use https (or set insecureAllowHTTP for tests)")
		}
	default:
		return nil, fmt.Errorf("protocol %q is not supported (https, ssh, file)", ep.Protocol)
	}
	if ep.Protocol != "file" && ep.Host == "" {
		return nil, errors.New("has no host")
	}
	if strings.Trim(ep.Path, "/") == "" {
		return nil, errors.New("has no repository path")
	}
	return ep, nil
}

func (a *Auth) validate(ep *transport.Endpoint) error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	httpSet := a.Username != "" || !a.Password.IsZero() || !a.BearerToken.IsZero() || a.CAFile != ""
	sshSet := !a.SSHKey.IsZero() || !a.SSHKeyPassphrase.IsZero() || a.KnownHosts != "" || a.InsecureIgnoreHostKey
	switch ep.Protocol {
	case "https", "http":
		if sshSet {
			add("ssh credentials given for a %s URL", ep.Protocol)
		}
		if !a.Password.IsZero() && !a.BearerToken.IsZero() {
			add("set password or bearerToken, not both")
		}
		if a.Username != "" && a.Password.IsZero() {
			add("username %q without a password", a.Username)
		}
		for name, ref := range map[string]SecretRef{"password": a.Password, "bearerToken": a.BearerToken} {
			if !ref.IsZero() {
				if err := ref.validate(); err != nil {
					add("%s: %w", name, err)
				}
			}
		}
		if a.CAFile != "" {
			if _, err := os.ReadFile(a.CAFile); err != nil {
				add("caFile: %w", err)
			}
		}
	case "ssh":
		if httpSet {
			add("https credentials given for an ssh URL")
		}
		if a.SSHKey.IsZero() {
			add("sshKey is required for an ssh URL")
		} else if _, err := a.sshSigner(); err != nil {
			add("sshKey: %w", err)
		}
		if a.KnownHosts == "" && !a.InsecureIgnoreHostKey {
			add("knownHosts is required for an ssh URL")
		}
		if a.KnownHosts != "" && a.InsecureIgnoreHostKey {
			add("set knownHosts or insecureIgnoreHostKey, not both")
		}
		if a.KnownHosts != "" {
			if _, err := hostKeyCheck(a.KnownHosts, ep); err != nil {
				add("knownHosts: %w", err)
			}
		}
	case "file":
		if httpSet || sshSet {
			add("credentials given for a file URL")
		}
	}
	return errors.Join(errs...)
}
