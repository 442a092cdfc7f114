package controlplane

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Route is one HTTP API route taken from the OpenAPI document.
type Route struct {
	Method string // upper case: GET, POST, ...
	Path   string // OpenAPI path template, which the HTTP API reads the same way: /v1/agents/{agentId}
	// Function is the Lambda that serves it: FnAgentAPI under /v1/agent/, FnAPI for the rest.
	Function string
	// Public routes skip the authorizer; their handler authenticates the request itself.
	Public bool
}

// Key is the route as API Gateway names it: "GET /v1/agents".
func (r Route) Key() string { return r.Method + " " + r.Path }

const (
	apiPrefix      = "/v1/"
	agentAPIPrefix = "/v1/agent/"
)

// publicRoutes skip the authorizer, each for the reason given: the request carries its own
// credential, which the handler checks.
var publicRoutes = map[string]string{
	"POST /v1/agent/register": "An agent registers before it has a credential the authorizer could check: the request " +
		"carries a short-lived, use-limited enrollment token in its body, which the agent API verifies.",
	"GET /v1/notification-channels/confirm":  confirmReason,
	"POST /v1/notification-channels/confirm": confirmReason,
}

const confirmReason = "A person confirms an email address by opening the link mailed to it, with no API key: the " +
	"link's single-use, expiring token is the credential, which the tenant API verifies against its stored hash."

// PublicRouteReason says why the route with key ("GET /v1/...") skips the authorizer, or ""
// when it does not.
func PublicRouteReason(key string) string { return publicRoutes[key] }

// The operations an OpenAPI path item may hold, all of which an HTTP API can route.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch"}

// LoadRoutes reads the OpenAPI document at path and returns one route per path and method, in
// a stable order. Every path must lie under /v1/.
func LoadRoutes(path string) ([]Route, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the OpenAPI document: %w", err)
	}
	var doc struct {
		OpenAPI string                          `yaml:"openapi"`
		Paths   map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		return nil, fmt.Errorf("%s: want an OpenAPI 3 document, got openapi %q", path, doc.OpenAPI)
	}
	var routes []Route
	for p, item := range doc.Paths {
		if !strings.HasPrefix(p, apiPrefix) {
			return nil, fmt.Errorf("%s: path %s is not under %s", path, p, apiPrefix)
		}
		fn := FnAPI
		if strings.HasPrefix(p, agentAPIPrefix) {
			fn = FnAgentAPI
		}
		for _, m := range openAPIMethods {
			op, ok := item[m]
			if !ok {
				continue
			}
			r := Route{Method: strings.ToUpper(m), Path: p, Function: fn}
			r.Public = publicRoutes[r.Key()] != ""
			if declaresNoSecurity(&op) && !r.Public {
				return nil, fmt.Errorf("%s: %s declares `security: []`, but the stack puts every route except %v behind the authorizer",
					path, r.Key(), publicRouteKeys())
			}
			routes = append(routes, r)
		}
	}
	if len(routes) == 0 {
		return nil, fmt.Errorf("%s has no operations", path)
	}
	sort.Slice(routes, func(i, j int) bool {
		if routes[i].Path != routes[j].Path {
			return routes[i].Path < routes[j].Path
		}
		return routes[i].Method < routes[j].Method
	})
	return routes, nil
}

// declaresNoSecurity reports whether an operation says `security: []`: callers send no credential.
func declaresNoSecurity(op *yaml.Node) bool {
	var fields struct {
		Security *[]any `yaml:"security"`
	}
	return op.Decode(&fields) == nil && fields.Security != nil && len(*fields.Security) == 0
}

func publicRouteKeys() []string {
	keys := make([]string, 0, len(publicRoutes))
	for k := range publicRoutes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
