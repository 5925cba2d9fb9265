package gitrepo

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAuthor(t *testing.T) {
	t.Parallel()
	ok := []struct{ in, name, email string }{
		{"Jane Doe <jane@acme.io>", "Jane Doe", "jane@acme.io"},
		{"jane@acme.io", "jane", "jane@acme.io"},
		{"jane", "jane", "jane@" + NoReplyDomain},
		{"  Jane Doe  ", "Jane Doe", "jane-doe@" + NoReplyDomain},
		{"Zoë Ångström <zoe@acme.io>", "Zoë Ångström", "zoe@acme.io"},
		{"山田太郎", "山田太郎", "山田太郎@" + NoReplyDomain},
		{"עברית <he@acme.io>", "עברית", "he@acme.io"},
	}
	for _, c := range ok {
		id, err := ParseAuthor(c.in)
		if err != nil || id.Name != c.name || id.Email != c.email {
			t.Errorf("ParseAuthor(%q) = %+v, %v; want %s <%s>", c.in, id, err, c.name, c.email)
		}
	}
	bad := []struct{ in, why string }{
		{"", "is empty"},
		{"   ", "is empty"},
		{"Jane\nDoe", "control character U+000A"},
		{"Jane\x00", "control character U+0000"},
		{"Jane\x7f", "control character U+007F"},
		{"Jane\u0085Doe", "control character U+0085"},
		{"Jane \u202eeoD", "format character U+202E"},                // right-to-left override
		{"Jane\u202d", "format character U+202D"},                    // left-to-right override
		{"Jane\u2066x\u2069", "format character U+2066"},             // isolate
		{"Ja\u200bne", "format character U+200B"},                    // zero width space
		{"Ja\u200cne", "format character U+200C"},                    // zero width non-joiner
		{"Ja\u200dne", "format character U+200D"},                    // zero width joiner
		{"Ja\u200ene", "format character U+200E"},                    // left-to-right mark
		{"Ja\u200fne", "format character U+200F"},                    // right-to-left mark
		{"\ufeffJane", "format character U+FEFF"},                    // byte order mark
		{"Ja\u00adne", "format character U+00AD"},                    // soft hyphen
		{"Jane\u2028Doe", "separator U+2028"},                        // line separator
		{"Jane\u2029Doe", "separator U+2029"},                        // paragraph separator
		{"Jane Doe <ja\u202ene@acme.io>", "format character U+202E"}, // in the address
		{"Jane\u202e <jane@acme.io>", "format character U+202E"},     // in the name
		{"jane@acme\u200b.io", "format character U+200B"},            // bare address
		{"Jane \xff", "not valid UTF-8"},
		{"Jane <jane@acme.io", "not a name, an e-mail address"},
		{"<jane@acme.io>x", "not a name, an e-mail address"},
		{strings.Repeat("a", 257), "longer than 256 bytes"},
	}
	for _, c := range bad {
		id, err := ParseAuthor(c.in)
		if !errors.Is(err, ErrInvalidAuthor) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("ParseAuthor(%q) = %+v, %v; want ErrInvalidAuthor saying %q", c.in, id, err, c.why)
		}
	}
	// The committer is checked the same way.
	opts := DefaultOptions()
	opts.Committer.Name = "mgo\u202e"
	if err := opts.Committer.validate(); err == nil || !strings.Contains(err.Error(), "U+202E") {
		t.Errorf("committer with U+202E: %v", err)
	}
}
