package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gildhq/gild/resource"
)

// Document is a template as a file gives it: where it goes and what it is.
type Document struct {
	// ID is the template resource's ID, when the file names one.
	ID         string
	Location   string
	Properties *TemplateProperties
	// Definitions are the image definitions the template publishes to, as the file
	// declares them: gild image build creates them (with their gallery, resource group
	// and subscription) when they are missing.
	Definitions []DeclaredDefinition
}

// DeclaredDefinition is an image definition a YAML template declares.
type DeclaredDefinition struct {
	ID         string
	Properties map[string]any
}

// The YAML format. Field names are the ones the README documents and
// template.schema.json describes; a test keeps the three in step.
type yamlTemplate struct {
	ID                    string            `yaml:"id"`
	Location              string            `yaml:"location"`
	Source                yamlSource        `yaml:"source"`
	Customize             []yamlStep        `yaml:"customize"`
	Tattoo                map[string]string `yaml:"tattoo"`
	Validate              *yamlValidate     `yaml:"validate"`
	Distribute            []yamlDistribute  `yaml:"distribute"`
	BuildTimeoutInMinutes int               `yaml:"buildTimeoutInMinutes"`
	ErrorHandling         *ErrorHandling    `yaml:"errorHandling"`
	VM                    *yamlVM           `yaml:"vm"`
	InstallAgent          *bool             `yaml:"installAgent"`
	Schedule              *Schedule         `yaml:"schedule"`
}

type yamlSource struct {
	Marketplace *struct {
		Publisher string `yaml:"publisher"`
		Offer     string `yaml:"offer"`
		SKU       string `yaml:"sku"`
		Version   string `yaml:"version"`
	} `yaml:"marketplace"`
	Image     string `yaml:"image"`
	URL       string `yaml:"url"`
	Checksums string `yaml:"checksums"`
	Checksum  string `yaml:"checksum"`
	Format    string `yaml:"format"`
}

type yamlStep struct {
	Shell    *yamlShell `yaml:"shell"`
	File     *yamlFile  `yaml:"file"`
	Packages *struct {
		Name    string   `yaml:"name"`
		Install []string `yaml:"install"`
		Remove  []string `yaml:"remove"`
	} `yaml:"packages"`
}

type yamlShell struct {
	Name   string   `yaml:"name"`
	Inline []string `yaml:"inline"`
	// Script is a local file (relative to the template) or an https:// URL.
	Script string `yaml:"script"`
	SHA256 string `yaml:"sha256"`
}

type yamlFile struct {
	Name string `yaml:"name"`
	// Source is a local file (relative to the template) or an https:// URL.
	Source      string `yaml:"source"`
	Destination string `yaml:"destination"`
	Mode        string `yaml:"mode"`
	Owner       string `yaml:"owner"`
	SHA256      string `yaml:"sha256"`
}

type yamlValidate struct {
	MaxBootSeconds              int         `yaml:"maxBootSeconds"`
	Checks                      []any       `yaml:"checks"`
	Shell                       []yamlShell `yaml:"shell"`
	ContinueDistributeOnFailure bool        `yaml:"continueDistributeOnFailure"`
	SourceValidationOnly        bool        `yaml:"sourceValidationOnly"`
}

type yamlDistribute struct {
	Gallery string `yaml:"gallery"`
	// Version is X.Y.Z, "next-patch" (the default) or "source".
	Version           string            `yaml:"version"`
	Major             *int              `yaml:"major"`
	TargetRegions     []TargetRegion    `yaml:"targetRegions"`
	ExcludeFromLatest bool              `yaml:"excludeFromLatest"`
	EndOfLife         string            `yaml:"endOfLife"`
	RunOutputName     string            `yaml:"runOutputName"`
	Tags              map[string]string `yaml:"tags"`
	// Definition declares the image definition, to be created when missing.
	Definition *yamlDefinition `yaml:"definition"`
}

type yamlDefinition struct {
	Publisher   string `yaml:"publisher"`
	Offer       string `yaml:"offer"`
	SKU         string `yaml:"sku"`
	OSType      string `yaml:"osType"`
	OSState     string `yaml:"osState"`
	Description string `yaml:"description"`
}

type yamlVM struct {
	Size   string `yaml:"size"`
	DiskGB int    `yaml:"diskGB"`
}

// MaxInlineFile bounds a local file gild image build puts into the template itself.
const MaxInlineFile = 1 << 20

