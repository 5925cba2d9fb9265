package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestAuditLogNamesEachUser(t *testing.T) {
	e, err := Start(context.Background(), Options{
		Context:  "testenv-audit",
		AuditLog: true,
		Users:    []User{{Name: "auditor", Groups: []string{"system:masters"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	if env.AuditLogPath() != "" {
		t.Errorf("a control plane without Options.AuditLog has an audit log")
	}
	cfg, err := e.UserConfig("auditor")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newClient(cfg).CoreV1().ConfigMaps("default").List(context.Background(), metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	path := e.AuditLogPath()
	if path == "" {
		t.Fatal("no audit log")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	found := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev struct {
			Stage string `json:"stage"`
			Verb  string `json:"verb"`
			User  struct {
				Username string `json:"username"`
			} `json:"user"`
			ObjectRef struct {
				Resource string `json:"resource"`
			} `json:"objectRef"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if ev.Stage != "RequestReceived" {
			t.Errorf("event at stage %s, want only RequestReceived", ev.Stage)
		}
		if ev.User.Username == "auditor" && ev.Verb == "list" && ev.ObjectRef.Resource == "configmaps" {
			found++
		}
	}
	if found != 1 {
		t.Fatalf("%d audit events for the auditor's list of configmaps, want 1", found)
	}
}
