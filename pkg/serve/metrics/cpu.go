package metrics

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Triton's CPU metrics (src/metrics.cc at triton-inference-server/core
// 73aad7c, TRITON_ENABLE_METRICS_CPU): nv_cpu_utilization, the share of
// non-idle jiffies in /proc/stat's aggregate "cpu" line since the previous
// reading, and nv_cpu_memory_total_bytes / nv_cpu_memory_used_bytes from
// /proc/meminfo (used = MemTotal - MemAvailable). No labels. Triton polls
// every --metrics-interval-ms; here each scrape is one reading.

var (
	cpuUtilDesc     = prometheus.NewDesc("nv_cpu_utilization", "CPU utilization rate [0.0 - 1.0]", nil, nil)
	cpuMemTotalDesc = prometheus.NewDesc("nv_cpu_memory_total_bytes", "CPU total memory (RAM), in bytes", nil, nil)
	cpuMemUsedDesc  = prometheus.NewDesc("nv_cpu_memory_used_bytes", "CPU used memory (RAM), in bytes", nil, nil)
)

// cpuTimes is the aggregate line of /proc/stat, in jiffies.
type cpuTimes struct{ busy, idle uint64 }

// CPUCollector exports Triton's nv_cpu_* gauges.
type CPUCollector struct {
	procDir string
	mu      sync.Mutex
	last    cpuTimes
}

// NewCPUCollector reads /proc (procDir for tests); the first scrape's
// utilisation covers the time since this call.
func NewCPUCollector(procDir string) *CPUCollector {
	if procDir == "" {
		procDir = "/proc"
	}
	c := &CPUCollector{procDir: procDir}
	c.last, _ = readCPUTimes(procDir)
	return c
}

// Describe implements prometheus.Collector.
func (c *CPUCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cpuUtilDesc
	ch <- cpuMemTotalDesc
	ch <- cpuMemUsedDesc
}

// Collect implements prometheus.Collector. Like Triton, an unreadable file
// reports zeros rather than failing the scrape.
func (c *CPUCollector) Collect(ch chan<- prometheus.Metric) {
	util := 0.0
	if now, err := readCPUTimes(c.procDir); err == nil {
		c.mu.Lock()
		busy, idle := sub(now.busy, c.last.busy), sub(now.idle, c.last.idle)
		if busy+idle > 0 {
			util = float64(busy) / float64(busy+idle)
		}
		c.last = now
		c.mu.Unlock()
	}
	total, used, _ := readMemInfo(c.procDir)
	ch <- prometheus.MustNewConstMetric(cpuUtilDesc, prometheus.GaugeValue, util)
	ch <- prometheus.MustNewConstMetric(cpuMemTotalDesc, prometheus.GaugeValue, float64(total))
	ch <- prometheus.MustNewConstMetric(cpuMemUsedDesc, prometheus.GaugeValue, float64(used))
}

func sub(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return 0
}

// readCPUTimes parses /proc/stat's first line: user nice system idle iowait
// irq softirq steal ...; busy is user+nice+system+irq+softirq+steal and
// idle is idle+iowait, as Triton's CpuUtilization sums them.
func readCPUTimes(procDir string) (cpuTimes, error) {
	f, err := os.Open(procDir + "/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return cpuTimes{}, fmt.Errorf("%s/stat is empty", procDir)
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 9 || fields[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("%s/stat: no aggregate cpu line", procDir)
	}
	v := make([]uint64, 8)
	for i := range v {
		if v[i], err = strconv.ParseUint(fields[i+1], 10, 64); err != nil {
			return cpuTimes{}, fmt.Errorf("%s/stat: %w", procDir, err)
		}
	}
	user, nice, system, idle, iowait, irq, softirq, steal := v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
	return cpuTimes{busy: user + nice + system + irq + softirq + steal, idle: idle + iowait}, nil
}

// readMemInfo returns MemTotal and MemTotal - MemAvailable, in bytes.
func readMemInfo(procDir string) (total, used uint64, err error) {
	f, err := os.Open(procDir + "/meminfo")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var avail uint64
	var haveT, haveA bool
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		n, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "MemTotal:":
			total, haveT = n*1024, true
		case "MemAvailable:":
			avail, haveA = n*1024, true
		}
	}
	if !haveT || !haveA || avail > total {
		return 0, 0, fmt.Errorf("%s/meminfo: no usable MemTotal/MemAvailable", procDir)
	}
	return total, total - avail, nil
}
