// Package functions_test runs each Lambda binary as a real process against the emulator's
// Lambda runtime API and invokes it with a representative event. Handler tests cover the logic;
// this covers the main packages: configuration from the environment, cold-start construction,
// and the runtime wiring.
package functions_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/localaws"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

// fixture is a tenant with an admin key and an enrollment token in a fresh table.
type fixture struct {
	table, stage string
	apiKey       string
	apiKeyID     string
	enrollToken  string
}

func seed(t *testing.T, st *store.Store) fixture {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	require.NoError(t, st.CreateTenant(ctx, domain.Tenant{ID: "lambda-test", Name: "Lambda test", CreatedAt: now}))
	keyID, keySecret := domain.NewID(now), auth.NewSecret()
	require.NoError(t, st.CreateAPIKey(ctx, "lambda-test", domain.APIKey{ID: keyID, Name: "admin", Role: domain.RoleAdmin, SecretHash: auth.Hash(keySecret), CreatedAt: now}))
	tokID, tokSecret := domain.NewID(now), auth.NewSecret()
	require.NoError(t, st.CreateEnrollmentToken(ctx, "lambda-test", domain.EnrollmentToken{ID: tokID, SecretHash: auth.Hash(tokSecret), MaxUses: 1, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	return fixture{
		table: st.Table(), stage: "l" + testenv.UniqueName("")[:6],
		apiKey: auth.Format(auth.PrefixAPIKey, keyID, keySecret), apiKeyID: keyID,
		enrollToken: auth.Format(auth.PrefixEnrollment, tokID, tokSecret),
	}
}

// buildFunction builds one Lambda's bootstrap as the deployment does.
func buildFunction(t *testing.T, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", out, "./"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "build %s: %s", name, b)
	return out
}

// startFunction registers a function with the emulator and runs its binary against the
// emulator's runtime API, the way the Lambda service runs a provided.al2023 function.
func startFunction(t *testing.T, client *lambda.Client, function, binary string, env map[string]string) string {
	t.Helper()
	ctx := context.Background()
	name := testenv.UniqueName(function + "-")
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	w, err := zw.Create("bootstrap")
	require.NoError(t, err)
	bin, err := os.ReadFile(binary)
	require.NoError(t, err)
	_, err = w.Write(bin)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	_, err = client.CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName:  aws.String(name),
		Runtime:       types.RuntimeProvidedal2023,
		Handler:       aws.String("bootstrap"),
		Role:          aws.String("arn:aws:iam::000000000000:role/restic-monitor-test"),
		Code:          &types.FunctionCode{ZipFile: zipped.Bytes()},
		Architectures: []types.Architecture{types.ArchitectureArm64},
		Timeout:       aws.Int32(30),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = client.DeleteFunction(context.Background(), &lambda.DeleteFunctionInput{FunctionName: aws.String(name)})
	})

	endpoint, err := url.Parse(localaws.Endpoint())
	require.NoError(t, err)
	cmd := exec.Command(binary)
	// The emulator does not hand a function its configured environment (measured); the
	// harness passes it, as the Lambda service would.
	cmd.Env = []string{
		"AWS_LAMBDA_RUNTIME_API=" + endpoint.Host + "/_runtime/" + name,
		"AWS_LAMBDA_FUNCTION_NAME=" + name,
		"AWS_ENDPOINT_URL=" + localaws.Endpoint(),
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"HOME=" + t.TempDir(),
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, logs.String())
		}
	})
	return name
}

// invoke calls a function synchronously and decodes its result into out.
func invoke(t *testing.T, client *lambda.Client, name string, event, out any) {
	t.Helper()
	payload, err := json.Marshal(event)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var res *lambda.InvokeOutput
	for {
		res, err = client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(name), Payload: payload})
		// The process polls the runtime API only once it has started; until then the emulator
		// has no handler for the function.
		if err != nil && strings.Contains(err.Error(), "no runtime handler") && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		break
	}
	require.NoError(t, err)
	require.Nil(t, res.FunctionError, "function error: %s", res.Payload)
	require.NoError(t, json.Unmarshal(res.Payload, out), "payload: %s", res.Payload)
}

