package repo

import (
	"cmp"
	"fmt"
	"slices"
)

// Severity of a Problem.
type Severity string

const (
	// Error makes the repository unusable as it is: mgo refuses to sync or
	// deploy what the file describes.
	Error Severity = "error"
	// Warning is worth a look but does not stop anything (e.g. a stray file).
	Warning Severity = "warning"
)

// Problem is one thing wrong with the repository, at a file and line.
type Problem struct {
	File     string   `json:"file"`           // path relative to the repository root
	Line     int      `json:"line,omitempty"` // 1-based; 0 when it concerns the whole file
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Severity, p.Message)
	}
	return fmt.Sprintf("%s: %s: %s", p.File, p.Severity, p.Message)
}

// Problems is a list of problems in file and line order.
type Problems []Problem

// Errors returns the problems of severity Error.
func (ps Problems) Errors() Problems {
	var out Problems
	for _, p := range ps {
		if p.Severity == Error {
			out = append(out, p)
		}
	}
	return out
}

// InFile returns the problems of one file.
func (ps Problems) InFile(file string) Problems {
	var out Problems
	for _, p := range ps {
		if p.File == file {
			out = append(out, p)
		}
	}
	return out
}

func (ps Problems) sort() {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
}

// problems collects Problems while loading.
type problems struct{ list Problems }

func (c *problems) errorf(file string, line int, format string, args ...any) {
	c.list = append(c.list, Problem{File: file, Line: line, Severity: Error, Message: fmt.Sprintf(format, args...)})
}

func (c *problems) warnf(file string, line int, format string, args ...any) {
	c.list = append(c.list, Problem{File: file, Line: line, Severity: Warning, Message: fmt.Sprintf(format, args...)})
}
