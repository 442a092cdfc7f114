package e2e_test

// The dashboard in a real headless Chromium (Debian's chromium package, driven over the DevTools
// protocol) against the real dev stack: the control plane, the real agent and real restic. Each
// page is screenshotted into web/screenshots/ and checked with axe-core from web/node_modules.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/devstack"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
	"github.com/restic-monitor/restic-monitor/web"
)

// chromiumBinary finds the system's Chromium (RM_CHROMIUM names another).
func chromiumBinary(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("RM_CHROMIUM"), "chromium", "chromium-browser"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if testenv.Required() {
		t.Fatal("chromium not found: install Debian's chromium package (.ci/run does)")
	}
	t.Skip("chromium not found: install Debian's chromium package")
	return ""
}

type storage struct {
	Session string `json:"session"`
	URL     string `json:"url"`
	Local   int    `json:"local"`
}

// into runs a and keeps its value in dst.
func into[T any](a chromedp.Action[T], dst *T) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		v, err := a(ctx, t)
		*dst = v
		return chromedp.Void{}, err
	}
}

// poll waits until the JavaScript expression is truthy.
func poll(expr string) chromedp.Action[chromedp.Void] {
	var ok bool
	return into(chromedp.Poll[bool]("!!("+expr+")", chromedp.WithPollingInterval(250*time.Millisecond)), &ok)
}

// clear empties an input as a person would, so the page's bindings see the change.
func clear(sel string) chromedp.Action[chromedp.Void] {
	var ok bool
	return into(chromedp.Evaluate[bool](fmt.Sprintf(`(e => { e.value = ''; e.dispatchEvent(new Event('input', {bubbles: true})); return true })(document.querySelector(%q))`, sel)), &ok)
}

type browser struct {
	t       *testing.T
	ctx     context.Context
	base    string
	shots   string
	axe     string
	checked []string
}

func newBrowser(t *testing.T, base string) *browser {
	exe := chromiumBinary(t)
	axe, err := os.ReadFile(filepath.Join("..", "web", "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		t.Fatalf("axe-core not found in web/node_modules: run make web (%v)", err)
	}
	shots := os.Getenv("RM_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join("..", "web", "screenshots")
	}
	require.NoError(t, os.MkdirAll(shots, 0o755))
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// The page's uncaught errors and console errors go to the test's log.
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf), chromedp.WithListener(func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			desc := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				desc += " " + e.ExceptionDetails.Exception.Description
			}
			t.Logf("page error: %s", desc)
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning {
				parts := make([]string, 0, len(e.Args))
				for _, a := range e.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				t.Logf("page console %s: %s", e.Type, strings.Join(parts, " "))
			}
		}
	}))
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	return &browser{t: t, ctx: ctx, base: base, shots: shots, axe: string(axe)}
}

// run runs actions with a time limit, failing the test with what the page shows on error.
func (b *browser) run(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("main")))
		b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("%s: %v\npage shows:\n%s", what, err, text)
	}
}

// shot writes a full-page PNG of what the browser shows.
func (b *browser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	require.NoError(b.t, os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644))
}

type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target []any `json:"target"`
	} `json:"nodes"`
}

// page screenshots the page shown and checks it with axe-core (WCAG 2 A and AA rules).
func (b *browser) page(name string) {
	b.t.Helper()
	b.shot(name)
	var raw string
	script := b.axe + `;axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}, resultTypes: ['violations']}).then(r => JSON.stringify(r.violations))`
	b.run("axe on "+name, 30*time.Second, into(chromedp.Evaluate[string](script, chromedp.EvalAwaitPromise), &raw))
	var violations []axeViolation
	require.NoError(b.t, json.Unmarshal([]byte(raw), &violations))
	for _, v := range violations {
		targets := make([]string, 0, len(v.Nodes))
		for _, n := range v.Nodes {
			targets = append(targets, fmt.Sprint(n.Target...))
		}
		assert.Failf(b.t, "accessibility", "page %s: %s (%s): %s at %s", name, v.ID, v.Impact, v.Help, strings.Join(targets, ", "))
	}
	b.checked = append(b.checked, name)
}

// open navigates to path and waits for sel to be visible.
func (b *browser) open(path, sel string) {
	b.t.Helper()
	b.run("open "+path, 30*time.Second, chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS(sel)))
}

