package repository

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/m3ectl/m3ectl/pkg/serve/scheduler"
)

// Load loads or reloads a model (explicit mode). A model whose folder has
// not changed since it loaded is left as it is; a changed one is reloaded:
// the new versions load and warm up while the old ones keep serving, then
// the old ones drain and close. A version that fails to reload keeps its
// previous instance serving, as in Triton. The work runs under the
// manager's lifetime, not ctx: a caller that goes away does not cut it.
func (m *Manager) Load(_ context.Context, name string) error {
	ctx := m.life
	if err := ValidateName(name); err != nil {
		return err
	}
	if err := m.checkExplicit("load"); err != nil {
		return err
	}
	m.loadMu.Lock()
	defer m.loadMu.Unlock()
	if m.isClosed() {
		return errorf(Unavailable, "the server is shutting down")
	}
	if !m.inRepository(name) {
		return errorf(NotFound, "no model %q in the model repository", name)
	}
	return m.load(ctx, name, true)
}

// Unload unloads a model (explicit mode): it stops taking requests at
// once, lets the accepted ones finish, then frees the engines. Unloading a
// model that is not loaded succeeds. As with Load, the drain runs under
// the manager's lifetime: every request accepted before the unload gets its
// answer even when the caller of Unload disconnects.
func (m *Manager) Unload(_ context.Context, name string) error {
	ctx := m.life
	if err := ValidateName(name); err != nil {
		return err
	}
	if err := m.checkExplicit("unload"); err != nil {
		return err
	}
	m.loadMu.Lock()
	defer m.loadMu.Unlock()
	m.mu.RLock()
	_, known := m.models[name]
	m.mu.RUnlock()
	if !known && !m.inRepository(name) {
		return errorf(NotFound, "no model %q in the model repository", name)
	}
	return m.unload(ctx, name, true)
}

func (m *Manager) checkExplicit(op string) error {
	if m.cfg.SinglePath != "" || m.cfg.ControlMode != ModeExplicit {
		mode := m.cfg.ControlMode
		if m.cfg.SinglePath != "" {
			mode = "single model (--model)"
		}
		return errorf(InvalidInput, "cannot %s models: model control mode is %s; start the server with --model-control-mode=explicit", op, mode)
	}
	return nil
}

func (m *Manager) isClosed() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.closed
}

// load (re)loads one model of the repository; loadMu is held. explicitReq
// retries a model whose earlier load failed even when its folder did not
// change.
func (m *Manager) load(ctx context.Context, name string, explicitReq bool) error {
	dir := filepath.Join(m.cfg.Root, name)
	fp := fingerprint(dir)
	override, overrideFP := m.overrides.take(name)
	fp += overrideFP
	m.mu.RLock()
	old := m.models[name]
	m.mu.RUnlock()
	if old != nil && !old.unloaded && old.fp == fp && (!explicitReq || old.allReady()) {
		return nil
	}
	fail := func(err error) error {
		if old.hasReady() {
			m.log.Error("model failed to reload; its loaded versions keep serving", "model", name, "err", err)
			m.mu.Lock()
			old.fp = fp // retried when the folder changes again
			m.mu.Unlock()
		} else {
			m.retire(ctx, m.replace(name, &entry{fp: fp, reason: m.rel(err.Error())}), nil)
		}
		return errorf(InvalidInput, "load model %s: %s", name, m.rel(err.Error()))
	}
	cfg := override
	var err error
	if cfg == nil {
		if cfg, err = readConfig(dir, name); err != nil {
			return fail(err)
		}
	}
	sp, err := interpret(cfg, dir)
	if err != nil {
		return fail(err)
	}
	for _, p := range notHonoured(cfg) {
		m.log.Warn("config field not honoured", "model", name, "field", p)
	}
	onDisk, err := listVersions(dir)
	if err != nil {
		return fail(err)
	}
	served := servedVersions(cfg.GetVersionPolicy(), onDisk)
	if len(served) == 0 {
		return fail(fmt.Errorf("no version folder to serve (expected %s)", filepath.Join(dir, "1", "model.onnx")))
	}
	if old == nil || old.unloaded || old.reason != "" {
		loading := &entry{versions: map[string]*version{}}
		for _, v := range served {
			loading.versions[strconv.FormatInt(v, 10)] = &version{state: StateLoading}
		}
		m.replace(name, loading)
	}
	next := &entry{fp: fp, versions: map[string]*version{}}
	var errs []error
	for _, v := range served {
		vs := strconv.FormatInt(v, 10)
		src := versionSource{name: name, version: vs, modelDir: dir, path: filepath.Join(dir, vs)}
		start := time.Now()
		var model *Model
		if st, serr := os.Stat(src.path); serr != nil || !st.IsDir() {
			err = fmt.Errorf("version folder %s does not exist (version_policy asks for it)", src.path)
		} else {
			model, err = m.loadVersion(ctx, sp, src)
		}
		if err == nil {
			next.versions[vs] = &version{state: StateReady, model: model}
			m.log.Info("model ready", "model", name, "version", vs, "backend", model.backend, "dim", model.dim, "took", time.Since(start).Round(time.Millisecond))
			continue
		}
		errs = append(errs, fmt.Errorf("version %s: %w", vs, err))
		if prev := old.readyVersion(vs); prev != nil {
			m.log.Error("model version failed to reload; the previous one keeps serving", "model", name, "version", vs, "err", err)
			next.versions[vs] = &version{state: StateReady, model: prev}
			continue
		}
		m.log.Error("model version failed to load", "model", name, "version", vs, "err", err)
		next.versions[vs] = &version{state: StateUnavailable, reason: m.rel(err.Error())}
	}
	m.retire(ctx, m.replace(name, next), next)
	if len(errs) > 0 {
		return errorf(InvalidInput, "load model %s: %s", name, m.rel(errors.Join(errs...).Error()))
	}
	return nil
}

