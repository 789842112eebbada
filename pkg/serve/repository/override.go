package repository

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// Loading with a configuration override, as Triton's model repository
// extension does (docs/protocol/extension_model_repository.md in
// triton-inference-server/server: the "config" parameter of load is a model
// configuration in JSON, used for that load instead of the model's
// config.pbtxt; the files in the repository are not touched). A later load
// without "config" reads config.pbtxt again.

// overrides holds the configurations waiting for their load.
type overrides struct {
	mu   sync.Mutex
	next map[string]*tritonpb.ModelConfig
	seq  int
}

func (o *overrides) put(name string, cfg *tritonpb.ModelConfig) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.next == nil {
		o.next = map[string]*tritonpb.ModelConfig{}
	}
	o.next[name] = cfg
}

// take returns the override for name, if any, and a fingerprint suffix
// that is new on every overridden load: a load with a config always
// reloads, and the next load without one differs from it too.
func (o *overrides) take(name string) (*tritonpb.ModelConfig, string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	cfg, ok := o.next[name]
	if !ok {
		return nil, ""
	}
	delete(o.next, name)
	o.seq++
	return cfg, "+config-override-" + strconv.Itoa(o.seq)
}

// ParseConfigJSON reads a model configuration given as JSON (protobuf's
// JSON mapping of ModelConfig, as Triton's JsonToModelConfig reads it:
// field names as in config.pbtxt or in lowerCamelCase, enums by name,
// 64-bit integers as numbers or strings). Unknown fields are an error. An
// empty name is the model's; another model's name is refused.
func ParseConfigJSON(name, config string) (*tritonpb.ModelConfig, error) {
	cfg := &tritonpb.ModelConfig{}
	if err := protojson.Unmarshal([]byte(config), cfg); err != nil {
		return nil, errorf(InvalidInput, "load %s: parameter \"config\" is not a valid model configuration in JSON: %v", name, err)
	}
	if cfg.GetName() == "" {
		cfg.Name = name
	}
	if cfg.GetName() != name {
		return nil, errorf(InvalidInput, "load %s: parameter \"config\" names the model %q; it must be %q", name, cfg.GetName(), name)
	}
	return cfg, nil
}

// LoadWithConfig loads (always reloads) a model with cfg in place of its
// config.pbtxt, for this load only (explicit mode).
func (m *Manager) LoadWithConfig(ctx context.Context, name string, cfg *tritonpb.ModelConfig) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if err := m.checkExplicit("load"); err != nil {
		return err
	}
	if cfg == nil {
		return fmt.Errorf("load %s: no configuration", name)
	}
	m.overrides.put(name, cfg)
	err := m.Load(ctx, name)
	m.overrides.take(name) // unused when Load refused before loading
	return err
}
