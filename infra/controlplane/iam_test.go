package controlplane_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/restic-monitor/restic-monitor/infra/controlplane"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// statement is one statement of a policy document somewhere in a template.
type statement struct {
	resource string // logical ID of the resource that holds the document
	doc      map[string]any
}

// allStatements finds every policy statement in the template: identity policies, trust
// policies, inline role policies, queue and topic policies, wherever they sit.
func allStatements(template map[string]any) []statement {
	var out []statement
	var walk func(id string, v any)
	walk = func(id string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if list, ok := x["Statement"].([]any); ok {
				for _, st := range list {
					if m, ok := st.(map[string]any); ok {
						out = append(out, statement{resource: id, doc: m})
					}
				}
			}
			for _, e := range x {
				walk(id, e)
			}
		case []any:
			for _, e := range x {
				walk(id, e)
			}
		}
	}
	resourcesByID, _ := template["Resources"].(map[string]any)
	for id, r := range resourcesByID {
		walk(id, r)
	}
	return out
}

func resourceList(v any) []any {
	if list, ok := v.([]any); ok {
		return list
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// policyFindings reports every statement that allows a wildcard action, a NotAction or
// NotResource, any principal, or the resource "*" without a reason in justified (by Sid).
func policyFindings(template map[string]any, justified map[string]string) []string {
	var findings []string
	for _, st := range allStatements(template) {
		if st.doc["Effect"] != "Allow" {
			continue // a Deny narrows, whatever it names
		}
		where := fmt.Sprintf("%s: %s", st.resource, asJSON(st.doc))
		for _, a := range sortedStrings(st.doc["Action"]) {
			if strings.Contains(a, "*") {
				findings = append(findings, "wildcard action "+a+" in "+where)
			}
		}
		if st.doc["NotAction"] != nil || st.doc["NotResource"] != nil {
			findings = append(findings, "NotAction or NotResource in "+where)
		}
		for _, r := range resourceList(st.doc["Resource"]) {
			if r == "*" {
				sid, _ := st.doc["Sid"].(string)
				if reason := justified[sid]; reason == "" {
					findings = append(findings, "resource * without a recorded reason in "+where)
				}
			}
		}
		if p := st.doc["Principal"]; p == "*" || asJSON(p) == `{"AWS":"*"}` {
			findings = append(findings, "any principal in "+where)
		}
	}
	return findings
}

// TestNoWildcardPermissions walks every policy document of every stack variant.
func TestNoWildcardPermissions(t *testing.T) {
	tenant := baseConfig()
	tenant.Tenant = "acme"
	sam := baseConfig()
	sam.Packaging = controlplane.PackagingSAM
	for _, cfg := range []controlplane.Config{baseConfig(), tenant, sam} {
		s := synth(t, cfg)
		if n := len(allStatements(s.json)); n < 10 {
			t.Fatalf("%s: found only %d policy statements; the walk is missing documents", cfg.StackName(), n)
		}
		for _, f := range policyFindings(s.json, controlplane.WildcardResourceReasons) {
			t.Errorf("%s: %s", cfg.StackName(), f)
		}
	}
}

// TestPolicyFindingsCatchWildcards makes sure the walk above can fail.
func TestPolicyFindingsCatchWildcards(t *testing.T) {
	doc := func(statements ...any) map[string]any {
		return map[string]any{"Resources": map[string]any{"Policy": map[string]any{
			"Type":       "AWS::IAM::Policy",
			"Properties": map[string]any{"PolicyDocument": map[string]any{"Statement": statements}},
		}}}
	}
	stmt := func(kv ...any) map[string]any {
		m := map[string]any{"Effect": "Allow"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	bad := map[string]map[string]any{
		"wildcard action":      stmt("Action", "sqs:*", "Resource", "arn:aws:sqs:eu-west-1:1:q"),
		"wildcard in a list":   stmt("Action", []any{"sqs:SendMessage", "dynamodb:Get*"}, "Resource", "arn:aws:sqs:eu-west-1:1:q"),
		"any resource":         stmt("Action", "sqs:SendMessage", "Resource", "*"),
		"any resource in list": stmt("Action", "sqs:SendMessage", "Resource", []any{"arn:aws:sqs:eu-west-1:1:q", "*"}),
		"unjustified sid":      stmt("Sid", "Other", "Action", "xray:PutTraceSegments", "Resource", "*"),
		"not action":           stmt("NotAction", "iam:*", "Resource", "arn:aws:sqs:eu-west-1:1:q"),
		"any principal":        stmt("Principal", map[string]any{"AWS": "*"}, "Action", "sqs:SendMessage", "Resource", "arn:aws:sqs:eu-west-1:1:q"),
	}
	justified := map[string]string{"Tracing": "X-Ray takes no resource"}
	for name, st := range bad {
		if got := policyFindings(doc(st), justified); len(got) == 0 {
			t.Errorf("%s: no finding for %s", name, asJSON(st))
		}
	}
	good := []any{
		stmt("Action", []any{"sqs:SendMessage"}, "Resource", "arn:aws:sqs:eu-west-1:1:rm-prod-*"),
		stmt("Sid", "Tracing", "Action", "xray:PutTraceSegments", "Resource", "*"),
		map[string]any{"Effect": "Deny", "Principal": map[string]any{"AWS": "*"}, "Action": "sqs:*", "Resource": "*"},
	}
	if got := policyFindings(doc(good...), justified); len(got) != 0 {
		t.Errorf("findings in compliant statements: %v", got)
	}
}

// TestLeastPrivilege lists, for each role, every action it is allowed and on what, and compares
// it with what the code uses. A new permission has to be added here, on purpose.
func TestLeastPrivilege(t *testing.T) {
	s := synth(t, baseConfig())
	var indexes []string
	for _, ix := range resources.Table.Indexes {
		indexes = append(indexes, "index/"+ix.Name)
	}
	on := func(kinds []string, actions ...string) []string {
		var out []string
		for _, a := range actions {
			for _, k := range kinds {
				out = append(out, a+" @ "+k)
			}
		}
		return out
	}
	tableAndIndexes := append([]string{"table"}, indexes...)
	logs := on([]string{"own log group"}, "logs:CreateLogStream", "logs:PutLogEvents")
	crud := []string{"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
		"dynamodb:Query", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem"}
	join := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	want := map[string][]string{
		controlplane.FnAPI: join(logs, on(tableAndIndexes, crud...),
			on([]string{"agent queues"}, "sqs:DeleteQueue", "sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:SendMessage"),
			// finding a tenant's queues to delete them, which takes no resource
			on([]string{"any resource"}, "sqs:ListQueues"),
			// sealing channel secrets; no SES without an identity configured
			on([]string{"secret key"}, "secretsmanager:GetSecretValue")),
		controlplane.FnAgentAPI: join(logs, on(tableAndIndexes, crud...),
			on([]string{"agent queues"}, "sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes", "sqs:TagQueue"),
			// the redrive target of every queue it creates
			on([]string{"agent dead-letter queue"}, "sqs:GetQueueUrl", "sqs:GetQueueAttributes"),
			on([]string{"agent role"}, "sts:AssumeRole")),
		controlplane.FnAuthorizer: join(logs, on([]string{"table"}, "dynamodb:GetItem", "dynamodb:UpdateItem")),
		controlplane.FnScheduler: join(logs,
			on(tableAndIndexes, crud...),
			on([]string{"agent queues"}, "sqs:SendMessage", "sqs:GetQueueUrl", "sqs:DeleteQueue"),
			// carrying tenants' deletions on
			on([]string{"any resource"}, "sqs:ListQueues"),
			// draining dead letters into failed tasks
			on([]string{"agent dead-letter queue"}, "sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:DeleteMessage"),
			// the failed-tick destination
			on([]string{"scheduler dead-letter queue"}, "sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"),
			// publishing the outbox's events, on the deployment's bus only
			on([]string{"event bus"}, "events:PutEvents")),
		controlplane.FnNotifier: join(logs,
			// channels, agents, policies, claims, deliveries, streaks: items of the table, no index
			on([]string{"table"}, "dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
			on([]string{"secret key"}, "secretsmanager:GetSecretValue"),
			// the event source reading its batches
			on([]string{"notifier queue"}, "sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl", "sqs:DeleteMessage", "sqs:GetQueueAttributes")),
	}

	kinds := map[string]string{
		asJSON(arnOf(s.logicalID(s.stack.Table))):         "table",
		asJSON(arnOf(s.logicalID(s.stack.AgentRole))):     "agent role",
		asJSON(arnOf(s.logicalID(s.stack.SchedulerDLQ))):  "scheduler dead-letter queue",
		asJSON(arnOf(s.logicalID(s.stack.AgentDLQ))):      "agent dead-letter queue",
		asJSON(arnOf(s.logicalID(s.stack.EventBus))):      "event bus",
		asJSON(ref(s.logicalID(s.stack.SecretKey))):       "secret key",
		asJSON(arnOf(s.logicalID(s.stack.NotifierQueue))): "notifier queue",
	}
	kindOf := func(fnLogGroup string, r any) string {
		j := asJSON(r)
		switch {
		case kinds[j] != "":
			return kinds[j]
		case j == asJSON(arnOf(fnLogGroup)):
			return "own log group"
		case j == `"*"`:
			return "any resource"
		case strings.HasSuffix(j, `":rm-prod-*"]]}`):
			return "agent queues"
		}
		for _, ix := range indexes {
			if strings.Contains(j, asJSON(arnOf(s.logicalID(s.stack.Table)))) && strings.HasSuffix(j, `"/`+ix+`"]]}`) {
				return ix
			}
		}
		return j
	}

	roleOf := map[string]string{} // role logical ID → function
	logGroupOf := map[string]string{}
	for name := range want {
		_, fn := s.function(t, name)
		p := props(fn)
		roleOf[p["Role"].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)] = name
		logGroupOf[name] = p["LoggingConfig"].(map[string]any)["LogGroup"].(map[string]any)["Ref"].(string)
	}
	got := map[string][]string{}
	for _, policy := range s.resourcesOfType("AWS::IAM::Policy") {
		p := props(policy)
		for _, role := range resourceList(p["Roles"]) {
			name := roleOf[role.(map[string]any)["Ref"].(string)]
			if name == "" {
				continue
			}
			for _, st := range p["PolicyDocument"].(map[string]any)["Statement"].([]any) {
				m := st.(map[string]any)
				for _, a := range sortedStrings(m["Action"]) {
					for _, r := range resourceList(m["Resource"]) {
						got[name] = append(got[name], a+" @ "+kindOf(logGroupOf[name], r))
					}
				}
			}
		}
	}
	for id, role := range s.resourcesOfType("AWS::IAM::Role") {
		if props(role)["ManagedPolicyArns"] != nil || props(role)["Policies"] != nil {
			t.Errorf("role %s has managed or inline policies beyond its own statements: %s", id, asJSON(props(role)))
		}
	}
	for name, w := range want {
		sort.Strings(w)
		g := got[name]
		sort.Strings(g)
		if strings.Join(g, "\n") != strings.Join(w, "\n") {
			t.Errorf("%s is allowed:\n  %s\nwant:\n  %s", name, strings.Join(g, "\n  "), strings.Join(w, "\n  "))
		}
	}
}

// TestSESPermission gives the deployment an SES identity: the API and the notifier, and no
// other role, may send email as that identity, and as nothing else.
func TestSESPermission(t *testing.T) {
	for _, c := range []struct{ identity, from, arnSuffix string }{
		{"alerts@example.com", "", ":identity/alerts@example.com"},
		{"example.com", "backups@example.com", ":identity/example.com"},
	} {
		cfg := baseConfig()
		cfg.SESIdentity, cfg.NotifyFrom = c.identity, c.from
		s := synth(t, cfg)
		roleOf := map[string]string{}
		for name := range s.stack.Functions {
			roleOf[s.logicalID(s.stack.Roles[name])] = name
		}
		granted := map[string]string{}
		for _, policy := range s.resourcesOfType("AWS::IAM::Policy") {
			p := props(policy)
			for _, st := range p["PolicyDocument"].(map[string]any)["Statement"].([]any) {
				m := st.(map[string]any)
				actions := sortedStrings(m["Action"])
				if !strings.HasPrefix(strings.Join(actions, ","), "ses:") && !strings.Contains(strings.Join(actions, ","), ",ses:") {
					continue
				}
				for _, role := range resourceList(p["Roles"]) {
					granted[roleOf[role.(map[string]any)["Ref"].(string)]] = strings.Join(actions, ",") + " @ " + asJSON(m["Resource"])
				}
			}
		}
		wantResource := asJSON(map[string]any{"Fn::Join": []any{"", []any{
			"arn:", ref("AWS::Partition"), ":ses:", ref("AWS::Region"), ":", ref("AWS::AccountId"), c.arnSuffix}}})
		for _, fn := range []string{controlplane.FnAPI, controlplane.FnNotifier} {
			if got, want := granted[fn], "ses:SendEmail @ "+wantResource; got != want {
				t.Errorf("%s: %s may send: got %s, want %s", c.identity, fn, got, want)
			}
			delete(granted, fn)
		}
		if len(granted) > 0 {
			t.Errorf("%s: other roles may send email: %v", c.identity, granted)
		}
		for _, f := range policyFindings(s.json, controlplane.WildcardResourceReasons) {
			t.Errorf("%s: %s", c.identity, f)
		}
	}
}

// TestAgentRole checks who may assume the agents' role and what it may do at most.
func TestAgentRole(t *testing.T) {
	s := synth(t, baseConfig())
	agentRoleID := s.logicalID(s.stack.AgentRole)
	agentAPIRole := props(s.resourcesOfType("AWS::Lambda::Function")[s.logicalID(s.stack.Functions[controlplane.FnAgentAPI])])["Role"]

	trust := props(s.resourcesOfType("AWS::IAM::Role")[agentRoleID])["AssumeRolePolicyDocument"].(map[string]any)["Statement"].([]any)
	wantTrust := []any{map[string]any{"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": map[string]any{"AWS": agentAPIRole}}}
	if !jsonEqual(trust, wantTrust) {
		t.Errorf("trust policy:\ngot  %s\nwant %s", asJSON(trust), asJSON(wantTrust))
	}

	var actions []string
	for _, policy := range s.resourcesOfType("AWS::IAM::Policy") {
		p := props(policy)
		if !jsonEqual(p["Roles"], []any{ref(agentRoleID)}) {
			continue
		}
		for _, st := range p["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			m := st.(map[string]any)
			if !strings.HasSuffix(asJSON(m["Resource"]), `":rm-prod-*"]]}`) {
				t.Errorf("agent role statement on %s, want only the deployment's queues", asJSON(m["Resource"]))
			}
			actions = append(actions, sortedStrings(m["Action"])...)
		}
	}
	sort.Strings(actions)
	want := []string{"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"}
	if strings.Join(actions, ",") != strings.Join(want, ",") {
		t.Errorf("agent role actions: got %v, want %v", actions, want)
	}
}
