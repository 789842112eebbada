package metrics

import (
	"bytes"
	"fmt"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/prometheus/client_golang/prometheus"
)

// Triton's GPU metrics (src/metrics.cc at triton-inference-server/core
// 73aad7c, TRITON_ENABLE_METRICS_GPU), one series per GPU labelled
// gpu_uuid: nv_gpu_utilization [0.0 - 1.0), nv_gpu_memory_total_bytes,
// nv_gpu_memory_used_bytes, nv_gpu_power_usage and nv_gpu_power_limit in
// watts. Triton reads them through DCGM; m3ectl reads the same quantities
// from NVML (libnvidia-ml.so.1, part of the NVIDIA driver), opened at run
// time with purego so that the binary builds and runs without it.

var (
	gpuLabels       = []string{"gpu_uuid"}
	gpuUtilDesc     = prometheus.NewDesc("nv_gpu_utilization", "GPU utilization rate [0.0 - 1.0)", gpuLabels, nil)
	gpuMemTotalDesc = prometheus.NewDesc("nv_gpu_memory_total_bytes", "GPU total memory, in bytes", gpuLabels, nil)
	gpuMemUsedDesc  = prometheus.NewDesc("nv_gpu_memory_used_bytes", "GPU used memory, in bytes", gpuLabels, nil)
	gpuPowerDesc    = prometheus.NewDesc("nv_gpu_power_usage", "GPU power usage in watts", gpuLabels, nil)
	gpuLimitDesc    = prometheus.NewDesc("nv_gpu_power_limit", "GPU power management limit in watts", gpuLabels, nil)
)

// nvml holds the NVML entry points m3ectl calls (nvml.h, NVML API v2).
type nvml struct {
	init, count, handle, uuid, util, mem, power, limit uintptr
}

var (
	nvmlOnce sync.Once
	nvmlLib  *nvml
	nvmlErr  error
)

func openNVML() (*nvml, error) {
	nvmlOnce.Do(func() {
		var h uintptr
		for _, name := range []string{"libnvidia-ml.so.1", "libnvidia-ml.so"} {
			if h, nvmlErr = purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_GLOBAL); nvmlErr == nil {
				break
			}
		}
		if nvmlErr != nil {
			nvmlErr = fmt.Errorf("NVML (libnvidia-ml.so.1) not found: %w", nvmlErr)
			return
		}
		n := &nvml{}
		for _, s := range []struct {
			p    *uintptr
			name string
		}{
			{&n.init, "nvmlInit_v2"}, {&n.count, "nvmlDeviceGetCount_v2"}, {&n.handle, "nvmlDeviceGetHandleByIndex_v2"},
			{&n.uuid, "nvmlDeviceGetUUID"}, {&n.util, "nvmlDeviceGetUtilizationRates"}, {&n.mem, "nvmlDeviceGetMemoryInfo"},
			{&n.power, "nvmlDeviceGetPowerUsage"}, {&n.limit, "nvmlDeviceGetPowerManagementLimit"},
		} {
			if *s.p, nvmlErr = purego.Dlsym(h, s.name); nvmlErr != nil {
				nvmlErr = fmt.Errorf("NVML has no %s: %w", s.name, nvmlErr)
				return
			}
		}
		if r := n.call(n.init); r != 0 {
			nvmlErr = fmt.Errorf("nvmlInit_v2 failed (NVML error %d)", r)
			return
		}
		nvmlLib = n
	})
	return nvmlLib, nvmlErr
}

func (n *nvml) call(fn uintptr, args ...uintptr) int {
	r, _, _ := purego.SyscallN(fn, args...)
	return int(int32(r))
}

// gpuDevice is one GPU's NVML handle and UUID.
type gpuDevice struct {
	handle uintptr
	uuid   string
}

// GPUCollector exports Triton's nv_gpu_* gauges through NVML.
type GPUCollector struct {
	lib  *nvml
	devs []gpuDevice
}