// replace installs e as name's entry and returns the previous one.
func (m *Manager) replace(name string, e *entry) *entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.models[name]
	m.models[name] = e
	return old
}

// retire drains and closes the models of old that next does not keep.
// Their metric series stay (see closeVersions).
func (m *Manager) retire(ctx context.Context, old, next *entry) {
	if old == nil {
		return
	}
	for vs, v := range old.versions {
		if v.model == nil || next.readyVersion(vs) == v.model {
			continue
		}
		if err := v.model.close(ctx); err != nil {
			m.log.Warn("drain old model version", "model", v.model.name, "version", vs, "err", err)
		}
	}
}

// unload drains and drops a model; keep leaves it in the index as
// unloaded (explicit unload), otherwise it disappears (removed from disk).
func (m *Manager) unload(ctx context.Context, name string, keep bool) error {
	m.mu.Lock()
	e := m.models[name]
	if e == nil || e.unloaded {
		m.mu.Unlock()
		return nil
	}
	for _, v := range e.versions {
		if v.model != nil {
			v.state = StateUnloading
		}
	}
	m.mu.Unlock()
	errs := closeVersions(ctx, e)
	m.mu.Lock()
	if keep {
		m.models[name] = &entry{unloaded: true}
	} else {
		delete(m.models, name)
	}
	m.mu.Unlock()
	m.log.Info("model unloaded", "model", name)
	return errors.Join(errs...)
}

// closeVersions drains every version of e in parallel.
func closeVersions(ctx context.Context, e *entry) []error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, v := range e.versions {
		if v.model == nil {
			continue
		}
		wg.Add(1)
		go func(md *Model) {
			defer wg.Done()
			// The metric series stay: Prometheus expects counters to live as
			// long as the process (Triton keeps them across unloads), and a
			// reload continues them.
			err := md.close(ctx)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}(v.model)
	}
	wg.Wait()
	return errs
}

func (e *entry) allReady() bool {
	if e.reason != "" || len(e.versions) == 0 {
		return false
	}
	for _, v := range e.versions {
		if v.state != StateReady {
			return false
		}
	}
	return true
}

// hasReady says whether e (possibly nil) serves some version.
func (e *entry) hasReady() bool {
	if e == nil || e.unloaded {
		return false
	}
	for _, v := range e.versions {
		if v.state == StateReady {
			return true
		}
	}
	return false
}

// readyVersion is the READY model of version vs, or nil (e may be nil).
func (e *entry) readyVersion(vs string) *Model {
	if e == nil {
		return nil
	}
	if v, ok := e.versions[vs]; ok && v.state == StateReady {
		return v.model
	}
	return nil
}

