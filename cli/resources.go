package cli

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gildhq/gild/resource"
)

// maxBodyFile caps what put and patch read from a file or stdin: the server refuses bodies
// over 4 MiB anyway, and reading more first would only waste memory.
const maxBodyFile = 16 << 20

// resourcePath checks that arg is a resource ID the way the server will read it, so that a
// typo is reported before any request, and returns it as a path.
func resourcePath(arg string) (string, error) {
	if _, err := resource.Parse(arg); err != nil {
		return "", usageErrorf("%s", messageOf(err))
	}
	return arg, nil
}

// messageOf is the message of a resource.Error without its code and target, which the
// message repeats anyway.
func messageOf(err error) string {
	var re *resource.Error
	if errors.As(err, &re) {
		return re.Message
	}
	return err.Error()
}

// readBody reads a request body from a file, or stdin for "-".
func (a *app) readBody(file string) ([]byte, error) {
	if file == "" {
		return nil, usageErrorf("a body is required: -f FILE, or -f - for standard input")
	}
	var r io.Reader
	name := file
	if file == "-" {
		r, name = a.env.Stdin, "standard input"
	} else {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxBodyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read body from %s: %w", name, err)
	}
	if len(data) > maxBodyFile {
		return nil, fmt.Errorf("read body from %s: it is larger than %d bytes", name, maxBodyFile)
	}
	return data, nil
}

// quoteETag makes an ETag an HTTP entity tag: gild shows ETags bare, HTTP wants them quoted.
func quoteETag(e string) string {
	e = strings.TrimSpace(e)
	if e == "*" || strings.HasPrefix(e, `"`) || strings.HasPrefix(e, `W/"`) {
		return e
	}
	return `"` + e + `"`
}

func preconditionHeader(ifMatch, ifNoneMatch string) http.Header {
	h := http.Header{}
	if ifMatch != "" {
		h.Set("If-Match", quoteETag(ifMatch))
	}
	if ifNoneMatch != "" {
		h.Set("If-None-Match", quoteETag(ifNoneMatch))
	}
	return h
}

// showResource prints a resource the API returned.
func (a *app) showResource(raw []byte) error {
	if a.output == outputJSON {
		return writeRawJSON(a.env.Stdout, raw)
	}
	return writeResourceTable(a.env.Stdout, raw)
}

func (a *app) getCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show one resource",
		Example: `  gild get /subscriptions/payments
  gild get /subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/api-1 -o json`,
		Args: a.exactArgs(1, "one resource ID"),
	}
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		path, err := resourcePath(args[0])
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		raw, err := c.getJSON(cmd.Context(), path, nil, nil)
		if err != nil {
			return err
		}
		return a.showResource(raw)
	})
	return cmd
}

func (a *app) putCommand() *cobra.Command {
	var file, ifMatch, ifNoneMatch string
	cmd := &cobra.Command{
		Use:   "put ID -f BODY.json",
		Short: "Create or replace a resource",
		Long: `put creates the resource with ID, or replaces it whole, from a JSON body such as
{"location": "local", "tags": {...}, "properties": {...}}.

--if-match ETAG replaces it only if it still has that ETag (else 409: someone changed it
since you read it); --if-none-match '*' creates it only if it does not exist yet.`,
		Example: `  gild put /providers/Microsoft.Management/managementGroups/contoso -f - <<<'{"properties":{"displayName":"Contoso"}}'
  gild put /subscriptions/payments -f payments.json
  gild put /subscriptions/payments/resourceGroups/prod -f - --if-none-match '*' <<<'{"location":"local"}'`,
		Args: a.exactArgs(1, "one resource ID"),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "JSON body: a file, or - for standard input (required)")
	cmd.Flags().StringVar(&ifMatch, "if-match", "", "replace only if the resource still has this ETag")
	cmd.Flags().StringVar(&ifNoneMatch, "if-none-match", "", "'*': create only if the resource does not exist")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		path, err := resourcePath(args[0])
		if err != nil {
			return err
		}
		if ifNoneMatch != "" && ifNoneMatch != "*" {
			return usageErrorf("--if-none-match takes '*' (create only), not %q", ifNoneMatch)
		}
		body, err := a.readBody(file)
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		resp, err := c.do(cmd.Context(), request{Method: http.MethodPut, Path: path, Body: body, Header: preconditionHeader(ifMatch, ifNoneMatch)})
		if err != nil {
			return err
		}
		if a.output == outputTable {
			verb := "Updated"
			if resp.Status == http.StatusCreated {
				verb = "Created"
			}
			fmt.Fprintf(a.env.Stdout, "%s %s\n\n", verb, path)
		}
		return a.showResource(resp.Body)
	})
	return cmd
}

func (a *app) patchCommand() *cobra.Command {
	var file, ifMatch string
	cmd := &cobra.Command{
		Use:   "patch ID -f PATCH.json",
		Short: "Change part of a resource (JSON merge patch)",
		Long: `patch applies a JSON merge patch (RFC 7386) to a resource: the fields given replace
the stored ones, objects such as tags and properties merge, and null removes a field.`,
		Example: `  gild patch /subscriptions/payments/resourceGroups/prod -f - <<<'{"tags":{"owner":"team-payments"}}'`,
		Args:    a.exactArgs(1, "one resource ID"),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "JSON merge patch: a file, or - for standard input (required)")
	cmd.Flags().StringVar(&ifMatch, "if-match", "", "change only if the resource still has this ETag")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		path, err := resourcePath(args[0])
		if err != nil {
			return err
		}
		body, err := a.readBody(file)
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		resp, err := c.do(cmd.Context(), request{Method: http.MethodPatch, Path: path, Body: body, Header: preconditionHeader(ifMatch, "")})
		if err != nil {
			return err
		}
		return a.showResource(resp.Body)
	})
	return cmd
}