// NewGPUCollector opens NVML and lists the GPUs; it fails (and the caller
// skips GPU metrics) on machines without the NVIDIA driver.
func NewGPUCollector() (*GPUCollector, error) {
	lib, err := openNVML()
	if err != nil {
		return nil, err
	}
	var count uint32
	if r := lib.call(lib.count, uintptr(unsafe.Pointer(&count))); r != 0 {
		return nil, fmt.Errorf("nvmlDeviceGetCount_v2 failed (NVML error %d)", r)
	}
	if count == 0 {
		return nil, fmt.Errorf("NVML sees no GPU")
	}
	c := &GPUCollector{lib: lib}
	for i := uint32(0); i < count; i++ {
		var h uintptr
		if r := lib.call(lib.handle, uintptr(i), uintptr(unsafe.Pointer(&h))); r != 0 {
			return nil, fmt.Errorf("nvmlDeviceGetHandleByIndex_v2(%d) failed (NVML error %d)", i, r)
		}
		var buf [96]byte // NVML_DEVICE_UUID_V2_BUFFER_SIZE is 96
		if r := lib.call(lib.uuid, h, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf))); r != 0 {
			return nil, fmt.Errorf("nvmlDeviceGetUUID(%d) failed (NVML error %d)", i, r)
		}
		c.devs = append(c.devs, gpuDevice{handle: h, uuid: string(bytes.TrimRight(buf[:], "\x00"))})
	}
	return c, nil
}

// Describe implements prometheus.Collector.
func (c *GPUCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{gpuUtilDesc, gpuMemTotalDesc, gpuMemUsedDesc, gpuPowerDesc, gpuLimitDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector; a reading NVML refuses (power on
// some boards) is left out rather than reported as zero.
func (c *GPUCollector) Collect(ch chan<- prometheus.Metric) {
	for _, d := range c.devs {
		var util struct{ gpu, memory uint32 } // nvmlUtilization_t
		if c.lib.call(c.lib.util, d.handle, uintptr(unsafe.Pointer(&util))) == 0 {
			ch <- prometheus.MustNewConstMetric(gpuUtilDesc, prometheus.GaugeValue, float64(util.gpu)/100, d.uuid)
		}
		var mem struct{ total, free, used uint64 } // nvmlMemory_t
		if c.lib.call(c.lib.mem, d.handle, uintptr(unsafe.Pointer(&mem))) == 0 {
			ch <- prometheus.MustNewConstMetric(gpuMemTotalDesc, prometheus.GaugeValue, float64(mem.total), d.uuid)
			ch <- prometheus.MustNewConstMetric(gpuMemUsedDesc, prometheus.GaugeValue, float64(mem.used), d.uuid)
		}
		var mw uint32
		if c.lib.call(c.lib.power, d.handle, uintptr(unsafe.Pointer(&mw))) == 0 {
			ch <- prometheus.MustNewConstMetric(gpuPowerDesc, prometheus.GaugeValue, float64(mw)/1000, d.uuid)
		}
		if c.lib.call(c.lib.limit, d.handle, uintptr(unsafe.Pointer(&mw))) == 0 {
			ch <- prometheus.MustNewConstMetric(gpuLimitDesc, prometheus.GaugeValue, float64(mw)/1000, d.uuid)
		}
	}
}

// RegisterSystem registers Triton's CPU metrics and, when gpu is set and
// NVML opens, its GPU metrics on reg. It returns why GPU metrics are off
// (nil when they are on or were not asked for).
func RegisterSystem(reg prometheus.Registerer, gpu bool) (gpuOff error, err error) {
	if err := reg.Register(NewCPUCollector("")); err != nil {
		return nil, fmt.Errorf("register CPU metrics: %w", err)
	}
	if !gpu {
		return nil, nil
	}
	c, err := NewGPUCollector()
	if err != nil {
		return err, nil
	}
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("register GPU metrics: %w", err)
	}
	return nil, nil
}
