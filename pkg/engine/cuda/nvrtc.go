package cuda

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// NVRTC entry points: the kernels are CUDA C source compiled at run time for
// the GPU in the machine, so no nvcc is needed at build time.
var rtc struct {
	create, compile, logSize, log, cubinSize, cubin, destroy, version uintptr
}

func bindNVRTC(h uintptr) error {
	for _, b := range []struct {
		dst  *uintptr
		name string
	}{
		{&rtc.create, "nvrtcCreateProgram"}, {&rtc.compile, "nvrtcCompileProgram"},
		{&rtc.logSize, "nvrtcGetProgramLogSize"}, {&rtc.log, "nvrtcGetProgramLog"},
		{&rtc.cubinSize, "nvrtcGetCUBINSize"}, {&rtc.cubin, "nvrtcGetCUBIN"},
		{&rtc.destroy, "nvrtcDestroyProgram"}, {&rtc.version, "nvrtcVersion"},
	} {
		p, err := sym(h, b.name)
		if err != nil {
			return err
		}
		*b.dst = p
	}
	return nil
}

func cstr(s string) *byte {
	b := append([]byte(s), 0)
	return &b[0]
}

// cubinCache holds compiled kernels per process, keyed by source hash, so
// that many engine instances (serve's instance_group count) compile once.
var cubinCache sync.Map // string -> []byte

// compileKernels returns the CUBIN of src for compute capability major.minor,
// from the process cache, the disk cache under os.UserCacheDir()/m3ectl, or a
// fresh NVRTC compile.
func compileKernels(src string, opts []string, major, minor int) ([]byte, error) {
	var maj, min int32
	call(rtc.version, ptr(&maj), ptr(&min))
	arch := fmt.Sprintf("--gpu-architecture=sm_%d%d", major, minor)
	all := append([]string{arch, "--std=c++17", "-default-device"}, opts...)
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00nvrtc %d.%d", src, strings.Join(all, " "), maj, min)))
	key := hex.EncodeToString(h[:16])
	if v, ok := cubinCache.Load(key); ok {
		return v.([]byte), nil
	}
	var diskPath string
	if dir, err := os.UserCacheDir(); err == nil {
		diskPath = filepath.Join(dir, "m3ectl", "cuda", key+".cubin")
		if b, err := os.ReadFile(diskPath); err == nil && len(b) > 0 {
			cubinCache.Store(key, b)
			return b, nil
		}
	}
	var prog uintptr
	if code := call(rtc.create, ptr(&prog), uintptr(unsafe.Pointer(cstr(src))), uintptr(unsafe.Pointer(cstr("m3ectl_kernels.cu"))), 0, 0, 0); code != 0 {
		return nil, fmt.Errorf("nvrtcCreateProgram: error %d", code)
	}
	defer call(rtc.destroy, ptr(&prog))
	cOpts := make([]*byte, len(all))
	for i, o := range all {
		cOpts[i] = cstr(o)
	}
	code := call(rtc.compile, prog, uintptr(len(cOpts)), uintptr(unsafe.Pointer(&cOpts[0])))
	runtime.KeepAlive(cOpts)
	var logN uintptr
	call(rtc.logSize, prog, ptr(&logN))
	var logText string
	if logN > 1 {
		buf := make([]byte, logN)
		call(rtc.log, prog, uintptr(unsafe.Pointer(&buf[0])))
		logText = strings.TrimRight(string(buf), "\x00\n ")
	}
	if code != 0 {
		return nil, fmt.Errorf("nvrtc compile (%s) failed with error %d:\n%s", arch, code, logText)
	}
	if logText != "" {
		if os.Getenv("M3ECTL_NVRTC_VERBOSE") == "1" {
			fmt.Fprintln(os.Stderr, logText)
		}
		slog.Debug("nvrtc log", "log", logText)
	}
	var n uintptr
	if code := call(rtc.cubinSize, prog, ptr(&n)); code != 0 || n == 0 {
		return nil, fmt.Errorf("nvrtcGetCUBINSize: error %d", code)
	}
	cubin := make([]byte, n)
	if code := call(rtc.cubin, prog, uintptr(unsafe.Pointer(&cubin[0]))); code != 0 {
		return nil, fmt.Errorf("nvrtcGetCUBIN: error %d", code)
	}
	cubinCache.Store(key, cubin)
	if diskPath != "" {
		if err := os.MkdirAll(filepath.Dir(diskPath), 0o755); err == nil {
			tmp := diskPath + fmt.Sprintf(".%d.tmp", os.Getpid())
			if os.WriteFile(tmp, cubin, 0o644) == nil {
				_ = os.Rename(tmp, diskPath)
			}
		}
	}
	return cubin, nil
}