// waitText waits until the text of sel contains want.
func (b *browser) waitText(what, sel, want string, timeout time.Duration) {
	b.t.Helper()
	js := fmt.Sprintf(`[...document.querySelectorAll(%q)].some(e => e.textContent.includes(%q))`, sel, want)
	b.run(what, timeout, poll(js))
}

func TestTheDashboardInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test needs the emulator, restic and chromium")
	}
	if _, ok := web.Files(); !ok {
		if testenv.Required() {
			t.Fatal("the dashboard is not built into web/dist/app: run make web")
		}
		t.Skip("the dashboard is not built: run make web")
	}
	awsCfg := testenv.AWS(t)
	restic := resticBinary(t)
	b := newBrowser(t, "")
	agentBinary := buildAgent(t)
	ctx := context.Background()
	dir := t.TempDir()

	// The dev stack as make dev runs it, with the dashboard on the APIs' origin.
	stack, err := devstack.Start(ctx, awsCfg, devstack.Options{
		Addr: "127.0.0.1:0", Table: testenv.UniqueName("rm-web-"), Stage: "w" + testenv.UniqueName("")[:6],
		HeartbeatInterval: 5 * time.Second, TickEvery: 5 * time.Second, Progress: io.Discard, Web: web.Handler(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = stack.Close() })
	b.base = stack.URL
	tenant, err := stack.EnsureTenant(ctx, "web", filepath.Join(dir, "tenant.json"))
	require.NoError(t, err)
	c := devstack.Client{URL: stack.URL, Key: tenant.APIKey}
	source := filepath.Join(dir, "source")
	require.NoError(t, devstack.WriteDemoFiles(source))
	password := filepath.Join(dir, "password")
	require.NoError(t, os.WriteFile(password, []byte("correct horse battery staple\n"), 0o600))
	var agentLog strings.Builder
	agent := &devstack.Agent{
		Binary: agentBinary, Dir: filepath.Join(dir, "agent"), ResticBinary: restic, Output: &syncWriter{w: &agentLog},
		HeartbeatInterval: 5 * time.Second, QueueWait: time.Second,
		Repositories: []devstack.AgentRepository{{Name: "demo", Location: filepath.Join(dir, "repo"), PasswordFile: password, Initialize: true}},
	}
	t.Cleanup(func() {
		_ = agent.Kill()
		if t.Failed() {
			t.Logf("agent log:\n%s", agentLog.String())
		}
	})
	require.NoError(t, agent.WriteConfig(stack.URL))
	demo, _, err := devstack.SetUpDemo(ctx, c, agent, source, "1h")
	require.NoError(t, err)
	require.NoError(t, agent.Start())
	_, err = devstack.BackupNow(ctx, c, demo)
	require.NoError(t, err)

	// Sign in with the printed key: it stays in sessionStorage, never in localStorage or a URL.
	b.open("/", "input[name=apiKey]")
	b.page("sign-in")
	b.run("sign in", 30*time.Second,
		chromedp.SendKeys(chromedp.CSS("input[name=apiKey]"), tenant.APIKey),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=agents-total]")))
	var stored storage
	b.run("read storage", 10*time.Second, into(chromedp.Evaluate[storage](`({session: sessionStorage.getItem('rm.apiKey'), local: localStorage.length, url: location.href})`), &stored))
	assert.Equal(t, tenant.APIKey, stored.Session)
	assert.Zero(t, stored.Local, "nothing in localStorage")
	assert.NotContains(t, stored.URL, tenant.APIKey)
	b.waitText("the role shown", "[data-testid=role]", "admin", 10*time.Second)

	// The overview shows the demo agent and, once it ran, its first backup.
	b.waitText("the demo agent online", "[data-testid=agents-online]", "1", time.Minute)
	b.waitText("the first backup counted", "[data-testid=runs-succeeded]", "1", 3*time.Minute)
	b.page("overview")

	var agentView struct {
		Hostname string `json:"hostname"`
	}
	require.NoError(t, c.Do(ctx, http.MethodGet, "/v1/agents/"+demo.AgentID, nil, &agentView))
	b.open("/agents", "[data-testid=agent-row]")
	b.waitText("the demo agent listed", "[data-testid=agent-row]", agentView.Hostname, 10*time.Second)
	b.page("agents")
	b.open("/agents/"+demo.AgentID, "[data-testid=run-row]")
	b.waitText("the first backup on the agent's page", "[data-testid=run-row]", "succeeded", 30*time.Second)
	b.page("agent-detail")

	// A policy with an invalid cron: the API's reason shows next to the cron field.
	b.open("/policies/new", "input[name=name]")
	b.run("fill in the policy", 30*time.Second,
		chromedp.SendKeys(chromedp.CSS("input[name=name]"), "browser-made"),
		chromedp.SendKeys(chromedp.CSS("textarea[name=paths]"), source),
		clear("input[name=cron]"),
		chromedp.SendKeys(chromedp.CSS("input[name=cron]"), "61 * * * *"),
		clear("input[name=timezone]"),
		chromedp.SendKeys(chromedp.CSS("input[name=timezone]"), "Europe/Berlin"),
	)
	b.waitText("the preview refusing the cron", "[data-testid=schedule-preview]", "cron:", 15*time.Second)
	b.run("create the invalid policy", 10*time.Second, chromedp.Click(chromedp.CSS("button[type=submit]")))
	b.waitText("the cron field's error", ".field.invalid:has(input[name=cron]) .field-error", "not a valid cron expression", 15*time.Second)
	b.page("policy-invalid-cron")

	// Fixed: the preview lists the next five runs in the zone, and the policy is created.
	b.run("fix the cron", 10*time.Second,
		clear("input[name=cron]"),
		chromedp.SendKeys(chromedp.CSS("input[name=cron]"), "15 2 * * *"))
	b.run("five previewed runs", 15*time.Second, poll(`document.querySelectorAll('[data-testid=schedule-preview] li').length === 5`))
	b.waitText("times at 02:15 local", "[data-testid=schedule-preview] li", "02:15", 5*time.Second)
	b.run("create the policy", 15*time.Second,
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		poll(`/^\/policies\/[0-9A-Z]{26}$/.test(location.pathname)`),
		chromedp.WaitVisible(chromedp.CSS("input[name=assignLabel]")))
	var loc string
	b.run("read the policy's address", 5*time.Second, into(chromedp.Evaluate[string](`location.pathname`), &loc))
	policyID := strings.TrimPrefix(loc, "/policies/")
	b.run("assign it to every agent", 30*time.Second,
		chromedp.Click(chromedp.CSS("form.toolbar button[type=submit]")),
		chromedp.WaitVisible(chromedp.Search(`//button[contains(., "Assign 1 agents")]`)),
		chromedp.Click(chromedp.Search(`//button[contains(., "Assign 1 agents")]`)),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=assigned-row]")))
	b.page("policy-edit")

	// Back up now from the agent's page, watch the run succeed and read its log.
	b.open("/agents/"+demo.AgentID, `button[aria-label="Back up now with browser-made"]`)
	b.run("back up now", 10*time.Second, chromedp.Click(chromedp.CSS(`button[aria-label="Back up now with browser-made"]`)))
	var runID string
	waitFor(t, "the new policy's run", 2*time.Minute, func() bool {
		runs := runsOf(t, c, policyID)
		if len(runs) > 0 {
			runID = runs[0].ID
		}
		return runID != ""
	})
	b.open("/runs/"+runID, "[data-testid=log]")
	b.waitText("the run to succeed", "[data-testid=run-status]", "succeeded", 3*time.Minute)
	b.run("the log", 30*time.Second, poll(`!document.querySelector('[data-testid=log]').textContent.includes('No log lines yet.')`))
	var snapshotID string
	b.run("the snapshot", 10*time.Second, into(chromedp.Text(chromedp.CSS("[data-testid=snapshot-id]")), &snapshotID))
	require.NotEmpty(t, snapshotID)
	b.page("run-detail")

	b.open("/runs", "[data-testid=run-row]")
	b.page("runs")
	b.open("/policies", "[data-testid=policy-row]")
	b.page("policies")
	b.open("/repositories", "[data-testid=repo-row]")
	b.page("repositories")
	// A check, which the agent follows with the repository's stats: the health page shows them
	// and the first point of the size chart.
	check := finishedTask(t, c, runTask(t, c, map[string]any{"type": "check", "agentId": demo.AgentID, "policyId": demo.PolicyID}))
	require.Equal(t, "succeeded", check.Status, "the check")
	b.open("/repositories/demo", "h2")
	b.waitText("the repository's health", "[data-testid=health]", "ok", 30*time.Second)
	b.run("the size chart", 15*time.Second, poll(`(document.querySelector('svg[role=img]')?.getAttribute('aria-label') ?? '').includes(' from ')`))
	b.page("repository-detail")
	b.open("/channels", "h1")
	b.page("channels")
	b.open("/audit", "h1")
	b.waitText("the policy's creation in the audit log", "[data-testid=audit-row]", `"15 2 * * *"`, 15*time.Second)
	b.page("audit")

	// An enrollment token: its secret and the enroll command shown once, with copy buttons.
	b.open("/keys", "[data-testid=key-row]")
	b.run("create an enrollment token", 15*time.Second,
		chromedp.SendKeys(chromedp.CSS("input[name=tokenDescription]"), "browser token"),
		chromedp.Click(chromedp.Search(`//button[contains(., "Create enrollment token")]`)),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=command]")))
	var token, command string
	b.run("read the token", 5*time.Second,
		into(chromedp.Text(chromedp.CSS("[data-testid=secret]")), &token),
		into(chromedp.Text(chromedp.CSS("[data-testid=command]")), &command))
	assert.True(t, strings.HasPrefix(token, "rme_"), token)
	assert.Contains(t, command, "restic-monitor-agent enroll")
	assert.Contains(t, command, "--url "+stack.URL)
	b.page("keys")

	browseAndRestore(t, b, c, demo.AgentID, snapshotID, source)

	// A viewer's key: the same pages without a single write control.
	var viewer struct {
		Key string `json:"key"`
	}
	require.NoError(t, c.Do(ctx, http.MethodPost, "/v1/api-keys", map[string]any{"name": "browser-viewer", "role": "viewer"}, &viewer))
	b.run("sign out", 10*time.Second, chromedp.Click(chromedp.Search(`//button[contains(., "Sign out")]`)), chromedp.WaitVisible(chromedp.CSS("input[name=apiKey]")))
	b.run("sign in as a viewer", 30*time.Second,
		chromedp.SendKeys(chromedp.CSS("input[name=apiKey]"), viewer.Key),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=agents-total]")))
	b.waitText("the viewer's role", "[data-testid=role]", "viewer", 10*time.Second)
	b.open("/keys", "[data-testid=token-row]")
	var writes int
	b.run("count write controls", 10*time.Second, into(chromedp.Evaluate[int](`document.querySelectorAll('button.primary, button.danger, [data-testid=new-policy]').length`), &writes))
	assert.Zero(t, writes, "a viewer sees no write control on the keys page")
	b.open("/agents/"+demo.AgentID, "[data-testid=run-row]")
	b.run("count write controls", 10*time.Second, into(chromedp.Evaluate[int](`document.querySelectorAll('button.primary, button.danger').length`), &writes))
	assert.Zero(t, writes, "a viewer sees no write control on the agent's page")
	b.page("agent-detail-viewer")
	b.open("/policies", "[data-testid=policy-row]")
	b.run("count write controls", 10*time.Second, into(chromedp.Evaluate[int](`document.querySelectorAll('[data-testid=new-policy]').length`), &writes))
	assert.Zero(t, writes, "a viewer is offered no new policy")
}

