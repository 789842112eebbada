package ortlib

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFindOrder(t *testing.T) {
	data := t.TempDir()
	user := write(t, filepath.Join(data, "m3ectl", "onnxruntime", FileName), "x")
	other := write(t, filepath.Join(t.TempDir(), FileName), "x")
	t.Setenv("XDG_DATA_HOME", data)
	tests := []struct {
		name, explicit, env, want, wantErr string
	}{
		{name: "--ort-lib first", explicit: other, env: "/nope", want: other},
		{name: "then $ONNXRUNTIME_LIB", env: other, want: other},
		{name: "then the per-user location, before a checkout's third_party", want: user},
		{name: "a missing --ort-lib is an error", explicit: "/nope/" + FileName, wantErr: "--ort-lib /nope/"},
		{name: "a missing $ONNXRUNTIME_LIB is an error", env: "/nope/" + FileName, wantErr: "ONNXRUNTIME_LIB=/nope/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvLib, tc.env)
			got, err := Find(tc.explicit)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Find = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "/home/someone")
	if d, _ := UserDir(); d != "/home/someone/.local/share/m3ectl/onnxruntime" {
		t.Errorf("UserDir without XDG_DATA_HOME = %s", d)
	}
}

func TestInstallVerifiesTheChecksum(t *testing.T) {
	dir := t.TempDir()
	bad := write(t, filepath.Join(t.TempDir(), FileName), "not onnxruntime")
	if _, err := Install(context.Background(), InstallOptions{From: bad, Dir: dir}); err == nil || !strings.Contains(err.Error(), "refusing to install") {
		t.Fatalf("a wrong library was not refused: %v", err)
	}
	badTgz := write(t, filepath.Join(t.TempDir(), "onnxruntime-node-1.24.1.tgz"), "not a package")
	if _, err := Install(context.Background(), InstallOptions{From: badTgz, Dir: dir}); err == nil || !strings.Contains(err.Error(), "refusing to install") {
		t.Fatalf("a wrong package was not refused: %v", err)
	}
	// npm that hands over a tampered package.
	npm := write(t, filepath.Join(t.TempDir(), "npm"), "#!/bin/sh\necho tampered > onnxruntime-node-1.24.1.tgz\n")
	if _, err := Install(context.Background(), InstallOptions{Npm: npm, Dir: dir}); err == nil || !strings.Contains(err.Error(), "refusing to install") {
		t.Fatalf("a tampered npm package was not refused: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("refused installs left files: %v", ents)
	}
}

func TestInstallTheRealLibrary(t *testing.T) {
	t.Setenv(EnvLib, "")
	src, err := Find("")
	if err != nil {
		t.Skipf("no ONNX Runtime library here: %v", err)
	}
	if sum, _ := fileSHA256(src); sum != LibSHA256 {
		t.Skipf("%s is not the pinned build", src)
	}
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data)
	var logs []string
	got, err := Install(context.Background(), InstallOptions{From: src, Log: func(m string) { logs = append(logs, m) }})
	want := filepath.Join(data, "m3ectl", "onnxruntime", FileName)
	if err != nil || got != want {
		t.Fatalf("Install = %q, %v; want %q", got, err, want)
	}
	if found, err := Find(""); err != nil || found != want {
		t.Fatalf("Find after Install = %q, %v", found, err)
	}
	if _, err := Install(context.Background(), InstallOptions{From: "/nope"}); err != nil {
		t.Fatalf("a verified library already in place must be kept: %v", err)
	}
	if !strings.Contains(strings.Join(logs, "\n"), "sha256 verified") {
		t.Errorf("logs %q", logs)
	}
}
