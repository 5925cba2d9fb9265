package testenv

import (
	"os"
	"path/filepath"
)

// auditPolicy records every request at Metadata level (who, verb, resource,
// URI with dry-run, response code), once, when the request arrives: a watch
// is counted when it starts, not when it ends, and no request is counted twice.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["ResponseStarted", "ResponseComplete", "Panic"]
rules:
  - level: Metadata
`

// extraArgs returns the flags that options add to a component: for the
// kube-apiserver with Options.AuditLog, a JSON audit log at AuditLogPath, one
// event per line, written as requests arrive (blocking mode, so a request is
// in the log before it is served).
func (e *Env) extraArgs(name string) ([]string, error) {
	if name != "kube-apiserver" || !e.auditLog {
		return nil, nil
	}
	policy := filepath.Join(e.Dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
		return nil, err
	}
	return []string{
		"--audit-policy-file=" + policy,
		"--audit-log-path=" + filepath.Join(e.Dir, "audit.log"),
		"--audit-log-format=json",
		"--audit-log-mode=blocking",
		"--audit-log-maxsize=0", // never rotate: readers follow one file
	}, nil
}

// AuditLogPath is the API server's audit log when the control plane was
// started with Options.AuditLog: JSON lines of audit.k8s.io/v1 Events at
// Metadata level, stage RequestReceived. Each identity (the administrator,
// the components, every Options.Users entry) appears under its own
// user.username. Empty when there is no audit log.
func (e *Env) AuditLogPath() string {
	p := filepath.Join(e.Dir, "audit.log")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}
