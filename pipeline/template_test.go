package pipeline

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/gildhq/gild/resource"
)

const def = "/subscriptions/platform/resourceGroups/images/providers/Microsoft.Compute/galleries/corp/images/debian-12-hardened"

const exampleYAML = `
id: /subscriptions/platform/resourceGroups/images/providers/Microsoft.VirtualMachineImages/imageTemplates/debian-12-hardened
location: local
source:
  marketplace: {publisher: Debian, offer: debian-12, sku: "12"}
customize:
  - packages: {name: audit, install: [auditd, openssh-server], remove: [telnet]}
  - shell:
      name: harden
      inline:
        - sed -i 's/^#\?PermitRootLogin.*/PermitRootLogin no/' /etc/ssh/sshd_config
  - file: {name: motd, source: files/motd, destination: /etc/motd, mode: "0644", owner: root}
tattoo: {team: platform}
validate:
  maxBootSeconds: 60
  checks:
    - {name: sshd-root-login, kind: lineInFile, path: /etc/ssh/sshd_config, line: PermitRootLogin no}
  shell:
    - {name: auditd-running, inline: [systemctl is-active auditd]}
distribute:
  - gallery: ` + def + `
    targetRegions: [{name: local, replicaCount: 1}, {name: west, replicaCount: 2}]
    endOfLife: 2027-06-30
buildTimeoutInMinutes: 60
errorHandling: {onValidationError: abort}
`

func readFiles(files map[string]string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		if s, ok := files[name]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
}

func TestParseYAML(t *testing.T) {
	doc, err := ParseYAML([]byte(exampleYAML), readFiles(map[string]string{"files/motd": "Contoso golden image\n"}))
	if err != nil {
		t.Fatal(errorText(err))
	}
	p := doc.Properties
	if doc.Location != "local" || !strings.HasSuffix(doc.ID, "/imageTemplates/debian-12-hardened") {
		t.Errorf("document: %+v", doc)
	}
	if p.Source.Type != SourcePlatformImage || p.Source.Version != "latest" || p.Source.SKU != "12" {
		t.Errorf("source: %+v", p.Source)
	}
	if len(p.Customize) != 3 || p.Customize[0].Type != CustomizePackages || p.Customize[1].Type != CustomizeShell || p.Customize[2].Type != CustomizeFile {
		t.Fatalf("customize: %+v", p.Customize)
	}
	motd, _ := base64.StdEncoding.DecodeString(p.Customize[2].Content)
	if string(motd) != "Contoso golden image\n" || len(p.Customize[2].SHA256Checksum) != 64 {
		t.Errorf("the local file was not inlined with its checksum: %+v", p.Customize[2])
	}
	if p.Validate.MaxBootSeconds != 60 || len(p.Validate.InVMValidations) != 1 || !json.Valid(p.Validate.Checks) || !strings.Contains(string(p.Validate.Checks), `"kind":"lineInFile"`) {
		t.Errorf("validate: %+v %s", p.Validate, p.Validate.Checks)
	}
	d := p.Distribute[0]
	if d.GalleryImageID != def || d.Versioning == nil || d.Versioning.Scheme != "Latest" || len(d.TargetRegions) != 2 || d.EndOfLifeDate == nil || d.RunOutputName != "image" {
		t.Errorf("distribute: %+v", d)
	}
	if p.BuildTimeoutInMinutes != 60 || p.ErrorHandling.OnValidationError != ErrorAbort || p.ErrorHandling.OnCustomizerError != ErrorCleanup || p.Tattoo["team"] != "platform" {
		t.Errorf("the rest: %+v %+v", p, p.ErrorHandling)
	}
	// The YAML and the Azure JSON are one model: the JSON of the parsed YAML parses again
	// to the same thing.
	raw, _ := json.Marshal(p)
	again, err := ParseTemplate(raw)
	if err != nil || !reflect.DeepEqual(again, p) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, again, p)
	}
}

