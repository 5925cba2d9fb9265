package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

// Requests counts API requests of one identity by verb. A server-side
// dry-run is counted as "dryrun-<verb>" and is not a write.
type Requests map[string]int

// writeVerbs change the cluster unless they are dry-runs.
var writeVerbs = map[string]bool{"create": true, "update": true, "patch": true, "delete": true, "deletecollection": true}

// Total is the number of requests.
func (r Requests) Total() int {
	n := 0
	for _, c := range r {
		n += c
	}
	return n
}

// Writes is the number of requests that changed (or tried to change) the
// cluster: create, update, patch, delete, deletecollection without dry-run.
func (r Requests) Writes() int {
	n := 0
	for v, c := range r {
		if writeVerbs[v] {
			n += c
		}
	}
	return n
}

// String lists the counts by verb, most frequent first.
func (r Requests) String() string {
	if len(r) == 0 {
		return "none"
	}
	verbs := slices.Collect(maps.Keys(r))
	slices.SortFunc(verbs, func(a, b string) int {
		if r[a] != r[b] {
			return r[b] - r[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(verbs))
	for i, v := range verbs {
		parts[i] = fmt.Sprintf("%s %d", v, r[v])
	}
	return strings.Join(parts, ", ")
}

// auditEvent is the part of an audit.k8s.io/v1 Event the benchmark reads.
type auditEvent struct {
	Stage      string `json:"stage"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
}

// countAudit reads audit events (JSON lines) and counts, per user name, the
// requests received. Only RequestReceived events count when the log has
// several stages, so every request counts once. A last line without its
// newline (the API server still writing it) is left for the next read: the
// returned offset is just after the last complete line.
func countAudit(r io.Reader) (map[string]Requests, int64, error) {
	out := map[string]Requests{}
	br := bufio.NewReaderSize(r, 1<<20)
	var consumed int64
	for {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			return out, consumed, nil // a partial line is not consumed
		}
		if err != nil {
			return out, consumed, err
		}
		consumed += int64(len(line))
		var ev auditEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return out, consumed, fmt.Errorf("audit log: %w in %.200q", err, line)
		}
		if ev.Stage != "" && ev.Stage != "RequestReceived" {
			continue
		}
		verb := ev.Verb
		if isDryRun(ev.RequestURI) {
			verb = "dryrun-" + verb
		}
		if out[ev.User.Username] == nil {
			out[ev.User.Username] = Requests{}
		}
		out[ev.User.Username][verb]++
	}
}

// isDryRun reports whether a request URI carries dryRun=All.
func isDryRun(uri string) bool {
	_, query, ok := strings.Cut(uri, "?")
	if !ok {
		return false
	}
	for p := range strings.SplitSeq(query, "&") {
		if strings.HasPrefix(p, "dryRun=") && p != "dryRun=" {
			return true
		}
	}
	return false
}

// auditTail follows the audit log of one control plane.
type auditTail struct {
	path   string
	offset int64
}

// Next counts the requests logged since the previous call.
func (a *auditTail) Next() (map[string]Requests, error) {
	f, err := os.Open(a.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(a.offset, io.SeekStart); err != nil {
		return nil, err
	}
	counts, n, err := countAudit(f)
	a.offset += n
	return counts, err
}
