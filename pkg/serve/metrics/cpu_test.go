package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCPUCollector(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// user nice system idle iowait irq softirq steal
	write("stat", "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3\n")
	write("meminfo", "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\n")
	c := NewCPUCollector(dir)
	// 300 more busy jiffies and 100 more idle ones since the first reading.
	write("stat", "cpu  300 0 200 750 150 0 0 0 0 0\n")
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	want := `
# HELP nv_cpu_memory_total_bytes CPU total memory (RAM), in bytes
# TYPE nv_cpu_memory_total_bytes gauge
nv_cpu_memory_total_bytes 1.024e+06
# HELP nv_cpu_memory_used_bytes CPU used memory (RAM), in bytes
# TYPE nv_cpu_memory_used_bytes gauge
nv_cpu_memory_used_bytes 768000
# HELP nv_cpu_utilization CPU utilization rate [0.0 - 1.0]
# TYPE nv_cpu_utilization gauge
nv_cpu_utilization 0.75
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	// Unreadable files give zeros, not a failed scrape (as Triton).
	os.Remove(filepath.Join(dir, "meminfo"))
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

func TestGPUCollectorSkipsCleanlyWithoutNVML(t *testing.T) {
	if _, err := NewGPUCollector(); err == nil {
		t.Skip("NVML is present here")
	} else if !strings.Contains(err.Error(), "NVML") {
		t.Errorf("error %q does not say NVML is missing", err)
	}
	reg := prometheus.NewRegistry()
	off, err := RegisterSystem(reg, true)
	if err != nil || off == nil {
		t.Fatalf("RegisterSystem = %v, %v; want GPU off with a reason and no error", off, err)
	}
	if n, _ := testutil.GatherAndCount(reg, "nv_cpu_utilization"); n != 1 {
		t.Errorf("CPU metrics missing when GPU metrics are off")
	}
}
