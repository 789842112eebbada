package image_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m3ectl/m3ectl/deploy/image"
	"github.com/m3ectl/m3ectl/deploy/internal/servetest"
)

// TestDockerfilesAreGenerated keeps the Dockerfiles and make image on one
// spec: the committed files must be what the spec renders (make dockerfiles
// rewrites them).
func TestDockerfilesAreGenerated(t *testing.T) {
	root := servetest.Root()
	for _, s := range []image.Spec{image.CPU(), image.CUDA()} {
		files, err := s.ModelFiles(root)
		if err != nil {
			t.Fatal(err)
		}
		name := image.DockerfileName(s)
		got, err := os.ReadFile(filepath.Join(root, "deploy", name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != image.Dockerfile(s, files) {
			t.Errorf("deploy/%s is not what deploy/image/spec.go renders: run make dockerfiles", name)
		}
	}
}

// TestChartVersion keeps the chart's appVersion (the image tag it pulls)
// on the images' version.
func TestChartVersion(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(servetest.Root(), "deploy/helm/m3ectl/Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "appVersion: \"" + image.Version + "\"\n"; !strings.Contains(string(b), want) {
		t.Errorf("Chart.yaml lacks %q", want)
	}
}
