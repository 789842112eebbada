// Package repository serves a Triton-style model repository: it reads each
// model's config.pbtxt, picks the versions its version_policy serves, opens
// one engine per instance, warms them up and puts a dynamic batcher
// (pkg/serve/scheduler) in front of them. It implements Triton's model
// control modes (none, explicit, poll) and the --model shortcut that serves
// one model folder or file without a repository.
//
// Layout: ROOT/<name>/config.pbtxt and numbered version folders
// ROOT/<name>/<version>/ holding model.onnx (or a Hugging Face /
// sentence-transformers folder, directly or in one sub-folder) and
// vocab.txt or tokenizer.json (or those beside config.pbtxt).
//
// A model that fails to load is UNAVAILABLE with its reason; the others
// keep serving.
package repository

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/serve/metrics"
	"github.com/m3ectl/m3ectl/pkg/serve/scheduler"
)

// Model control modes, Triton's.
const (
	ModeNone     = "none"     // load every model at start, never change
	ModeExplicit = "explicit" // load StartupModels at start; Load/Unload on request
	ModePoll     = "poll"     // load every model, then follow the folder's changes
)

// Model states, as the repository index reports them.
const (
	StateReady       = "READY"
	StateUnavailable = "UNAVAILABLE"
	StateLoading     = "LOADING"
	StateUnloading   = "UNLOADING"
)

// DefaultPollInterval is Triton's --repository-poll-secs default.
const DefaultPollInterval = 15 * time.Second

// Config configures a Manager.
type Config struct {
	Root          string        // the model repository folder
	ControlMode   string        // none (default) | explicit | poll
	StartupModels []string      // explicit mode: models loaded at start ("*": all)
	PollInterval  time.Duration // poll mode; 0: DefaultPollInterval
	// SinglePath serves one model folder or .onnx file without a
	// repository (the --model shortcut) under SingleName (default: derived
	// from the path), version "1", with a synthesised config.
	SinglePath, SingleName string
	// SingleBatching is the --model shortcut's batching policy
	// (scheduler.ParsePolicy); "" means continuous.
	SingleBatching string
	Engine         string         // cpu | cuda | auto (default)
	EngineOptions  engine.Options // Threads is the total, split across instances
	MaxBatchTokens int            // padded tokens per execution; 0: max_batch_size × MaxLength
	Truncate       bool           // cut over-long texts (true) or reject them (false)
	MaxLength      int            // tokens per text; 0: the tokenizer's (512)
	Registerer     prometheus.Registerer
	Logger         *slog.Logger
}

// IndexEntry is one row of the repository index.
type IndexEntry struct {
	Name    string
	Version string
	State   string // READY | UNAVAILABLE | LOADING | UNLOADING
	Reason  string
}

// Manager owns the models of a repository and their lifecycles.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics.Metrics

	loadMu sync.Mutex // serialises loads, unloads, polls and Close

	mu      sync.RWMutex
	models  map[string]*entry
	started bool
	closed  bool
	warned  map[string]bool

	overrides overrides // config overrides waiting for their load

	stopPoll context.CancelFunc
	pollDone chan struct{}

	// life is the context loads, unloads and their drains run under: the
	// server's, not the caller's, so that a client that disconnects or
	// times out cannot cut a drain short or leave a load half done. Close
	// ends it when its own deadline passes.
	life    context.Context
	endLife context.CancelFunc

	absRoot string // Root made absolute, for rel
}

// entry is one model name's state.
type entry struct {
	fp       string              // fingerprint of the folder at the last load
	reason   string              // model-level failure (bad config); "" when versions speak
	versions map[string]*version // served versions
	unloaded bool                // explicitly unloaded (or removed) and kept for the index
}

type version struct {
	state  string
	reason string
	model  *Model // set while READY or UNLOADING
}

