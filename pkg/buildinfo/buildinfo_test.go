package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	i := Read()
	if i.Go != runtime.Version() || i.Platform == "" || i.Version == "" {
		t.Fatalf("%+v", i)
	}
	version = "v1.2.3"
	defer func() { version = "" }()
	if v := Version(); v != "v1.2.3" {
		t.Fatalf("ldflags version not used: %q", v)
	}
	if got := (Info{Commit: "0123456789abcdef", Modified: true}).CommitLine(); !strings.HasPrefix(got, "0123456789ab") || !strings.HasSuffix(got, "modified") {
		t.Fatalf("CommitLine %q", got)
	}
}
