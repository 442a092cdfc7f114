// Command infra synthesizes restic-monitor's deployment: one CloudFormation stack, shared by all
// tenants or (with the tenant context) one tenant's own. The CDK CLI runs it for `cdk deploy` and
// `cdk diff`; `make synth` runs it directly, with no AWS credentials and no network, and also
// writes a template the SAM CLI can deploy when RM_SAM_OUTDIR names a folder for it.
package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/restic-monitor/restic-monitor/infra/controlplane"
)

func main() {
	err := run()
	jsii.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "infra:", err)
		os.Exit(1)
	}
}

func run() error {
	flags, err := controlplane.LoadContext("cdk.json")
	if err != nil {
		return err
	}
	app := awscdk.NewApp(&awscdk.AppProps{Context: &flags})
	cfg, err := controlplane.ConfigFrom(app.Node(), os.Getenv)
	if err != nil {
		return err
	}
	if err := synth(app, cfg); err != nil {
		return err
	}
	if dir := os.Getenv("RM_SAM_OUTDIR"); dir != "" {
		cfg.Packaging = controlplane.PackagingSAM
		return synth(awscdk.NewApp(&awscdk.AppProps{Context: &flags, Outdir: jsii.String(dir)}), cfg)
	}
	return nil
}

// synth writes the stack cfg describes into app's cloud assembly, checked by cdk-nag.
func synth(app awscdk.App, cfg controlplane.Config) error {
	if _, err := controlplane.New(app, cfg); err != nil {
		return err
	}
	controlplane.ApplyChecks(app)
	app.Synth(nil)
	if os.Getenv("CDK_CLI_VERSION") != "" {
		return nil // the CLI reports warnings and errors itself, and fails on errors
	}
	return report(*app.Outdir())
}

// report prints the warnings and errors that synthesis recorded in the cloud assembly in dir,
// as the CDK CLI would, and fails when there is an error.
func report(dir string) error {
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return err
	}
	var manifest struct {
		Artifacts map[string]struct {
			Type       string `json:"type"`
			Properties struct {
				TemplateFile string `json:"templateFile"`
			} `json:"properties"`
			Metadata map[string][]struct {
				Type string `json:"type"`
				Data any    `json:"data"`
			} `json:"metadata"`
		} `json:"artifacts"`
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		return fmt.Errorf("read the cloud assembly in %s: %w", dir, err)
	}
	errs := 0
	for _, artifact := range manifest.Artifacts {
		if artifact.Type != "aws:cloudformation:stack" {
			continue
		}
		paths := slices.Sorted(maps.Keys(artifact.Metadata))
		for _, path := range paths {
			for _, entry := range artifact.Metadata[path] {
				switch entry.Type {
				case "aws:cdk:error":
					errs++
					fmt.Fprintf(os.Stderr, "[error] %s: %v\n", path, entry.Data)
				case "aws:cdk:warning":
					fmt.Fprintf(os.Stderr, "[warning] %s: %v\n", path, entry.Data)
				}
			}
		}
		fmt.Fprintf(os.Stderr, "synthesized %s\n", filepath.Join(dir, artifact.Properties.TemplateFile))
	}
	if errs > 0 {
		return fmt.Errorf("synthesis recorded %d errors", errs)
	}
	return nil
}
