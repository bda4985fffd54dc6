package pipeline

import _ "embed"

// Schema is the JSON Schema of gild's YAML template format.
//
//go:embed template.schema.json
var Schema []byte
