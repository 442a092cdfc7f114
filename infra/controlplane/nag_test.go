package controlplane_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/jsii-runtime-go"

	"github.com/restic-monitor/restic-monitor/infra/controlplane"
)

// TestAwsSolutionsChecks runs cdk-nag's AwsSolutions pack: every finding is either fixed or
// suppressed on its resource with a reason.
func TestAwsSolutionsChecks(t *testing.T) {
	tenant := baseConfig()
	tenant.Tenant = "acme"
	tenant.AlarmEmail = "ops@example.com"
	tenant.SESIdentity = "alerts@example.com"
	// With account and region known, the CDK renders ARNs differently (no partition token).
	pinned := baseConfig()
	pinned.Account, pinned.Region = "111111111111", "eu-west-1"
	for _, cfg := range []controlplane.Config{baseConfig(), tenant, pinned} {
		s := synth(t, cfg)
		annotations := assertions.Annotations_FromStack(s.stack.Stack)
		nag := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
		for _, kind := range []struct {
			name string
			//lint:ignore SA1019 the assertions API still returns this type; its new home is not in aws-cdk-lib for Go
			found *[]*cxapi.SynthesisMessage
		}{
			{"error", annotations.FindError(jsii.String("*"), nag)},
			{"warning", annotations.FindWarning(jsii.String("*"), nag)},
		} {
			for _, m := range *kind.found {
				//lint:ignore SA1019 as above: the message's fields are what the assertions API gives
				t.Errorf("%s: cdk-nag %s at %s: %v", cfg.StackName(), kind.name, *m.Id, m.Entry.Data)
			}
		}

		suppressions := 0
		for id, r := range s.json["Resources"].(map[string]any) {
			meta, _ := r.(map[string]any)["Metadata"].(map[string]any)
			nagMeta, _ := meta["cdk_nag"].(map[string]any)
			for _, rule := range resourceList(nagMeta["rules_to_suppress"]) {
				suppressions++
				m := rule.(map[string]any)
				if reason, _ := m["reason"].(string); len(strings.Fields(reason)) < 8 {
					t.Errorf("%s: suppression of %v without a real reason: %q", id, m["id"], reason)
				}
			}
		}
		if suppressions == 0 {
			t.Errorf("%s: no suppression found in the template; the metadata walk is broken", cfg.StackName())
		}
	}
}
