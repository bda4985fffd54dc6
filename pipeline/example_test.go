package pipeline

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// The example ships in both forms; they must describe the same build, so that both
// produce the same image, tattoo aside.
func TestExampleFormsAgree(t *testing.T) {
	dir := filepath.Join("..", "examples", "debian-12-hardened")
	data, err := os.ReadFile(filepath.Join(dir, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := ParseYAML(data, func(n string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, n)) })
	if err != nil {
		t.Fatal(errorText(err))
	}
	raw, err := os.ReadFile(filepath.Join(dir, "template.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		ID         string          `json:"id"`
		Location   string          `json:"location"`
		Properties json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	p, err := ParseTemplate(res.Properties)
	if err != nil {
		t.Fatal(errorText(err))
	}
	// Compared as JSON: the checks are kept as raw JSON, whose spacing differs.
	a, _ := json.MarshalIndent(doc.Properties, "", " ")
	b, _ := json.MarshalIndent(p, "", " ")
	if res.ID != doc.ID || res.Location != doc.Location || !reflect.DeepEqual(a, b) {
		t.Fatalf("template.yaml and template.json differ (regenerate the JSON from the YAML):\n%s\n---\n%s", a, b)
	}
	if len(doc.Definitions) != 1 || doc.Definitions[0].ID != doc.Properties.Distribute[0].GalleryImageID {
		t.Fatalf("the example declares its image definition: %+v", doc.Definitions)
	}
}