// loadSingle loads the --model shortcut.
func (m *Manager) loadSingle(ctx context.Context) error {
	name := m.cfg.SingleName
	sp, err := singleSpec(name)
	if err != nil {
		return err
	}
	sp.sched.Policy = scheduler.PolicyContinuous
	if m.cfg.SingleBatching != "" {
		if sp.sched.Policy, err = scheduler.ParsePolicy(m.cfg.SingleBatching); err != nil {
			return err
		}
	}
	dir := m.cfg.SinglePath
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		dir = filepath.Dir(dir)
	}
	m.replace(name, &entry{versions: map[string]*version{"1": {state: StateLoading}}})
	start := time.Now()
	model, err := m.loadVersion(ctx, sp, versionSource{name: name, version: "1", modelDir: dir, path: m.cfg.SinglePath})
	if err != nil {
		m.replace(name, &entry{versions: map[string]*version{"1": {state: StateUnavailable, reason: m.rel(err.Error())}}})
		return fmt.Errorf("model %s: %w", m.cfg.SinglePath, err)
	}
	m.replace(name, &entry{versions: map[string]*version{"1": {state: StateReady, model: model}}})
	m.log.Info("model ready", "model", name, "version", "1", "backend", model.backend, "dim", model.dim, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// poll rescans the repository every PollInterval: new and changed models
// are (re)loaded, removed ones unloaded. A model that failed is retried
// only when its folder changes.
func (m *Manager) poll(ctx context.Context) {
	defer close(m.pollDone)
	t := time.NewTicker(m.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.rescan(ctx)
	}
}

// rescan is one poll.
func (m *Manager) rescan(ctx context.Context) {
	m.loadMu.Lock()
	defer m.loadMu.Unlock()
	if m.isClosed() {
		return
	}
	names, err := listModels(m.cfg.Root)
	if err != nil {
		m.log.Error("poll model repository", "err", err)
		return
	}
	onDisk := map[string]bool{}
	for _, n := range names {
		onDisk[n] = true
		if ctx.Err() != nil {
			return
		}
		if err := m.load(ctx, n, false); err != nil {
			m.log.Error("model failed to load", "model", n, "err", err)
		}
	}
	m.mu.RLock()
	var gone []string
	for n := range m.models {
		if !onDisk[n] {
			gone = append(gone, n)
		}
	}
	m.mu.RUnlock()
	for _, n := range gone {
		if err := m.unload(ctx, n, false); err != nil {
			m.log.Warn("unload removed model", "model", n, "err", err)
		}
	}
}

// Close stops polling, stops taking requests, lets accepted requests
// finish (until ctx ends) and frees every engine.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	defer m.endLife()
	stopLife := context.AfterFunc(ctx, m.endLife) // a load or drain in progress ends with ctx
	defer stopLife()
	if m.stopPoll != nil {
		m.stopPoll()
		<-m.pollDone
	}
	m.loadMu.Lock()
	defer m.loadMu.Unlock()
	m.mu.Lock()
	entries := m.models
	for _, e := range entries {
		for _, v := range e.versions {
			if v.model != nil {
				v.state = StateUnloading
			}
		}
	}
	m.mu.Unlock()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, e := range entries {
		wg.Add(1)
		go func(e *entry) {
			defer wg.Done()
			es := closeVersions(ctx, e)
			mu.Lock()
			errs = append(errs, es...)
			mu.Unlock()
		}(e)
	}
	wg.Wait()
	m.mu.Lock()
	m.models = map[string]*entry{}
	m.mu.Unlock()
	return errors.Join(errs...)
}

// rel makes the paths in a message that clients see relative to the model
// repository (m3e/2/model.onnx, not /srv/models/m3e/2/model.onnx): where
// the server keeps its files is not the client's business. The log keeps
// the full error.
func (m *Manager) rel(msg string) string {
	for _, root := range []string{m.cfg.Root, m.absRoot} {
		if root != "" && root != "." {
			msg = strings.ReplaceAll(msg, strings.TrimSuffix(root, string(filepath.Separator))+string(filepath.Separator), "")
		}
	}
	return msg
}