// module is a loaded CUBIN and its kernels.
type module struct {
	h     uintptr
	funcs map[string]uintptr
}

func loadModule(cubin []byte, names []string) (*module, error) {
	m := &module{funcs: map[string]uintptr{}}
	if err := cuCheck(call(drv.moduleLoadData, ptr(&m.h), uintptr(unsafe.Pointer(&cubin[0]))), "cuModuleLoadData"); err != nil {
		return nil, err
	}
	runtime.KeepAlive(cubin)
	for _, n := range names {
		var f uintptr
		if err := cuCheck(call(drv.moduleGetFunction, ptr(&f), m.h, uintptr(unsafe.Pointer(cstr(n)))), "cuModuleGetFunction "+n); err != nil {
			call(drv.moduleUnload, m.h)
			return nil, err
		}
		m.funcs[n] = f
	}
	return m, nil
}

func (m *module) unload() {
	if m != nil && m.h != 0 {
		call(drv.moduleUnload, m.h)
		m.h = 0
	}
}

// launcher enqueues kernels on one stream. Arguments are copied into a
// reusable arena because cuLaunchKernel takes an array of pointers to them.
type launcher struct {
	stream uintptr
	vals   [24]uint64
	ptrs   [24]uintptr
	// pdl: launchDep launches with programmatic stream serialization
	// (sm_90+ unless M3ECTL_CUDA_PDL=0): the kernel's blocks may start while the
	// kernel before it drains and wait for it in griddepcontrol.wait
	// (pdlWait in kernels.cu, compiled in with USE_PDL).
	pdl bool
}

// launchConfig and launchAttr mirror CUlaunchConfig and CUlaunchAttribute
// (cuda.h; the attribute's value is a 64-byte union).
type launchConfig struct {
	gx, gy, gz, bx, by, bz, smem uint32
	_                            uint32
	stream                       uintptr
	attrs                        *launchAttr
	nattrs                       uint32
	_                            uint32
}

type launchAttr struct {
	id  uint32
	_   uint32
	val [64]byte
}

// attrProgrammaticStreamSerialization is CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION.
const attrProgrammaticStreamSerialization = 6

// launchDep is launch for a kernel whose inputs come from the kernel just
// before it on the stream: with pdl, through cuLaunchKernelEx with
// programmatic stream serialization; otherwise as launch.
func (l *launcher) launchDep(fn uintptr, grid, block [3]int, smem int, args ...any) error {
	if !l.pdl || drv.launchEx == 0 {
		return l.launch(fn, grid, block, smem, args...)
	}
	if err := l.marshal(args); err != nil {
		return err
	}
	attr := launchAttr{id: attrProgrammaticStreamSerialization}
	attr.val[0] = 1 // programmaticStreamSerializationAllowed (an int)
	cfg := launchConfig{gx: uint32(grid[0]), gy: uint32(grid[1]), gz: uint32(grid[2]), bx: uint32(block[0]), by: uint32(block[1]), bz: uint32(block[2]),
		smem: uint32(smem), stream: l.stream, attrs: &attr, nattrs: 1}
	code := call(drv.launchEx, uintptr(unsafe.Pointer(&cfg)), fn, uintptr(unsafe.Pointer(&l.ptrs[0])), 0)
	runtime.KeepAlive(&attr)
	runtime.KeepAlive(&cfg)
	return cuCheck(code, "cuLaunchKernelEx")
}

// launch runs fn on grid x block with dynamic shared memory smem. Each arg is
// an int, int32, uint32, float32, devPtr or uintptr.
func (l *launcher) launch(fn uintptr, grid, block [3]int, smem int, args ...any) error {
	if err := l.marshal(args); err != nil {
		return err
	}
	code := call(drv.launch, fn, uintptr(grid[0]), uintptr(grid[1]), uintptr(grid[2]),
		uintptr(block[0]), uintptr(block[1]), uintptr(block[2]), uintptr(smem), l.stream,
		uintptr(unsafe.Pointer(&l.ptrs[0])), 0)
	return cuCheck(code, "cuLaunchKernel")
}

// marshal puts args into the launcher's parameter block.
func (l *launcher) marshal(args []any) error {
	for i, a := range args {
		switch v := a.(type) {
		case devPtr:
			l.vals[i] = uint64(v)
		case uintptr:
			l.vals[i] = uint64(v)
		case int:
			l.vals[i] = uint64(uint32(int32(v)))
		case int32:
			l.vals[i] = uint64(uint32(v))
		case uint32:
			l.vals[i] = uint64(v)
		case float32:
			l.vals[i] = uint64(mathFloat32bits(v))
		default:
			return fmt.Errorf("launch: unsupported argument type %T", a)
		}
		l.ptrs[i] = uintptr(unsafe.Pointer(&l.vals[i]))
	}
	return nil
}
