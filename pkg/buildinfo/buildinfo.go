// Package buildinfo says which m3ectl this is: the module version and
// commit it was built from and the Go toolchain, read from the binary's own
// build information, for `m3ectl version`, --version and GET /v2.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// version and commit are set by the Makefile's build (-ldflags -X) from
// git; otherwise the module version and VCS stamp of the build information
// are used (a worktree checkout or -buildvcs=false leaves them empty).
var version, commit string

// Info is what the binary knows about itself.
type Info struct {
	Version  string `json:"version"`  // module version, or devel-<commit>
	Commit   string `json:"commit"`   // VCS revision, "" when unknown
	Time     string `json:"time"`     // commit time (RFC 3339), "" when unknown
	Modified bool   `json:"modified"` // built from a tree with local changes
	Go       string `json:"go"`       // toolchain, e.g. go1.26.8
	Platform string `json:"platform"` // GOOS/GOARCH
}

// Read returns the running binary's Info.
func Read() Info {
	info := Info{Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	mod := ""
	if ok {
		mod = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Commit = s.Value
			case "vcs.time":
				info.Time = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Commit == "" && commit != "" {
		info.Commit = strings.TrimSuffix(commit, "-dirty")
		info.Modified = strings.HasSuffix(commit, "-dirty")
	}
	switch {
	case version != "":
		info.Version = version
	case mod != "" && mod != "(devel)":
		info.Version = mod
	default:
		info.Version = "devel"
		if info.Commit != "" {
			info.Version += "-" + short(info.Commit)
			if info.Modified {
				info.Version += "-dirty"
			}
		}
	}
	return info
}

// Version is Read().Version, the string GET /v2 reports.
func Version() string { return Read().Version }

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// CommitLine renders the commit for humans: short hash, time, "modified".
func (i Info) CommitLine() string {
	if i.Commit == "" {
		return "unknown"
	}
	parts := []string{short(i.Commit)}
	if i.Time != "" {
		parts = append(parts, i.Time)
	}
	if i.Modified {
		parts = append(parts, "modified")
	}
	return strings.Join(parts, " ")
}
