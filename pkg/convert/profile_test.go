package convert

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func bertInputs() []ValueInfo {
	dyn := []Dim{{Param: "batch_size"}, {Param: "max_seq_len"}}
	return []ValueInfo{{Name: "input_ids", DType: "int64", Shape: dyn}, {Name: "attention_mask", DType: "int64", Shape: dyn}}
}

func mustArg(t *testing.T, s string) ShapeArg {
	t.Helper()
	a, err := ParseShapeArg(s)
	if err != nil {
		t.Fatalf("ParseShapeArg(%q): %v", s, err)
	}
	return a
}

func TestParseShapeArg(t *testing.T) {
	cases := []struct {
		name, in string
		want     ShapeArg
		wantErr  string
	}{
		{"shorthand", "16x128", ShapeArg{All: []int64{16, 128}}, ""},
		{"per input", "input_ids:1x2,attention_mask:3x4", ShapeArg{PerInput: map[string][]int64{"input_ids": {1, 2}, "attention_mask": {3, 4}}}, ""},
		{"quoted name with colon", "'in:0':2x3", ShapeArg{PerInput: map[string][]int64{"in:0": {2, 3}}}, ""},
		{"spaces around parts", " input_ids:1x2 , attention_mask:1x2 ", ShapeArg{PerInput: map[string][]int64{"input_ids": {1, 2}, "attention_mask": {1, 2}}}, ""},
		{"empty", "", ShapeArg{}, "empty shape"},
		{"zero dimension", "0x128", ShapeArg{}, "below 1"},
		{"negative dimension", "input_ids:-1x2", ShapeArg{}, "below 1"},
		{"letters", "16xabc", ShapeArg{}, "not an integer"},
		{"trailing x", "16x", ShapeArg{}, "not an integer"},
		{"no dims after name", "input_ids:", ShapeArg{}, "no dimensions"},
		{"duplicate input", "a:1x1,a:2x2", ShapeArg{}, "given twice"},
		{"missing name", ":1x1", ShapeArg{}, "not name:shape"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseShapeArg(c.in)
			if c.wantErr != "" {
				var pe *ProfileError
				if !errors.As(err, &pe) || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want a *ProfileError containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestNewShapeProfileRefusals(t *testing.T) {
	static := append(bertInputs(), ValueInfo{Name: "fixed", DType: "int64", Shape: []Dim{{Value: 1}, {Value: 8}}})
	rank3 := []ValueInfo{{Name: "x", DType: "float32", Shape: []Dim{{Param: "b"}, {Param: "s"}, {Value: 4}}}}
	cases := []struct {
		name           string
		inputs         []ValueInfo
		min, opt, max  string
		maxPos         int
		input, wantErr string
	}{
		{"min above opt", bertInputs(), "32x1", "16x128", "64x512", 512, "input_ids", "min ≤ opt ≤ max"},
		{"opt above max", bertInputs(), "1x1", "16x600", "64x512", 0, "input_ids", "min ≤ opt ≤ max"},
		{"sequence above position table", bertInputs(), "1x1", "16x128", "64x1024", 512, "input_ids", "exceeds the model's 512 positions"},
		{"unknown input name", bertInputs(), "input_ids:1x1,attention_mask:1x1,token_type_ids:1x1", "16x128", "64x512", 512, "token_type_ids", "no such input"},
		{"dynamic input without profile", bertInputs(), "input_ids:1x1", "input_ids:16x128", "input_ids:64x512", 512, "attention_mask", "has no --min shape"},
		{"rank mismatch", bertInputs(), "input_ids:1x1x1,attention_mask:1x1", "16x128", "64x512", 512, "input_ids", "has rank 2"},
		{"static input given a profile", static, "fixed:1x8,input_ids:1x1,attention_mask:1x1", "16x128", "64x512", 512, "fixed", "static"},
		{"shorthand on rank-3 input", rank3, "1x1", "2x2", "4x4", 0, "x", "shorthand fits only"},
		{"fixed dimension contradicted", rank3, "x:1x1x5", "x:1x1x4", "x:1x1x4", 0, "x", "fixes it at 4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewShapeProfile(c.inputs, mustArg(t, c.min), mustArg(t, c.opt), mustArg(t, c.max), c.maxPos)
			var pe *ProfileError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *ProfileError", err)
			}
			if pe.Input != c.input || !strings.Contains(pe.Reason, c.wantErr) {
				t.Fatalf("got input %q reason %q, want input %q reason containing %q", pe.Input, pe.Reason, c.input, c.wantErr)
			}
		})
	}
	t.Run("no dynamic inputs", func(t *testing.T) {
		_, err := NewShapeProfile(static[2:], mustArg(t, "1x1"), mustArg(t, "1x1"), mustArg(t, "1x1"), 0)
		if err == nil || !strings.Contains(err.Error(), "no dynamic inputs") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestShapeProfileSpecs(t *testing.T) {
	cases := []struct {
		name          string
		min, opt, max string
		wantMin       string
		wantMax       string
		maxBatch      int64
	}{
		{"shorthand applies to every dynamic input", "1x1", "16x128", "64x512",
			"input_ids:1x1,attention_mask:1x1", "input_ids:64x512,attention_mask:64x512", 64},
		{"per-input shapes keep graph order", "attention_mask:1x1,input_ids:2x2", "input_ids:4x4,attention_mask:4x4", "input_ids:8x8,attention_mask:8x8",
			"input_ids:2x2,attention_mask:1x1", "input_ids:8x8,attention_mask:8x8", 8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := NewShapeProfile(bertInputs(), mustArg(t, c.min), mustArg(t, c.opt), mustArg(t, c.max), 512)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Spec("min"); got != c.wantMin {
				t.Errorf("min spec %q, want %q", got, c.wantMin)
			}
			if got := p.Spec("max"); got != c.wantMax {
				t.Errorf("max spec %q, want %q", got, c.wantMax)
			}
			if p.MaxBatch() != c.maxBatch {
				t.Errorf("MaxBatch %d, want %d", p.MaxBatch(), c.maxBatch)
			}
			if prof := p.ToProfile(); len(prof.Max) != 2 {
				t.Errorf("ToProfile has %d inputs", len(prof.Max))
			}
		})
	}
}

func FuzzParseShapeArg(f *testing.F) {
	for _, s := range []string{"16x128", "input_ids:1x1,attention_mask:1x1", "'a:b':1x2", "", ":", "1x", "a:1x1,a:1x1", "x:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseShapeArg(s)
		if err != nil {
			return
		}
		check := func(d []int64) {
			if len(d) == 0 {
				t.Fatalf("%q parsed to no dimensions", s)
			}
			for _, v := range d {
				if v < 1 {
					t.Fatalf("%q parsed to dimension %d", s, v)
				}
			}
		}
		if a.All != nil {
			check(a.All)
		}
		for _, d := range a.PerInput {
			check(d)
		}
	})
}
