package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServeConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "gild.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := loadServeConfig(write("addr: 0.0.0.0:8080\nverifyInterval: 6h\nregions:\n  - name: local\n    url: file:///srv/local\n  - name: west\n    url: s3://bucket\n"))
	if err != nil || c.Addr != "0.0.0.0:8080" || len(c.Regions) != 2 || c.Regions[1].URL != "s3://bucket" || c.VerifyInterval != "6h" {
		t.Fatalf("got %+v, %v", c, err)
	}
	if _, err := loadServeConfig(write("")); err != nil {
		t.Fatalf("an empty file: %v", err)
	}
	_, err = loadServeConfig(write("scanInterval: soon\nverifyInterval: later\nregions:\n  - name: west\n"))
	for _, want := range []string{"scanInterval", "verifyInterval", "regions[0]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
	if _, err := loadServeConfig(write("colour: red\n")); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Errorf("an unknown key: %v", err)
	}
	if _, err := loadServeConfig(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("a missing file was accepted")
	}
}
