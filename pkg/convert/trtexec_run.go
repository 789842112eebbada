package convert

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// Progress receives the phase trtexec is in whenever it changes and, for
// log streaming, every line it prints. Either field may be nil.
type Progress struct {
	Phase func(phase string, elapsed time.Duration)
	Line  func(line string)
}

// Binding is one engine input or output as trtexec reports it.
type Binding struct {
	Name  string `json:"name"`
	Input bool   `json:"input"`
	Dims  string `json:"dims"`
	// DType is the binding's type as trtexec spells it (fp32, fp16, int32, int64), where it prints it (10.16 and later:
	// "... and type int64 is created", sampleInference.cpp@v10.16:287).
	DType string `json:"dtype,omitempty"`
}

// TrtexecRun is what one trtexec invocation produced.
type TrtexecRun struct {
	Argv     []string
	ExitCode int
	Passed   bool     // "&&&& PASSED" seen
	Banner   string   // the final "&&&& PASSED/FAILED" line
	Errors   []string // the [E] lines
	Warnings []string // the [W] lines
	Bindings []Binding
	Version  TRTVersion
	Elapsed  time.Duration
	LogPath  string
}

// TrtexecError is a failed trtexec run: non-zero exit, no PASSED banner, or
// (for builds) no engine. The CLI prints Lines (the [E] lines and the FAILED
// banner) to stderr before its one-line error.
type TrtexecError struct {
	Op      string // "build", "load engine", "parity run"
	Reason  string
	Lines   []string
	LogPath string
}

// Error implements error.
func (e *TrtexecError) Error() string {
	msg := fmt.Sprintf("trtexec %s failed: %s", e.Op, e.Reason)
	for _, l := range e.Lines { // the first [E]/[F] line names the cause; later ones are consequences
		if lv := trtLogLevel(l); lv == "E" || lv == "F" {
			msg += ": " + cleanLogLine(l)
			break
		}
	}
	if e.LogPath != "" {
		msg += " (full log: " + e.LogPath + ")"
	}
	return msg
}

// phases maps substrings of trtexec's log to the phase they start, in the
// order a build goes through them. Each marker occurs in NVIDIA/TensorRT's
// samples at v8.6.1, v10.3.0 and v11.1 (sampleEngines.cpp, sampleInference.cpp),
// except "Engine loaded in" and "Graph optimization time" (10.x on) and
// "Engine generation completed" (11.1).
var phases = []struct{ marker, phase string }{
	{"=== Model Options ===", "reading options"},
	{"Start parsing network model", "parsing ONNX"},
	{"Finished parsing network model", "parsed ONNX"},
	{"Set shape of input tensor", "setting shape profile"},
	{"Loading engine", "loading engine"},
	{"Engine loaded in", "engine loaded"},
	{"Local timing cache in use", "building: tactic selection"},
	{"Global timing cache in use", "building: tactic selection"},
	{"Graph optimization time", "building: layer fusion done"},
	{"Total Activation Memory", "building: memory planning"},
	{"Engine built in", "engine built"},
	{"Engine generation completed", "engine built"},
	{"Saving engine", "saving engine"},
	{"Starting inference", "running inference"},
	{"&&&& PASSED", "passed"},
	{"&&&& FAILED", "failed"},
}

var (
	bindingRE8  = regexp.MustCompile(`Created (input|output) binding for (\S+) with dimensions (\S+)`)
	bindingRE10 = regexp.MustCompile(`(Input|Output) binding for (\S+) with dimensions (\S+) is created`)
	// 10.16 and 11.x add the type (samples/common/sampleInference.cpp@v10.16:286-287, @v11.1:288-289).
	bindingRE1016 = regexp.MustCompile(`(Input|Output) binding for (\S+) with dimensions (\S+) and type (\S+) is created`)
)

