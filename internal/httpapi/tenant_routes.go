package httpapi

import "net/http"

// TenantRoutes are the tenant API's routes, for operators' API keys. Viewers read, operators
// also write, and only admins manage API keys and delete the tenant. Every route acts on the
// tenant of the key; while it is being deleted, none but the deletion's changes anything.
//
// Every route refuses query parameters it does not know, so a misspelt filter is an error
// rather than silently ignored; routes that take none are wrapped in noQuery.
func TenantRoutes(d Deps) []Route {
	f := newFleet(d)
	agents := agentHandlers{d: d, fleet: f}
	creds := credentialHandlers{d: d, fleet: f}
	repos := repositoryHandlers{d: d}
	policies := policyHandlers{d: d, fleet: f}
	tasks := taskHandlers{d: d, fleet: f}
	runs := runHandlers{d: d}
	tenant := tenantHandlers{d: d, fleet: f}
	channels := channelHandlers{d: d}
	audit := auditHandlers{d: d}
	const (
		get, post, put, patch, del = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete
	)
	return refuseWhileDeleting(d, []Route{
		{get, "/v1/overview", AccessViewer, overview(f)},
		{get, "/v1/me", AccessViewer, noQuery(me(d))},
		{get, "/v1/schedule-preview", AccessViewer, previewSchedule(d)},

		{get, "/v1/agents", AccessViewer, agents.list},
		{get, "/v1/agents/{agentId}", AccessViewer, noQuery(agents.get)},
		{patch, "/v1/agents/{agentId}", AccessOperator, noQuery(agents.patch)},
		{del, "/v1/agents/{agentId}", AccessOperator, noQuery(agents.delete)},
		{get, "/v1/agents/{agentId}/policies", AccessViewer, agents.policies},
		{get, "/v1/agents/{agentId}/tasks", AccessViewer, agents.tasks},
		{get, "/v1/agents/{agentId}/runs", AccessViewer, agents.runs},
		{get, "/v1/agents/{agentId}/snapshots", AccessViewer, agents.snapshots},
		{get, "/v1/agents/{agentId}/snapshots/{snapshotId}/tree", AccessViewer, agents.tree},

		{post, "/v1/enrollment-tokens", AccessOperator, noQuery(creds.createEnrollmentToken)},
		{get, "/v1/enrollment-tokens", AccessViewer, creds.listEnrollmentTokens},
		{del, "/v1/enrollment-tokens/{tokenId}", AccessOperator, noQuery(creds.revokeEnrollmentToken)},

		{post, "/v1/repositories", AccessOperator, noQuery(repos.create)},
		{get, "/v1/repositories", AccessViewer, repos.list},
		{get, "/v1/repositories/{name}", AccessViewer, noQuery(repos.get)},
		{get, "/v1/repositories/{name}/health", AccessViewer, noQuery(repos.health)},
		{put, "/v1/repositories/{name}", AccessOperator, noQuery(repos.replace)},
		{del, "/v1/repositories/{name}", AccessOperator, noQuery(repos.delete)},

		{post, "/v1/policies", AccessOperator, noQuery(policies.create)},
		{get, "/v1/policies", AccessViewer, policies.list},
		{get, "/v1/policies/{policyId}", AccessViewer, noQuery(policies.get)},
		{put, "/v1/policies/{policyId}", AccessOperator, noQuery(policies.replace)},
		{patch, "/v1/policies/{policyId}", AccessOperator, noQuery(policies.patch)},
		{del, "/v1/policies/{policyId}", AccessOperator, policies.delete},
		{post, "/v1/policies/{policyId}/agents", AccessOperator, noQuery(policies.assign)},
		{get, "/v1/policies/{policyId}/agents", AccessViewer, policies.agents},
		{del, "/v1/policies/{policyId}/agents/{agentId}", AccessOperator, noQuery(policies.unassign)},

		{post, "/v1/tasks", AccessOperator, noQuery(tasks.create)},
		{get, "/v1/tasks", AccessViewer, tasks.list},
		{get, "/v1/tasks/{taskId}", AccessViewer, noQuery(tasks.get)},
		{post, "/v1/tasks/{taskId}/cancel", AccessOperator, noQuery(tasks.cancel)},

		{get, "/v1/runs", AccessViewer, runs.list},
		{get, "/v1/runs/{runId}", AccessViewer, noQuery(runs.get)},
		{get, "/v1/runs/{runId}/logs", AccessViewer, runs.logs},

		{post, channelsPath, AccessOperator, noQuery(channels.create)},
		{get, channelsPath, AccessViewer, channels.list},
		{get, channelsPath + "/{channelId}", AccessViewer, noQuery(channels.get)},
		{patch, channelsPath + "/{channelId}", AccessOperator, noQuery(channels.patch)},
		{del, channelsPath + "/{channelId}", AccessOperator, noQuery(channels.delete)},
		{post, channelsPath + "/{channelId}/rotate-secret", AccessOperator, noQuery(channels.rotateSecret)},
		{post, channelsPath + "/{channelId}/test", AccessOperator, noQuery(channels.test)},
		{get, channelsPath + "/{channelId}/deliveries", AccessViewer, channels.deliveries},

		{post, "/v1/api-keys", AccessAdmin, noQuery(creds.createAPIKey)},
		{get, "/v1/api-keys", AccessAdmin, creds.listAPIKeys},
		{del, "/v1/api-keys/{keyId}", AccessAdmin, noQuery(creds.revokeAPIKey)},

		{get, "/v1/audit", AccessOperator, audit.list},

		{get, tenantPath, AccessViewer, noQuery(tenant.get)},
		{del, tenantPath, AccessAdmin, tenant.delete},
	})
}

// noQuery refuses every query parameter before the handler runs.
func noQuery(handle func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if _, err := queryParams(r); err != nil {
			return err
		}
		return handle(w, r)
	}
}
