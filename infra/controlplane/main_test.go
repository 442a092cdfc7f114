package controlplane_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/restic-monitor/restic-monitor/infra/controlplane"
)

// flags is cdk.json's context: without its feature flags the tests would read a different
// template from the one `cdk deploy` deploys.
var flags map[string]any

// scratch holds the tests' Lambda folders and cloud assemblies.
var scratch string

// lambdaDir stands in for bin/lambda. The template only hashes each folder, so any file named
// bootstrap will do; make synth checks the executables that make build really writes.
var lambdaDir string

func TestMain(m *testing.M) {
	code := func() int {
		var err error
		if flags, err = controlplane.LoadContext("../cdk.json"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if scratch, err = os.MkdirTemp("", "restic-monitor-infra-test-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(scratch)
		lambdaDir = filepath.Join(scratch, "lambda")
		for _, fn := range []string{controlplane.FnAPI, controlplane.FnAgentAPI, controlplane.FnAuthorizer, controlplane.FnScheduler, controlplane.FnNotifier} {
			dir := filepath.Join(lambdaDir, fn)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			if err := os.WriteFile(filepath.Join(dir, "bootstrap"), []byte("test asset for "+fn+"\n"), 0o755); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return m.Run()
	}()
	jsii.Close()
	os.Exit(code)
}

// baseConfig is the shared production deployment, built from the test OpenAPI document.
func baseConfig() controlplane.Config {
	return controlplane.Config{
		Stage:              "prod",
		OpenAPIPath:        "../testdata/openapi.yaml",
		LambdaDir:          lambdaDir,
		LogRetentionDays:   30,
		AuditRetentionDays: 365,
		LogLevel:           "info",
		Packaging:          controlplane.PackagingCDK,
	}
}

// synthesized is one stack, its template as assertions read it, and the same template as JSON.
type synthesized struct {
	stack    *controlplane.Stack
	template assertions.Template
	json     map[string]any
}

var synthesizedByConfig = map[controlplane.Config]*synthesized{}

// synth builds and synthesizes the stack for cfg, checked by cdk-nag, once per configuration:
// a synthesis takes seconds.
func synth(t *testing.T, cfg controlplane.Config) *synthesized {
	t.Helper()
	if s, ok := synthesizedByConfig[cfg]; ok {
		return s
	}
	outdir, err := os.MkdirTemp(scratch, "cdk.out-")
	if err != nil {
		t.Fatal(err)
	}
	app := awscdk.NewApp(&awscdk.AppProps{Context: &flags, Outdir: jsii.String(outdir)})
	stack, err := controlplane.New(app, cfg)
	if err != nil {
		t.Fatalf("build the stack: %v", err)
	}
	controlplane.ApplyChecks(app)
	template := fromStack(t, stack)
	raw, err := json.Marshal(template.ToJSON())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	s := &synthesized{stack: stack, template: template, json: doc}
	synthesizedByConfig[cfg] = s
	return s
}

// fromStack synthesizes the stack; a failed synthesis (a cdk-nag error among them) fails the
// test instead of panicking.
func fromStack(t *testing.T, stack *controlplane.Stack) (template assertions.Template) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("synthesize %s: %v", *stack.StackName(), r)
		}
	}()
	return assertions.Template_FromStack(stack.Stack, nil)
}

// resourcesOfType returns the template's resources of one type by logical ID.
func (s *synthesized) resourcesOfType(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range s.json["Resources"].(map[string]any) {
		res := r.(map[string]any)
		if res["Type"] == typ {
			out[id] = res
		}
	}
	return out
}

// resource returns the one resource of typ whose properties satisfy match.
func (s *synthesized) resource(t *testing.T, typ string, match func(props map[string]any) bool) (string, map[string]any) {
	t.Helper()
	var found []string
	for id, r := range s.resourcesOfType(typ) {
		props, _ := r["Properties"].(map[string]any)
		if match(props) {
			found = append(found, id)
		}
	}
	if len(found) != 1 {
		t.Fatalf("got %d %s resources that match, want 1: %v", len(found), typ, found)
	}
	return found[0], s.resourcesOfType(typ)[found[0]]
}

// logicalID is the logical ID of the CloudFormation resource behind an L2 construct.
func (s *synthesized) logicalID(c constructs.IConstruct) string {
	return *s.stack.GetLogicalId(c.Node().DefaultChild().(awscdk.CfnElement))
}

func ref(id string) map[string]any          { return map[string]any{"Ref": id} }
func getAtt(id, attr string) []any          { return []any{id, attr} }
func arnOf(id string) map[string]any        { return map[string]any{"Fn::GetAtt": getAtt(id, "Arn")} }
func props(r map[string]any) map[string]any { return r["Properties"].(map[string]any) }

// jsonEqual compares two values as JSON documents.
func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// sortedStrings turns a JSON list of strings (or one string) into a sorted slice.
func sortedStrings(v any) []string {
	var out []string
	switch x := v.(type) {
	case string:
		out = []string{x}
	case []any:
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
	}
	sort.Strings(out)
	return out
}

// function finds the template resource of one of the stack's functions by name.
func (s *synthesized) function(t *testing.T, name string) (string, map[string]any) {
	t.Helper()
	fn, ok := s.stack.Functions[name]
	if !ok {
		t.Fatalf("the stack has no %s function", name)
	}
	id := s.logicalID(fn)
	r, ok := s.resourcesOfType("AWS::Lambda::Function")[id]
	if !ok {
		t.Fatalf("the template has no function %s (%s)", name, id)
	}
	return id, r
}
