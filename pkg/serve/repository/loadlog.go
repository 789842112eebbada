package repository

import "github.com/m3ectl/m3ectl/pkg/engine"

// logInstances says how many instances of which kind a version runs on,
// the line a Triton user looks for ("instance_group: 2 × KIND_CPU").
func (mgr *Manager) logInstances(src versionSource, sp *spec, engines []engine.Engine) {
	groups := make([]string, 0, len(sp.instances))
	for _, g := range sp.instances {
		groups = append(groups, g.kind.String())
	}
	backend := ""
	if len(engines) > 0 {
		backend = engines[0].Info().Backend
	}
	mgr.log.Info("model instances opened", "model", src.name, "version", src.version, "count", len(engines), "kind", groups, "backend", backend)
}

// warmupSamples counts the warm-up executions a version runs per instance.
func warmupSamples(ws []warmupSpec) int {
	n := 0
	for _, w := range ws {
		n += w.count
	}
	return n
}