// ParseYAML reads a template in gild's YAML format. readFile reads the local files it
// names (scripts, file sources), relative to the template; their contents go into the
// template with their SHA-256, so the server builds exactly what the author reviewed. The
// result is checked as ParseTemplate checks the JSON form, every problem at once.
func ParseYAML(data []byte, readFile func(name string) ([]byte, error)) (*Document, error) {
	var y yamlTemplate
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&y); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, resource.Errorf(resource.CodeInvalidRequestContent, "", "the template is empty")
		}
		return nil, resource.Errorf(resource.CodeInvalidRequestContent, "", "the template is not valid YAML for gild: %v", err)
	}
	var f fieldErrors
	p := &TemplateProperties{Tattoo: y.Tattoo, BuildTimeoutInMinutes: y.BuildTimeoutInMinutes, ErrorHandling: y.ErrorHandling, InstallAgent: y.InstallAgent,
		Schedule: y.Schedule}
	s := y.Source
	n := 0
	for _, set := range []bool{s.Marketplace != nil, s.Image != "", s.URL != ""} {
		if set {
			n++
		}
	}
	switch {
	case n != 1:
		f.add("source", "give exactly one of marketplace, image or url")
	case s.Marketplace != nil:
		m := s.Marketplace
		p.Source = Source{Type: SourcePlatformImage, Publisher: m.Publisher, Offer: m.Offer, SKU: m.SKU, Version: m.Version}
	case s.Image != "":
		p.Source = Source{Type: SourceSharedImageVersion, ImageVersionID: s.Image}
	default:
		p.Source = Source{Type: SourceURL, URL: s.URL, ChecksumURL: s.Checksums, Checksum: s.Checksum, Format: s.Format}
	}
	for i, st := range y.Customize {
		at := fmt.Sprintf("customize[%d]", i)
		n := 0
		for _, set := range []bool{st.Shell != nil, st.File != nil, st.Packages != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			f.add(at, "a step is exactly one of shell, file or packages")
			continue
		}
		switch {
		case st.Shell != nil:
			p.Customize = append(p.Customize, shellStep(&f, at+".shell", *st.Shell, readFile))
		case st.File != nil:
			c := Customizer{Type: CustomizeFile, Name: st.File.Name, Destination: st.File.Destination, Mode: st.File.Mode, Owner: st.File.Owner, SHA256Checksum: st.File.SHA256}
			c.SourceURI, c.Content, c.SHA256Checksum = localOrRemote(&f, at+".file.source", st.File.Source, st.File.SHA256, readFile)
			p.Customize = append(p.Customize, c)
		default:
			p.Customize = append(p.Customize, Customizer{Type: CustomizePackages, Name: st.Packages.Name, Install: st.Packages.Install, Remove: st.Packages.Remove})
		}
	}
	if v := y.Validate; v != nil {
		p.Validate = &Validation{MaxBootSeconds: v.MaxBootSeconds, ContinueDistributeOnFailure: v.ContinueDistributeOnFailure, SourceValidationOnly: v.SourceValidationOnly}
		if len(v.Checks) > 0 {
			raw, err := json.Marshal(jsonable(v.Checks))
			if err != nil {
				f.add("validate.checks", "the checks cannot be read: %v", err)
			}
			p.Validate.Checks = raw
		}
		for i, sh := range v.Shell {
			p.Validate.InVMValidations = append(p.Validate.InVMValidations, shellStep(&f, fmt.Sprintf("validate.shell[%d]", i), sh, readFile))
		}
	}
	var decls []DeclaredDefinition
	for i, d := range y.Distribute {
		at := fmt.Sprintf("distribute[%d]", i)
		if dd := d.Definition; dd != nil {
			props := map[string]any{"identifier": map[string]any{"publisher": dd.Publisher, "offer": dd.Offer, "sku": dd.SKU},
				"osType": orDefault(dd.OSType, "Linux"), "osState": orDefault(dd.OSState, "Generalized")}
			if dd.Description != "" {
				props["description"] = dd.Description
			}
			decls = append(decls, DeclaredDefinition{ID: strings.TrimRight(d.Gallery, "/"), Properties: props})
		}
		out := Distributor{Type: "SharedImage", GalleryImageID: d.Gallery, TargetRegions: d.TargetRegions, ExcludeFromLatest: d.ExcludeFromLatest, RunOutputName: d.RunOutputName, ArtifactTags: d.Tags}
		switch v := strings.ToLower(d.Version); {
		case v == "" || v == "next-patch":
			out.Versioning = &Versioning{Scheme: "Latest", Major: d.Major}
		case v == "source":
			out.Versioning = &Versioning{Scheme: "Source"}
		default:
			if _, err := fmt.Sscanf(v, "%d.%d.%d", new(int), new(int), new(int)); err != nil || strings.Count(v, ".") != 2 {
				f.add(at+".version", "%q is not X.Y.Z, next-patch or source", d.Version)
			}
			out.GalleryImageID = strings.TrimRight(d.Gallery, "/") + "/versions/" + v
		}
		if d.EndOfLife != "" {
			t, err := parseDate(d.EndOfLife)
			if err != nil {
				f.add(at+".endOfLife", "%v", err)
			}
			out.EndOfLifeDate = &t
		}
		p.Distribute = append(p.Distribute, out)
	}
	if y.VM != nil {
		p.VMProfile = &VMProfile{VMSize: y.VM.Size, OSDiskSizeGB: y.VM.DiskGB}
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	checked, perr := ParseTemplate(raw)
	var pe *resource.Error
	if perr != nil && errors.As(perr, &pe) {
		if len(pe.Details) > 0 {
			f = append(f, pe.Details...)
		} else {
			f = append(f, pe)
		}
	}
	if len(f) > 0 {
		return nil, resource.Join(resource.CodeInvalidRequestContent, "the template is invalid", yamlPaths(f))
	}
	return &Document{ID: y.ID, Location: y.Location, Properties: checked, Definitions: decls}, nil
}

