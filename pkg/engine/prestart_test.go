package engine

import "testing"

func TestPrestartCallsTheKindsHeadStart(t *testing.T) {
	var got []string
	RegisterPrestart("test-prestart", func(m *Model, o Options) { got = append(got, m.Path) })
	t.Cleanup(func() {
		prestartMu.Lock()
		delete(prestarts, "test-prestart")
		prestartMu.Unlock()
	})
	Prestart("test-prestart", &Model{Path: "a"}, Options{})
	Prestart("no-such-kind", &Model{Path: "b"}, Options{})
	Prestart("test-prestart", nil, Options{})
	if len(got) != 1 || got[0] != "a" {
		t.Fatalf("head starts ran for %v, want [a]", got)
	}
}