func TestLambdaBinariesServeRepresentativeEvents(t *testing.T) {
	cfg := testenv.AWS(t)
	table := testenv.Table(t, cfg)
	st := store.New(dynamodb.NewFromConfig(cfg), table)
	fx := seed(t, st)
	// The stack creates the agents' dead-letter queue; the agent API only finds it.
	qm := queue.New(sqs.NewFromConfig(cfg), resources.Names{Stage: fx.stage})
	_, err := qm.EnsureDeadLetterQueue(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { _ = qm.DeleteDeadLetterQueue(context.Background()) })
	client := lambda.NewFromConfig(cfg)
	env := map[string]string{"RM_TABLE": fx.table, "RM_STAGE": fx.stage, "RM_AGENT_ROLE_ARN": "arn:aws:iam::000000000000:role/restic-monitor-agents", "LOG_LEVEL": "warn"}

	t.Run("authorizer", func(t *testing.T) {
		fn := startFunction(t, client, "authorizer", buildFunction(t, "authorizer"), env)
		var res events.APIGatewayV2CustomAuthorizerSimpleResponse
		invoke(t, client, fn, events.APIGatewayV2CustomAuthorizerV2Request{
			Version: "2.0", Type: "REQUEST", RouteKey: "GET /v1/agents",
			Headers: map[string]string{"authorization": "Bearer " + fx.apiKey},
		}, &res)
		assert.True(t, res.IsAuthorized)
		assert.Equal(t, map[string]any{"tenantId": "lambda-test", "principalType": "apikey", "principalId": fx.apiKeyID, "role": "admin", "principalName": "admin"}, res.Context, "the key's name travels on, for the audit log")
	})

	t.Run("api", func(t *testing.T) {
		fn := startFunction(t, client, "api", buildFunction(t, "api"), env)
		var res events.APIGatewayV2HTTPResponse
		invoke(t, client, fn, apiEvent("GET", "/v1/agents", "", map[string]any{
			"tenantId": "lambda-test", "principalType": "apikey", "principalId": fx.apiKeyID, "role": "admin",
		}), &res)
		require.Equal(t, 200, res.StatusCode, res.Body)
		var body struct{ Items []any }
		require.NoError(t, json.Unmarshal([]byte(res.Body), &body))
		assert.Empty(t, body.Items)
	})

	t.Run("agentapi", func(t *testing.T) {
		fn := startFunction(t, client, "agentapi", buildFunction(t, "agentapi"), env)
		reg, _ := json.Marshal(map[string]any{
			"token": fx.enrollToken, "hostname": "db-1", "os": "linux", "arch": "arm64", "agentVersion": "1.0.0", "resticVersion": "0.18.1",
		})
		var res events.APIGatewayV2HTTPResponse
		invoke(t, client, fn, apiEvent("POST", "/v1/agent/register", string(reg), nil), &res)
		require.Equal(t, 201, res.StatusCode, res.Body)
		var body struct {
			AgentID, Credential, QueueURL string
		}
		require.NoError(t, json.Unmarshal([]byte(res.Body), &body))
		assert.True(t, domain.ValidID(body.AgentID), "agent ID %q", body.AgentID)
		assert.True(t, strings.HasPrefix(body.Credential, "rma_"+body.AgentID+"_"))
		assert.Contains(t, body.QueueURL, "rm-"+fx.stage+"-lambda-test-"+body.AgentID)
	})

	t.Run("scheduler", func(t *testing.T) {
		fn := startFunction(t, client, "scheduler", buildFunction(t, "scheduler"), env)
		var res map[string]any
		invoke(t, client, fn, events.CloudWatchEvent{
			Version: "0", ID: "e1", DetailType: "Scheduled Event", Source: "aws.events", AccountID: "000000000000",
			Time: time.Now().UTC(), Region: "us-east-1", Resources: []string{"arn:aws:events:us-east-1:000000000000:rule/restic-monitor-tick"},
			Detail: json.RawMessage(`{}`),
		}, &res)
		assert.NotEmpty(t, res)
	})
}

func apiEvent(method, path, body string, authorizer map[string]any) events.APIGatewayV2HTTPRequest {
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: method + " " + path, RawPath: path, Body: body,
		Headers: map[string]string{"content-type": "application/json", "host": "api.example.test"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: "r-1", Stage: "$default",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path, Protocol: "HTTP/1.1", SourceIP: "192.0.2.10"},
		},
	}
	if authorizer != nil {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{Lambda: authorizer}
	}
	return ev
}
