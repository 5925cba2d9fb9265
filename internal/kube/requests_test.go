package kube

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func containsStr(s, sub string) bool { return strings.Contains(s, sub) }

func TestVerbOf(t *testing.T) {
	tests := []struct{ method, url, want string }{
		{"GET", "/api/v1/namespaces/a/pods/p", "get"},
		{"GET", "/api/v1/namespaces/a/pods", "list"},
		{"GET", "/api/v1/namespaces/a", "get"},
		{"GET", "/api/v1/namespaces", "list"},
		{"GET", "/apis/apps/v1/namespaces/a/deployments/d", "get"},
		{"GET", "/apis/apps/v1/namespaces/a/deployments/d/status", "get"},
		{"GET", "/apis/apps/v1/deployments", "list"},
		{"GET", "/api/v1/pods?watch=true", "watch"},
		{"GET", "/apis", "list"},
		{"GET", "/version", "list"},
		{"POST", "/api/v1/namespaces/a/configmaps", "create"},
		{"PUT", "/api/v1/namespaces/a/configmaps/c", "update"},
		{"PATCH", "/api/v1/namespaces/a/configmaps/c?fieldManager=mgo", "patch"},
		{"PATCH", "/api/v1/namespaces/a/configmaps/c?dryRun=All&fieldManager=mgo", "dryrun-patch"},
		{"DELETE", "/api/v1/namespaces/a/configmaps/c", "delete"},
	}
	for _, tt := range tests {
		u, _ := url.Parse("https://k" + tt.url)
		if got := verbOf(&http.Request{Method: tt.method, URL: u}); got != tt.want {
			t.Errorf("%s %s = %s, want %s", tt.method, tt.url, got, tt.want)
		}
	}
	c := RequestCounts{"get": 3, "patch": 2, "dryrun-patch": 5, "delete": 1, "create": 1}
	if c.Writes() != 4 {
		t.Errorf("writes %d, want 4", c.Writes())
	}
}
