package main

import (
	"errors"
	"fmt"
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
