package cuda

import (
	"fmt"
	"unsafe"

	"github.com/ebitengine/purego"
)

// The CUDA driver API entry points this engine uses, resolved at run time so
// that the binary needs no CUDA headers or libraries to build.
var drv struct {
	init, deviceGetCount, deviceGet, deviceGetAttribute, deviceGetName          uintptr
	primaryCtxRetain, primaryCtxRelease, ctxSetCurrent, ctxSynchronize          uintptr
	memAlloc, memFree, memAllocHost, memFreeHost, memGetInfo                    uintptr
	memcpyHtoDAsync, memcpyDtoHAsync, memcpyHtoD, memsetD8Async                 uintptr
	streamCreate, streamDestroy, streamSynchronize                              uintptr
	moduleLoadData, moduleUnload, moduleGetFunction, funcSetAttribute, launch   uintptr
	eventCreate, eventDestroy, eventRecord, eventSynchronize, eventElapsed      uintptr
	eventQuery                                                                  uintptr
	streamBeginCapture, streamEndCapture, graphInstantiate, graphLaunch         uintptr
	graphDestroy, graphExecDestroy, getErrorName, getErrorString, driverVersion uintptr
	launchEx                                                                    uintptr
}

func bindDriver(h uintptr) error {
	for _, b := range []struct {
		dst   *uintptr
		names []string
	}{
		{&drv.init, []string{"cuInit"}},
		{&drv.deviceGetCount, []string{"cuDeviceGetCount"}},
		{&drv.deviceGet, []string{"cuDeviceGet"}},
		{&drv.deviceGetAttribute, []string{"cuDeviceGetAttribute"}},
		{&drv.deviceGetName, []string{"cuDeviceGetName"}},
		{&drv.primaryCtxRetain, []string{"cuDevicePrimaryCtxRetain"}},
		{&drv.primaryCtxRelease, []string{"cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"}},
		{&drv.ctxSetCurrent, []string{"cuCtxSetCurrent"}},
		{&drv.ctxSynchronize, []string{"cuCtxSynchronize"}},
		{&drv.memAlloc, []string{"cuMemAlloc_v2"}},
		{&drv.memFree, []string{"cuMemFree_v2"}},
		{&drv.memAllocHost, []string{"cuMemAllocHost_v2"}},
		{&drv.memFreeHost, []string{"cuMemFreeHost"}},
		{&drv.memGetInfo, []string{"cuMemGetInfo_v2"}},
		{&drv.memcpyHtoDAsync, []string{"cuMemcpyHtoDAsync_v2"}},
		{&drv.memcpyDtoHAsync, []string{"cuMemcpyDtoHAsync_v2"}},
		{&drv.memcpyHtoD, []string{"cuMemcpyHtoD_v2"}},
		{&drv.memsetD8Async, []string{"cuMemsetD8Async"}},
		{&drv.streamCreate, []string{"cuStreamCreate"}},
		{&drv.streamDestroy, []string{"cuStreamDestroy_v2"}},
		{&drv.streamSynchronize, []string{"cuStreamSynchronize"}},
		{&drv.moduleLoadData, []string{"cuModuleLoadData"}},
		{&drv.moduleUnload, []string{"cuModuleUnload"}},
		{&drv.moduleGetFunction, []string{"cuModuleGetFunction"}},
		{&drv.funcSetAttribute, []string{"cuFuncSetAttribute"}},
		{&drv.launch, []string{"cuLaunchKernel"}},
		{&drv.eventCreate, []string{"cuEventCreate"}},
		{&drv.eventDestroy, []string{"cuEventDestroy_v2"}},
		{&drv.eventRecord, []string{"cuEventRecord"}},
		{&drv.eventSynchronize, []string{"cuEventSynchronize"}},
		{&drv.eventQuery, []string{"cuEventQuery"}},
		{&drv.eventElapsed, []string{"cuEventElapsedTime_v2", "cuEventElapsedTime"}},
		{&drv.streamBeginCapture, []string{"cuStreamBeginCapture_v2"}},
		{&drv.streamEndCapture, []string{"cuStreamEndCapture"}},
		{&drv.graphInstantiate, []string{"cuGraphInstantiateWithFlags"}},
		{&drv.graphLaunch, []string{"cuGraphLaunch"}},
		{&drv.graphDestroy, []string{"cuGraphDestroy"}},
		{&drv.graphExecDestroy, []string{"cuGraphExecDestroy"}},
		{&drv.getErrorName, []string{"cuGetErrorName"}},
		{&drv.getErrorString, []string{"cuGetErrorString"}},
		{&drv.driverVersion, []string{"cuDriverGetVersion"}},
	} {
		p, err := sym(h, b.names...)
		if err != nil {
			return err
		}
		*b.dst = p
	}
	// Optional: drivers before CUDA 12 lack it, and programmatic dependent
	// launch (launcher.launchDep) is off without it.
	drv.launchEx, _ = sym(h, "cuLaunchKernelEx")
	return nil
}

// call invokes a C function that returns an int status.
//
// A pointer converted to uintptr in call's argument list must be on the
// heap for the call: a goroutine's stack moves when it grows (as call's
// or purego's frames may make it), and a C function writing through the
// address of a moved stack variable writes into freed stack memory and
// leaves the variable as it was. That happened: a server's start crashed
// once in ~60 on the H200 with cuMemAllocHost's pointer still nil
// (stagedCopy, 2026-12-01). purego.SyscallN's own go:uintptrescapes
// covers only conversions written in SyscallN's argument list, not call's,
// so call carries the directive too.
//
//go:uintptrescapes
func call(fn uintptr, args ...uintptr) int {
	r, _, _ := purego.SyscallN(fn, args...)
	return int(int32(r))
}

