package serve

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// TestUnloadDrainOutlivesItsCaller: requests wait in the queue (1 s delay)
// when an unload comes from a client that gives up after 100 ms (curl -m).
// The drain belongs to the server: every accepted request is answered 200,
// and the model ends unloaded. The same over gRPC, and a load whose caller
// goes away still completes.
func TestUnloadDrainOutlivesItsCaller(t *testing.T) {
	for _, proto := range []string{"http", "grpc"} {
		t.Run(proto, func(t *testing.T) {
			root := t.TempDir()
			writeModel(t, root, "m3e", "1", modelConfig("m3e", 64, 1_000_000))
			ts := startServer(t, serverOpts{repo: repository.Config{Root: root, ControlMode: "explicit", StartupModels: []string{"m3e"}}})
			gc := dialGRPC(t, ts.GRPCAddr())
			const clients = 4
			var ok atomic.Int32
			// Long texts, so that draining the queue outlasts the caller's 100 ms.
			texts := make([]string, 8)
			for i := range texts {
				texts[i] = strings.Repeat("卸载前的请求", 90)
			}
			body := inferBody(texts...)
			done := make(chan struct{})
			go func() {
				defer close(done)
				parallel(clients, func(int) {
					if code, b := ts.post(t, "/v2/models/m3e/infer", body); code != http.StatusOK {
						t.Errorf("in-flight request: %d %s", code, b)
						return
					}
					ok.Add(1)
				})
			}()
			waitQueued(t, ts, clients)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			callerGaveUp := func(what string, err error) {
				if err == nil {
					t.Fatalf("%s returned before the drain it waits for", what)
				}
			}
			switch proto {
			case "http":
				req, _ := http.NewRequestWithContext(ctx, "POST", ts.url+"/v2/repository/models/m3e/unload", nil)
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
				}
				callerGaveUp("unload", err)
			case "grpc":
				_, err := gc.RepositoryModelUnload(ctx, &tritonpb.RepositoryModelUnloadRequest{ModelName: "m3e"})
				callerGaveUp("unload", err)
			}
			<-done
			if ok.Load() != clients {
				t.Fatalf("%d of %d requests accepted before the unload answered 200", ok.Load(), clients)
			}
			waitState(t, ts, "m3e", "UNAVAILABLE")

			// A load whose caller disconnects at once completes.
			ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel2()
			if proto == "http" {
				req, _ := http.NewRequestWithContext(ctx2, "POST", ts.url+"/v2/repository/models/m3e/load", nil)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			} else {
				_, _ = gc.RepositoryModelLoad(ctx2, &tritonpb.RepositoryModelLoadRequest{ModelName: "m3e"})
			}
			waitState(t, ts, "m3e", "READY")
		})
	}
}

// waitState waits until the repository index shows model in state.
func waitState(t *testing.T, ts *testServer, model, state string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, e := range ts.repo.Index(false) {
			if e.Name == model && e.State == state {
				return
			}
		}
	}
	t.Fatalf("model %s never reached %s: %+v", model, state, ts.repo.Index(false))
}
