package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gildhq/gild/pipeline"
	"github.com/gildhq/gild/resource"
)

const templateExample = "/subscriptions/platform/resourceGroups/images/providers/Microsoft.VirtualMachineImages/imageTemplates/debian-12-hardened"

// runView is what the CLI reads of a run.
type runView struct {
	ID         string                 `json:"id"`
	Name       string                 `json:"name"`
	Properties pipeline.RunProperties `json:"properties"`
}

// readTemplateFile reads a template in gild's YAML or as Azure Image Builder JSON (a
// resource with location and properties, or the properties alone).
func readTemplateFile(path string) (*pipeline.Document, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the template: %w", err)
	}
	dir := filepath.Dir(path)
	if strings.HasSuffix(strings.ToLower(path), ".json") {
		var res struct {
			ID         string          `json:"id"`
			Location   string          `json:"location"`
			Properties json.RawMessage `json:"properties"`
		}
		if err := json.Unmarshal(data, &res); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		props := res.Properties
		if props == nil {
			props = data
		}
		p, err := pipeline.ParseTemplate(props)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return &pipeline.Document{ID: res.ID, Location: res.Location, Properties: p}, nil
	}
	doc, err := pipeline.ParseYAML(data, func(name string) ([]byte, error) {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		return os.ReadFile(name)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return doc, nil
}

func (a *app) imageBuildCommand() *cobra.Command {
	var file, templateID string
	var noFollow bool
	cmd := &cobra.Command{
		Use:   "build -f TEMPLATE [--template-id ID] [--no-follow]",
		Short: "Create or update an image template from a file and run it, following the run live",
		Long: `build reads an image template (gild's YAML, or Azure Image Builder JSON), stores it as a
Microsoft.VirtualMachineImages/imageTemplates resource, starts a run and prints the run's
log as it is written, then the steps with their durations. Local files the template names
(scripts, files to copy) are put into the template with their SHA-256. The exit status
is 0 when the run succeeded and 1 otherwise.`,
		Example: `  gild image build -f debian-12-hardened.yaml
  gild image build -f template.json --template-id ` + templateExample,
		Args: a.exactArgs(0, "no arguments"),
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "the template file (.yaml, .yml or .json)")
	f.StringVar(&templateID, "template-id", "", "the template's resource ID (default: the file's id)")
	f.BoolVar(&noFollow, "no-follow", false, "start the run and print its ID without following it")
	cmd.RunE = a.run(func(cmd *cobra.Command, _ []string) error {
		if file == "" {
			return usageErrorf("--file is required")
		}
		doc, err := readTemplateFile(file)
		if err != nil {
			return err
		}
		if templateID == "" {
			templateID = doc.ID
		}
		id, err := resource.Parse(templateID)
		if err != nil || !strings.EqualFold(id.Type(), pipeline.TypeTemplate) {
			return usageErrorf("the template needs an ID (the file's id, or --template-id) of type %s, such as %s", pipeline.TypeTemplate, templateExample)
		}
		loc := doc.Location
		if loc == "" {
			loc = "local"
		}
		body, err := json.Marshal(map[string]any{"location": loc, "properties": doc.Properties})
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		c, err := a.client()
		if err != nil {
			return err
		}
		for _, d := range doc.Definitions {
			if err := a.ensureDefinition(ctx, c, d, loc); err != nil {
				return err
			}
		}
		if _, err := c.do(ctx, request{Method: http.MethodPut, Path: id.String(), Body: body}); err != nil {
			return fmt.Errorf("store the template: %w", err)
		}
		resp, err := c.do(ctx, request{Method: http.MethodPost, Path: id.String() + "/run"})
		if err != nil {
			return fmt.Errorf("start a run: %w", err)
		}
		var run runView
		if err := json.Unmarshal(resp.Body, &run); err != nil {
			return fmt.Errorf("start a run: the answer is not a run: %w", err)
		}
		fmt.Fprintf(a.env.Stderr, "Started run %s\n", run.ID)
		if noFollow {
			fmt.Fprintln(a.env.Stdout, run.ID)
			return nil
		}
		return a.followRun(ctx, c, run.ID)
	})
	return cmd
}

// followRun prints a run's log as it grows, then how the run ended.
func (a *app) followRun(ctx context.Context, c *Client, runID string) error {
	// With -o json, standard output carries the result alone; the log goes to stderr.
	logTo := a.env.Stdout
	if a.output == outputJSON {
		logTo = a.env.Stderr
	}
	if err := a.printLog(ctx, c, runID, "run.log", true, logTo); err != nil {
		fmt.Fprintf(a.env.Stderr, "warning: the log stream broke off: %v\n", err)
	}
	// The stream ends with the run; the run's final state is written just after.
	var run runView
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.getJSON(ctx, runID, nil, &run); err != nil {
			return err
		}
		if s := run.Properties.RunState; s != pipeline.StateRunning && s != pipeline.StateCanceling {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("run %s is still %s", runID, run.Properties.RunState)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	if a.output == outputJSON {
		out := struct {
			runView
			VersionID string `json:"versionId,omitempty"`
		}{runView: run}
		for _, o := range run.Properties.Outputs {
			if o.Error == "" && out.VersionID == "" {
				out.VersionID = o.ArtifactID
			}
		}
		if err := writeJSON(a.env.Stdout, out); err != nil {
			return err
		}
		if run.Properties.RunState != pipeline.StateSucceeded {
			return fmt.Errorf("run %s %s: %s", run.Name, strings.ToLower(run.Properties.RunState), run.Properties.Message)
		}
		return nil
	}
	return a.showRun(run)
}

// ensureDefinition creates a declared image definition, and the gallery, resource group
// and subscription it lives in, when they are missing; existing ones are left as they are.
func (a *app) ensureDefinition(ctx context.Context, c *Client, d pipeline.DeclaredDefinition, location string) error {
	def, err := resource.Parse(d.ID)
	if err != nil || !strings.EqualFold(def.Type(), "Microsoft.Compute/galleries/images") {
		return fmt.Errorf("distribute: %q is not an image definition ID", d.ID)
	}
	gallery := def.Parent()
	rg := resource.ResourceGroupID(def.Subscription, def.ResourceGroup)
	for _, step := range []struct {
		id   resource.ID
		body map[string]any
	}{
		{resource.SubscriptionID(def.Subscription), map[string]any{"properties": map[string]any{}}},
		{rg, map[string]any{"location": location}},
		{gallery, map[string]any{"location": location}},
		{def, map[string]any{"location": location, "properties": d.Properties}},
	} {
		_, err := c.do(ctx, request{Method: http.MethodGet, Path: step.id.String()})
		if err == nil {
			continue
		}
		if !isStatus(err, http.StatusNotFound) {
			return fmt.Errorf("look for %s: %w", step.id, err)
		}
		body, _ := json.Marshal(step.body)
		if _, err := c.do(ctx, request{Method: http.MethodPut, Path: step.id.String(), Body: body}); err != nil {
			return fmt.Errorf("create %s: %w", step.id, err)
		}
		fmt.Fprintf(a.env.Stderr, "Created %s\n", step.id)
	}
	return nil
}

func (a *app) printLog(ctx context.Context, c *Client, runID, name string, follow bool, w io.Writer) error {
	q := map[string][]string{"name": {name}}
	if follow {
		q["follow"] = []string{"true"}
	}
	resp, err := c.stream(ctx, http.MethodGet, runID+"/log", q, nil, nil, 0)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintln(w, sc.Text())
	}
	if err := sc.Err(); err != nil && err != io.EOF {
		return err
	}
	return nil
}

// showRun prints a run's steps and outcome; a run that did not succeed is an error.
func (a *app) showRun(run runView) error {
	p := run.Properties
	t := newTable(a.env.Stdout, "STEP", "STAGE", "STATE", "SECONDS", "MESSAGE")
	for _, s := range p.Steps {
		t.row(s.Name, s.SubState, s.State, fmt.Sprintf("%.1f", s.DurationSec), orDash(firstLine(s.Message)))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if v := p.Validation; v != nil {
		fmt.Fprintf(a.env.Stdout, "\nValidation: booted in %.1fs (limit %ds, %s); %d checks passed, %d failed\n", v.BootSeconds, v.MaxBoot, v.Accelerator, v.Passed, v.Failed)
		for _, c := range v.Checks {
			if c.Status != "Compliant" {
				fmt.Fprintf(a.env.Stdout, "  %s %s: %s\n", c.Status, c.Name, strings.Join(c.Reasons, "; "))
			}
		}
	}
	for _, o := range p.Outputs {
		fmt.Fprintf(a.env.Stdout, "Published %s: %s\n", o.RunOutputName, o.ArtifactID)
	}
	fmt.Fprintf(a.env.Stdout, "\nRun %s: %s", run.Name, p.RunState)
	if p.Message != "" {
		fmt.Fprintf(a.env.Stdout, ": %s", p.Message)
	}
	fmt.Fprintln(a.env.Stdout)
	if len(p.Kept) > 0 && p.RunState != pipeline.StateSucceeded {
		fmt.Fprintf(a.env.Stdout, "Kept for debugging: %s (gild image logs %s --name FILE)\n", strings.Join(p.Kept, ", "), run.ID)
	}
	if p.RunState != pipeline.StateSucceeded {
		return fmt.Errorf("run %s %s", run.Name, strings.ToLower(p.RunState))
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}

func (a *app) imageRunsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runs TEMPLATE-ID",
		Short: "List a template's runs, newest first",
		Args:  a.exactArgs(1, "TEMPLATE-ID"),
	}
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		id, err := resource.Parse(args[0])
		if err != nil || !strings.EqualFold(id.Type(), pipeline.TypeTemplate) {
			return usageErrorf("%q is not an image template ID, such as %s", args[0], templateExample)
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		page, err := c.list(cmd.Context(), id.String()+"/runs", nil, true)
		if err != nil {
			return err
		}
		var runs []runView
		for _, raw := range page.Value {
			var r runView
			if err := json.Unmarshal(raw, &r); err == nil {
				runs = append(runs, r)
			}
		}
		// Run names start with their UTC start time, so the name orders them.
		for i, j := 0, len(runs)-1; i < j; i, j = i+1, j-1 {
			runs[i], runs[j] = runs[j], runs[i]
		}
		if a.output == outputJSON {
			return writeJSON(a.env.Stdout, map[string]any{"value": runs})
		}
		t := newTable(a.env.Stdout, "RUN", "STATE", "STAGE", "STARTED", "SECONDS", "MESSAGE")
		for _, r := range runs {
			p := r.Properties
			secs := "-"
			if p.StartTime != nil && p.EndTime != nil {
				secs = fmt.Sprintf("%.0f", p.EndTime.Sub(*p.StartTime).Seconds())
			}
			stage := p.RunSubState
			if p.FailedStep != "" {
				stage = p.FailedStep
			}
			t.row(r.Name, p.RunState, orDash(stage), formatTimePtr(p.StartTime), secs, orDash(firstLine(p.Message)))
		}
		return t.flush()
	})
	return cmd
}