func (a *app) deleteCommand() *cobra.Command {
	var ifMatch string
	cmd := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a resource (a resource group takes its contents along)",
		Long: `delete removes a resource. A resource group is deleted with everything in it; a
management group or subscription that still contains something is refused, naming what.
Deleting what is not there succeeds, and says so.`,
		Example: "  gild delete /subscriptions/payments/resourceGroups/dev",
		Args:    a.exactArgs(1, "one resource ID"),
	}
	cmd.Flags().StringVar(&ifMatch, "if-match", "", "delete only if the resource still has this ETag")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		path, err := resourcePath(args[0])
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		resp, err := c.do(cmd.Context(), request{Method: http.MethodDelete, Path: path, Header: preconditionHeader(ifMatch, "")})
		if err != nil {
			return err
		}
		// ARM answers 200 for a delete and 204 when there was nothing to delete.
		deleted := resp.Status != http.StatusNoContent
		if a.output == outputJSON {
			return writeJSON(a.env.Stdout, deleteResult{ID: path, Deleted: deleted})
		}
		if deleted {
			fmt.Fprintf(a.env.Stdout, "Deleted %s\n", path)
		} else {
			fmt.Fprintf(a.env.Stdout, "%s does not exist; nothing was deleted\n", path)
		}
		return nil
	})
	return cmd
}

// deleteResult is the JSON output of a delete, which the API answers without a body.
type deleteResult struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

// collectionPath is the API path that lists resources of typ (all types when empty) in scope.
func collectionPath(scope, typ string) (string, error) {
	sid, err := resource.Parse(scope)
	if err != nil {
		return "", usageErrorf("scope: %s", messageOf(err))
	}
	prefix := sid.String()
	if sid.IsRoot() {
		prefix = ""
	}
	switch {
	case typ == "":
		return prefix + "/resources", nil
	case strings.EqualFold(typ, resource.TypeSubscription) && sid.IsRoot():
		return "/subscriptions", nil
	case strings.EqualFold(typ, resource.TypeResourceGroup) && sid.Kind() == resource.KindSubscription:
		return prefix + "/resourceGroups", nil
	case strings.EqualFold(typ, resource.TypeManagementGroup) && sid.IsRoot():
		return "/providers/" + resource.TypeManagementGroup, nil
	}
	ns, rest, ok := strings.Cut(typ, "/")
	if !ok || ns == "" || rest == "" || strings.HasPrefix(typ, "/") {
		return "", usageErrorf("--type %q is not a resource type such as Microsoft.Compute/virtualMachines", typ)
	}
	return prefix + "/providers/" + typ, nil
}

func (a *app) listCommand() *cobra.Command {
	var typ, skip string
	var top int
	cmd := &cobra.Command{
		Use:   "list SCOPE [--type TYPE]",
		Short: "List the resources in a scope",
		Long: `list shows the resources inside SCOPE (/, a management group, a subscription, a
resource group), of one type with --type or of every type without it. A management
group's listing includes everything under it. You see only what you may read.

Every page is fetched unless --top N asks for one page of N; the command then says how
to get the next one.`,
		Example: `  gild list / --type Microsoft.Resources/subscriptions
  gild list / --type Microsoft.Management/managementGroups
  gild list /subscriptions/payments --type Microsoft.Resources/resourceGroups
  gild list /subscriptions/payments --type Microsoft.Compute/virtualMachines
  gild list /subscriptions/payments/resourceGroups/prod
  gild list / --top 10 -o json`,
		Args: a.exactArgs(1, "one scope, such as / or /subscriptions/payments"),
	}
	cmd.Flags().StringVarP(&typ, "type", "t", "", "resource type, such as Microsoft.Compute/virtualMachines (default: every type)")
	cmd.Flags().IntVar(&top, "top", 0, "fetch one page of at most N resources")
	cmd.Flags().StringVar(&skip, "skip-token", "", "continue a --top listing where the previous page ended")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		path, err := collectionPath(args[0], typ)
		if err != nil {
			return err
		}
		if top < 0 {
			return usageErrorf("--top must be a positive number, not %d", top)
		}
		q := url.Values{}
		if top > 0 {
			q.Set("$top", strconv.Itoa(top))
		}
		if skip != "" {
			q.Set("$skipToken", skip)
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		page, err := c.list(cmd.Context(), path, q, top == 0)
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			if err := writeJSON(a.env.Stdout, page); err != nil {
				return err
			}
		} else if err := writeResourceList(a.env.Stdout, page.Value); err != nil {
			return err
		}
		if page.NextLink != "" && a.output == outputTable {
			more := fmt.Sprintf("gild list %s --top %d --skip-token %s", args[0], top, shellQuote(skipToken(page.NextLink)))
			if typ != "" {
				more += " --type " + typ
			}
			fmt.Fprintf(a.env.Stderr, "There is more; the next page: %s\n", more)
		}
		return nil
	})
	return cmd
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
