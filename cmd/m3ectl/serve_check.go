package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/m3ectl/m3ectl/pkg/serve/metrics"
)

// checkServeFlags refuses flag combinations that cannot work, in words a
// new user understands, before anything loads.
func checkServeFlags(f *serveFlags) error {
	if f.model != "" && f.repository != "" {
		return errors.New("serve: --model and --model-repository exclude each other: give --model PATH to serve one model folder or ONNX file, or --model-repository DIR to serve a Triton model repository")
	}
	ports := []struct {
		flag string
		port int
	}{{"--http-port", f.httpPort}, {"--grpc-port", f.grpcPort}, {"--metrics-port", f.metricsPort}}
	for i, a := range ports {
		for _, b := range ports[i+1:] {
			if a.port > 0 && a.port == b.port {
				return fmt.Errorf("serve: %s and %s are both %d; each listener needs its own port (-1 turns gRPC or metrics off)", a.flag, b.flag, a.port)
			}
		}
	}
	return nil
}

// registerSystemMetrics adds Triton's nv_cpu_* metrics and, unless the
// engine is cpu, its nv_gpu_* metrics through NVML; without NVML one line
// says GPU metrics are off.
func registerSystemMetrics(reg prometheus.Registerer, engine string) error {
	gpuOff, err := metrics.RegisterSystem(reg, engine != "cpu")
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if gpuOff != nil {
		slog.Info("GPU metrics (nv_gpu_*) off", "reason", gpuOff.Error())
	}
	return nil
}