// An Azure Image Builder template's properties, as Azure documents them, parse unchanged.
func TestParseAzureTemplate(t *testing.T) {
	raw := `{
	  "source": {"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"},
	  "customize": [
	    {"type": "Shell", "name": "setup", "inline": ["apt-get update", "apt-get install -y nginx"]},
	    {"type": "Shell", "name": "script", "scriptUri": "https://example.com/setup.sh", "sha256Checksum": "` + strings.Repeat("ab", 32) + `"},
	    {"type": "File", "name": "conf", "sourceUri": "https://example.com/nginx.conf", "destination": "/etc/nginx/nginx.conf", "sha256Checksum": "` + strings.Repeat("cd", 32) + `"}
	  ],
	  "validate": {"continueDistributeOnFailure": false, "sourceValidationOnly": false,
	    "inVMValidations": [{"type": "Shell", "name": "nginx", "inline": ["systemctl is-enabled nginx"]}]},
	  "distribute": [{"type": "SharedImage", "galleryImageId": "` + def + `/versions/1.2.0", "runOutputName": "nginx",
	    "artifactTags": {"source": "azure"}, "replicationRegions": ["local", "West"]}],
	  "buildTimeoutInMinutes": 100,
	  "errorHandling": {"onCustomizerError": "abort", "onValidationError": "cleanup"},
	  "vmProfile": {"vmSize": "Standard_D2s_v3", "osDiskSizeGB": 30}
	}`
	p, err := ParseTemplate(json.RawMessage(raw))
	if err != nil {
		t.Fatal(errorText(err))
	}
	if len(p.Distribute[0].TargetRegions) != 2 || p.Distribute[0].TargetRegions[1].Name != "west" || p.Distribute[0].ReplicationRegions != nil {
		t.Errorf("replicationRegions became target regions: %+v", p.Distribute[0])
	}
	if p.Validate.MaxBootSeconds != DefaultMaxBootSeconds || p.BuildTimeoutInMinutes != 100 || p.ErrorHandling.OnCustomizerError != ErrorAbort {
		t.Errorf("defaults: %+v %+v", p.Validate, p.ErrorHandling)
	}
}

func TestTemplateReportsEveryProblem(t *testing.T) {
	raw := `{
	  "source": {"type": "Url", "url": "ftp://x/disk.qcow2"},
	  "customize": [
	    {"type": "Shell", "name": "a"},
	    {"type": "Shell", "name": "a", "inline": ["true"], "scriptUri": "https://x/s.sh"},
	    {"type": "File", "name": "f", "sourceUri": "https://x/f", "destination": "etc/x", "mode": "rwx"},
	    {"type": "Packages", "name": "p", "install": ["Not A Package"]},
	    {"type": "WindowsRestart", "name": "w"}
	  ],
	  "validate": {"maxBootSeconds": 1, "inVMValidations": [{"type": "File", "name": "v"}]},
	  "distribute": [{"type": "VHD", "galleryImageId": "/subscriptions/s", "runOutputName": "o"},
	                 {"type": "SharedImage", "galleryImageId": "` + def + `", "runOutputName": "o", "versioning": {"scheme": "Newest"}}],
	  "buildTimeoutInMinutes": 2,
	  "errorHandling": {"onCustomizerError": "ignore"},
	  "tattoo": {"9bad": "x"}
	}`
	_, err := ParseTemplate(json.RawMessage(raw))
	if err == nil {
		t.Fatal("accepted")
	}
	text := errorText(err)
	for _, want := range []string{
		"properties.source.url", "properties.source.checksumUrl",
		"properties.customize[0]", "properties.customize[1].name", "properties.customize[1].sha256Checksum",
		"properties.customize[2].sha256Checksum", "properties.customize[2].destination", "properties.customize[2].mode",
		"properties.customize[3].install[0]", "properties.customize[4].type",
		"properties.validate.maxBootSeconds", "properties.validate.inVMValidations[0].type",
		"properties.distribute[0].type", "properties.distribute[0].galleryImageId", "properties.distribute[1].runOutputName",
		"properties.distribute[1].versioning.scheme", "properties.buildTimeoutInMinutes",
		"properties.errorHandling.onCustomizerError", "properties.tattoo.9bad",
	} {
		if !strings.Contains(text, want+":") {
			t.Errorf("the error does not name %s", want)
		}
	}
	if _, err := ParseTemplate(json.RawMessage(`{"source": {"type": "PlatformImage"}, "colour": "red"}`)); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Errorf("an unknown field: %v", err)
	}
}

