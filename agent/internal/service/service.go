// Package service installs the agent as a system service: a systemd unit on Linux, a launchd
// daemon on macOS. It renders the service definition, puts the binary, the definition and the
// modes of the agent's secret files in place under a root directory (/ on a real install, a
// temporary directory in tests), and then asks the service manager to start it.
package service

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/restic-monitor/restic-monitor/agent/internal/atomicfile"
)

// Names of the service on each platform.
const (
	SystemdUnitName = "restic-monitor-agent.service"
	SystemdUnitDir  = "/etc/systemd/system"
	LaunchdLabel    = "io.restic-monitor.agent"
	LaunchdDir      = "/Library/LaunchDaemons"
	LaunchdLogDir   = "/Library/Logs/restic-monitor"
)

// Spec is what the service definition says.
type Spec struct {
	// Binary is the installed agent binary.
	Binary string
	// Config is the configuration file the service runs with.
	Config string
	// StopTimeout is how long the service manager waits after SIGTERM before it kills the
	// agent: the agent's shutdown grace, restic's interrupt grace and time to report.
	StopTimeout time.Duration
}

// DefinitionPath is where goos keeps the service definition.
func DefinitionPath(goos string) string {
	if goos == "darwin" {
		return filepath.Join(LaunchdDir, LaunchdLabel+".plist")
	}
	return filepath.Join(SystemdUnitDir, SystemdUnitName)
}

// Render returns the service definition for goos.
func Render(goos string, s Spec) ([]byte, error) {
	if !filepath.IsAbs(s.Binary) || !filepath.IsAbs(s.Config) {
		return nil, errors.New("service: the binary and configuration paths must be absolute")
	}
	if goos == "darwin" {
		return launchdPlist(s)
	}
	return systemdUnit(s)
}

func systemdUnit(s Spec) ([]byte, error) {
	for _, p := range []string{s.Binary, s.Config} {
		if strings.ContainsAny(p, "\n\"\\%$") {
			return nil, fmt.Errorf("service: path %q cannot be written into a systemd unit", p)
		}
	}
	stop := int(s.StopTimeout.Round(time.Second).Seconds())
	return fmt.Appendf(nil, `[Unit]
Description=restic-monitor agent: runs restic backups for the restic-monitor control plane
Documentation=https://github.com/restic-monitor/restic-monitor/tree/main/agent
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=%s run --config %s
Restart=always
RestartSec=10s
# Exit status 78 means the configuration or the enrollment needs a person; restarting cannot help.
RestartPreventExitStatus=78
# SIGTERM goes to the agent alone: it stops polling, lets running restic finish within its grace
# period and then interrupts restic itself, so restic can release its repository lock. Whatever
# is left when the timeout runs out is killed.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec=%d
# Files the agent creates (spool, state, restored files' parents) are private to root.
UMask=0077
# Backups read the whole file system and restores write anywhere, so the usual sandboxing
# options (ProtectSystem, ProtectHome) would defeat the agent's purpose.

[Install]
WantedBy=multi-user.target
`, quoteSystemd(s.Binary), quoteSystemd(s.Config), stop), nil
}

// quoteSystemd quotes a path for ExecStart when it holds spaces.
func quoteSystemd(p string) string {
	if strings.ContainsAny(p, " \t'") {
		return `"` + p + `"`
	}
	return p
}

