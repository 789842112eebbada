//go:build linux

package floatfmt

import (
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// threadCPU is the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID).
func threadCPU() time.Duration {
	var ts syscall.Timespec
	_, _, _ = syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}

// BenchmarkEmbedding768CPU formats 64 distinct normalised 768-wide
// embeddings, as a server does, and reports the thread's CPU time per
// number (cpu-ns/float): on a shared machine wall time also counts the
// time other processes held the core, CPU time much less so.
func BenchmarkEmbedding768CPU(b *testing.B) {
	v := benchValues()
	many := distinctEmbeddings(v, 64)
	buf := make([]byte, 0, 16<<10)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	i := 0
	t0 := threadCPU()
	for b.Loop() {
		buf = AppendFloat32s(buf[:0], many[i%64], ',', "null")
		i++
	}
	b.ReportMetric(float64(threadCPU()-t0)/float64(i*len(v)), "cpu-ns/float")
	sink = buf
}
