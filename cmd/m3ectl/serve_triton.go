package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/m3ectl/m3ectl/pkg/triton"
)

// tritonFlags are serve's flags for handing the repository to a real
// tritonserver instead of the embedded server.
type tritonFlags struct {
	on     bool
	image  string
	binary string
	force  bool
}

// addTritonFlags registers --triton, --triton-image and --tritonserver on cmd.
func addTritonFlags(cmd *cobra.Command) *tritonFlags {
	f := &tritonFlags{}
	cmd.Flags().BoolVar(&f.on, "triton", false, "launch NVIDIA tritonserver on the repository instead of the embedded server")
	cmd.Flags().StringVar(&f.image, "triton-image", "", "run tritonserver through docker with this image (e.g. nvcr.io/nvidia/tritonserver:26.06-py3; refused when its TensorRT differs from the engine's); implies --triton")
	cmd.Flags().BoolVar(&f.force, "force", false, "with --triton-image: run an image whose TensorRT differs from the one the engines were built with")
	cmd.Flags().StringVar(&f.binary, "tritonserver", "", "tritonserver executable (default: PATH); implies --triton")
	return f
}

// enabled reports whether serve should launch tritonserver.
func (f *tritonFlags) enabled() bool { return f.on || f.image != "" || f.binary != "" }

// run launches tritonserver on repo in explicit model-control mode, loading
// loadModels (every model in repo when empty), waits until it is ready,
// streams its log to stderr, stops it with SIGTERM when ctx ends and returns
// its exit status.
func (f *tritonFlags) run(ctx context.Context, repo string, loadModels []string, httpPort, grpcPort, metricsPort int) error {
	if repo == "" {
		return fmt.Errorf("--triton needs --model-repository")
	}
	return triton.Run(ctx, triton.ServerOptions{
		Binary: f.binary, Image: f.image, Repo: repo, Models: loadModels,
		HTTPPort: httpPort, GRPCPort: grpcPort, MetricsPort: metricsPort,
		Log: os.Stderr, Force: f.force,
		Notes: func(n string) { fmt.Fprintln(os.Stderr, "m3ectl: "+n) },
	})
}
