#!/usr/bin/env bash
# LocalStack runs this once it is ready to serve requests (docker-compose.yml mounts it into
# /etc/localstack/init/ready.d). It creates restic-monitor's table from table.json and turns on
# its TTL from ttl.json, and creates the deployment's one dead-letter queue, to which every agent
# queue redrives, from agent-dlq.json. The files are generated from internal/resources
# (go generate ./internal/resources), so these are the resources the CDK stack and the tests
# create.
#
# It creates no agent queues: the control plane creates each agent's queue when the agent
# enrolls.
#
# RM_TABLE names the table (default: the TableName in table.json, the "dev" stage's table); the
# dead-letter queue is named after the table, as resources.Names names it.
# Running it again changes nothing.
set -euo pipefail

dir=${RM_INIT_DIR:-/etc/localstack/init}
table=${RM_TABLE:-$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["TableName"])' "$dir/table.json")}

if awslocal dynamodb describe-table --table-name "$table" >/dev/null 2>&1; then
  echo "restic-monitor: table $table already exists"
else
  # A name given on the command line takes precedence over the one in the JSON file.
  awslocal dynamodb create-table --cli-input-json "file://$dir/table.json" --table-name "$table" >/dev/null
  awslocal dynamodb wait table-exists --table-name "$table"
  echo "restic-monitor: created table $table"
fi

status=$(awslocal dynamodb describe-time-to-live --table-name "$table" \
  --query TimeToLiveDescription.TimeToLiveStatus --output text)
if [[ $status != ENABLED && $status != ENABLING ]]; then
  awslocal dynamodb update-time-to-live --cli-input-json "file://$dir/ttl.json" --table-name "$table" >/dev/null
  echo "restic-monitor: enabled TTL on $table"
fi

# The queue is named after the table, as resources.Names.DeadLetterQueueName names it.
dlq=${table}-agent-dlq
# CreateQueue with the attributes of an existing queue returns that queue.
awslocal sqs create-queue --cli-input-json "file://$dir/agent-dlq.json" --queue-name "$dlq" >/dev/null
echo "restic-monitor: dead-letter queue $dlq is there"
