package httpapi_test

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/httpapi"
)

const openAPIPath = "../../docs/openapi.yaml"

// loadOpenAPI loads and validates the OpenAPI document.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(openAPIPath)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()), "docs/openapi.yaml is not a valid OpenAPI document")
	return doc
}

// pathParam matches a path parameter, in the router's patterns ({agentId}, {rest...}) and in the
// document's templates ({agentId}).
var pathParam = regexp.MustCompile(`\{[^}]*\}`)

// routeKey names a route by method and path with its parameters unnamed, so that the router
// and the document are compared on the shape of their paths, not on the parameters' names.
func routeKey(method, path string) string {
	return strings.ToUpper(method) + " " + pathParam.ReplaceAllString(path, "{}")
}

func TestOpenAPIDocumentIsValidOpenAPI31(t *testing.T) {
	doc := loadOpenAPI(t)
	assert.True(t, doc.IsOpenAPI31OrLater(), "openapi: %s", doc.OpenAPI)
	require.NotNil(t, doc.Components)
	scheme, ok := doc.Components.SecuritySchemes["bearer"]
	require.True(t, ok, "components.securitySchemes.bearer is missing")
	assert.Equal(t, "http", scheme.Value.Type)
	assert.Equal(t, "bearer", scheme.Value.Scheme)
	require.NotNil(t, doc.Security)
	assert.Contains(t, doc.Security[0], "bearer", "bearer must be the default security")
	errSchema := doc.Components.Schemas["Error"]
	require.NotNil(t, errSchema, "components.schemas.Error is missing")
	assert.ElementsMatch(t, []string{"code", "message", "fields"}, keys(errSchema.Value.Properties["error"].Value.Properties))
}

// TestOpenAPIPathsAreTheRoutes proves the router and the document describe the same API: every
// route of the tenant and agent APIs is in the document and every operation of the document
// is routed.
func TestOpenAPIPathsAreTheRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[routeKey(method, path)] = true
		}
	}
	routed := map[string]bool{}
	for _, r := range append(httpapi.TenantRoutes(httpapi.Deps{}), httpapi.AgentRoutes(httpapi.Deps{})...) {
		k := routeKey(r.Method, r.Pattern)
		require.False(t, routed[k], "route %s is registered twice", k)
		routed[k] = true
	}
	var missing, extra []string
	for k := range routed {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !routed[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	assert.Empty(t, missing, "routes the document does not describe")
	assert.Empty(t, extra, "documented operations no route serves")
}

// TestOpenAPITenantOperations checks what the document says of each tenant route: the role it
// needs (x-role), that it is authenticated, that every path parameter is declared, and that it
// documents the errors its route can answer.
func TestOpenAPITenantOperations(t *testing.T) {
	doc := loadOpenAPI(t)
	roles := map[httpapi.Access]string{httpapi.AccessViewer: "viewer", httpapi.AccessOperator: "operator", httpapi.AccessAdmin: "admin"}
	for _, r := range httpapi.TenantRoutes(httpapi.Deps{}) {
		t.Run(r.Method+" "+r.Pattern, func(t *testing.T) {
			item := doc.Paths.Value(r.Pattern)
			require.NotNil(t, item, "path %s is not documented under this name", r.Pattern)
			op := item.GetOperation(r.Method)
			require.NotNil(t, op, "%s %s is not documented", r.Method, r.Pattern)
			assert.NotEmpty(t, op.OperationID)
			assert.Equal(t, roles[r.Access], op.Extensions["x-role"], "x-role")
			if op.Security != nil {
				assert.NotEmpty(t, *op.Security, "a tenant route is never public")
			}
			for _, name := range pathParam.FindAllString(r.Pattern, -1) {
				name = strings.Trim(name, "{}")
				assert.NotNil(t, findParam(item, op, name), "path parameter %s is not declared", name)
			}
			want := []string{"401", "403"}
			if strings.Contains(r.Pattern, "{") {
				want = append(want, "400", "404")
			}
			if r.Method == http.MethodGet {
				want = append(want, "400")
			}
			if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
				if op.RequestBody != nil {
					want = append(want, "400", "413", "415", "422")
				}
			}
			for _, status := range want {
				assert.NotNil(t, op.Responses.Value(status), "response %s is not documented", status)
			}
			success := slices.ContainsFunc([]string{"200", "201", "204"}, func(s string) bool { return op.Responses.Value(s) != nil })
			assert.True(t, success, "no success response")
		})
	}
}

func findParam(item *openapi3.PathItem, op *openapi3.Operation, name string) *openapi3.Parameter {
	for _, params := range []openapi3.Parameters{op.Parameters, item.Parameters} {
		if p := params.GetByInAndName(openapi3.ParameterInPath, name); p != nil {
			return p
		}
	}
	return nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
