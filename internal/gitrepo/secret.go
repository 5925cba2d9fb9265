package gitrepo

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

const redacted = "[redacted]"

// Secret holds a credential in memory. Every way of printing it (fmt verbs,
// JSON, text marshalling, slog) shows "[redacted]"; only this package reads
// the value.
type Secret struct{ v string }

// NewSecret wraps an already-read credential.
func NewSecret(v string) Secret { return Secret{v: v} }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

// String returns "[redacted]" (or "" for an empty secret).
func (s Secret) String() string {
	if s.v == "" {
		return ""
	}
	return redacted
}

// GoString is String, so %#v does not print the value either.
func (s Secret) GoString() string { return `gitrepo.Secret("` + s.String() + `")` }

// Format prints String for every verb, including %d and %x.
func (s Secret) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// MarshalText returns "[redacted]".
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON returns "[redacted]" as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// LogValue returns "[redacted]".
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// SecretRef says where a credential comes from: a file (re-read on every
// use, so a rotated Kubernetes secret or a refreshed token is picked up
// without a restart), an environment variable, or a value already read.
// Exactly one must be set. Files and variables hold the secret alone; one
// trailing newline is ignored.
type SecretRef struct {
	File  string `json:"file,omitempty"`
	Env   string `json:"env,omitempty"`
	Value Secret `json:"value,omitzero"`
}

// IsZero reports whether no source is set.
func (r SecretRef) IsZero() bool { return r.File == "" && r.Env == "" && r.Value.IsZero() }

// describe names the source without its content, for error messages.
func (r SecretRef) describe() string {
	switch {
	case r.File != "":
		return "file " + r.File
	case r.Env != "":
		return "environment variable " + r.Env
	default:
		return "inline value"
	}
}

func (r SecretRef) validate() error {
	n := 0
	for _, set := range []bool{r.File != "", r.Env != "", !r.Value.IsZero()} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("exactly one of file, env and value must be set, got %d", n)
	}
	_, err := r.read()
	return err
}

// read returns the secret. Errors name the source, never the content.
func (r SecretRef) read() (Secret, error) {
	var v string
	switch {
	case r.File != "":
		b, err := os.ReadFile(r.File)
		if err != nil {
			// The *PathError names the file only.
			return Secret{}, fmt.Errorf("read secret: %w", err)
		}
		v = string(b)
	case r.Env != "":
		var ok bool
		v, ok = os.LookupEnv(r.Env)
		if !ok {
			return Secret{}, fmt.Errorf("read secret: environment variable %s is not set", r.Env)
		}
	default:
		v = r.Value.v
	}
	v = strings.TrimSuffix(strings.TrimSuffix(v, "\n"), "\r")
	if v == "" {
		return Secret{}, fmt.Errorf("read secret: %s is empty", r.describe())
	}
	return Secret{v: v}, nil
}
