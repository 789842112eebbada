package kserve_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"
)

// crdSchema compiles the OpenAPI v3 schema of one version of a CRD kept in
// testdata, after checking the file against the sum in testdata/SOURCE.md.
//
// The API server prunes fields a structural schema does not name, and
// strict field validation (kubectl's default, --validate=strict) reports
// them as errors; JSON Schema allows them unless additionalProperties is
// false. So every object schema that lists properties, has no
// additionalProperties and does not preserve unknown fields is closed here,
// which is what the API server does with it.
func crdSchema(t *testing.T, file, version string) *jsonschema.Schema {
	t.Helper()
	if sch := compiled[file+"/"+version]; sch != nil {
		return sch
	}
	f, err := os.Open(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	checkSum(t, file, raw)
	var crd struct {
		Spec struct {
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	for _, v := range crd.Spec.Versions {
		if v.Name != version {
			continue
		}
		schema := v.Schema.OpenAPIV3Schema
		closeObjects(schema)
		js, err := json.Marshal(schema)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
		if err != nil {
			t.Fatal(err)
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft4) // OpenAPI 3.0's schema objects are draft 4's, plus x- extensions
		url := "file:///" + version + "/" + strings.TrimSuffix(file, ".gz") + ".json"
		if err := c.AddResource(url, doc); err != nil {
			t.Fatal(err)
		}
		sch, err := c.Compile(url)
		if err != nil {
			t.Fatalf("compile %s %s: %v", file, version, err)
		}
		compiled[file+"/"+version] = sch
		return sch
	}
	t.Fatalf("%s has no version %s", file, version)
	return nil
}

// compiled holds the schemas compiled so far (the InferenceService's takes
// a second).
var compiled = map[string]*jsonschema.Schema{}

// closeObjects sets additionalProperties: false on every object schema with
// properties that neither sets additionalProperties nor preserves unknown
// fields.
func closeObjects(s map[string]any) {
	if props, ok := s["properties"].(map[string]any); ok {
		_, has := s["additionalProperties"]
		if preserve, _ := s["x-kubernetes-preserve-unknown-fields"].(bool); !has && !preserve {
			s["additionalProperties"] = false
		}
		for _, p := range props {
			if m, ok := p.(map[string]any); ok {
				closeObjects(m)
			}
		}
	}
	for _, key := range []string{"items", "additionalProperties"} {
		if m, ok := s[key].(map[string]any); ok {
			closeObjects(m)
		}
	}
	for _, key := range []string{"allOf", "anyOf", "oneOf"} {
		if list, ok := s[key].([]any); ok {
			for _, e := range list {
				if m, ok := e.(map[string]any); ok {
					closeObjects(m)
				}
			}
		}
	}
}

var sourceRow = regexp.MustCompile(`(?m)^\| (\S+) \| \S+ \| ([0-9a-f]{64}) \|$`)

// checkSum compares raw with the sha256 SOURCE.md records for file.
func checkSum(t *testing.T, file string, raw []byte) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", "SOURCE.md"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	for _, m := range sourceRow.FindAllStringSubmatch(string(src), -1) {
		if m[1] == file {
			if m[2] != hex.EncodeToString(sum[:]) {
				t.Fatalf("%s: sha256 %x, SOURCE.md says %s", file, sum, m[2])
			}
			return
		}
	}
	t.Fatalf("SOURCE.md has no row for %s", file)
}

// validate checks a YAML document against a compiled schema.
func validate(sch *jsonschema.Schema, doc []byte) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return err
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("%v", err)
	}
	return nil
}