// ptr turns a Go pointer into the uintptr a C call takes. The callee must
// not keep it past the call. The conversion is inside ptr, out of reach of
// call's go:uintptrescapes, so ptr makes *p escape to the heap itself (a
// store escape analysis sees and that never runs): the variable cannot
// sit on a stack that moves during the call (see call).
func ptr[T any](p *T) uintptr {
	if escapeNever {
		escapeSink = p
	}
	return uintptr(unsafe.Pointer(p))
}

// escapeNever is always false and escapeSink never written; together they
// make ptr's argument escape.
var (
	escapeNever bool
	escapeSink  any
)

// CUError is a failed CUDA driver call.
type CUError struct {
	Code int
	Name string
	Op   string
}

// Error implements error.
func (e *CUError) Error() string { return fmt.Sprintf("%s: %s (CUDA error %d)", e.Op, e.Name, e.Code) }

func cuCheck(code int, op string) error {
	if code == 0 {
		return nil
	}
	name := "unknown"
	if drv.getErrorName != 0 {
		var p *byte
		if call(drv.getErrorName, uintptr(code), ptr(&p)) == 0 && p != nil {
			name = cString(p)
		}
	}
	return &CUError{Code: code, Name: name, Op: op}
}

// cString copies a NUL-terminated C string.
func cString(p *byte) string {
	if p == nil {
		return ""
	}
	var b []byte
	for q := unsafe.Pointer(p); *(*byte)(q) != 0; q = unsafe.Add(q, 1) {
		b = append(b, *(*byte)(q))
	}
	return string(b)
}

// Device attributes (CUdevice_attribute) read by the engine.
const (
	attrSMCount  = 16
	attrCCMajor  = 75
	attrCCMinor  = 76
	captureRelax = 2 // CU_STREAM_CAPTURE_MODE_RELAXED

	eventBlockingSync  = 0x1 // CU_EVENT_BLOCKING_SYNC
	eventDisableTiming = 0x2 // CU_EVENT_DISABLE_TIMING
)

// deviceInfo describes the GPU an engine runs on.
type deviceInfo struct {
	Ordinal      int
	Name         string
	Major, Minor int
	SMs          int
	Driver       int
}

func getDevice(ordinal int) (dev int32, info deviceInfo, err error) {
	if err = cuCheck(call(drv.deviceGet, ptr(&dev), uintptr(ordinal)), fmt.Sprintf("cuDeviceGet(%d)", ordinal)); err != nil {
		return
	}
	attr := func(a int) int {
		var v int32
		call(drv.deviceGetAttribute, ptr(&v), uintptr(a), uintptr(dev))
		return int(v)
	}
	var name [256]byte
	call(drv.deviceGetName, ptr(&name[0]), 256, uintptr(dev))
	var dv int32
	call(drv.driverVersion, ptr(&dv))
	info = deviceInfo{Ordinal: ordinal, Name: cString(&name[0]), Major: attr(attrCCMajor), Minor: attr(attrCCMinor), SMs: attr(attrSMCount), Driver: int(dv)}
	return
}

// devPtr is a device address (CUdeviceptr).
type devPtr uintptr

func memAlloc(n int) (devPtr, error) {
	var p devPtr
	if n == 0 {
		n = 256
	}
	if err := cuCheck(call(drv.memAlloc, ptr(&p), uintptr(n)), fmt.Sprintf("cuMemAlloc(%d bytes)", n)); err != nil {
		return 0, err
	}
	return p, nil
}

func memFree(p devPtr) {
	if p != 0 {
		call(drv.memFree, uintptr(p))
	}
}

// upload copies host bytes to a fresh device allocation (synchronous).
func upload(b []byte) (devPtr, error) {
	p, err := memAlloc(len(b))
	if err != nil {
		return 0, err
	}
	if len(b) > 0 {
		if err := cuCheck(call(drv.memcpyHtoD, uintptr(p), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b))), "cuMemcpyHtoD"); err != nil {
			memFree(p)
			return 0, err
		}
	}
	return p, nil
}

// pinned is page-locked host memory, so that async copies really overlap and
// graphs can capture them.
type pinned struct {
	p    unsafe.Pointer
	size int
}

func allocPinned(n int) (pinned, error) {
	var p unsafe.Pointer
	if err := cuCheck(call(drv.memAllocHost, ptr(&p), uintptr(n)), fmt.Sprintf("cuMemAllocHost(%d bytes)", n)); err != nil {
		return pinned{}, err
	}
	return pinned{p: p, size: n}, nil
}

func (h *pinned) free() {
	if h.p != nil {
		call(drv.memFreeHost, uintptr(h.p))
		h.p = nil
	}
}

func (h pinned) int32s() []int32 { return unsafe.Slice((*int32)(h.p), h.size/4) }

func (h pinned) float32s() []float32 { return unsafe.Slice((*float32)(h.p), h.size/4) }

// memInfo returns free and total device memory of the current context.
func memInfo() (free, total uint64) {
	call(drv.memGetInfo, ptr(&free), ptr(&total))
	return
}
