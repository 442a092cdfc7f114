package controlplane

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfront"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfrontorigins"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/jsii-runtime-go"
)

// DashboardCSP is the Content-Security-Policy of every dashboard page, as rm-dev sends it
// (web/web.go): scripts, styles and API calls from the dashboard's own origin only.
const DashboardCSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// spaRewrite sends every path outside /v1/ that names no file (no dot in its last segment) to
// index.html, so the dashboard's own routes load on a reload. It runs on the bucket's
// behaviour only, so the API's own 404s stay JSON.
const spaRewrite = `function handler(event) {
  var r = event.request;
  var last = r.uri.substring(r.uri.lastIndexOf('/') + 1);
  if (last.indexOf('.') === -1) { r.uri = '/index.html'; }
  return r;
}`

// newWeb serves the dashboard (make web's web/dist/app, uploaded to WebBucket) from a private
// bucket through CloudFront, and the HTTP API under /v1/* on the same origin, so the browser
// calls the API without CORS and the API key never leaves the one origin.
func (s *Stack) newWeb() {
	s.WebBucket = awss3.NewBucket(s.Stack, jsii.String("DashboardBucket"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		// The bucket holds only build output, which make web recreates.
		RemovalPolicy:     awscdk.RemovalPolicy_DESTROY,
		AutoDeleteObjects: jsii.Bool(false),
	})
	rewrite := awscloudfront.NewFunction(s.Stack, jsii.String("DashboardRoutes"), &awscloudfront.FunctionProps{
		Code:    awscloudfront.FunctionCode_FromInline(jsii.String(spaRewrite)),
		Runtime: awscloudfront.FunctionRuntime_JS_2_0(),
		Comment: jsii.String("restic-monitor dashboard routes to index.html (" + s.Config.baseName() + ")"),
	})
	headers := awscloudfront.NewResponseHeadersPolicy(s.Stack, jsii.String("DashboardHeaders"), &awscloudfront.ResponseHeadersPolicyProps{
		Comment: jsii.String("restic-monitor dashboard security headers"),
		SecurityHeadersBehavior: &awscloudfront.ResponseSecurityHeadersBehavior{
			ContentSecurityPolicy: &awscloudfront.ResponseHeadersContentSecurityPolicy{ContentSecurityPolicy: jsii.String(DashboardCSP), Override: jsii.Bool(true)},
			ContentTypeOptions:    &awscloudfront.ResponseHeadersContentTypeOptions{Override: jsii.Bool(true)},
			FrameOptions:          &awscloudfront.ResponseHeadersFrameOptions{FrameOption: awscloudfront.HeadersFrameOption_DENY, Override: jsii.Bool(true)},
			ReferrerPolicy:        &awscloudfront.ResponseHeadersReferrerPolicy{ReferrerPolicy: awscloudfront.HeadersReferrerPolicy_NO_REFERRER, Override: jsii.Bool(true)},
			StrictTransportSecurity: &awscloudfront.ResponseHeadersStrictTransportSecurity{
				AccessControlMaxAge: awscdk.Duration_Days(jsii.Number(365)), IncludeSubdomains: jsii.Bool(true), Override: jsii.Bool(true),
			},
		},
	})
	// The API's endpoint is https://<id>.execute-api.<region>.<suffix>: the origin is its host.
	apiHost := awscdk.Fn_Select(jsii.Number(2), awscdk.Fn_Split(jsii.String("/"), s.API.ApiEndpoint(), nil))
	s.Web = awscloudfront.NewDistribution(s.Stack, jsii.String("Dashboard"), &awscloudfront.DistributionProps{
		Comment:           jsii.String("restic-monitor dashboard and API (" + s.Config.baseName() + ")"),
		DefaultRootObject: jsii.String("index.html"),
		HttpVersion:       awscloudfront.HttpVersion_HTTP2_AND_3,
		DefaultBehavior: &awscloudfront.BehaviorOptions{
			Origin:                awscloudfrontorigins.S3BucketOrigin_WithOriginAccessControl(s.WebBucket, nil),
			ViewerProtocolPolicy:  awscloudfront.ViewerProtocolPolicy_REDIRECT_TO_HTTPS,
			CachePolicy:           awscloudfront.CachePolicy_CACHING_OPTIMIZED(),
			ResponseHeadersPolicy: headers,
			FunctionAssociations: &[]*awscloudfront.FunctionAssociation{{
				EventType: awscloudfront.FunctionEventType_VIEWER_REQUEST, Function: rewrite,
			}},
		},
		AdditionalBehaviors: &map[string]*awscloudfront.BehaviorOptions{
			"/v1/*": {
				Origin: awscloudfrontorigins.NewHttpOrigin(apiHost, &awscloudfrontorigins.HttpOriginProps{
					ProtocolPolicy: awscloudfront.OriginProtocolPolicy_HTTPS_ONLY,
				}),
				ViewerProtocolPolicy: awscloudfront.ViewerProtocolPolicy_HTTPS_ONLY,
				AllowedMethods:       awscloudfront.AllowedMethods_ALLOW_ALL(),
				// Nothing of the API is cached; every header but Host (the API's own) and every
				// query string reach it, the Authorization header included.
				CachePolicy:         awscloudfront.CachePolicy_CACHING_DISABLED(),
				OriginRequestPolicy: awscloudfront.OriginRequestPolicy_ALL_VIEWER_EXCEPT_HOST_HEADER(),
			},
		},
	})
}
