// Package deploy holds what it takes to run m3ectl past one machine: the
// container images (Dockerfile, Dockerfile.cuda and the OCI archive that
// `make image` assembles without running a container), the Helm chart under
// helm/m3ectl, KServe's ServingRuntime and InferenceService under kserve/ and
// the HAProxy configuration under haproxy/. It is a Go module of its own so
// that the Helm and Kubernetes libraries its tests need stay out of m3ectl's.
package deploy
