package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func init() { register(newHealthCmd) }

// newHealthCmd asks a server whether it is ready: the container image's
// HEALTHCHECK, which cannot rely on curl being installed.
func newHealthCmd() *cobra.Command {
	var url string
	var timeout time.Duration
	var live bool
	cmd := &cobra.Command{
		Use:   "health [--url http://127.0.0.1:8000] [--live]",
		Short: "Exit 0 when the server at --url is ready (GET /v2/health/ready), 1 otherwise",
		Long: `health asks an m3ectl (or Triton) server's KServe v2 health endpoint, as a
container HEALTHCHECK or a script does: /v2/health/ready by default, /v2/health/live
with --live. It exits 0 on 200 and 1 otherwise, saying why on stderr. Health
endpoints need no API key.`,
		Example: `  m3ectl health
  m3ectl health --url http://127.0.0.1:8000 --live`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/v2/health/ready"
			if live {
				path = "/v2/health/live"
			}
			return checkHealth(cmd.Context(), strings.TrimSuffix(url, "/")+path, timeout)
		},
	}
	cmd.Flags().StringVar(&url, "url", "http://127.0.0.1:8000", "server's HTTP base URL")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for the answer")
	cmd.Flags().BoolVar(&live, "live", false, "ask /v2/health/live (the process answers) instead of ready (models loaded, not draining)")
	return cmd
}

func checkHealth(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: GET %s answered %s", url, resp.Status)
	}
	return nil
}
