// Tests of deploy/haproxy/haproxy.cfg with Debian's HAProxy in front of
// three real `m3ectl serve` replicas on loopback: a rolling restart under
// m3ectl bench's load loses no request.
package haproxy_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/deploy/internal/servetest"
)

// replica is one m3ectl serve on fixed loopback ports, restarted in place.
type replica struct {
	n                   int
	http, grpc, metrics int
	srv                 *servetest.Server
	shutdownDelay       time.Duration
	base                int64   // the running process's success count when counting began
	lifetimes           []int64 // successes counted in each process, in order
}

const shutdownDelay = 3 * time.Second

func (r *replica) start(t *testing.T, bin string) {
	t.Helper()
	args := []string{"serve", "--model", filepath.Join(servetest.Root(), "testdata/m3e-tiny/hf"), "--name", "m3e-tiny",
		"--host", "127.0.0.1", "--http-port", strconv.Itoa(r.http), "--grpc-port", strconv.Itoa(r.grpc),
		"--metrics-port", strconv.Itoa(r.metrics), "--threads", "1",
		"--shutdown-delay", r.shutdownDelay.String(), "--drain-timeout", "20s"}
	r.srv = servetest.Start(t, bin, args, nil, r.http, r.grpc, r.metrics)
}

// rollTimes is one replica's restart, from SIGTERM.
type rollTimes struct {
	notReady, down, drained, exited, ready, up time.Duration
	count                                      int64
}

