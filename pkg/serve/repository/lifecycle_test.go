package repository

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExplicitLoadUnloadReload(t *testing.T) {
	needORT(t)
	root := t.TempDir()
	dir := writeModel(t, root, "tiny", "max_batch_size: 8\ndynamic_batching {}", "1")
	writeModel(t, root, "other", "", "1")
	m := startManager(t, Config{Root: root, ControlMode: ModeExplicit, StartupModels: []string{"other"}})
	ctx := context.Background()

	if _, err := m.Model("tiny", ""); kindOf(err) != Unavailable {
		t.Fatalf("before Load: %v, want Unavailable", err)
	}
	if e, _ := entryFor(m.Index(false), "tiny", ""); e.Reason != "unloaded" {
		t.Errorf("index before load: %+v", m.Index(false))
	}
	if err := m.Load(ctx, "tiny"); err != nil {
		t.Fatal(err)
	}
	first, err := m.Model("tiny", "1")
	if err != nil {
		t.Fatal(err)
	}
	checkReference(t, first, 4)

	// Unchanged: Load is a no-op and the same instance keeps serving.
	if err := m.Load(ctx, "tiny"); err != nil {
		t.Fatal(err)
	}
	if again, _ := m.Model("tiny", "1"); again != first {
		t.Error("Load of an unchanged model reloaded it")
	}

	// Changed config: Load reloads it.
	writeFile(t, filepath.Join(dir, "config.pbtxt"), "max_batch_size: 16\ndynamic_batching {}")
	if err := m.Load(ctx, "tiny"); err != nil {
		t.Fatal(err)
	}
	second, err := m.Model("tiny", "1")
	if err != nil {
		t.Fatal(err)
	}
	if second == first || second.MaxBatchSize() != 16 {
		t.Errorf("after a config change: same instance %v, max_batch_size %d", second == first, second.MaxBatchSize())
	}
	if _, err := first.Infer(ctx, []string{"old"}); kindOf(err) != Unavailable {
		t.Errorf("the replaced instance still answers: %v", err)
	}

	// A new version folder is picked up by Load (latest policy).
	writeModel(t, root, "tiny", "", "2")
	if err := m.Load(ctx, "tiny"); err != nil {
		t.Fatal(err)
	}
	if md, err := m.Model("tiny", ""); err != nil || md.Version() != "2" {
		t.Errorf("after adding version 2: %v %v", md, err)
	}

	if err := m.Unload(ctx, "tiny"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Model("tiny", ""); kindOf(err) != Unavailable {
		t.Errorf("after Unload: %v, want Unavailable", err)
	}
	if _, err := m.Model("other", ""); err != nil {
		t.Errorf("unloading tiny touched other: %v", err)
	}
	if err := m.Load(ctx, "nope"); kindOf(err) != NotFound {
		t.Errorf("Load of a missing model: %v, want NotFound", err)
	}
}

func TestUnloadLetsInFlightRequestsFinish(t *testing.T) {
	needORT(t)
	root := t.TempDir()
	writeModel(t, root, "tiny", "max_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 200000 }", "1")
	m := startManager(t, Config{Root: root, ControlMode: ModeExplicit, StartupModels: []string{"tiny"}})
	md, err := m.Model("tiny", "")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := md.Infer(context.Background(), []string{"in flight"})
		done <- err
	}()
	// The request waits in the 200 ms batching window; unload only once it is inside.
	waitFor(t, "the request queued", func() bool { return md.sched.Pending()+len(done) == 1 })
	if err := m.Unload(context.Background(), "tiny"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("the in-flight request failed: %v", err)
	}
}

func TestControlModeGuards(t *testing.T) {
	needORT(t)
	root := t.TempDir()
	writeModel(t, root, "tiny", "", "1")
	m := startManager(t, Config{Root: root}) // mode none
	if err := m.Load(context.Background(), "tiny"); kindOf(err) != InvalidInput || !strings.Contains(err.Error(), "explicit") {
		t.Errorf("Load in mode none: %v", err)
	}
	if err := m.Unload(context.Background(), "tiny"); kindOf(err) != InvalidInput {
		t.Errorf("Unload in mode none: %v", err)
	}
	if _, err := New(Config{Root: root, ControlMode: "sometimes"}); err == nil {
		t.Error("New accepted an unknown control mode")
	}
	m2, err := New(Config{Root: root, ControlMode: ModeExplicit, StartupModels: []string{"missing"}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Start with a missing --load-model: %v", err)
	}
}

func TestPollMode(t *testing.T) {
	needORT(t)
	root := t.TempDir()
	writeModel(t, root, "a", "", "1")
	m := startManager(t, Config{Root: root, ControlMode: ModePoll, PollInterval: 30 * time.Millisecond})
	if _, err := m.Model("a", ""); err != nil {
		t.Fatal(err)
	}
	writeModel(t, root, "b", "max_batch_size: 4", "1")
	waitFor(t, "new model b", func() bool { _, err := m.Model("b", ""); return err == nil })

	writeFile(t, filepath.Join(root, "b", "config.pbtxt"), "max_batch_size: 2")
	waitFor(t, "b reloaded", func() bool { md, err := m.Model("b", ""); return err == nil && md.MaxBatchSize() == 2 })

	if err := os.RemoveAll(filepath.Join(root, "a")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a removed", func() bool { _, err := m.Model("a", ""); return kindOf(err) == NotFound })
	if _, ok := entryFor(m.Index(false), "a", ""); ok {
		t.Error("removed model still in the index")
	}

	// A broken config keeps the loaded version serving.
	writeFile(t, filepath.Join(root, "b", "config.pbtxt"), "max_batch_size: -3")
	time.Sleep(150 * time.Millisecond)
	if md, err := m.Model("b", ""); err != nil || md.MaxBatchSize() != 2 {
		t.Errorf("after a broken reload: %v (max_batch_size %v)", err, md)
	}
}

func TestCloseDrains(t *testing.T) {
	needORT(t)
	root := t.TempDir()
	writeModel(t, root, "tiny", "max_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 100000 }", "1")
	m, err := New(Config{Root: root, Logger: quietLogger(), Truncate: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	md, err := m.Model("tiny", "")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			_, err := md.Infer(context.Background(), []string{"drain me"})
			errs <- err
		}()
	}
	waitFor(t, "four requests queued", func() bool { return md.sched.Pending()+len(errs) == 4 })
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Errorf("request failed during drain: %v", err)
		}
	}
	if m.Ready() {
		t.Error("ready after Close")
	}
}
