package haproxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// lb is a running HAProxy with deploy/haproxy/haproxy.cfg.
type lb struct {
	cmd         *exec.Cmd
	http, grpc  int
	statsSocket string
	log         *os.File
}

// startHAProxy runs haproxy in the foreground with the replicas' addresses
// in its environment, and waits until every replica is UP.
func startHAProxy(t *testing.T, reps []*replica, http, grpc int) *lb {
	t.Helper()
	if _, err := exec.LookPath("haproxy"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("haproxy is not installed (make setup installs it): %v", err)
		}
		t.Skipf("haproxy is not installed (make setup installs it): %v", err)
	}
	dir := t.TempDir()
	l := &lb{http: http, grpc: grpc, statsSocket: dir + "/stats.sock"}
	var err error
	if l.log, err = os.Create(dir + "/haproxy.log"); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		fmt.Sprintf("M3ECTL_LB_HTTP=127.0.0.1:%d", http), fmt.Sprintf("M3ECTL_LB_GRPC=127.0.0.1:%d", grpc),
		"M3ECTL_LB_STATS="+l.statsSocket)
	for i, r := range reps {
		env = append(env, fmt.Sprintf("M3ECTL_REPLICA%d_HTTP=127.0.0.1:%d", i+1, r.http),
			fmt.Sprintf("M3ECTL_REPLICA%d_GRPC=127.0.0.1:%d", i+1, r.grpc))
	}
	l.cmd = exec.Command("haproxy", "-f", "haproxy.cfg", "-db")
	l.cmd.Env, l.cmd.Stdout, l.cmd.Stderr = env, l.log, l.log
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = l.cmd.Process.Kill()
		_ = l.cmd.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := l.stats()
		up := 0
		for i := range reps {
			if err == nil && st[fmt.Sprintf("m3ectl_http/r%d", i+1)].status == "UP" {
				up++
			}
		}
		if up == len(reps) {
			return l
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(l.log.Name())
			t.Fatalf("HAProxy: %d of %d replicas UP after 20 s (%v)\n%s", up, len(reps), err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serverStat is one server's row of HAProxy's `show stat`.
type serverStat struct {
	status string // UP, DOWN, MAINT, "UP 1/2" while rising...
	scur   int    // requests (sessions) in progress on it
	// retries (wretr) and redispatches (wredis) HAProxy made.
	retries, redispatches int
}

// stats reads `show stat` from the admin socket, keyed "backend/server".
func (l *lb) stats() (map[string]serverStat, error) {
	conn, err := net.DialTimeout("unix", l.statsSocket, time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "show stat\n"); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cols map[string]int
	out := map[string]serverStat{}
	for sc.Scan() {
		f := strings.Split(sc.Text(), ",")
		if strings.HasPrefix(sc.Text(), "# ") {
			cols = map[string]int{}
			for i, name := range strings.Split(strings.TrimPrefix(sc.Text(), "# "), ",") {
				cols[name] = i
			}
			continue
		}
		if cols == nil || len(f) <= cols["status"] {
			continue
		}
		num := func(col string) int { n, _ := strconv.Atoi(f[cols[col]]); return n }
		out[f[cols["pxname"]]+"/"+f[cols["svname"]]] = serverStat{status: f[cols["status"]], scur: num("scur"),
			retries: num("wretr"), redispatches: num("wredis")}
	}
	return out, sc.Err()
}

// successCount reads a replica's nv_inference_request_success (summed over
// its label sets) from its metrics port.
func successCount(metricsPort int) (int64, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("metrics: %s", resp.Status)
	}
	var n int64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	found := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "nv_inference_request_success{") && !strings.HasPrefix(line, "nv_inference_request_success ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics line %q: %v", line, err)
		}
		n += int64(v)
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, nil // no request yet: the series appears with the first one
	}
	return n, nil
}
