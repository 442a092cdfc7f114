package service

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var spec = Spec{
	Binary:      "/usr/local/bin/restic-monitor-agent",
	Config:      "/etc/restic-monitor/agent.yaml",
	StopTimeout: 90 * time.Second,
}

func TestSystemdUnit(t *testing.T) {
	unit, err := Render("linux", spec)
	require.NoError(t, err)
	s := string(unit)
	for _, want := range []string{
		"[Unit]\n", "[Service]\n", "[Install]\n",
		"ExecStart=/usr/local/bin/restic-monitor-agent run --config /etc/restic-monitor/agent.yaml\n",
		"KillMode=mixed\n", "KillSignal=SIGTERM\n", "TimeoutStopSec=90\n", "Restart=always\n",
		"UMask=0077\n", "RestartPreventExitStatus=78\n", "After=network-online.target\n", "WantedBy=multi-user.target\n",
	} {
		assert.Contains(t, s, want)
	}
	// Every non-comment line of a section is key=value.
	for _, line := range strings.Split(s, "\n") {
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		assert.Regexp(t, `^[A-Za-z]+=.+$`, line)
	}

	spaced := spec
	spaced.Config = "/opt/my agent/agent.yaml"
	unit, err = Render("linux", spaced)
	require.NoError(t, err)
	assert.Contains(t, string(unit), `--config "/opt/my agent/agent.yaml"`)

	bad := spec
	bad.Config = "/etc/%h/agent.yaml"
	_, err = Render("linux", bad)
	assert.Error(t, err, "systemd would expand %h")
	bad.Config = "relative.yaml"
	_, err = Render("linux", bad)
	assert.Error(t, err)
}

func TestLaunchdPlist(t *testing.T) {
	s := spec
	s.Config = "/Library/Application Support/restic-monitor/a&b.yaml"
	plist, err := Render("darwin", s)
	require.NoError(t, err)

	// The plist is well-formed XML whose dict holds what launchd needs.
	dec := xml.NewDecoder(bytes.NewReader(plist))
	var keys, strs []string
	var last string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		switch v := tok.(type) {
		case xml.StartElement:
			last = v.Name.Local
		case xml.CharData:
			switch last {
			case "key":
				keys = append(keys, string(v))
			case "string":
				strs = append(strs, string(v))
			}
			last = ""
		}
	}
	assert.Equal(t, []string{"Label", "ProgramArguments", "RunAtLoad", "KeepAlive", "ThrottleInterval", "ExitTimeOut", "Umask", "ProcessType", "StandardOutPath", "StandardErrorPath"}, keys)
	assert.Equal(t, []string{LaunchdLabel, s.Binary, "run", "--config", s.Config, "Background", "/Library/Logs/restic-monitor/agent.log", "/Library/Logs/restic-monitor/agent.log"}, strs)
	assert.Contains(t, string(plist), "<key>ExitTimeOut</key>\n\t<integer>90</integer>")
}

// fixture lays out an enrolled agent's files under a temporary root.
func fixture(t *testing.T) (root, src string) {
	t.Helper()
	root = t.TempDir()
	src = filepath.Join(t.TempDir(), "restic-monitor-agent")
	require.NoError(t, os.WriteFile(src, []byte("#!/bin/sh\necho agent\n"), 0o700))
	for _, f := range []string{spec.Config, "/etc/restic-monitor/credentials.json"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, f), []byte("x"), 0o644))
	}
	return root, src
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

func TestInstallIntoRoot(t *testing.T) {
	for _, goos := range []string{"linux", "darwin"} {
		t.Run(goos, func(t *testing.T) {
			root, src := fixture(t)
			var out bytes.Buffer
			ran := false
			in := Installer{Root: root, GOOS: goos, Out: &out, Run: func(string, ...string) error { ran = true; return nil }}
			secrets := []string{spec.Config, "/etc/restic-monitor/credentials.json"}
			require.NoError(t, in.Install(spec, src, secrets))

			assert.False(t, ran, "no service manager is touched outside the real root")
			for _, f := range secrets {
				assert.Equal(t, os.FileMode(0o600), mode(t, filepath.Join(root, f)), f)
			}
			bin := filepath.Join(root, spec.Binary)
			assert.Equal(t, os.FileMode(0o755), mode(t, bin))
			got, err := os.ReadFile(bin)
			require.NoError(t, err)
			assert.Equal(t, "#!/bin/sh\necho agent\n", string(got))

			def := filepath.Join(root, DefinitionPath(goos))
			assert.Equal(t, os.FileMode(0o644), mode(t, def))
			want, err := Render(goos, spec)
			require.NoError(t, err)
			gotDef, err := os.ReadFile(def)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(gotDef))
			assert.Contains(t, out.String(), "skipped (not the system root)")

			// Installing again (an upgrade) works and leaves the same files.
			require.NoError(t, in.Install(spec, src, secrets))

			require.NoError(t, in.Uninstall(spec, nil))
			for _, p := range []string{bin, def} {
				_, err := os.Stat(p)
				assert.ErrorIs(t, err, os.ErrNotExist, p)
			}
			_, err = os.Stat(filepath.Join(root, spec.Config))
			assert.NoError(t, err, "uninstall keeps the configuration unless asked to purge")

			require.NoError(t, in.Uninstall(spec, []string{"/etc/restic-monitor"}))
			_, err = os.Stat(filepath.Join(root, "/etc/restic-monitor"))
			assert.ErrorIs(t, err, os.ErrNotExist)
		})
	}
}

func TestInstallNeedsEnrollment(t *testing.T) {
	root, src := fixture(t)
	in := Installer{Root: root, GOOS: "linux"}
	err := in.Install(spec, src, []string{"/etc/restic-monitor/missing.json"})
	assert.ErrorContains(t, err, "run enroll first")
	_, statErr := os.Stat(filepath.Join(root, spec.Binary))
	assert.ErrorIs(t, statErr, os.ErrNotExist, "nothing is installed when enrollment is missing")
}

func TestLiveInstallRunsServiceManager(t *testing.T) {
	// On the real root the service manager is asked to start and stop the service; only the
	// commands are exercised here, nothing is written to the system.
	var cmds []string
	in := Installer{Root: "", GOOS: "linux", Run: func(name string, args ...string) error {
		cmds = append(cmds, name+" "+strings.Join(args, " "))
		return nil
	}}
	assert.Equal(t, [][]string{{"systemctl", "daemon-reload"}, {"systemctl", "enable", "--now", SystemdUnitName}}, in.startCommands(DefinitionPath("linux")))
	assert.Equal(t, [][]string{{"launchctl", "bootout", "system", "/Library/LaunchDaemons/io.restic-monitor.agent.plist"}}, Installer{GOOS: "darwin"}.stopCommands(DefinitionPath("darwin")))
	require.NoError(t, in.manage(in.startCommands(DefinitionPath("linux"))))
	assert.Equal(t, []string{"systemctl daemon-reload", "systemctl enable --now " + SystemdUnitName}, cmds)
}
