package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// bindingLine is sampleInference.cpp's "… binding for NAME with dimensions
// D is created." (@v8.6.1:121, @v10.0.0:124), with " and type T" from 10.16
// (@v10.16:286-287).
func bindingLine(io, name string, d []int64, dtype string) {
	if version >= 101600 {
		logf("I", "%s binding for %s with dimensions %s and type %s is created.", io, name, dims(d), trtTypeName(dtype))
		return
	}
	logf("I", "%s binding for %s with dimensions %s is created.", io, name, dims(d))
}

func infer(opts map[string]string) {
	path := opts["loadEngine"]
	logf("I", "Loading engine: %s", path)
	raw, err := os.ReadFile(path)
	if err != nil {
		fail("Cannot open engine file: "+path, "Failed to create engine from model or file.", "Engine set up failed")
	}
	var eng engineFile
	if json.Unmarshal(raw, &eng) != nil || eng.Fake != "FAKETRT" {
		fail("1: [stdArchiveReader.cpp::StdArchiveReader::32] Error Code 1: Serialization (Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match)",
			"4: [runtime.cpp::deserializeCudaEngine::65] Error Code 4: Internal Error (Engine deserialization failed.)", "Engine deserialization failed", "Failed to create engine from model or file.", "Engine set up failed")
	}
	if eng.Version != version {
		fail(fmt.Sprintf("1: [stdArchiveReader.cpp::StdArchiveReader::40] Error Code 1: Serialization (Serialization assertion stdVersionRead == kSERIALIZATION_VERSION failed.Version tag does not match. Note: Current Version: %d, Serialized Engine Version: %d)", version, eng.Version),
			"4: [runtime.cpp::deserializeCudaEngine::65] Error Code 4: Internal Error (Engine deserialization failed.)", "Engine deserialization failed", "Failed to create engine from model or file.", "Engine set up failed")
	}
	logf("I", "Engine loaded in 0.1 sec.")
	if _, ok := opts["skipInference"]; ok {
		fmt.Println("&&&& PASSED " + banner)
		return
	}
	shapes := parseShapes(opts["shapes"])
	files := map[string]string{}
	if spec := opts["loadInputs"]; spec != "" {
		for _, p := range strings.Split(spec, ",") {
			i := strings.IndexByte(p, ':')
			if i <= 0 {
				fail("Invalid loadInputs spec: " + p)
			}
			files[strings.Trim(p[:i], "'")] = p[i+1:]
		}
	}
	feeds := make([]feed, 0, len(eng.Inputs))
	for _, in := range eng.Inputs {
		s := shapes[in.Name]
		if s == nil {
			s = in.Opt
		}
		for i := range s {
			if s[i] < in.Min[i] || s[i] > in.Max[i] {
				fail(fmt.Sprintf("Error[3]: [executionContext.cpp::setInputShape::2037] Error Code 3: API Usage Error (Parameter check failed: %s dimension %d is %d, outside the profile's [%d, %d])", in.Name, i, s[i], in.Min[i], in.Max[i]), "Inference set up failed")
			}
		}
		bindingLine("Input", in.Name, s, in.DType)
		f := feed{name: in.Name, dtype: in.DType, onnxDType: in.ONNXDType, shape: s}
		if file, ok := files[in.Name]; ok {
			elem := int64(4)
			if in.DType == "int64" {
				elem = 8
			}
			b, err := os.ReadFile(file)
			if err != nil {
				fail("Cannot open input file " + file)
			}
			vol := int64(1)
			for _, d := range s {
				vol *= d
			}
			if int64(len(b)) != vol*elem {
				fail(fmt.Sprintf("Input %s: file %s has %d bytes but the binding needs %d bytes", in.Name, file, len(b), vol*elem))
			}
			f.values = decodeInts(b, in.DType)
		}
		feeds = append(feeds, f)
	}
	out := opts["exportOutput"]
	var results []result
	if out != "" {
		for _, f := range feeds {
			if f.values == nil {
				fail("fake trtexec: --exportOutput needs --loadInputs for every input (" + f.name + ") so that outputs are defined")
			}
		}
		results, err = run(eng, feeds)
		if err != nil {
			fail("fake trtexec: ONNX Runtime: " + err.Error())
		}
		for _, r := range results {
			bindingLine("Output", r.name, r.shape, "float32")
		}
	}
	logf("I", "Starting inference")
	if out != "" {
		if err := os.WriteFile(out, exportJSON(results), 0o644); err != nil {
			fail("Cannot write " + out)
		}
	}
	logf("I", "Throughput: 1000 qps")
	fmt.Println("&&&& PASSED " + banner)
}

func decodeInts(b []byte, dtype string) []int64 {
	if dtype == "int64" {
		v := make([]int64, len(b)/8)
		for i := range v {
			v[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
		}
		return v
	}
	v := make([]int64, len(b)/4)
	for i := range v {
		v[i] = int64(int32(binary.LittleEndian.Uint32(b[4*i:])))
	}
	return v
}

// exportJSON writes sampleReporting.cpp's exportJSONOutput layout
// (@v11.1:483-504); values as an ostream prints a float (precision 6, %g).
func exportJSON(rs []result) []byte {
	var b strings.Builder
	b.WriteString("[\n")
	sep := "  "
	for _, r := range rs {
		fmt.Fprintf(&b, "%s{ \"name\" : \"%s\"\n", sep, r.name)
		sep = ", "
		fmt.Fprintf(&b, "  %s\"dimensions\" : \"%s\"\n", sep, dims(r.shape))
		fmt.Fprintf(&b, "  %s\"values\" : [ ", sep)
		for i, v := range r.values {
			if i > 0 {
				b.WriteString(sep)
			}
			b.WriteString(cppFloat(v))
		}
		b.WriteString(" ]\n  }\n")
	}
	b.WriteString("]\n")
	return []byte(b.String())
}

// cppFloat prints v as std::ostream << float does by default.
func cppFloat(v float32) string {
	switch {
	case math.IsNaN(float64(v)):
		return "nan"
	case math.IsInf(float64(v), 1):
		return "inf"
	case math.IsInf(float64(v), -1):
		return "-inf"
	}
	return strconv.FormatFloat(float64(v), 'g', 6, 32)
}
