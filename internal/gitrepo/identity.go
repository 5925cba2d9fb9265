package gitrepo

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// NoReplyDomain is the e-mail domain given to a requester known only by a
// name.
const NoReplyDomain = "users.noreply.mgo"

// maxIdentityLen bounds the requester string.
const maxIdentityLen = 256

// ErrInvalidAuthor is wrapped by ParseAuthor's errors.
var ErrInvalidAuthor = errors.New("invalid author")

// Identity is a git author or committer.
type Identity struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// String returns "Name <email>".
func (i Identity) String() string { return i.Name + " <" + i.Email + ">" }

func (i Identity) validate() error {
	if err := checkName(i.Name); err != nil {
		return err
	}
	return checkEmail(i.Email)
}

// ParseAuthor turns the requester of a deploy into a git identity:
//
//	"Jane Doe <jane@acme.io>"  ->  Jane Doe <jane@acme.io>
//	"jane@acme.io"             ->  jane <jane@acme.io>            (name = local part)
//	"jane"                     ->  jane <jane@users.noreply.mgo>
//	"Jane Doe"                 ->  Jane Doe <jane-doe@users.noreply.mgo>
//
// A bare name's e-mail is the name lower-cased, with every run of
// characters other than letters, digits, '.', '_' and '-' replaced by one
// '-', at NoReplyDomain. Surrounding white space is ignored. Control
// characters (newlines included), Unicode format characters (U+202E
// right-to-left override, zero-width characters and every other category
// Cf), line and paragraph separators (U+2028, U+2029), invalid UTF-8, '<'
// or '>' in a name, a malformed address and more than 256 bytes are
// rejected with ErrInvalidAuthor.
func ParseAuthor(s string) (Identity, error) {
	id, err := parseAuthor(s)
	if err != nil {
		return Identity{}, fmt.Errorf("%w %q: %w", ErrInvalidAuthor, truncate(s, 80), err)
	}
	return id, nil
}

func parseAuthor(s string) (Identity, error) {
	if len(s) > maxIdentityLen {
		return Identity{}, fmt.Errorf("longer than %d bytes", maxIdentityLen)
	}
	if err := checkRunes(s); err != nil {
		return Identity{}, err
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return Identity{}, errors.New("is empty")
	}
	if !strings.ContainsAny(s, "@<>") {
		id := Identity{Name: s, Email: slug(s) + "@" + NoReplyDomain}
		return id, id.validate()
	}
	addr, err := mail.ParseAddress(s)
	if err != nil {
		return Identity{}, fmt.Errorf("not a name, an e-mail address or \"Name <email>\": %w", err)
	}
	id := Identity{Name: strings.TrimSpace(addr.Name), Email: addr.Address}
	if id.Name == "" {
		id.Name, _, _ = strings.Cut(id.Email, "@")
	}
	return id, id.validate()
}

func checkName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return errors.New("name is empty")
	case name != strings.TrimSpace(name):
		return errors.New("name has surrounding white space")
	case checkRunes(name) != nil:
		return fmt.Errorf("name %w", checkRunes(name))
	case strings.ContainsAny(name, "<>"):
		return errors.New("name contains '<' or '>'")
	}
	return nil
}

func checkEmail(email string) error {
	local, domain, ok := strings.Cut(email, "@")
	switch {
	case !ok || local == "" || domain == "" || strings.Contains(domain, "@"):
		return fmt.Errorf("e-mail %q is not local@domain", email)
	case checkRunes(email) != nil:
		return fmt.Errorf("e-mail %w", checkRunes(email))
	case strings.IndexFunc(email, unicode.IsSpace) >= 0:
		return fmt.Errorf("e-mail %q contains white space or a control character", email)
	case strings.ContainsAny(email, "<>,\"\\"):
		return fmt.Errorf("e-mail %q contains one of <>,\"\\", email)
	case strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, ".."):
		return fmt.Errorf("e-mail %q has a malformed domain", email)
	}
	return nil
}

// checkRunes refuses what would make a name or address in a commit read
// differently from what it is: invalid UTF-8, control characters
// (newlines included), Unicode format characters (category Cf: the
// bidirectional overrides and isolates such as U+202E, zero-width
// characters U+200B..U+200F, U+FEFF, soft hyphens) and the line and
// paragraph separators U+2028 and U+2029 (Zl, Zp).
func checkRunes(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("is not valid UTF-8")
	}
	for _, r := range s {
		switch {
		case unicode.IsControl(r):
			return fmt.Errorf("contains the control character %U", r)
		case unicode.Is(unicode.Cf, r):
			return fmt.Errorf("contains the invisible Unicode format character %U", r)
		case unicode.In(r, unicode.Zl, unicode.Zp):
			return fmt.Errorf("contains the Unicode line or paragraph separator %U", r)
		}
	}
	return nil
}

// slug lower-cases s and replaces each run of characters other than
// letters, digits, '.', '_' and '-' with one '-'.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '_' || r == '-' {
			b.WriteRune(r)
			dash = false
			continue
		}
		if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.Trim(b.String(), "-.")
	for strings.Contains(out, "..") {
		out = strings.ReplaceAll(out, "..", ".")
	}
	if out == "" {
		out = "user"
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