func (a *app) imageLogsCommand() *cobra.Command {
	var follow bool
	var name string
	cmd := &cobra.Command{
		Use:   "logs RUN-ID [--follow] [--name run.log|console.log|results.json|junit.xml]",
		Short: "Print a run's log, its VM's console log or its test results",
		Args:  a.exactArgs(1, "RUN-ID"),
	}
	cmd.Flags().BoolVar(&follow, "follow", false, "keep printing as the log grows, until the run ends")
	cmd.Flags().StringVar(&name, "name", "run.log", "which file: run.log, console.log, results.json or junit.xml")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		id, err := resource.Parse(args[0])
		if err != nil || !strings.EqualFold(id.Type(), pipeline.TypeRun) {
			return usageErrorf("%q is not a run ID ({template-id}/runs/NAME; see gild image runs)", args[0])
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		return a.printLog(cmd.Context(), c, id.String(), name, follow, a.env.Stdout)
	})
	return cmd
}

func (a *app) imageCancelCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cancel RUN-ID|TEMPLATE-ID",
		Short: "Cancel a run (or a template's running run)",
		Args:  a.exactArgs(1, "RUN-ID or TEMPLATE-ID"),
	}
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		id, err := resource.Parse(args[0])
		if err != nil || (!strings.EqualFold(id.Type(), pipeline.TypeRun) && !strings.EqualFold(id.Type(), pipeline.TypeTemplate)) {
			return usageErrorf("%q is not a run or template ID", args[0])
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		if _, err := c.do(cmd.Context(), request{Method: http.MethodPost, Path: id.String() + "/cancel"}); err != nil {
			return err
		}
		fmt.Fprintf(a.env.Stderr, "Asked %s to stop.\n", id)
		return nil
	})
	return cmd
}
