package httpapi

import "net/http"

// TenantRoutes are the tenant API's routes, for operators' API keys. Viewers read, operators
// also write, and only admins manage API keys. Every route acts on the tenant of the key.
func TenantRoutes(d Deps) []Route {
	f := newFleet(d)
	agents := agentHandlers{d: d, fleet: f}
	creds := credentialHandlers{d: d, fleet: f}
	repos := repositoryHandlers{d: d}
	policies := policyHandlers{d: d, fleet: f}
	tasks := taskHandlers{d: d, fleet: f}
	runs := runHandlers{d: d}
	const (
		get, post, put, patch, del = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete
	)
	return []Route{
		{get, "/v1/overview", AccessViewer, overview(f)},

		{get, "/v1/agents", AccessViewer, agents.list},
		{get, "/v1/agents/{agentId}", AccessViewer, agents.get},
		{patch, "/v1/agents/{agentId}", AccessOperator, agents.patch},
		{del, "/v1/agents/{agentId}", AccessOperator, agents.delete},
		{get, "/v1/agents/{agentId}/policies", AccessViewer, agents.policies},
		{get, "/v1/agents/{agentId}/tasks", AccessViewer, agents.tasks},
		{get, "/v1/agents/{agentId}/runs", AccessViewer, agents.runs},
		{get, "/v1/agents/{agentId}/snapshots", AccessViewer, agents.snapshots},

		{post, "/v1/enrollment-tokens", AccessOperator, creds.createEnrollmentToken},
		{get, "/v1/enrollment-tokens", AccessViewer, creds.listEnrollmentTokens},
		{del, "/v1/enrollment-tokens/{tokenId}", AccessOperator, creds.revokeEnrollmentToken},

		{post, "/v1/repositories", AccessOperator, repos.create},
		{get, "/v1/repositories", AccessViewer, repos.list},
		{get, "/v1/repositories/{name}", AccessViewer, repos.get},
		{put, "/v1/repositories/{name}", AccessOperator, repos.replace},
		{del, "/v1/repositories/{name}", AccessOperator, repos.delete},

		{post, "/v1/policies", AccessOperator, policies.create},
		{get, "/v1/policies", AccessViewer, policies.list},
		{get, "/v1/policies/{policyId}", AccessViewer, policies.get},
		{put, "/v1/policies/{policyId}", AccessOperator, policies.replace},
		{patch, "/v1/policies/{policyId}", AccessOperator, policies.patch},
		{del, "/v1/policies/{policyId}", AccessOperator, policies.delete},
		{post, "/v1/policies/{policyId}/agents", AccessOperator, policies.assign},
		{get, "/v1/policies/{policyId}/agents", AccessViewer, policies.agents},
		{del, "/v1/policies/{policyId}/agents/{agentId}", AccessOperator, policies.unassign},

		{post, "/v1/tasks", AccessOperator, tasks.create},
		{get, "/v1/tasks", AccessViewer, tasks.list},
		{get, "/v1/tasks/{taskId}", AccessViewer, tasks.get},
		{post, "/v1/tasks/{taskId}/cancel", AccessOperator, tasks.cancel},

		{get, "/v1/runs", AccessViewer, runs.list},
		{get, "/v1/runs/{runId}", AccessViewer, runs.get},
		{get, "/v1/runs/{runId}/logs", AccessViewer, runs.logs},

		{post, "/v1/api-keys", AccessAdmin, creds.createAPIKey},
		{get, "/v1/api-keys", AccessAdmin, creds.listAPIKeys},
		{del, "/v1/api-keys/{keyId}", AccessAdmin, creds.revokeAPIKey},
	}
}