// yamlPaths names the YAML's own fields where the JSON model's differ, so an error points
// at the line the author wrote.
func yamlPaths(errs []*resource.Error) []*resource.Error {
	repl := strings.NewReplacer("properties.validate.inVMValidations", "validate.shell", "properties.vmProfile.osDiskSizeGB", "vm.diskGB",
		"properties.source.imageVersionId", "source.image", "properties.source.checksumUrl", "source.checksums",
		"properties.distribute", "distribute", "galleryImageId", "gallery", "properties.", "")
	for _, e := range errs {
		e.Target = repl.Replace(e.Target)
	}
	return errs
}

func shellStep(f *fieldErrors, at string, s yamlShell, readFile func(string) ([]byte, error)) Customizer {
	c := Customizer{Type: CustomizeShell, Name: s.Name, Inline: s.Inline}
	if s.Script != "" {
		c.ScriptURI, c.Content, c.SHA256Checksum = localOrRemote(f, at+".script", s.Script, s.SHA256, readFile)
	}
	return c
}

// localOrRemote returns an https:// source as a URI with the given SHA-256, or reads a
// local file into base64 content with its SHA-256 (checked against the given one).
func localOrRemote(f *fieldErrors, at, src, sum string, readFile func(string) ([]byte, error)) (uri, content, sha string) {
	if u, err := url.Parse(src); err == nil && (u.Scheme == "https" || u.Scheme == "http") {
		return src, "", sum
	}
	if src == "" {
		f.add(at, "a file is required")
		return "", "", sum
	}
	if readFile == nil {
		f.add(at, "local file %q cannot be read here", src)
		return "", "", sum
	}
	data, err := readFile(src)
	if err != nil {
		f.add(at, "read %s: %v", src, err)
		return "", "", sum
	}
	if len(data) > MaxInlineFile {
		f.add(at, "%s is %d bytes; files over %d bytes must be given as an https:// URL with their sha256", src, len(data), MaxInlineFile)
		return "", "", sum
	}
	h := sha256.Sum256(data)
	got := hex.EncodeToString(h[:])
	if sum != "" && !strings.EqualFold(sum, got) {
		f.add(at, "%s has SHA-256 %s, not the %s the template gives", src, got, sum)
	}
	return "", base64.StdEncoding.EncodeToString(data), got
}

// jsonable turns what yaml.v3 decodes (maps with any keys) into what encoding/json takes.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = jsonable(x)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = jsonable(x)
		}
		return m
	case []any:
		for i := range t {
			t[i] = jsonable(t[i])
		}
	}
	return v
}

func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.DateOnly, time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date (YYYY-MM-DD or RFC 3339)", s)
}
