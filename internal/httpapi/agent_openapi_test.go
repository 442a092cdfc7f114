package httpapi_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/httpapi"
	"github.com/restic-monitor/restic-monitor/internal/reporting"
)

// TestOpenAPIAgentOperations checks what the document says of each agent route: who may call
// it (x-access), that only registration is public, that every path parameter is declared, and
// that it documents the errors its route can answer, including every refusal code.
func TestOpenAPIAgentOperations(t *testing.T) {
	doc := loadOpenAPI(t)
	access := map[httpapi.Access]string{httpapi.AccessPublic: "public", httpapi.AccessAgent: "agent"}
	for _, r := range httpapi.AgentRoutes(httpapi.Deps{}) {
		t.Run(r.Method+" "+r.Pattern, func(t *testing.T) {
			require.True(t, strings.HasPrefix(r.Pattern, "/v1/agent/"), "agent routes live under /v1/agent/")
			item := doc.Paths.Value(r.Pattern)
			require.NotNil(t, item, "path %s is not documented under this name", r.Pattern)
			op := item.GetOperation(r.Method)
			require.NotNil(t, op, "%s %s is not documented", r.Method, r.Pattern)
			assert.NotEmpty(t, op.OperationID)
			assert.Equal(t, []string{"agent"}, op.Tags)
			assert.Equal(t, access[r.Access], op.Extensions["x-access"], "x-access")
			public := op.Security != nil && len(*op.Security) == 0
			assert.Equal(t, r.Access == httpapi.AccessPublic, public, "only registration is public")
			for _, name := range pathParam.FindAllString(r.Pattern, -1) {
				assert.NotNil(t, findParam(item, op, strings.Trim(name, "{}")), "path parameter %s is not declared", name)
			}
			want := []string{"400", "401", "413", "415"}
			if r.Access == httpapi.AccessAgent {
				want = append(want, "403")
			}
			if strings.Contains(r.Pattern, "{") {
				want = append(want, "404", "422")
			}
			if strings.Contains(r.Pattern, "/tasks/") {
				want = append(want, "409")
			}
			for _, status := range want {
				assert.NotNil(t, op.Responses.Value(status), "response %s is not documented", status)
			}
		})
	}
	codes := doc.Components.Schemas["Error"].Value.Properties["error"].Value.Properties["code"].Value.Enum
	for _, code := range []string{reporting.CodeTaskFinished, reporting.CodeTaskNotStartable, reporting.CodeTaskRunning,
		reporting.CodeRunSuperseded, reporting.CodeRunFinished, reporting.CodeResultConflict, "unavailable"} {
		assert.Contains(t, codes, code, "error code %s is not documented", code)
	}
}
