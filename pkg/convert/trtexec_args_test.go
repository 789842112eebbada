package convert

import (
	"errors"
	"strings"
	"testing"
)

func TestBuildArgsPerVersion(t *testing.T) {
	cases := []struct {
		golden string
		ver    TRTVersion
	}{
		{"args-8.2.golden", TRTVersion{8, 2, 5}},
		{"args-8.4.golden", TRTVersion{8, 4, 3}},
		{"args-8.6.golden", TRTVersion{8, 6, 1}},
		{"args-10.0.golden", TRTVersion{10, 0, 1}},
		{"args-10.3.golden", TRTVersion{10, 3, 0}},
		{"args-10.16.golden", TRTVersion{10, 16, 0}},
		{"args-11.1.golden", TRTVersion{11, 1, 0}},
	}
	for _, c := range cases {
		t.Run(c.ver.String(), func(t *testing.T) {
			o := BuildOptions{ONNX: "m3e-base.onnx", Engine: "m3e-base.plan", Profile: tinyProfile(t), FP16: true,
				WorkspaceMiB: 4096, TimingCache: "timing.cache", OptLevel: -1, Extra: []string{"--noTF32"}, Version: c.ver}
			if c.ver.AtLeast(11, 0) {
				// build-engine --fp16 on 11 builds the AutoCast ONNX with no precision flag.
				o.ONNX, o.FP16 = RewrittenONNX("m3e-base.plan", false, true), false
			}
			if c.ver.AtLeast(8, 6) {
				o.OptLevel = 4
			}
			args, err := BuildArgs(o)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, c.golden, ShellQuote(append([]string{"trtexec"}, args...))+"\n")
		})
	}
	t.Run("opt level refused before 8.6", func(t *testing.T) {
		_, err := BuildArgs(BuildOptions{Profile: tinyProfile(t), OptLevel: 3, Version: TRTVersion{8, 5, 3}})
		if err == nil || !strings.Contains(err.Error(), "8.6 or newer") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("precision flags refused on 11", func(t *testing.T) {
		for _, o := range []BuildOptions{{FP16: true}, {INT8: true}} {
			o.Profile, o.Version, o.OptLevel = tinyProfile(t), TRTVersion{11, 0, 0}, -1
			if _, err := BuildArgs(o); !errors.Is(err, ErrStronglyTypedOnly) {
				t.Fatalf("err = %v", err)
			}
		}
	})
	t.Run("strongly typed", func(t *testing.T) {
		o := BuildOptions{Profile: tinyProfile(t), OptLevel: -1, StronglyTyped: true, Version: TRTVersion{10, 3, 0}}
		if args, err := BuildArgs(o); err != nil || !strings.Contains(strings.Join(args, " "), "--stronglyTyped") {
			t.Fatalf("10.3: %v %q", err, args)
		}
		o.Version = TRTVersion{11, 1, 0}
		if args, err := BuildArgs(o); err != nil || strings.Contains(strings.Join(args, " "), "--stronglyTyped") {
			t.Fatalf("11.1 (a no-op there, not written): %v %q", err, args)
		}
		o.Version = TRTVersion{8, 6, 1}
		if _, err := BuildArgs(o); err == nil {
			t.Fatal("8.6 accepted --stronglyTyped")
		}
		o.Version, o.FP16 = TRTVersion{10, 3, 0}, true
		if _, err := BuildArgs(o); err == nil {
			t.Fatal("--stronglyTyped with --fp16 accepted")
		}
	})
	t.Run("opt level above 5 refused", func(t *testing.T) {
		_, err := BuildArgs(BuildOptions{Profile: tinyProfile(t), OptLevel: 6, Version: TRTVersion{10, 0, 0}})
		if err == nil || !strings.Contains(err.Error(), "0 to 5") {
			t.Fatalf("err = %v", err)
		}
	})
}
