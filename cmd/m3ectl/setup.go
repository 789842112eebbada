package main

import (
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/m3ectl/m3ectl/pkg/ortlib"
)

func init() { register(newSetupCmd) }

func newSetupCmd() *cobra.Command {
	var o ortlib.InstallOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "setup [--from FILE] [--dir DIR] [--json]",
		Short: "Install the ONNX Runtime library m3ectl's CPU engine needs into the per-user location",
		Long: `setup installs ONNX Runtime ` + ortlib.Version + `'s shared library, the one m3ectl is built
against, at $XDG_DATA_HOME/m3ectl/onnxruntime/libonnxruntime.so (by default
~/.local/share/m3ectl/onnxruntime/), where every m3ectl command looks after
--ort-lib and $ONNXRUNTIME_LIB, so an installed or copied binary finds it.

The library comes from the npm package ` + ortlib.Package + ` (fetched with npm pack,
through the registry npm is configured for), or from --from: a downloaded
package .tgz or a libonnxruntime.so. Both the package and the library are
checked against pinned SHA-256 sums; anything else is refused. A verified
library already in place is kept.`,
		Example: `  m3ectl setup
  m3ectl setup --from onnxruntime-node-` + ortlib.Version + `.tgz
  m3ectl setup --from third_party/onnxruntime/libonnxruntime.so --dir /opt/m3ectl/onnxruntime`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !asJSON {
				o.Log = func(msg string) { slog.Info(msg) }
			}
			path, err := ortlib.Install(cmd.Context(), o)
			if err != nil {
				return fmt.Errorf("setup: %w", err)
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]string{
					"onnxruntime": ortlib.Version, "path": path, "sha256": ortlib.LibSHA256,
				})
			}
			fmt.Fprintln(cmd.OutOrStdout(), path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.From, "from", "", "install from this onnxruntime-node .tgz or libonnxruntime.so instead of fetching with npm")
	f.StringVar(&o.Dir, "dir", "", "install into this folder (default: $XDG_DATA_HOME/m3ectl/onnxruntime)")
	f.BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	return cmd
}
