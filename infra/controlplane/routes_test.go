package controlplane_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/restic-monitor/restic-monitor/infra/controlplane"
)

func TestLoadRoutes(t *testing.T) {
	routes, err := controlplane.LoadRoutes("../testdata/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range routes {
		line := r.Key() + " -> " + r.Function
		if r.Public {
			line += " (public)"
		}
		got = append(got, line)
	}
	want := []string{
		"POST /v1/agent/heartbeat -> agentapi",
		"POST /v1/agent/register -> agentapi (public)",
		"PUT /v1/agent/tasks/{taskId}/result -> agentapi",
		"GET /v1/agents -> api",
		"DELETE /v1/agents/{agentId} -> api",
		"GET /v1/agents/{agentId} -> api",
		"GET /v1/notification-channels/confirm -> api (public)",
		"GET /v1/policies -> api",
		"POST /v1/policies -> api",
		"PATCH /v1/policies/{policyId} -> api",
		"PUT /v1/policies/{policyId} -> api",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestLoadRoutesRejects(t *testing.T) {
	for name, c := range map[string]struct{ doc, want string }{
		"outside /v1": {"openapi: 3.1.0\npaths:\n  /health:\n    get: {}\n", "not under /v1/"},
		"swagger 2":   {"swagger: '2.0'\npaths:\n  /v1/agents:\n    get: {}\n", "OpenAPI 3"},
		"no routes":   {"openapi: 3.1.0\npaths: {}\n", "no operations"},
		"not yaml":    {"openapi: [3.1.0\n", "parse"},
		"public route the stack protects": {
			"openapi: 3.1.0\npaths:\n  /v1/agents:\n    get:\n      security: []\n", "GET /v1/agents declares `security: []`",
		},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "openapi.yaml")
			if err := os.WriteFile(path, []byte(c.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := controlplane.LoadRoutes(path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}
