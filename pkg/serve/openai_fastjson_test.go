package serve

import (
	"reflect"
	"testing"
)

// openAIFastSeeds are bodies for the fast path, the general path and the
// boundary between them.
var openAIFastSeeds = []string{
	`{"input": "酒店很好", "model": "m3e"}`,
	`{"model":"m3e","input":["a","b\u00e9\n"],"encoding_format":"float","dimensions":256,"user":"u"}`,
	`{"input": ["一", "二", "三"]}`,
	`{"input": "x", "encoding_format": "base64"}`,
	`  {"input":"x"}  `,
	`{"input": "x", "dimensions": -3}`,
	`{"input": "\ud800"}`,
	`{"input": []}`,
	`{"input": [1, 2, 3]}`,
	`{"input": [[1, 2], [3]]}`,
	`{"input": ["a", 1]}`,
	`{"input": null}`,
	`{"model": "m3e"}`,
	`{"Input": "x"}`,
	`{"input": "x", "input": "y"}`,
	`{"input": "x", "dimensions": 1.5}`,
	`{"input": "x", "dimensions": 1e2}`,
	`{"input": "x", "dimensions": 99999999999999999999}`,
	`{"input": "x", "dimensions": null}`,
	`{"input": "x", "model": null}`,
	`{"input": "x", "extra": {"a": [1]}}`,
	`{"input": "x",}`,
	`{"input": "x"} {}`,
	`{"input": "x", "model": 3}`,
	`[]`,
	``,
	"{\"input\": \"\xff\"}",
}

// compareOpenAIDecoders checks that whatever the fast path accepts, the
// general path accepts too and decodes to the same request and texts.
func compareOpenAIDecoders(t *testing.T, body []byte, lim fastLimits, scan jsonLimits) {
	t.Helper()
	req, in, ok := fastDecodeOpenAI(body, lim)
	if !ok {
		return
	}
	greq, gin, err := decodeOpenAIGeneral(body, scan)
	if err != nil {
		t.Fatalf("%q: the fast path accepted what the general path refuses: %v", body, err)
	}
	greq.Input = nil
	if !reflect.DeepEqual(req, greq) || !reflect.DeepEqual(in, gin) {
		t.Fatalf("%q: fast path %+v %+v, general path %+v %+v", body, req, in, greq, gin)
	}
}

func openAITestLimits() (fastLimits, jsonLimits) {
	var l Limits
	l.setDefaults()
	return fastLimits{depth: l.MaxDepth, keys: l.MaxKeys, elements: maxBytesElements, stringBytes: 1 << 20},
		jsonLimits{depth: l.MaxDepth, keys: l.MaxKeys, stringBytes: 1 << 20, elements: maxBytesElements,
			elementsWhat: "input texts", unit: "split the request", elementsKind: kindTooLarge}
}

// TestFastOpenAIDecode: the usual bodies take the fast path and decode as
// the general path does; the others are left to the general path.
func TestFastOpenAIDecode(t *testing.T) {
	lim, scan := openAITestLimits()
	fast := map[string]bool{}
	for _, s := range openAIFastSeeds {
		compareOpenAIDecoders(t, []byte(s), lim, scan)
		_, _, ok := fastDecodeOpenAI([]byte(s), lim)
		fast[s] = ok
	}
	for _, s := range openAIFastSeeds[:7] {
		if !fast[s] {
			t.Errorf("%s: not on the fast path", s)
		}
	}
	for _, s := range openAIFastSeeds[7:] {
		if fast[s] {
			t.Errorf("%s: on the fast path", s)
		}
	}
	small := fastLimits{depth: 2, keys: 2, elements: 2, stringBytes: 4}
	for _, s := range []string{`{"input": ["a", "b", "c"]}`, `{"input": "hello"}`, `{"input": "x", "model": "m", "user": "u"}`} {
		if _, _, ok := fastDecodeOpenAI([]byte(s), small); ok {
			t.Errorf("%s: on the fast path past a limit", s)
		}
	}
}

func FuzzFastOpenAIDecode(f *testing.F) {
	for _, s := range openAIFastSeeds {
		f.Add([]byte(s))
	}
	lim, scan := openAITestLimits()
	f.Fuzz(func(t *testing.T, body []byte) {
		compareOpenAIDecoders(t, body, lim, scan)
		compareOpenAIDecoders(t, body, fastLimits{depth: 2, keys: 3, elements: 2, stringBytes: 8},
			jsonLimits{depth: 2, keys: 3, stringBytes: 8, elements: 2, elementsWhat: "input texts", unit: "split the request", elementsKind: kindTooLarge})
	})
}

// BenchmarkOpenAIDecode is one usual request's decode: the fast path and
// the general one.
func BenchmarkOpenAIDecode(b *testing.B) {
	body := []byte(`{"model": "m3e-base", "input": "这家餐厅的菜味道很好,价格也实惠。", "encoding_format": "float"}`)
	lim, scan := openAITestLimits()
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, ok := fastDecodeOpenAI(body, lim); !ok {
				b.Fatal("not on the fast path")
			}
		}
	})
	b.Run("general", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := decodeOpenAIGeneral(body, scan); err != nil {
				b.Fatal(err)
			}
		}
	})
}
