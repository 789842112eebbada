package cuda

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// algoCache keeps the cuBLASLt algorithm each GEMM shape was timed to, per
// GPU model, driver and cuBLASLt version, in the process (so a model's
// second instance on the same GPU does not time them again) and on disk
// beside the NVRTC cache (so the next process does not either): timing the
// heuristic's top 32 algorithms of a new shape took tens of milliseconds of
// every cold start. cuBLASLt documents cublasLtMatmulAlgo_t as trivially
// serialisable for reuse with the same library version
// (cublasLt.h@12.x, "cublasLtMatmulAlgo_t"); a stored choice that fails
// its trial run is timed again.
type algoCache struct {
	mu     sync.Mutex
	loaded bool
	path   string
	m      map[string]heuristicResult
	dirty  bool
}

var algos algoCache

// storedAlgo is heuristicResult in the cache file.
type storedAlgo struct {
	Algo      [8]uint64 `json:"algo"`
	Workspace uint64    `json:"workspace"`
}

func (c *algoCache) load() {
	if c.loaded {
		return
	}
	c.loaded, c.m = true, map[string]heuristicResult{}
	dir, err := os.UserCacheDir()
	if err != nil || os.Getenv("M3ECTL_GEMM_CACHE") == "0" {
		return
	}
	c.path = filepath.Join(dir, "m3ectl", "cuda", "gemm-algos.json")
	b, err := os.ReadFile(c.path)
	if err != nil {
		return
	}
	var disk map[string]storedAlgo
	if err := json.Unmarshal(b, &disk); err != nil {
		slog.Debug("cuda: ignoring an unreadable GEMM algorithm cache", "path", c.path, "err", err)
		return
	}
	for k, v := range disk {
		c.m[k] = heuristicResult{algo: v.Algo, workspace: uintptr(v.Workspace)}
	}
}

func (c *algoCache) get(key string) (heuristicResult, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.load()
	r, ok := c.m[key]
	return r, ok
}

func (c *algoCache) put(key string, r heuristicResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.load()
	c.m[key] = r
	c.dirty = true
}

func (c *algoCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
}

// save writes the cache when it changed (temp file + rename, so a reader
// never sees half a file; concurrent writers lose nothing worse than each
// other's newest entries).
func (c *algoCache) save() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty || c.path == "" {
		return
	}
	disk := make(map[string]storedAlgo, len(c.m))
	for k, v := range c.m {
		disk[k] = storedAlgo{Algo: v.algo, Workspace: uint64(v.workspace)}
	}
	b, err := json.Marshal(disk)
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o755); err != nil {
		return
	}
	tmp := fmt.Sprintf("%s.%d.tmp", c.path, os.Getpid())
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		os.Remove(tmp)
		return
	}
	if err := os.Rename(tmp, c.path); err != nil {
		os.Remove(tmp)
		return
	}
	c.dirty = false
}

// algoKey names one GEMM shape on one GPU model, driver, cuBLASLt version
// and tuning setting.
func (g *gemmer) algoKey(m, n, k, epi int) string {
	key := fmt.Sprintf("%s|sm%d%d|drv%d|lt%d|dt%d|%dx%dx%d|epi%d|algos%d", g.dev.Name, g.dev.Major, g.dev.Minor, g.dev.Driver, ltVersion, g.dtype, m, n, k, epi, maxTuneAlgos)
	if tuneHoldBytes > 0 || tuneReps != 3 {
		// Choices timed another way are kept apart from the default's.
		key += fmt.Sprintf("|hold%d|reps%d", tuneHoldBytes>>20, tuneReps)
	}
	return key
}