func launchdPlist(s Spec) ([]byte, error) {
	var b bytes.Buffer
	esc := func(v string) string {
		var e bytes.Buffer
		_ = xml.EscapeText(&e, []byte(v))
		return e.String()
	}
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>` + LaunchdLabel + `</string>
	<key>ProgramArguments</key>
	<array>
`)
	for _, arg := range []string{s.Binary, "run", "--config", s.Config} {
		b.WriteString("\t\t<string>" + esc(arg) + "</string>\n")
	}
	b.WriteString(`	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<true/>
	<key>ThrottleInterval</key>
	<integer>10</integer>
	<key>ExitTimeOut</key>
	<integer>` + strconv.Itoa(int(s.StopTimeout.Round(time.Second).Seconds())) + `</integer>
	<key>Umask</key>
	<integer>63</integer>
	<key>ProcessType</key>
	<string>Background</string>
	<key>StandardOutPath</key>
	<string>` + esc(filepath.Join(LaunchdLogDir, "agent.log")) + `</string>
	<key>StandardErrorPath</key>
	<string>` + esc(filepath.Join(LaunchdLogDir, "agent.log")) + `</string>
</dict>
</plist>
`)
	return b.Bytes(), nil
}

// Installer puts the service in place under Root.
type Installer struct {
	// Root is prepended to every path; "/" (or empty) installs into the running system.
	Root string
	// GOOS selects systemd or launchd.
	GOOS string
	// Run runs a service manager command. It is called only when Root is the real root.
	Run func(name string, args ...string) error
	// Out receives a line for every step.
	Out io.Writer
}

func (in Installer) path(p string) string {
	if in.Root == "" {
		return p
	}
	return filepath.Join(in.Root, p)
}

func (in Installer) live() bool { return in.Root == "" || in.Root == "/" }

func (in Installer) say(format string, args ...any) {
	if in.Out != nil {
		fmt.Fprintf(in.Out, format+"\n", args...)
	}
}

// Install copies the agent binary from src to spec.Binary, restricts the secret files (the
// configuration, which holds repository credentials, and the agent's credentials file) to their
// owner, writes the service definition and starts the service.
func (in Installer) Install(spec Spec, src string, secrets []string) error {
	for _, f := range secrets {
		p := in.path(f)
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("install: %s: %w (run enroll first)", f, err)
		}
		if err := os.Chmod(p, 0o600); err != nil {
			return fmt.Errorf("install: restrict %s: %w", f, err)
		}
		in.say("secured %s (0600)", f)
	}
	def, err := Render(in.GOOS, spec)
	if err != nil {
		return err
	}
	if err := copyBinary(src, in.path(spec.Binary)); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	in.say("installed %s", spec.Binary)
	defPath := DefinitionPath(in.GOOS)
	if err := os.MkdirAll(filepath.Dir(in.path(defPath)), 0o755); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := atomicfile.Write(in.path(defPath), def, 0o644); err != nil {
		return fmt.Errorf("install: write %s: %w", defPath, err)
	}
	in.say("wrote %s", defPath)
	if in.GOOS == "darwin" {
		if err := os.MkdirAll(in.path(LaunchdLogDir), 0o750); err != nil {
			return fmt.Errorf("install: %w", err)
		}
	}
	return in.manage(in.startCommands(defPath))
}

// Uninstall stops the service and removes its definition and the binary. The configuration,
// credentials, spool and state stay unless purge lists them (files or directories) for removal.
func (in Installer) Uninstall(spec Spec, purge []string) error {
	defPath := DefinitionPath(in.GOOS)
	if err := in.manage(in.stopCommands(defPath)); err != nil {
		return err
	}
	for _, p := range []string{defPath, spec.Binary} {
		if err := os.Remove(in.path(p)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("uninstall: %w", err)
		}
		in.say("removed %s", p)
	}
	if in.GOOS != "darwin" {
		if err := in.manage([][]string{{"systemctl", "daemon-reload"}}); err != nil {
			return err
		}
	}
	for _, p := range purge {
		if err := os.RemoveAll(in.path(p)); err != nil {
			return fmt.Errorf("uninstall: %w", err)
		}
		in.say("removed %s", p)
	}
	return nil
}

func (in Installer) startCommands(defPath string) [][]string {
	if in.GOOS == "darwin" {
		return [][]string{
			{"launchctl", "bootstrap", "system", defPath},
			{"launchctl", "enable", "system/" + LaunchdLabel},
		}
	}
	return [][]string{
		{"systemctl", "daemon-reload"},
		{"systemctl", "enable", "--now", SystemdUnitName},
	}
}

func (in Installer) stopCommands(defPath string) [][]string {
	if in.GOOS == "darwin" {
		return [][]string{{"launchctl", "bootout", "system", defPath}}
	}
	return [][]string{{"systemctl", "disable", "--now", SystemdUnitName}}
}

// manage runs service manager commands on a live system and only lists them otherwise.
func (in Installer) manage(cmds [][]string) error {
	for _, c := range cmds {
		if !in.live() {
			in.say("skipped (not the system root): %s", strings.Join(c, " "))
			continue
		}
		run := in.Run
		if run == nil {
			run = runCommand
		}
		if err := run(c[0], c[1:]...); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(c, " "), err)
		}
		in.say("ran %s", strings.Join(c, " "))
	}
	return nil
}

func runCommand(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// copyBinary copies src to dst (mode 0755) through a temporary file, so a running agent's
// binary is replaced, never overwritten in place.
func copyBinary(src, dst string) error {
	if same, _ := sameFile(src, dst); same {
		return nil
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("read agent binary: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(dst, data, 0o755)
}

func sameFile(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(fa, fb), nil
}
