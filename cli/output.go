package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// writeRawJSON pretty-prints JSON as the server sent it, keeping its field order and values.
func writeRawJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		return fmt.Errorf("the server's answer is not JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// table writes aligned columns.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		// A tab or newline inside a cell would break the columns.
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// resourceView is the part of a resource the tables show.
type resourceView struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	ETag       string            `json:"etag"`
	Properties json.RawMessage   `json:"properties"`
	SystemData *struct {
		CreatedBy      string    `json:"createdBy"`
		CreatedAt      time.Time `json:"createdAt"`
		LastModifiedBy string    `json:"lastModifiedBy"`
		LastModifiedAt time.Time `json:"lastModifiedAt"`
	} `json:"systemData"`
}

// writeResourceTable shows one resource as key/value rows, then its properties as JSON.
func writeResourceTable(w io.Writer, raw []byte) error {
	var r resourceView
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("decode resource: %w", err)
	}
	t := newTable(w)
	t.row("id", r.ID)
	t.row("name", r.Name)
	t.row("type", r.Type)
	t.row("location", orDash(r.Location))
	t.row("tags", orDash(formatTags(r.Tags)))
	t.row("etag", orDash(r.ETag))
	if sd := r.SystemData; sd != nil {
		t.row("createdBy", orDash(sd.CreatedBy))
		t.row("createdAt", formatTime(sd.CreatedAt))
		t.row("lastModifiedBy", orDash(sd.LastModifiedBy))
		t.row("lastModifiedAt", formatTime(sd.LastModifiedAt))
	}
	if err := t.flush(); err != nil {
		return err
	}
	props := bytes.TrimSpace(r.Properties)
	if len(props) == 0 || string(props) == "null" {
		props = []byte("{}")
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, props, "", "  "); err != nil {
		return fmt.Errorf("decode resource properties: %w", err)
	}
	fmt.Fprintf(w, "properties:\n%s\n", buf.Bytes())
	return nil
}

// writeResourceList shows resources one per row.
func writeResourceList(w io.Writer, items []json.RawMessage) error {
	t := newTable(w, "NAME", "TYPE", "LOCATION", "ID")
	for _, raw := range items {
		var r resourceView
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("decode resource: %w", err)
		}
		t.row(r.Name, r.Type, orDash(r.Location), r.ID)
	}
	return t.flush()
}

// formatTags is "k1=v1, k2=v2" in name order, so that output is the same every time.
func formatTags(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + tags[k]
	}
	return strings.Join(parts, ", ")
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
