package values

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/distribution/reference"
)

// Image is what a deploy request sets: a repository plus a tag, a digest
// (sha256:...), or both.
type Image struct{ Repository, Tag, Digest string }

var (
	anchoredTag    = regexp.MustCompile(`^` + reference.TagRegexp.String() + `$`)
	anchoredDigest = regexp.MustCompile(`^` + reference.DigestRegexp.String() + `$`)
)

// Validate checks the image with the rules of container registries (tags,
// digests, registries with ports). The error names the bad field and wraps
// ErrInvalidImage.
func (i Image) Validate() error {
	if i.Repository == "" {
		return fmt.Errorf("%w: repository is empty", ErrInvalidImage)
	}
	named, err := reference.ParseNormalizedNamed(i.Repository)
	if err != nil {
		return fmt.Errorf("%w: repository %q: %v", ErrInvalidImage, i.Repository, err)
	}
	if !reference.IsNameOnly(named) {
		return fmt.Errorf("%w: repository %q must not carry a tag or digest; give them separately", ErrInvalidImage, i.Repository)
	}
	if i.Tag == "" && i.Digest == "" {
		return fmt.Errorf("%w: %s: give a tag, a digest or both", ErrInvalidImage, i.Repository)
	}
	if i.Tag != "" && !anchoredTag.MatchString(i.Tag) {
		return fmt.Errorf("%w: tag %q: want at most 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'", ErrInvalidImage, i.Tag)
	}
	if i.Digest != "" {
		if !anchoredDigest.MatchString(i.Digest) {
			return fmt.Errorf("%w: digest %q: want <algorithm>:<hex>, e.g. sha256:<64 hex digits>", ErrInvalidImage, i.Digest)
		}
		if _, err := reference.Parse(named.Name() + "@" + i.Digest); err != nil {
			return fmt.Errorf("%w: digest %q: %v", ErrInvalidImage, i.Digest, err)
		}
	}
	if _, err := reference.ParseNormalizedNamed(i.String()); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalidImage, i.String(), err)
	}
	return nil
}

// String returns the image reference: repository[:tag][@digest].
func (i Image) String() string {
	return i.Repository + i.suffix()
}

// suffix returns [:tag][@digest].
func (i Image) suffix() string {
	s := ""
	if i.Tag != "" {
		s = ":" + i.Tag
	}
	if i.Digest != "" {
		s += "@" + i.Digest
	}
	return s
}

// tagValue is what the tag field of an entry without a digest field gets:
// tag, tag@digest, or the digest alone (sha256:..., which the header parser
// reads as a digest).
func (i Image) tagValue() string {
	switch {
	case i.Digest == "":
		return i.Tag
	case i.Tag == "":
		return i.Digest
	}
	return i.Tag + "@" + i.Digest
}

// repositoryOf returns the repository part of an image reference string:
// what comes before :tag and @digest.
func repositoryOf(ref string) string {
	name, _, _ := strings.Cut(ref, "@")
	slash := strings.LastIndexByte(name, '/')
	if colon := strings.LastIndexByte(name, ':'); colon > slash {
		name = name[:colon]
	}
	return name
}
