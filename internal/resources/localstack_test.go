package resources_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/restic-monitor/restic-monitor/internal/resources"
)

const localstackDir = "../../localstack"

func TestLocalStackInitFilesMatchTheDefinition(t *testing.T) {
	files, err := resources.LocalStackFiles(resources.LocalStackNames)
	require.NoError(t, err)
	require.Len(t, files, 3)
	for name, generated := range files {
		committed, err := os.ReadFile(filepath.Join(localstackDir, "init", name))
		require.NoError(t, err)
		if string(generated) != string(committed) {
			t.Errorf("localstack/init/%s drifted from internal/resources; run go generate ./internal/resources\ngot (committed):\n%s\nwant (generated):\n%s",
				name, committed, generated)
		}
	}
}

func TestLocalStackTableJSONIsTheCreateTableRequest(t *testing.T) {
	files, err := resources.LocalStackFiles(resources.Names{Stage: "dev"})
	require.NoError(t, err)
	require.Equal(t, "restic-monitor-dev", resources.LocalStackTable)

	// Reading the file back into the SDK's request gives the request EnsureTable sends: dropping
	// unset members lost nothing.
	var got dynamodb.CreateTableInput
	require.NoError(t, json.Unmarshal(files["table.json"], &got))
	require.Equal(t, *resources.Table.CreateTableInput("restic-monitor-dev"), got)

	require.NotContains(t, string(files["table.json"]), "null", "the AWS CLI refuses null members")
	var ttl dynamodb.UpdateTimeToLiveInput
	require.NoError(t, json.Unmarshal(files["ttl.json"], &ttl))
	require.Equal(t, resources.Table.TTLAttribute, *ttl.TimeToLiveSpecification.AttributeName)
	require.True(t, *ttl.TimeToLiveSpecification.Enabled)
}

func TestLocalStackDeadLetterQueueJSONIsTheCreateQueueRequest(t *testing.T) {
	n := resources.Names{Stage: "dev"}
	files, err := resources.LocalStackFiles(n)
	require.NoError(t, err)
	var got sqs.CreateQueueInput
	require.NoError(t, json.Unmarshal(files["agent-dlq.json"], &got))
	require.Equal(t, "restic-monitor-dev-agent-dlq", aws.ToString(got.QueueName))
	require.Equal(t, resources.DLQAttributes(), got.Attributes)

	// Given RM_TABLE, the hook names the queue after that table, as Names does.
	hook, err := os.ReadFile(filepath.Join(localstackDir, "init", "ready.d", "create-resources.sh"))
	require.NoError(t, err)
	derived := regexp.MustCompile(`dlq=\$\{table\}(\S+)`).FindSubmatch(hook)
	require.NotNil(t, derived, "the hook derives the queue's name from the table's")
	require.Equal(t, n.DeadLetterQueueName(), n.TableName()+string(derived[1]))
}

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Ports       []string          `yaml:"ports"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
	} `yaml:"services"`
}

func TestDockerComposeMountsTheInitHook(t *testing.T) {
	body, err := os.ReadFile(filepath.Join(localstackDir, "docker-compose.yml"))
	require.NoError(t, err)
	var compose composeFile
	require.NoError(t, yaml.Unmarshal(body, &compose))
	ls, ok := compose.Services["localstack"]
	require.True(t, ok, "a service named localstack")

	require.Contains(t, ls.Image, "localstack/localstack:")
	require.True(t, slices.ContainsFunc(ls.Ports, func(p string) bool { return strings.HasSuffix(p, ":4566:4566") || p == "4566:4566" }),
		"port 4566 published at localaws.DefaultEndpoint's port, got %v", ls.Ports)
	services := strings.Split(ls.Environment["SERVICES"], ",")
	for _, s := range []string{"dynamodb", "sqs", "sts", "lambda", "apigateway", "events"} {
		require.Contains(t, services, s)
	}

	// Every mounted file exists here, and the hook finds the JSON files where they are mounted.
	targets := map[string]string{}
	for _, v := range ls.Volumes {
		parts := strings.Split(v, ":")
		require.GreaterOrEqual(t, len(parts), 2, "volume %q", v)
		src, dst := parts[0], parts[1]
		if strings.HasPrefix(src, "./") {
			_, err := os.Stat(filepath.Join(localstackDir, src))
			require.NoError(t, err, "volume %q mounts a missing path", v)
		}
		targets[dst] = src
	}
	require.Equal(t, "./init/ready.d", targets["/etc/localstack/init/ready.d"])

	hook := filepath.Join(localstackDir, "init", "ready.d", "create-resources.sh")
	script, err := os.ReadFile(hook)
	require.NoError(t, err)
	dir := regexp.MustCompile(`dir=\$\{RM_INIT_DIR:-([^}]+)\}`).FindSubmatch(script)
	require.NotNil(t, dir, "the hook names the directory it reads the JSON files from")
	files, err := resources.LocalStackFiles(resources.LocalStackNames)
	require.NoError(t, err)
	for name := range files {
		require.Equal(t, "./init/"+name, targets[string(dir[1])+"/"+name], "%s is mounted where the hook reads it", name)
	}
}

func TestInitHookIsAnExecutableBashScript(t *testing.T) {
	hook := filepath.Join(localstackDir, "init", "ready.d", "create-resources.sh")
	info, err := os.Stat(hook)
	require.NoError(t, err)
	require.NotZero(t, info.Mode()&0o111, "LocalStack runs only executable hooks")
	out, err := exec.Command("bash", "-n", hook).CombinedOutput()
	require.NoError(t, err, "bash -n: %s", out)
}