// RunTrtexec runs trtexec with args, writing its whole output to logPath
// (when not "") and reporting progress. A cancelled ctx sends SIGTERM to
// trtexec's process group, then SIGKILL after 10 s. The returned error is only about starting or reading
// the process; callers judge success from the TrtexecRun.
func RunTrtexec(ctx context.Context, trtexec string, args []string, logPath string, p Progress) (*TrtexecRun, error) {
	run := &TrtexecRun{Argv: append([]string{trtexec}, args...), LogPath: logPath}
	var log io.Writer = io.Discard
	if logPath != "" {
		f, err := os.Create(logPath)
		if err != nil {
			return nil, fmt.Errorf("create trtexec log: %w", err)
		}
		defer f.Close()
		fmt.Fprintf(f, "# %s\n", ShellQuote(run.Argv))
		log = f
	}
	cmd := exec.CommandContext(ctx, trtexec, args...)
	// trtexec runs in its own process group so that a cancel reaches anything
	// it started, and the pipes close promptly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", trtexec, err)
	}
	waitErr := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); waitErr <- err }()

	phase := ""
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(log, line)
		if p.Line != nil {
			p.Line(line)
		}
		run.observe(line)
		for _, ph := range phases {
			if strings.Contains(line, ph.marker) && ph.phase != phase {
				phase = ph.phase
				if p.Phase != nil {
					p.Phase(phase, time.Since(start))
				}
				break
			}
		}
	}
	scanErr := sc.Err()
	if scanErr != nil {
		_, _ = io.Copy(io.Discard, pr) // let trtexec finish writing
	}
	err := <-waitErr
	run.Elapsed = time.Since(start)
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		run.ExitCode = exitErr.ExitCode()
		if run.ExitCode < 0 { // killed by a signal
			run.ExitCode = 128 + int(exitErr.Sys().(syscall.WaitStatus).Signal())
		}
	default:
		return run, fmt.Errorf("wait for trtexec: %w", err)
	}
	if scanErr != nil {
		return run, fmt.Errorf("read trtexec output: %w", scanErr)
	}
	if ctx.Err() != nil {
		return run, fmt.Errorf("trtexec interrupted: %w", ctx.Err())
	}
	return run, nil
}

func (r *TrtexecRun) observe(line string) {
	switch {
	case strings.HasPrefix(line, "&&&& PASSED"):
		r.Passed, r.Banner = true, line
	case strings.HasPrefix(line, "&&&& FAILED"):
		r.Banner = line
	}
	if r.Version.IsZero() {
		if v, ok := ParseBanner(line); ok {
			r.Version = v
		}
	}
	switch trtLogLevel(line) {
	case "E", "F":
		r.Errors = append(r.Errors, line)
	case "W":
		r.Warnings = append(r.Warnings, line)
	}
	if m := bindingRE1016.FindStringSubmatch(line); m != nil {
		r.Bindings = append(r.Bindings, Binding{Name: m[2], Input: strings.EqualFold(m[1], "input"), Dims: m[3], DType: m[4]})
		return
	}
	for _, re := range []*regexp.Regexp{bindingRE8, bindingRE10} {
		if m := re.FindStringSubmatch(line); m != nil {
			r.Bindings = append(r.Bindings, Binding{Name: m[2], Input: strings.EqualFold(m[1], "input"), Dims: m[3]})
		}
	}
}

// Failure returns a *TrtexecError when the run did not succeed (non-zero
// exit or no PASSED banner), else nil.
func (r *TrtexecRun) Failure(op string) error {
	reason := ""
	switch {
	case r.ExitCode != 0:
		reason = fmt.Sprintf("exit status %d", r.ExitCode)
	case !r.Passed:
		reason = "no &&&& PASSED line in its output"
	default:
		return nil
	}
	lines := append([]string(nil), r.Errors...)
	if r.Banner != "" && !r.Passed {
		lines = append(lines, r.Banner)
	}
	return &TrtexecError{Op: op, Reason: reason, Lines: lines, LogPath: r.LogPath}
}

// cleanLogLine drops trtexec's "[date-time] [E] " (or [F]) prefix.
func cleanLogLine(line string) string {
	for _, tag := range []string{"] [E] ", "] [F] "} {
		if i := strings.Index(line, tag); i >= 0 {
			return strings.TrimSpace(line[i+len(tag):])
		}
	}
	return strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(line, "[E] "), "[F] "))
}
