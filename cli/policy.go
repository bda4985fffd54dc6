package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gildhq/gild/policy"
)

func (a *app) policyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check and try out Azure Policy definitions",
	}
	cmd.AddCommand(a.policyValidateCommand(), a.policyTestCommand(), a.policyScanCommand())
	return cmd
}

// aliasTable is gild's built-in aliases, with a catalogue file laid over them when given.
func aliasTable(file string) (*policy.AliasTable, error) {
	if file == "" {
		return policy.DefaultAliases(), nil
	}
	t, err := policy.LoadAliasFile(file)
	if err != nil {
		return nil, fmt.Errorf("--aliases: %w", err)
	}
	return policy.DefaultAliases().Merge(t), nil
}

func (a *app) policyValidateCommand() *cobra.Command {
	var aliasFile string
	cmd := &cobra.Command{
		Use:   "validate [--aliases FILE] PATH...",
		Short: "Compile policy definitions and initiatives, reporting every error",
		Long: `validate compiles every policy definition and initiative in the files and folders given
(folders recursively) and prints one line per error: the file, where in it, and what is wrong.
In a folder laid out as Azure's samples are, *.parameters.json files are parameter
declarations and *.rules.json files bare rules, each checked as what it is. Without
--aliases only gild's built-in aliases are known; --aliases loads a full catalogue
(csv or csv.gz of alias,path lines). The exit code is 1 if any file has an error.`,
		Example: `  gild policy validate my-policies/
  gild policy validate --aliases aliases.csv.gz azure-policy/built-in-policies`,
		Args: a.rangeArgs(1, 1<<20, "one or more files or folders"),
	}
	cmd.Flags().StringVar(&aliasFile, "aliases", "", "an alias catalogue, csv or csv.gz of alias,path lines")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		aliases, err := aliasTable(aliasFile)
		if err != nil {
			return err
		}
		results, err := policy.Validate(args, aliases)
		if err != nil {
			return err
		}
		failed, counts := 0, map[string]int{}
		for _, r := range results {
			counts[r.Kind]++
			if !r.OK() {
				failed++
			}
		}
		if a.output == outputJSON {
			if err := writeJSON(a.env.Stdout, map[string]any{"files": results, "failed": failed}); err != nil {
				return err
			}
		} else {
			for _, r := range results {
				for _, e := range r.Errors {
					fmt.Fprintf(a.env.Stdout, "%s: %s\n", r.Path, e.Error())
				}
				for _, w := range r.Warnings {
					fmt.Fprintf(a.env.Stderr, "%s: warning: %s\n", r.Path, w)
				}
			}
			fmt.Fprintf(a.env.Stderr, "%d files (%d definitions, %d initiatives, %d parameter files, %d rules): %d with errors\n",
				len(results), counts[policy.KindDefinition], counts[policy.KindInitiative], counts[policy.KindParameters], counts[policy.KindRule], failed)
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d files have errors", failed, len(results))
		}
		return nil
	})
	return cmd
}

