package controlplane_test

import (
	"strings"
	"testing"

	"github.com/restic-monitor/restic-monitor/infra/controlplane"
)

// CloudFront's managed policies, by their fixed IDs.
const (
	cachingDisabled           = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
	cachingOptimized          = "658327ea-f89d-4fab-a63d-7e88639e58f6"
	allViewerExceptHostHeader = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
)

// TestDashboard checks that the dashboard comes from a private bucket and the API from the
// same origin under /v1/*, uncached and with every method and the Authorization header.
func TestDashboard(t *testing.T) {
	s := synth(t, baseConfig())
	distID := s.logicalID(s.stack.Web)
	bucketID := s.logicalID(s.stack.WebBucket)
	dist := props(s.resourcesOfType("AWS::CloudFront::Distribution")[distID])["DistributionConfig"].(map[string]any)

	origins := map[string]map[string]any{}
	for _, o := range dist["Origins"].([]any) {
		origin := o.(map[string]any)
		origins[origin["Id"].(string)] = origin
	}
	def := dist["DefaultCacheBehavior"].(map[string]any)
	bucketOrigin := origins[def["TargetOriginId"].(string)]
	if got := asJSON(bucketOrigin["DomainName"]); !strings.Contains(got, bucketID) {
		t.Errorf("the default behaviour reads %s, want the dashboard bucket %s", got, bucketID)
	}
	if bucketOrigin["OriginAccessControlId"] == nil {
		t.Error("the bucket is read without origin access control")
	}
	if def["CachePolicyId"] != cachingOptimized || def["ViewerProtocolPolicy"] != "redirect-to-https" {
		t.Errorf("default behaviour: cache %v, viewer %v", def["CachePolicyId"], def["ViewerProtocolPolicy"])
	}
	if fa, _ := def["FunctionAssociations"].([]any); len(fa) != 1 || fa[0].(map[string]any)["EventType"] != "viewer-request" {
		t.Errorf("the dashboard's routes are not rewritten to index.html: %s", asJSON(def["FunctionAssociations"]))
	}
	if dist["DefaultRootObject"] != "index.html" {
		t.Errorf("default root object %v", dist["DefaultRootObject"])
	}

	var api map[string]any
	for _, b := range dist["CacheBehaviors"].([]any) {
		if beh := b.(map[string]any); beh["PathPattern"] == "/v1/*" {
			api = beh
		}
	}
	if api == nil {
		t.Fatalf("no /v1/* behaviour: %s", asJSON(dist["CacheBehaviors"]))
	}
	apiOrigin := origins[api["TargetOriginId"].(string)]
	if got := asJSON(apiOrigin["DomainName"]); !strings.Contains(got, s.logicalID(s.stack.API)) || !strings.Contains(got, "ApiEndpoint") {
		t.Errorf("/v1/* goes to %s, want the HTTP API's host", got)
	}
	if got := asJSON(apiOrigin["CustomOriginConfig"]); !strings.Contains(got, `"https-only"`) {
		t.Errorf("the API is reached with %s, want HTTPS only", got)
	}
	if api["CachePolicyId"] != cachingDisabled || api["OriginRequestPolicyId"] != allViewerExceptHostHeader {
		t.Errorf("/v1/*: cache policy %v, origin request policy %v: the API must be uncached and get the Authorization header", api["CachePolicyId"], api["OriginRequestPolicyId"])
	}
	methods := sortedStrings(api["AllowedMethods"])
	for _, m := range []string{"DELETE", "GET", "PATCH", "POST", "PUT"} {
		if !strings.Contains(strings.Join(methods, ","), m) {
			t.Errorf("/v1/* refuses %s: %v", m, methods)
		}
	}
	if api["FunctionAssociations"] != nil {
		t.Error("the API's paths must not be rewritten to index.html")
	}

	bucket := props(s.resourcesOfType("AWS::S3::Bucket")[bucketID])
	if got := asJSON(bucket["PublicAccessBlockConfiguration"]); strings.Count(got, "true") != 4 {
		t.Errorf("the dashboard bucket is not private: %s", got)
	}
	_, policy := s.resource(t, "AWS::S3::BucketPolicy", func(p map[string]any) bool { return jsonEqual(p["Bucket"], ref(bucketID)) })
	if got := asJSON(props(policy)["PolicyDocument"]); !strings.Contains(got, "cloudfront.amazonaws.com") || !strings.Contains(got, "AWS:SourceArn") || !strings.Contains(got, "aws:SecureTransport") {
		t.Errorf("the bucket policy does not limit reads to this distribution over TLS: %s", got)
	}
	_, headers := s.resource(t, "AWS::CloudFront::ResponseHeadersPolicy", func(map[string]any) bool { return true })
	if got := asJSON(props(headers)); !strings.Contains(got, controlplane.DashboardCSP) {
		t.Errorf("the dashboard's pages lack the CSP: %s", got)
	}

	outputs := s.json["Outputs"].(map[string]any)
	for _, name := range []string{"DashboardUrl", "DashboardBucketName"} {
		if _, ok := outputs[name]; !ok {
			t.Errorf("no output %s", name)
		}
	}
}