// New checks the configuration and prepares a Manager; Start loads models.
func New(cfg Config) (*Manager, error) {
	if cfg.ControlMode == "" {
		cfg.ControlMode = ModeNone
	}
	switch cfg.ControlMode {
	case ModeNone, ModeExplicit, ModePoll:
	default:
		return nil, fmt.Errorf("model control mode %q: expected none, explicit or poll", cfg.ControlMode)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.SingleBatching != "" {
		if cfg.SinglePath == "" {
			return nil, fmt.Errorf("a batching policy flag applies to a single --model; set parameter %s in each config.pbtxt instead", ParamBatchingPolicy)
		}
		if _, err := scheduler.ParsePolicy(cfg.SingleBatching); err != nil {
			return nil, err
		}
	}
	if cfg.SinglePath == "" {
		if cfg.Root == "" {
			return nil, errors.New("no model repository and no model given")
		}
		st, err := os.Stat(cfg.Root)
		if err != nil {
			return nil, fmt.Errorf("model repository: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("model repository %s is not a folder", cfg.Root)
		}
	} else {
		if cfg.SingleName == "" {
			cfg.SingleName = singleName(cfg.SinglePath)
		}
		if err := ValidateName(cfg.SingleName); err != nil {
			return nil, err
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	met, err := metrics.New(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	life, endLife := context.WithCancel(context.Background())
	absRoot, _ := filepath.Abs(cfg.Root)
	if cfg.Root == "" {
		absRoot = ""
	}
	return &Manager{cfg: cfg, log: log, metrics: met, models: map[string]*entry{}, warned: map[string]bool{},
		life: life, endLife: endLife, absRoot: absRoot}, nil
}

// Start loads the startup models (each warmed up before it is ready) and,
// in poll mode, starts following the repository. A model that fails to load
// is logged and left UNAVAILABLE; Start fails only when the --model
// shortcut fails or an explicitly named startup model does not exist.
func (m *Manager) Start(ctx context.Context) error {
	m.loadMu.Lock()
	defer m.loadMu.Unlock()
	if m.cfg.SinglePath != "" {
		if err := m.loadSingle(ctx); err != nil {
			return err
		}
		m.setStarted()
		return nil
	}
	names, err := listModels(m.cfg.Root)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		m.log.Warn("the model repository holds no models: nothing will be served until one is added (each model is a folder with config.pbtxt and a version folder)", "repository", m.cfg.Root, "mode", m.cfg.ControlMode)
	}
	if m.cfg.ControlMode == ModeExplicit {
		names, err = m.startupNames(names)
		if err != nil {
			return err
		}
	}
	for _, n := range names {
		if err := m.load(ctx, n, false); err != nil {
			m.log.Error("model failed to load", "model", n, "err", err)
		}
	}
	if m.cfg.ControlMode == ModePoll {
		pctx, cancel := context.WithCancel(context.Background())
		m.stopPoll, m.pollDone = cancel, make(chan struct{})
		go m.poll(pctx)
	}
	m.setStarted()
	return nil
}

func (m *Manager) setStarted() {
	m.mu.Lock()
	m.started = true
	m.mu.Unlock()
}

func (m *Manager) startupNames(all []string) ([]string, error) {
	var names []string
	for _, n := range m.cfg.StartupModels {
		if n == "*" {
			return all, nil
		}
		if err := ValidateName(n); err != nil {
			return nil, fmt.Errorf("--load-model: %w", err)
		}
		if st, err := os.Stat(filepath.Join(m.cfg.Root, n)); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("--load-model %s: no such model in %s", n, m.cfg.Root)
		}
		names = append(names, n)
	}
	return names, nil
}

// Ready reports whether the server should take traffic: Start has finished,
// Close has not begun, and at least one model is READY (or no model was
// asked for, as in explicit mode with nothing loaded yet). A failed model
// does not make the server unready while others serve.
func (m *Manager) Ready() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.started || m.closed {
		return false
	}
	tried := false
	for _, e := range m.models {
		if e.unloaded {
			continue
		}
		tried = true
		for _, v := range e.versions {
			if v.state == StateReady {
				return true
			}
		}
	}
	return !tried
}

// Model returns a ready version of a model; version "" is the newest ready
// one. Errors are *Error: NotFound for an unknown model or version,
// Unavailable for one that exists but is not ready.
func (m *Manager) Model(name, ver string) (*Model, error) {
	if err := ValidateName(name); err != nil {
		return nil, errorf(NotFound, "unknown model %q", name)
	}
	m.mu.RLock()
	e, ok := m.models[name]
	if !ok || e.unloaded {
		m.mu.RUnlock()
		if m.cfg.SinglePath == "" && m.inRepository(name) {
			return nil, errorf(Unavailable, "model %s is not loaded (model control mode %s)", name, m.cfg.ControlMode)
		}
		return nil, errorf(NotFound, "unknown model %q", name)
	}
	defer m.mu.RUnlock()
	if ver == "" {
		if e.reason != "" {
			return nil, errorf(Unavailable, "model %s is unavailable: %s", name, e.reason)
		}
		var best *Model
		bestN := int64(-1)
		var why string
		for vs, v := range e.versions {
			n, _ := strconv.ParseInt(vs, 10, 64)
			if v.state == StateReady && n > bestN {
				best, bestN = v.model, n
			} else if v.state != StateReady {
				why = fmt.Sprintf("version %s is %s: %s", vs, v.state, v.reason)
			}
		}
		if best == nil {
			if why == "" {
				why = "no version is served"
			}
			return nil, errorf(Unavailable, "model %s has no ready version (%s)", name, why)
		}
		return best, nil
	}
	v, ok := e.versions[ver]
	if !ok {
		return nil, errorf(NotFound, "model %s has no version %q", name, ver)
	}
	if v.state != StateReady {
		return nil, errorf(Unavailable, "model %s version %s is %s: %s", name, ver, v.state, v.reason)
	}
	return v.model, nil
}

func (m *Manager) inRepository(name string) bool {
	st, err := os.Stat(filepath.Join(m.cfg.Root, name))
	return err == nil && st.IsDir()
}

// ReadyModels lists the ready model versions, by name then newest version
// first.
func (m *Manager) ReadyModels() []*Model {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*Model
	for _, e := range m.models {
		for _, v := range e.versions {
			if v.state == StateReady {
				out = append(out, v.model)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].name != out[j].name {
			return out[i].name < out[j].name
		}
		return versionLess(out[j].version, out[i].version)
	})
	return out
}

func versionLess(a, b string) bool {
	x, _ := strconv.ParseInt(a, 10, 64)
	y, _ := strconv.ParseInt(b, 10, 64)
	return x < y
}

// Index lists every model of the repository with each served version's
// state; a model that is in the folder but not loaded is UNAVAILABLE with
// reason "unloaded". readyOnly keeps the READY rows.
func (m *Manager) Index(readyOnly bool) []IndexEntry {
	var onDisk []string
	if m.cfg.SinglePath == "" {
		onDisk, _ = listModels(m.cfg.Root)
	}
	m.mu.RLock()
	var out []IndexEntry
	seen := map[string]bool{}
	for name, e := range m.models {
		seen[name] = true
		switch {
		case e.unloaded:
			out = append(out, IndexEntry{Name: name, State: StateUnavailable, Reason: "unloaded"})
		case e.reason != "":
			out = append(out, IndexEntry{Name: name, State: StateUnavailable, Reason: e.reason})
		default:
			for vs, v := range e.versions {
				out = append(out, IndexEntry{Name: name, Version: vs, State: v.state, Reason: v.reason})
			}
		}
	}
	m.mu.RUnlock()
	for _, n := range onDisk {
		if !seen[n] {
			out = append(out, IndexEntry{Name: n, State: StateUnavailable, Reason: "unloaded"})
		}
	}
	if readyOnly {
		kept := out[:0]
		for _, e := range out {
			if e.State == StateReady {
				kept = append(kept, e)
			}
		}
		out = kept
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return versionLess(out[i].Version, out[j].Version)
	})
	return out
}

// warnOnce logs a warning the first time a message is seen.
func (m *Manager) warnOnce(msg string, attrs ...slog.Attr) {
	m.mu.Lock()
	seen := m.warned[msg]
	m.warned[msg] = true
	m.mu.Unlock()
	if !seen {
		m.log.LogAttrs(context.Background(), slog.LevelWarn, msg, attrs...)
	}
}
