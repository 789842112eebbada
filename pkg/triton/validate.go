package triton

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// ValidationError lists what a written repository got wrong.
type ValidationError struct {
	Problems []string
}

// Error implements error.
func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "repository invalid: " + e.Problems[0]
	}
	return fmt.Sprintf("repository invalid: %s (and %d more)", e.Problems[0], len(e.Problems)-1)
}

// Validate reads back what WriteRepository wrote: each config.pbtxt parses
// into a tritonpb.ModelConfig equal to the one intended and agrees with the
// model (width, batch size within the engine's profile), every file the
// model needs is in its folder, and Python files compile (python3 -m
// py_compile, skipped without python3). It returns the checks that passed.
func Validate(root string, plan []*plannedModel, f *modelFacts) ([]string, error) {
	var checks, problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	for _, m := range plan {
		path := filepath.Join(root, m.cfg.Name, "config.pbtxt")
		text, err := os.ReadFile(path)
		if err != nil {
			bad("%v", err)
			continue
		}
		got, err := tritonpb.ParseConfig(text)
		if err != nil {
			bad("%s: %v", path, err)
			continue
		}
		if !proto.Equal(got, m.cfg) {
			bad("%s does not read back as the config written", path)
			continue
		}
		checks = append(checks, fmt.Sprintf("%s/config.pbtxt parses back as written", got.Name))
		problems = append(problems, checkFacts(got, f)...)
		for _, name := range append(sortedKeys(m.files), sortedKeys(m.gen)...) {
			if st, err := os.Stat(filepath.Join(root, got.Name, name)); err != nil || st.Size() == 0 {
				bad("%s/%s is missing or empty", got.Name, name)
			}
		}
		if m.python != "" {
			msg, err := compilePython(filepath.Join(root, got.Name, m.vpath(m.python)))
			if err != nil {
				bad("%s/%s: %v", got.Name, m.vpath(m.python), err)
			} else {
				checks = append(checks, fmt.Sprintf("%s/%s: %s", got.Name, m.vpath(m.python), msg))
			}
		}
	}
	if len(problems) > 0 {
		return checks, &ValidationError{Problems: problems}
	}
	return checks, nil
}

// checkFacts checks one config against the model's facts.
func checkFacts(c *tritonpb.ModelConfig, f *modelFacts) []string {
	var p []string
	if f.maxBatch > 0 && int64(c.MaxBatchSize) > f.maxBatch {
		p = append(p, fmt.Sprintf("%s: max_batch_size %d exceeds the engine's max profile batch %d", c.Name, c.MaxBatchSize, f.maxBatch))
	}
	for _, out := range c.Output {
		if out.Name == OutputName || out.Name == f.output {
			if len(out.Dims) != 1 || out.Dims[0] != int64(f.dim) || out.DataType != tritonpb.DataType_TYPE_FP32 {
				p = append(p, fmt.Sprintf("%s: output %s must be TYPE_FP32 [%d], is %s %v", c.Name, out.Name, f.dim, out.DataType, out.Dims))
			}
		}
	}
	for _, in := range c.Input {
		if in.Name == InputName && in.DataType != tritonpb.DataType_TYPE_STRING {
			p = append(p, fmt.Sprintf("%s: input %s must be TYPE_STRING", c.Name, InputName))
		}
	}
	return p
}

// compiled remembers the contents that already compiled (by SHA-256), so a
// process that writes many repositories runs python3 once per distinct file.
var compiled sync.Map

// compilePython byte-compiles a file with python3, keeping the bytecode out
// of the repository. Without python3 it reports the check as skipped.
func compilePython(path string) (string, error) {
	const ok = "compiles (python3 -m py_compile)"
	src, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(src)
	if _, done := compiled.Load(sum); done {
		return ok, nil
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		return "compile check skipped (no python3)", nil
	}
	cache, err := os.MkdirTemp("", "m3ectl-pycache-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(cache)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-m", "py_compile", path)
	cmd.Env = append(os.Environ(), "PYTHONPYCACHEPREFIX="+cache)
	if out, err := cmd.CombinedOutput(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("does not compile: %s", lastLine(out))
		}
		return "", fmt.Errorf("python3 -m py_compile: %w", err)
	}
	compiled.Store(sum, true)
	return ok, nil
}

func lastLine(b []byte) string {
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	if len(lines) == 0 {
		return "no output"
	}
	return lines[len(lines)-1]
}