func TestYAMLErrorsNameTheYAMLFields(t *testing.T) {
	y := `
source: {image: not-an-id}
customize:
  - {shell: {name: s, inline: [x]}, file: {name: f, source: a, destination: /a}}
  - file: {name: f, source: files/missing, destination: /a}
  - file: {name: g, source: files/motd, destination: /b, sha256: ` + strings.Repeat("0", 64) + `}
validate: {shell: [{name: v}]}
distribute:
  - {gallery: ` + def + `, version: "1.2", endOfLife: soon}
vm: {diskGB: 1}
`
	_, err := ParseYAML([]byte(y), readFiles(map[string]string{"files/motd": "hi"}))
	if err == nil {
		t.Fatal("accepted")
	}
	text := errorText(err)
	for _, want := range []string{"source.image:", "customize[0]:", "customize[1].file.source:", "customize[2].file.source:", "validate.shell[0]:",
		"distribute[0].version:", "distribute[0].endOfLife:", "vm.diskGB:"} {
		if !strings.Contains(text, want) {
			t.Errorf("the error does not name %s", want)
		}
	}
	if strings.Contains(text, "properties.") {
		t.Errorf("a YAML error names the JSON model's fields: %s", text)
	}
	if _, err := ParseYAML([]byte("source: {url: https://x/d.qcow2, checksum: md5:1}\nsurprise: 1\n"), nil); err == nil || !strings.Contains(err.Error(), "surprise") {
		t.Errorf("an unknown key: %v", err)
	}
}

// The schema describes exactly the YAML format's fields, at every level.
func TestSchemaMatchesYAML(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(Schema, &schema); err != nil {
		t.Fatalf("the schema is not JSON: %v", err)
	}
	defs := schema["$defs"].(map[string]any)
	var walk func(at string, s map[string]any, typ reflect.Type)
	walk = func(at string, s map[string]any, typ reflect.Type) {
		if ref, ok := s["$ref"].(string); ok {
			s = defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		}
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
			if items, ok := s["items"].(map[string]any); ok {
				s = items
				if ref, ok := s["$ref"].(string); ok {
					s = defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
				}
			}
		}
		if typ.Kind() != reflect.Struct {
			return
		}
		props, _ := s["properties"].(map[string]any)
		var inSchema, inGo []string
		for k := range props {
			inSchema = append(inSchema, k)
		}
		for i := range typ.NumField() {
			fld := typ.Field(i)
			name, _, _ := strings.Cut(fld.Tag.Get("yaml"), ",")
			if name == "" {
				name, _, _ = strings.Cut(fld.Tag.Get("json"), ",")
			}
			inGo = append(inGo, name)
			if sub, ok := props[name].(map[string]any); ok {
				walk(at+"."+name, sub, fld.Type)
			}
		}
		sort.Strings(inSchema)
		sort.Strings(inGo)
		if !reflect.DeepEqual(inSchema, inGo) {
			t.Errorf("%s: the schema has %v, the YAML format %v", at, inSchema, inGo)
		}
	}
	walk("template", schema, reflect.TypeOf(yamlTemplate{}))
}

// errorText is the error with every detail's target, as a client would see them.
func errorText(err error) string {
	var re *resource.Error
	if !errors.As(err, &re) {
		return err.Error()
	}
	out := re.Target + ": " + re.Message + "\n"
	for _, d := range re.Details {
		out += d.Target + ": " + d.Message + "\n"
	}
	return out
}
