package image_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/m3ectl/m3ectl/deploy/image"
)

// archive returns the OCI archive make image wrote ($M3ECTL_IMAGE), unpacked
// to an OCI layout folder.
func archive(t *testing.T) string {
	t.Helper()
	path := os.Getenv("M3ECTL_IMAGE")
	if path == "" {
		t.Skip("M3ECTL_IMAGE is not set: make test-deploy builds the image (make image) and sets it")
	}
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-xf", path, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("untar %s: %v\n%s", path, err, out)
	}
	return dir
}

// TestArchiveConfig reads the image back with go-containerregistry: its
// configuration is the one the Dockerfile's instructions make, tagged with
// the version.
func TestArchiveConfig(t *testing.T) {
	dir := archive(t)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != image.CPU().Tag() {
		t.Fatalf("index %+v: want one image tagged %s", im.Manifests, image.CPU().Tag())
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(cf.Config)
	want, _ := json.Marshal(image.Config(image.CPU()))
	if !bytes.Equal(got, want) {
		t.Errorf("image config\n got %s\nwant %s", got, want)
	}
	layers, _ := img.Layers()
	var size int64
	for _, l := range layers {
		n, _ := l.Size()
		size += n
	}
	t.Logf("image %s: %d layers, %.1f MB compressed", image.CPU().Tag(), len(layers), float64(size)/1e6)
}

// runtimeSpec is the part of the OCI runtime configuration umoci writes
// from the image's configuration.
type runtimeSpec struct {
	Process struct {
		User struct {
			UID int `json:"uid"`
			GID int `json:"gid"`
		} `json:"user"`
		Args []string `json:"args"`
		Env  []string `json:"env"`
		Cwd  string   `json:"cwd"`
	} `json:"process"`
}

// TestImageServesInChroot unpacks the archive with umoci (the root
// filesystem, and the OCI runtime configuration umoci derives from the
// image's configuration), then runs the
// image's own entrypoint and command, as its own user, with its own
// environment and working directory, chrooted into its root filesystem
// inside fresh network and PID namespaces. From outside, over a veth pair
// with addresses of its own, the article's request and /v2/health/ready
// answer: the image holds everything it needs, with nothing from the host
// but the kernel and the /dev nodes and /proc a container runtime provides.
func TestImageServesInChroot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chroot, network namespaces)")
	}
	for _, tool := range []string{"umoci", "ip", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (make setup installs it): %v", tool, err)
		}
	}
	dir := archive(t)
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	ref := dir + ":" + image.CPU().Tag()
	run(t, "umoci", "raw", "unpack", "--image", ref, rootfs)
	run(t, "umoci", "raw", "runtime-config", "--image", ref, "--rootfs", rootfs, filepath.Join(bundle, "config.json"))
	var spec runtimeSpec
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	p := spec.Process
	if p.User.UID == 0 || len(p.Args) == 0 || p.Args[0] != "m3ectl" {
		t.Fatalf("runtime config %+v: want a non-root m3ectl entrypoint", p)
	}
	makeDev(t, rootfs)

	// A network namespace joined to this one by a veth pair: 169.254.115.1
	// here, .2 inside (link-local addresses, never routed anywhere).
	ns := fmt.Sprintf("m3e-img-%d", os.Getpid())
	host, peer := fmt.Sprintf("m3eh%d", os.Getpid()%100000), fmt.Sprintf("m3ec%d", os.Getpid()%100000)
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", peer, "netns", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", host).Run() })
	run(t, "ip", "addr", "add", "169.254.115.1/30", "dev", host)
	run(t, "ip", "link", "set", host, "up")
	run(t, "ip", "-n", ns, "addr", "add", "169.254.115.2/30", "dev", peer)
	run(t, "ip", "-n", ns, "link", "set", peer, "up")
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")

	inImage := func(args ...string) *exec.Cmd {
		cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "unshare", "--pid", "--fork", "--kill-child",
			"--mount-proc=/proc", "--root=" + rootfs, "--wd=" + p.Cwd,
			"--setgid", strconv.Itoa(p.User.GID), "--setuid", strconv.Itoa(p.User.UID), "--"}, args...)...)
		cmd.Env = p.Env // the image's environment, nothing of the host's
		return cmd
	}
	// The log goes to a file, not a pipe: Wait must not hang on a pipe a
	// stray child still holds.
	logf, err := os.Create(filepath.Join(t.TempDir(), "m3ectl.log"))
	if err != nil {
		t.Fatal(err)
	}
	logText := func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
	srv := inImage(p.Args...)
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	t.Cleanup(func() {
		// unshare ignores SIGTERM while it waits: kill the server, then it.
		if pid, _, err := server(srv.Process.Pid); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = srv.Process.Kill()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	})

	base := "http://169.254.115.2:8000"
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get(base + "/v2/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("the image's m3ectl exited: %v\n%s", err, logText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 60 s: %v\n%s", err, logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	body := `{"inputs":[{"name":"text","datatype":"BYTES","shape":[1,1],"data":["酒店很好"]}],"outputs":[{"name":"embeddings"}]}`
	resp, err := client.Post(base+"/v2/models/m3e-tiny/infer", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out struct {
		ModelName string `json:"model_name"`
		Outputs   []struct {
			Name  string    `json:"name"`
			Shape []int     `json:"shape"`
			Data  []float64 `json:"data"`
		} `json:"outputs"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &out) != nil || out.ModelName != "m3e-tiny" ||
		len(out.Outputs) != 1 || out.Outputs[0].Name != "embeddings" || len(out.Outputs[0].Data) != 64 {
		t.Fatalf("article request: %d %s", resp.StatusCode, raw)
	}

	// The server runs as the image's user, and the image's HEALTHCHECK
	// command, run inside the same network namespace, says ready.
	pid, uid, err := server(srv.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if uid != strconv.Itoa(p.User.UID) {
		t.Errorf("server runs as uid %s, the image says %d", uid, p.User.UID)
	}
	if out, err := inImage(image.CPU().Healthcheck...).CombinedOutput(); err != nil {
		t.Errorf("HEALTHCHECK %v: %v\n%s", image.CPU().Healthcheck, err, out)
	}
	// SIGTERM goes to m3ectl itself (unshare ignores it while it waits);
	// unshare then exits with m3ectl's status.
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGTERM: %v\n%s", err, logText())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("did not stop on SIGTERM")
	}
}

// makeDev fills /dev with the nodes an OCI runtime creates (runtime-spec
// config-linux.md, "Default Devices").
func makeDev(t *testing.T, rootfs string) {
	t.Helper()
	for _, d := range []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}} {
		path := filepath.Join(rootfs, "dev", d.name)
		if err := syscall.Mknod(path, syscall.S_IFCHR|0o666, int(d.major<<8|d.minor)); err != nil && !os.IsExist(err) {
			t.Fatalf("mknod %s: %v", path, err)
		}
		_ = os.Chmod(path, 0o666)
	}
}

// server returns the pid and uid of the server: the child unshare forked.
func server(unsharePid int) (int, string, error) {
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", unsharePid, unsharePid))
	if err != nil || len(strings.Fields(string(kids))) == 0 {
		return 0, "", fmt.Errorf("children of %d: %v %q", unsharePid, err, kids)
	}
	pid, _ := strconv.Atoi(strings.Fields(string(kids))[0])
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, "", err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			return pid, f[1], nil
		}
	}
	return pid, "", nil
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
