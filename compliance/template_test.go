package compliance

import (
	"strings"
	"testing"
	"time"

	"github.com/gildhq/gild/resource"
)

func TestTemplateResourceID(t *testing.T) {
	rg := resource.ResourceGroupID("pay", "prod")
	cases := []struct {
		typ, name, want, err string
	}{
		{"Microsoft.Compute/virtualMachines", "vm1", "/subscriptions/pay/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/vm1", ""},
		{"Microsoft.Compute/galleries/images", "g/i", "/subscriptions/pay/resourceGroups/prod/providers/Microsoft.Compute/galleries/g/images/i", ""},
		{"Microsoft.Compute/virtualMachines/providers/guestConfigurationAssignments", "vm1/Microsoft.GuestConfiguration/Baseline",
			"/subscriptions/pay/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/vm1/providers/Microsoft.GuestConfiguration/guestConfigurationAssignments/Baseline", ""},
		{"Microsoft.Compute/galleries/images", "g", "", "2 parts"},
		{"Microsoft.Compute/virtualMachines/providers/guestConfigurationAssignments", "vm1/Baseline", "", "3 parts"},
	}
	for _, c := range cases {
		got, err := templateResourceID(rg, c.typ, c.name)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %s: error %v, want one saying %q", c.typ, c.name, err, c.err)
			}
			continue
		}
		if err != nil || got.String() != c.want {
			t.Errorf("%s %s = %s, %v; want %s", c.typ, c.name, got, err, c.want)
		}
	}
}

func TestExpandTemplateRefusesWhatGildCannotDeploy(t *testing.T) {
	rg := resource.ResourceGroupID("pay", "prod")
	dep := func(res map[string]any, extra map[string]any) map[string]any {
		tmpl := map[string]any{"resources": []any{res}}
		for k, v := range extra {
			tmpl[k] = v
		}
		return map[string]any{"properties": map[string]any{"template": tmpl, "parameters": map[string]any{"n": map[string]any{"value": "vm1"}}}}
	}
	for name, c := range map[string]struct {
		dep  map[string]any
		want string
	}{
		"a type gild does not model": {dep(map[string]any{"type": "Microsoft.Network/virtualNetworks", "name": "v"}, nil), "only the resource types it models"},
		"variables":                  {dep(map[string]any{"type": "Microsoft.Compute/virtualMachines", "name": "v"}, map[string]any{"variables": map[string]any{"x": 1}}), "variables"},
		"a deployment-only function": {dep(map[string]any{"type": "Microsoft.Compute/virtualMachines", "name": "[resourceId('x')]"}, nil), "resourceId"},
		"a copy loop":                {dep(map[string]any{"type": "Microsoft.Compute/virtualMachines", "name": "v", "copy": map[string]any{}}, nil), "copy"},
	} {
		if _, err := expandTemplate(c.dep, rg, time.Now()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", name, err, c.want)
		}
	}
	out, err := expandTemplate(dep(map[string]any{"type": "Microsoft.Compute/virtualMachines", "name": "[parameters('n')]",
		"condition": "[equals(1, 1)]", "location": "local"}, nil), rg, time.Now())
	if err != nil || len(out) != 1 || out[0].ID.Name() != "vm1" || out[0].Body.Location != "local" {
		t.Fatalf("a template gild can deploy: %+v, %v", out, err)
	}
}
