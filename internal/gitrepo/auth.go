package gitrepo

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshDialTimeout bounds the TCP connect and SSH handshake (go-git's SSH
// transport does not watch the context while dialling).
const sshDialTimeout = 30 * time.Second

// hostKeyCheck returns the host key check for ep from a known_hosts file,
// which must hold a key for ep's host.
func hostKeyCheck(file string, ep *transport.Endpoint) (*hostKeys, error) {
	if _, err := os.Stat(file); err != nil {
		return nil, err
	}
	db, err := gitssh.NewKnownHostsDb(file)
	if err != nil {
		return nil, err
	}
	addr := hostPort(ep)
	algos := db.HostKeyAlgorithms(addr)
	if len(algos) == 0 {
		return nil, fmt.Errorf("%s holds no host key for %s", file, knownhosts.Normalize(addr))
	}
	return &hostKeys{callback: db.HostKeyCallback(), algorithms: algos}, nil
}

type hostKeys struct {
	callback   ssh.HostKeyCallback
	algorithms []string
}

func hostPort(ep *transport.Endpoint) string {
	port := ep.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(ep.Host, strconv.Itoa(port))
}

// sshSigner reads and parses the private key.
func (a *Auth) sshSigner() (ssh.Signer, error) {
	key, err := a.SSHKey.read()
	if err != nil {
		return nil, err
	}
	if a.SSHKeyPassphrase.IsZero() {
		signer, err := ssh.ParsePrivateKey([]byte(key.v))
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, errors.New("the key is encrypted and no sshKeyPassphrase is set")
		}
		if err != nil {
			return nil, fmt.Errorf("parse private key from %s: %w", a.SSHKey.describe(), err)
		}
		return signer, nil
	}
	pass, err := a.SSHKeyPassphrase.read()
	if err != nil {
		return nil, fmt.Errorf("sshKeyPassphrase: %w", err)
	}
	signer, err := ssh.ParsePrivateKeyWithPassphrase([]byte(key.v), []byte(pass.v))
	if err != nil {
		return nil, fmt.Errorf("decrypt private key from %s: %w", a.SSHKey.describe(), err)
	}
	return signer, nil
}

// method returns the go-git auth method for ep, reading credentials afresh
// (nil for file URLs and anonymous HTTPS).
func (a *Auth) method(ep *transport.Endpoint) (transport.AuthMethod, error) {
	switch ep.Protocol {
	case "https", "http":
		switch {
		case !a.Password.IsZero():
			pw, err := a.Password.read()
			if err != nil {
				return nil, fmt.Errorf("password: %w", err)
			}
			user := a.Username
			if user == "" {
				user = "git"
			}
			return &githttp.BasicAuth{Username: user, Password: pw.v}, nil
		case !a.BearerToken.IsZero():
			tok, err := a.BearerToken.read()
			if err != nil {
				return nil, fmt.Errorf("bearerToken: %w", err)
			}
			return &githttp.TokenAuth{Token: tok.v}, nil
		}
		return nil, nil
	case "ssh":
		signer, err := a.sshSigner()
		if err != nil {
			return nil, fmt.Errorf("sshKey: %w", err)
		}
		m := &sshAuth{user: ep.User, signer: signer}
		if m.user == "" {
			m.user = "git"
		}
		if a.InsecureIgnoreHostKey {
			m.hostKeys = &hostKeys{callback: ssh.InsecureIgnoreHostKey()}
		} else if m.hostKeys, err = hostKeyCheck(a.KnownHosts, ep); err != nil {
			return nil, fmt.Errorf("knownHosts: %w", err)
		}
		return m, nil
	}
	return nil, nil
}

// sshAuth authenticates with one private key and checks the host key
// against known_hosts, offering only the host key algorithms known for the
// host (so a server with several host keys shows the one we know).
type sshAuth struct {
	user     string
	signer   ssh.Signer
	hostKeys *hostKeys
}

var _ gitssh.AuthMethod = (*sshAuth)(nil)

func (a *sshAuth) Name() string { return gitssh.PublicKeysName }

func (a *sshAuth) String() string {
	return fmt.Sprintf("user: %s, name: %s, key: %s", a.user, a.Name(), ssh.FingerprintSHA256(a.signer.PublicKey()))
}

func (a *sshAuth) ClientConfig() (*ssh.ClientConfig, error) {
	return &ssh.ClientConfig{
		User:              a.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(a.signer)},
		HostKeyCallback:   a.hostKeys.callback,
		HostKeyAlgorithms: a.hostKeys.algorithms,
		Timeout:           sshDialTimeout,
	}, nil
}
