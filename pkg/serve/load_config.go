package serve

import (
	"context"
	"encoding/json"
	"sort"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// loadParam is one parameter of a repository load request: a string, or
// the raw JSON of another value.
type loadParam struct {
	str   string
	isStr bool
	raw   json.RawMessage
}

func httpLoadParams(params map[string]json.RawMessage) map[string]loadParam {
	out := make(map[string]loadParam, len(params))
	for k, v := range params {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out[k] = loadParam{str: s, isStr: true}
		} else {
			out[k] = loadParam{raw: v}
		}
	}
	return out
}

func grpcLoadParams(params map[string]*tritonpb.ModelRepositoryParameter) map[string]loadParam {
	out := make(map[string]loadParam, len(params))
	for k, v := range params {
		if sp, ok := v.GetParameterChoice().(*tritonpb.ModelRepositoryParameter_StringParam); ok {
			out[k] = loadParam{str: sp.StringParam, isStr: true}
		} else {
			out[k] = loadParam{}
		}
	}
	return out
}

// load runs a repository load with Triton's parameters: "config", a model
// configuration in JSON used for this load instead of config.pbtxt. The
// "file:<path>" parameters (model files sent inline) are not supported.
func (s *Server) load(ctx context.Context, name string, params map[string]loadParam) error {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k != "config" {
			return errorf(kindUnsupported, "load parameter %q is not supported (only \"config\", a model configuration in JSON); put the model's files in the repository and load again", k)
		}
	}
	p, ok := params["config"]
	if !ok {
		return s.repo.Load(ctx, name)
	}
	text := p.str
	switch {
	case p.isStr:
	case len(p.raw) > 0 && p.raw[0] == '{':
		text = string(p.raw) // an object instead of Triton's string: accepted as is
	default:
		return invalidf("load parameter \"config\" must be a string holding the model configuration in JSON")
	}
	cfg, err := repository.ParseConfigJSON(name, text)
	if err != nil {
		return err
	}
	return s.repo.LoadWithConfig(ctx, name, cfg)
}