// roll restarts r as a rolling update does: SIGTERM, readiness 503,
// HAProxy marks it DOWN, the requests it holds finish (its final count is
// read then, while its metrics port still answers), it exits 0, a new
// process starts on the same ports, turns ready and HAProxy marks it UP.
func roll(t *testing.T, bin string, l *lb, r *replica) rollTimes {
	t.Helper()
	var rt rollTimes
	name := fmt.Sprintf("m3ectl_http/r%d", r.n)
	t0 := time.Now()
	if err := r.srv.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	poll(t, "readiness 503 after SIGTERM", func() bool {
		resp, err := http.Get(r.srv.URL() + "/v2/health/ready")
		if err != nil {
			t.Fatalf("replica %d closed its port before its shutdown delay ended: %v", r.n, err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	rt.notReady = time.Since(t0)
	poll(t, "HAProxy marks "+name+" DOWN", func() bool {
		st, err := l.stats()
		return err == nil && strings.HasPrefix(st[name].status, "DOWN")
	})
	rt.down = time.Since(t0)
	last := int64(-1)
	poll(t, "replica drained", func() bool {
		st, err := l.stats()
		c, cerr := successCount(r.metrics)
		if cerr != nil {
			t.Fatalf("replica %d's metrics went away before its final count (shutdown delay %s too short for HAProxy's checks?): %v", r.n, shutdownDelay, cerr)
		}
		done := err == nil && st[name].scur == 0 && c == last
		last = c
		return done
	})
	rt.drained, rt.count = time.Since(t0), last-r.base
	r.lifetimes = append(r.lifetimes, rt.count)
	if err := r.srv.Wait(40 * time.Second); err != nil {
		t.Fatalf("replica %d after SIGTERM: %v (want exit 0 after a complete drain)\n%s", r.n, err, r.srv.Log())
	}
	rt.exited = time.Since(t0)
	r.start(t, bin)
	rt.ready = time.Since(t0)
	c, err := successCount(r.metrics)
	if err != nil {
		t.Fatal(err)
	}
	r.base = c
	poll(t, "HAProxy marks "+name+" UP", func() bool {
		st, err := l.stats()
		return err == nil && st[name].status == "UP"
	})
	rt.up = time.Since(t0)
	return rt
}

func poll(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30 s", what)
		}
	}
}

// benchLevel is the part of m3ectl bench's --json result the test reads.
type benchLevel struct {
	Requests     int            `json:"requests"`
	Errors       int            `json:"errors"`
	ErrorsByKind map[string]int `json:"errors_by_kind"`
	Sent         int            `json:"sent"`
	Succeeded    int            `json:"succeeded"`
	Throughput   float64        `json:"throughput"`
	Latency      struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
		Max float64 `json:"max"`
	} `json:"latency_ms"`
}

// TestRollingRestartBehindHAProxy drives m3ectl bench through HAProxy at
// concurrency 16 for 30 s while the three replicas are restarted one at a
// time. No request may fail, and every request bench sent must be counted
// exactly once by one replica: bench's count (plus its one probe request)
// equals the sum of the replicas' nv_inference_request_success deltas over
// every process.
func TestRollingRestartBehindHAProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s of load")
	}
	servetest.ORTLib(t)
	bin := servetest.Binary(t)
	reps := make([]*replica, 3)
	for i := range reps {
		reps[i] = &replica{n: i + 1, http: servetest.FreePort(t), grpc: servetest.FreePort(t), metrics: servetest.FreePort(t), shutdownDelay: shutdownDelay}
		reps[i].start(t, bin)
	}
	l := startHAProxy(t, reps, servetest.FreePort(t), servetest.FreePort(t))
	for _, r := range reps {
		c, err := successCount(r.metrics)
		if err != nil {
			t.Fatal(err)
		}
		r.base = c
	}

	out := filepath.Join(t.TempDir(), "bench.json")
	benchLog, _ := os.Create(filepath.Join(t.TempDir(), "bench.log"))
	bench := exec.Command(bin, "bench", "--url", fmt.Sprintf("http://127.0.0.1:%d", l.http), "--model", "m3e-tiny",
		"-c", "16", "--duration", "30s", "--warmup", "0", "--no-server-stats", "--json", out)
	bench.Stdout, bench.Stderr = benchLog, benchLog
	start := time.Now()
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	benchDone := make(chan error, 1)
	go func() { benchDone <- bench.Wait() }()
	t.Cleanup(func() { _ = bench.Process.Kill() })

	time.Sleep(2 * time.Second)
	for _, r := range reps {
		select {
		case err := <-benchDone:
			t.Fatalf("bench ended (%v) before replica %d was restarted", err, r.n)
		default:
		}
		at := time.Since(start)
		rt := roll(t, bin, l, r)
		t.Logf("replica %d: SIGTERM at %4.1fs; not ready +%v, HAProxy DOWN +%v, drained +%v (%d requests served), exited 0 +%v, restarted ready +%v, HAProxy UP +%v",
			r.n, at.Seconds(), rt.notReady.Round(time.Millisecond), rt.down.Round(time.Millisecond), rt.drained.Round(time.Millisecond),
			rt.count, rt.exited.Round(time.Millisecond), rt.ready.Round(time.Millisecond), rt.up.Round(time.Millisecond))
		time.Sleep(time.Second)
	}
	select {
	case err := <-benchDone:
		if err != nil {
			b, _ := os.ReadFile(benchLog.Name())
			t.Fatalf("bench: %v\n%s", err, b)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("bench did not finish")
	}

	var res struct {
		Levels []benchLevel `json:"levels"`
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil || len(res.Levels) != 1 {
		t.Fatalf("bench result %s: %v", b, err)
	}
	lv := res.Levels[0]
	var total int64
	var perReplica []string
	for _, r := range reps {
		c, err := successCount(r.metrics)
		if err != nil {
			t.Fatal(err)
		}
		r.lifetimes = append(r.lifetimes, c-r.base)
		var sum int64
		for _, n := range r.lifetimes {
			sum += n
		}
		total += sum
		perReplica = append(perReplica, fmt.Sprintf("r%d %d (per process %v)", r.n, sum, r.lifetimes))
	}
	t.Logf("bench through HAProxy, c=16, 30 s: sent %d, succeeded %d, errors %d, %.0f infer/s, p50 %.1f ms, p99 %.1f ms, max %.1f ms",
		lv.Sent, lv.Succeeded, lv.Errors, lv.Throughput, lv.Latency.P50, lv.Latency.P99, lv.Latency.Max)
	t.Logf("replicas' nv_inference_request_success deltas: %s; sum %d", strings.Join(perReplica, ", "), total)
	if lv.Errors != 0 || lv.Sent != lv.Succeeded {
		t.Errorf("%d errors %v; %d of %d sent requests succeeded: a rolling restart must lose none", lv.Errors, lv.ErrorsByKind, lv.Succeeded, lv.Sent)
	}
	// bench sends one probe request before the level (pkg/bench/command.go:
	// a wrong URL or model fails there), which its level does not count.
	const probes = 1
	if int64(lv.Succeeded+probes) != total {
		t.Errorf("bench counted %d successful requests (+%d probe), the replicas %d: each request must be served exactly once", lv.Succeeded, probes, total)
	}

	// gRPC over HTTP/2 through the same HAProxy.
	grpcOut, err := exec.Command(bin, "bench", "--protocol", "kserve-grpc", "--url", fmt.Sprintf("127.0.0.1:%d", l.grpc),
		"--model", "m3e-tiny", "-c", "4", "--duration", "2s", "--warmup", "0", "--no-server-stats", "--assert", "errors=0").CombinedOutput()
	if err != nil {
		t.Errorf("gRPC bench through HAProxy: %v\n%s", err, grpcOut)
	}
}

// TestRetriesCoverAnAbruptStop restarts replicas with no shutdown delay:
// SIGTERM answers new requests 503 at once and the port closes as soon as
// the drain ends, before HAProxy's check notices. haproxy.cfg's retries
// (503, refused or closed connections, redispatched to another replica)
// must still lose nothing, and HAProxy must report that it retried.
func TestRetriesCoverAnAbruptStop(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s of load")
	}
	servetest.ORTLib(t)
	bin := servetest.Binary(t)
	reps := make([]*replica, 3)
	for i := range reps {
		reps[i] = &replica{n: i + 1, http: servetest.FreePort(t), grpc: servetest.FreePort(t), metrics: servetest.FreePort(t)}
		reps[i].start(t, bin)
	}
	l := startHAProxy(t, reps, servetest.FreePort(t), servetest.FreePort(t))
	bench := exec.Command(bin, "bench", "--url", fmt.Sprintf("http://127.0.0.1:%d", l.http), "--model", "m3e-tiny",
		"-c", "16", "--duration", "10s", "--warmup", "0", "--no-server-stats", "--json", "-")
	var out strings.Builder
	bench.Stdout = &out
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	benchDone := make(chan error, 1)
	go func() { benchDone <- bench.Wait() }()
	t.Cleanup(func() { _ = bench.Process.Kill() })
	time.Sleep(time.Second)
	for _, r := range reps {
		if err := r.srv.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := r.srv.Wait(30 * time.Second); err != nil {
			t.Fatalf("replica %d after SIGTERM: %v", r.n, err)
		}
		r.start(t, bin)
		poll(t, "HAProxy marks the replica UP", func() bool {
			st, err := l.stats()
			return err == nil && st[fmt.Sprintf("m3ectl_http/r%d", r.n)].status == "UP"
		})
	}
	if err := <-benchDone; err != nil {
		t.Fatalf("bench: %v", err)
	}
	var res struct {
		Levels []benchLevel `json:"levels"`
	}
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil || len(res.Levels) != 1 {
		t.Fatalf("bench result %q: %v", out.String(), err)
	}
	lv := res.Levels[0]
	st, err := l.stats()
	if err != nil {
		t.Fatal(err)
	}
	retries, redispatches := st["m3ectl_http/BACKEND"].retries, st["m3ectl_http/BACKEND"].redispatches
	t.Logf("abrupt stops: sent %d, succeeded %d, errors %d; HAProxy retried %d, redispatched %d", lv.Sent, lv.Succeeded, lv.Errors, retries, redispatches)
	if lv.Errors != 0 || lv.Sent != lv.Succeeded {
		t.Errorf("%d errors %v, %d of %d succeeded", lv.Errors, lv.ErrorsByKind, lv.Succeeded, lv.Sent)
	}
	if retries+redispatches == 0 {
		t.Errorf("HAProxy retried nothing: the abrupt stops did not test the retries")
	}
}