func (a *app) policyTestCommand() *cobra.Command {
	var defFile, resFile, paramFile, aliasFile, at string
	var related []string
	cmd := &cobra.Command{
		Use:   "test --definition D --resource R [--parameters P] [--related REL.json]... [--aliases F]",
		Short: "Evaluate one definition against one resource, offline",
		Long: `test evaluates a policy definition against a resource given as JSON, without a server,
and prints the effect that applies ("none" when the rule's if does not match), whether the
resource complies, and the reasons. --parameters takes the assignment's values, either
{"name": {"value": ...}} as in an assignment or {"name": ...}. --related gives the resources
that auditIfNotExists and deployIfNotExists look for (a resource or an array of them per file).`,
		Example: `  gild policy test --definition allowed-publishers.json --resource vm.json --parameters params.json -o json`,
		Args:    a.rangeArgs(0, 0, "no arguments; use the flags"),
	}
	f := cmd.Flags()
	f.StringVar(&defFile, "definition", "", "the policy definition (any of Azure's three shapes)")
	f.StringVar(&resFile, "resource", "", "the resource, in ARM's JSON shape")
	f.StringVar(&paramFile, "parameters", "", "the assignment's parameter values")
	f.StringArrayVar(&related, "related", nil, "related resources for the IfNotExists effects (repeatable)")
	f.StringVar(&aliasFile, "aliases", "", "an alias catalogue, csv or csv.gz of alias,path lines")
	f.StringVar(&at, "at", "", "evaluation time, RFC 3339 (default: now)")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		if defFile == "" || resFile == "" {
			return usageErrorf("policy test needs --definition and --resource")
		}
		now := time.Now().UTC()
		if at != "" {
			t, err := time.Parse(time.RFC3339, at)
			if err != nil {
				return usageErrorf("--at %q is not an RFC 3339 time", at)
			}
			now = t
		}
		aliases, err := aliasTable(aliasFile)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(defFile)
		if err != nil {
			return fmt.Errorf("--definition: %w", err)
		}
		def, err := policy.ParseDefinition(data)
		if err != nil {
			return fmt.Errorf("--definition %s: %w", defFile, err)
		}
		compiled, err := policy.Compile(def, policy.CompileOptions{Aliases: aliases})
		if err != nil {
			return fmt.Errorf("--definition %s does not compile:\n%w", defFile, err)
		}
		values := map[string]any{}
		if paramFile != "" {
			v, err := readJSONFile(paramFile, "--parameters")
			if err != nil {
				return err
			}
			m, ok := v.(map[string]any)
			if !ok {
				return fmt.Errorf("--parameters %s: expected an object of parameter values", paramFile)
			}
			values = unwrapParameterValues(m)
		}
		prepared, err := compiled.Prepare(values)
		if err != nil {
			return fmt.Errorf("--parameters: %w", err)
		}
		rv, err := readJSONFile(resFile, "--resource")
		if err != nil {
			return err
		}
		res, ok := rv.(map[string]any)
		if !ok {
			return fmt.Errorf("--resource %s: expected a JSON object", resFile)
		}
		var rel []map[string]any
		for _, rf := range related {
			v, err := readJSONFile(rf, "--related")
			if err != nil {
				return err
			}
			switch x := v.(type) {
			case map[string]any:
				rel = append(rel, x)
			case []any:
				for _, e := range x {
					if m, ok := e.(map[string]any); ok {
						rel = append(rel, m)
					}
				}
			default:
				return fmt.Errorf("--related %s: expected a resource or an array of resources", rf)
			}
		}
		d, err := prepared.Decide(&policy.Input{Resource: res, Now: now}, rel)
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeJSON(a.env.Stdout, d)
		}
		fmt.Fprintf(a.env.Stdout, "effect:    %s\ncompliant: %t\n", d.Effect, d.Compliant)
		for _, r := range d.Reasons {
			fmt.Fprintf(a.env.Stdout, "reason:    %s\n", r.String())
		}
		for _, op := range d.Operations {
			v, _ := json.Marshal(op.Value)
			fmt.Fprintf(a.env.Stdout, "change:    %s %s = %s\n", op.Operation, op.Field, v)
		}
		return nil
	})
	return cmd
}

// unwrapParameterValues accepts both {"name": {"value": v}} (an assignment's form) and
// {"name": v}.
func unwrapParameterValues(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if w, ok := v.(map[string]any); ok && len(w) == 1 {
			if inner, ok := w["value"]; ok {
				out[k] = inner
				continue
			}
		}
		out[k] = v
	}
	return out
}

func readJSONFile(path, flag string) (any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	v, err := policy.DecodeJSON([]byte(strings.TrimPrefix(string(data), "\ufeff")))
	if err != nil {
		return nil, fmt.Errorf("%s %s: not valid JSON: %w", flag, path, err)
	}
	return v, nil
}
