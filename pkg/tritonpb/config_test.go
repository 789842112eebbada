package tritonpb

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

func TestParseConfigArticle(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("testdata", "article.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(text)
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"name", cfg.GetName(), "m3e-base-trt"},
		{"backend", cfg.GetBackend(), "python"},
		{"max_batch_size", cfg.GetMaxBatchSize(), int32(32)},
		{"input name", cfg.GetInput()[0].GetName(), "text"},
		{"input type", cfg.GetInput()[0].GetDataType(), DataType_TYPE_STRING},
		{"input dims", len(cfg.GetInput()[0].GetDims()), 1},
		{"input dim0", cfg.GetInput()[0].GetDims()[0], int64(-1)},
		{"output name", cfg.GetOutput()[0].GetName(), "embeddings"},
		{"output type", cfg.GetOutput()[0].GetDataType(), DataType_TYPE_FP32},
		{"output dim0", cfg.GetOutput()[0].GetDims()[0], int64(768)},
		{"instance count", cfg.GetInstanceGroup()[0].GetCount(), int32(2)},
		{"instance kind", cfg.GetInstanceGroup()[0].GetKind(), ModelInstanceGroup_KIND_GPU},
		{"queue delay", cfg.GetDynamicBatching().GetMaxQueueDelayMicroseconds(), uint64(2000)},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
}

func TestFormatConfigRoundTrip(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("testdata", "article.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(text)
	if err != nil {
		t.Fatal(err)
	}
	out, err := FormatConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseConfig(out)
	if err != nil {
		t.Fatalf("formatted config does not parse: %v\n%s", err, out)
	}
	if !proto.Equal(cfg, back) {
		t.Errorf("round trip changed the config:\n%s", out)
	}
	if !bytes.Contains(out, []byte("\n")) {
		t.Errorf("FormatConfig output is not multi-line: %q", out)
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		name, text, want string
	}{
		{"unknown field", `nmae: "x"`, "nmae"},
		{"bad enum", `input [ { name: "t" data_type: TYPE_TEXT } ]`, "TYPE_TEXT"},
		{"wrong type", `max_batch_size: "many"`, "int32"},
		{"unterminated", `dynamic_batching {`, "parse model config"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(c.text))
			if err == nil {
				t.Fatal("ParseConfig accepted invalid text")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	if text, err := os.ReadFile(filepath.Join("testdata", "article.pbtxt")); err == nil {
		f.Add(text)
	}
	f.Add([]byte(`version_policy: { specific: { versions: [1, 3] } }`))
	f.Add([]byte(`parameters { key: "MAX_BATCH_TOKENS" value { string_value: "8192" } }`))
	f.Add([]byte(`model_warmup [ { name: "w" batch_size: 1 inputs { key: "text" value { data_type: TYPE_STRING dims: [1] zero_data: true } } } ]`))
	f.Fuzz(func(t *testing.T, text []byte) {
		cfg, err := ParseConfig(text)
		if err != nil {
			return
		}
		out, err := FormatConfig(cfg)
		if err != nil {
			t.Fatalf("FormatConfig of a parsed config: %v", err)
		}
		back, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("formatted config does not parse: %v\n%s", err, out)
		}
		if !proto.Equal(cfg, back) {
			t.Fatalf("round trip changed the config")
		}
	})
}
