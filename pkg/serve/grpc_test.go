package serve

import (
	"context"
	"encoding/binary"
	"math"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

func dialGRPC(t testing.TB, addr string) tritonpb.GRPCInferenceServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return tritonpb.NewGRPCInferenceServiceClient(conn)
}

func float32sLE(t testing.TB, raw []byte) []float32 {
	t.Helper()
	if len(raw)%4 != 0 {
		t.Fatalf("%d raw bytes", len(raw))
	}
	v := make([]float32, len(raw)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return v
}

func TestGRPC(t *testing.T) {
	ts := startRepoServer(t, 8, 1000, Config{})
	ref := loadReference(t)
	c := dialGRPC(t, ts.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("health and metadata", func(t *testing.T) {
		if r, err := c.ServerLive(ctx, &tritonpb.ServerLiveRequest{}); err != nil || !r.Live {
			t.Fatalf("ServerLive %v %v", r, err)
		}
		if r, err := c.ServerReady(ctx, &tritonpb.ServerReadyRequest{}); err != nil || !r.Ready {
			t.Fatalf("ServerReady %v %v", r, err)
		}
		if r, err := c.ModelReady(ctx, &tritonpb.ModelReadyRequest{Name: "m3e"}); err != nil || !r.Ready {
			t.Fatalf("ModelReady %v %v", r, err)
		}
		if r, err := c.ModelReady(ctx, &tritonpb.ModelReadyRequest{Name: "nope"}); err != nil || r.Ready {
			t.Fatalf("ModelReady(nope) %v %v", r, err)
		}
		if r, err := c.ServerMetadata(ctx, &tritonpb.ServerMetadataRequest{}); err != nil || r.Name != serverName {
			t.Fatalf("ServerMetadata %v %v", r, err)
		}
		md, err := c.ModelMetadata(ctx, &tritonpb.ModelMetadataRequest{Name: "m3e"})
		if err != nil || md.Inputs[0].Name != "text" || md.Outputs[0].Shape[1] != tinyDim {
			t.Fatalf("ModelMetadata %v %v", md, err)
		}
		cfg, err := c.ModelConfig(ctx, &tritonpb.ModelConfigRequest{Name: "m3e"})
		if err != nil || cfg.Config.GetMaxBatchSize() != 8 {
			t.Fatalf("ModelConfig %v %v", cfg, err)
		}
		_, err = c.ModelMetadata(ctx, &tritonpb.ModelMetadataRequest{Name: "nope"})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("ModelMetadata(nope): %v, want NotFound", err)
		}
	})

	t.Run("ModelInfer with bytes_contents", func(t *testing.T) {
		r, err := c.ModelInfer(ctx, &tritonpb.ModelInferRequest{
			ModelName: "m3e", Id: "g1",
			Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{{
				Name: "text", Datatype: "BYTES", Shape: []int64{2, 1},
				Contents: &tritonpb.InferTensorContents{BytesContents: [][]byte{[]byte(ref[0].Text), []byte(ref[1].Text)}},
			}},
			Outputs: []*tritonpb.ModelInferRequest_InferRequestedOutputTensor{{Name: "embeddings"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if r.Id != "g1" || r.ModelVersion != "1" || len(r.RawOutputContents) != 1 || r.Outputs[0].Shape[0] != 2 {
			t.Fatalf("response %v", r)
		}
		v := float32sLE(t, r.RawOutputContents[0])
		assertClose(t, "grpc row 0", v[:tinyDim], ref[0].Embedding)
		assertClose(t, "grpc row 1", v[tinyDim:], ref[1].Embedding)
	})

	t.Run("ModelInfer with raw_input_contents", func(t *testing.T) {
		r, err := c.ModelInfer(ctx, &tritonpb.ModelInferRequest{
			ModelName:        "m3e",
			Inputs:           []*tritonpb.ModelInferRequest_InferInputTensor{{Name: "text", Datatype: "BYTES", Shape: []int64{1}}},
			RawInputContents: [][]byte{bytesTensor(ref[3].Text)},
		})
		if err != nil {
			t.Fatal(err)
		}
		assertClose(t, "grpc raw", float32sLE(t, r.RawOutputContents[0]), ref[3].Embedding)
	})

	t.Run("ModelInfer rejections", func(t *testing.T) {
		tests := []struct {
			name string
			req  *tritonpb.ModelInferRequest
			want codes.Code
		}{
			{"unknown model", &tritonpb.ModelInferRequest{ModelName: "nope"}, codes.NotFound},
			{"no inputs", &tritonpb.ModelInferRequest{ModelName: "m3e"}, codes.InvalidArgument},
			{"wrong datatype", &tritonpb.ModelInferRequest{ModelName: "m3e", Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{{
				Name: "text", Datatype: "INT32", Shape: []int64{1}, Contents: &tritonpb.InferTensorContents{IntContents: []int32{1}}}}}, codes.InvalidArgument},
			{"invalid UTF-8", &tritonpb.ModelInferRequest{ModelName: "m3e", Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{{
				Name: "text", Datatype: "BYTES", Shape: []int64{1}, Contents: &tritonpb.InferTensorContents{BytesContents: [][]byte{{0xff}}}}}}, codes.InvalidArgument},
			{"unknown output", &tritonpb.ModelInferRequest{ModelName: "m3e", Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{{
				Name: "text", Datatype: "BYTES", Shape: []int64{1}, Contents: &tritonpb.InferTensorContents{BytesContents: [][]byte{[]byte("x")}}}},
				Outputs: []*tritonpb.ModelInferRequest_InferRequestedOutputTensor{{Name: "pooler"}}}, codes.InvalidArgument},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, err := c.ModelInfer(ctx, tc.req)
				if status.Code(err) != tc.want {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
			})
		}
	})

	t.Run("stream infer", func(t *testing.T) {
		st, err := c.ModelStreamInfer(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"m3e", "nope"} {
			err := st.Send(&tritonpb.ModelInferRequest{ModelName: name, Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{{
				Name: "text", Datatype: "BYTES", Shape: []int64{1}, Contents: &tritonpb.InferTensorContents{BytesContents: [][]byte{[]byte(ref[0].Text)}}}}})
			if err != nil {
				t.Fatal(err)
			}
			r, err := st.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if (name == "m3e") != (r.ErrorMessage == "") {
				t.Fatalf("%s: %v", name, r)
			}
		}
		_ = st.CloseSend()
	})

	t.Run("statistics and repository", func(t *testing.T) {
		st, err := c.ModelStatistics(ctx, &tritonpb.ModelStatisticsRequest{Name: "m3e"})
		if err != nil || len(st.ModelStats) != 1 || st.ModelStats[0].InferenceStats.GetSuccess().GetCount() == 0 {
			t.Fatalf("ModelStatistics %v %v", st, err)
		}
		ix, err := c.RepositoryIndex(ctx, &tritonpb.RepositoryIndexRequest{})
		if err != nil || len(ix.Models) != 1 || ix.Models[0].State != "READY" {
			t.Fatalf("RepositoryIndex %v %v", ix, err)
		}
		// Control mode none: load and unload are refused, as Triton does.
		if _, err := c.RepositoryModelUnload(ctx, &tritonpb.RepositoryModelUnloadRequest{ModelName: "m3e"}); err == nil {
			t.Error("unload in control mode none succeeded")
		}
		if _, err := c.RepositoryModelLoad(ctx, &tritonpb.RepositoryModelLoadRequest{ModelName: "m3e"}); err == nil {
			t.Error("load in control mode none succeeded")
		}
	})
}

func TestGRPCAPIKey(t *testing.T) {
	ts := startRepoServer(t, 8, 1000, Config{APIKey: "s3cret"})
	c := dialGRPC(t, ts.GRPCAddr())
	ctx := context.Background()
	if _, err := c.ServerLive(ctx, &tritonpb.ServerLiveRequest{}); err != nil {
		t.Fatalf("health needs no key: %v", err)
	}
	if _, err := c.ServerMetadata(ctx, &tritonpb.ServerMetadataRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no key: %v", err)
	}
	bad := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer wrong")
	if _, err := c.ServerMetadata(bad, &tritonpb.ServerMetadataRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong key: %v", err)
	}
	good := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer s3cret")
	if _, err := c.ServerMetadata(good, &tritonpb.ServerMetadataRequest{}); err != nil {
		t.Fatalf("right key: %v", err)
	}
}

// FuzzDecodeGRPCInfer feeds arbitrary protobuf bytes through the gRPC
// decoder and the shared validator: reject or accept, never panic.
func FuzzDecodeGRPCInfer(f *testing.F) {
	seed, _ := proto.Marshal(&tritonpb.ModelInferRequest{
		ModelName:        "m3e",
		Inputs:           []*tritonpb.ModelInferRequest_InferInputTensor{{Name: "text", Datatype: "BYTES", Shape: []int64{1, 1}}},
		RawInputContents: [][]byte{bytesTensor("酒店很好")},
	})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req tritonpb.ModelInferRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		call, err := decodeGRPCInfer(&req)
		if err != nil {
			return
		}
		if plan, err := validate(call, testSpec); err == nil && (len(plan.texts) == 0 || len(plan.texts) > testSpec.maxBatchSize) {
			t.Fatalf("accepted %d texts", len(plan.texts))
		}
	})
}