// browseAndRestore lists the snapshot's source folder through an ls task, picks a file and
// restores it, and compares the restored copy with the source.
func browseAndRestore(t *testing.T, b *browser, c devstack.Client, agentID, snapshotID, source string) {
	b.open(fmt.Sprintf("/agents/%s/snapshots/%s?repository=demo&path=%s", agentID, snapshotID, source), "[data-testid=path]")
	b.run("ask for a listing", 30*time.Second,
		chromedp.WaitVisible(chromedp.Search(`//button[contains(., "List this folder")]`)),
		chromedp.Click(chromedp.Search(`//button[contains(., "List this folder")]`)))
	b.waitText("the listing", "[data-testid=tree-row]", "README.txt", 3*time.Minute)
	b.page("snapshot-browse")
	file := filepath.Join(source, "README.txt")
	b.run("restore README.txt", 15*time.Second,
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[aria-label="Select %s"]`, file))),
		chromedp.Click(chromedp.Search(`//button[contains(., "Restore selected")]`)))
	b.waitText("the restore to succeed", "[data-testid=restore-status]", "succeeded", 3*time.Minute)
	b.page("snapshot-restore")
	b.run("open the restore's run", 15*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid=restore-status] a`)),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=restore-target]")))
	var target string
	b.run("read the target", 5*time.Second, into(chromedp.Text(chromedp.CSS("[data-testid=restore-target]")), &target))
	want, err := os.ReadFile(file)
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(target, file))
	if os.IsNotExist(err) {
		got, err = os.ReadFile(filepath.Join(target, "README.txt"))
	}
	require.NoError(t, err, "the restored copy under %s", target)
	assert.Equal(t, string(want), string(got))
}
