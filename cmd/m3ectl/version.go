package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/m3ectl/m3ectl/pkg/buildinfo"
	"github.com/m3ectl/m3ectl/pkg/engine/cuda"
	"github.com/m3ectl/m3ectl/pkg/engine/onnxrt"
)

func init() { register(newVersionCmd) }

// versionReport is `m3ectl version`'s answer: the build, and the native
// libraries the engines would load here.
type versionReport struct {
	buildinfo.Info
	ONNXRuntime    string `json:"onnxruntime,omitempty"`
	ONNXRuntimeLib string `json:"onnxruntime_lib,omitempty"`
	ONNXRuntimeErr string `json:"onnxruntime_error,omitempty"`
	CUDA           string `json:"cuda,omitempty"`
	CUDAErr        string `json:"cuda_error,omitempty"`
}

func readVersion(ortLib string) versionReport {
	r := versionReport{Info: buildinfo.Read()}
	if v, path, err := onnxrt.Version(ortLib); err != nil {
		r.ONNXRuntimeErr = err.Error()
	} else {
		r.ONNXRuntime, r.ONNXRuntimeLib = v, path
	}
	if v, err := cuda.DriverVersion(); err != nil {
		r.CUDAErr = err.Error()
	} else {
		r.CUDA = v
	}
	return r
}

func (r versionReport) write(w io.Writer) {
	fmt.Fprintf(w, "m3ectl       %s\n", r.Version)
	fmt.Fprintf(w, "commit       %s\n", r.CommitLine())
	fmt.Fprintf(w, "go           %s %s\n", r.Go, r.Platform)
	if r.ONNXRuntime != "" {
		fmt.Fprintf(w, "onnxruntime  %s (%s)\n", r.ONNXRuntime, r.ONNXRuntimeLib)
	} else {
		fmt.Fprintf(w, "onnxruntime  not found: %s\n", r.ONNXRuntimeErr)
	}
	if r.CUDA != "" {
		fmt.Fprintf(w, "cuda         %s (driver)\n", r.CUDA)
	} else {
		fmt.Fprintf(w, "cuda         not available: %s\n", r.CUDAErr)
	}
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	var ortLib string
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print m3ectl's version, commit, Go version and the ONNX Runtime and CUDA versions found here",
		Long: `version prints the module version and commit m3ectl was built from, the Go
toolchain, the ONNX Runtime library the CPU engine loads (found as serve finds
it: --ort-lib, $ONNXRUNTIME_LIB, the per-user location, then system paths) and
the CUDA version of the installed driver, when there is one. GET /v2 reports the
same version. --version prints the same.`,
		Example: `  m3ectl version
  m3ectl version --json
  m3ectl --version`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r := readVersion(ortLib)
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(r)
			}
			r.write(cmd.OutOrStdout())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	cmd.Flags().StringVar(&ortLib, "ort-lib", "", "path of libonnxruntime.so (default: the lookup serve uses)")
	return cmd
}
