package serve

import (
	"context"
	"errors"
	"io"
	"unsafe"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// grpcService implements inference.GRPCInferenceService (KServe v2 gRPC
// with Triton's extensions) on the same repository and validation as the
// HTTP routes. Shared-memory and trace RPCs stay Unimplemented.
type grpcService struct {
	tritonpb.UnimplementedGRPCInferenceServiceServer
	s *Server
}

func (g *grpcService) ServerLive(context.Context, *tritonpb.ServerLiveRequest) (*tritonpb.ServerLiveResponse, error) {
	return &tritonpb.ServerLiveResponse{Live: true}, nil
}

func (g *grpcService) ServerReady(context.Context, *tritonpb.ServerReadyRequest) (*tritonpb.ServerReadyResponse, error) {
	return &tritonpb.ServerReadyResponse{Ready: g.s.ready()}, nil
}

func (g *grpcService) ModelReady(_ context.Context, req *tritonpb.ModelReadyRequest) (*tritonpb.ModelReadyResponse, error) {
	_, err := g.s.repo.Model(req.GetName(), req.GetVersion())
	return &tritonpb.ModelReadyResponse{Ready: err == nil}, nil
}

func (g *grpcService) ServerMetadata(context.Context, *tritonpb.ServerMetadataRequest) (*tritonpb.ServerMetadataResponse, error) {
	return &tritonpb.ServerMetadataResponse{Name: serverName, Version: g.s.cfg.Version, Extensions: serverExtensions}, nil
}

func (g *grpcService) ModelMetadata(_ context.Context, req *tritonpb.ModelMetadataRequest) (*tritonpb.ModelMetadataResponse, error) {
	m, err := g.s.repo.Model(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, grpcError(err)
	}
	md := g.s.metadataOf(m)
	tensors := func(ts []tensorMetadata) []*tritonpb.ModelMetadataResponse_TensorMetadata {
		out := make([]*tritonpb.ModelMetadataResponse_TensorMetadata, 0, len(ts))
		for _, t := range ts {
			out = append(out, &tritonpb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape})
		}
		return out
	}
	return &tritonpb.ModelMetadataResponse{
		Name: md.Name, Versions: md.Versions, Platform: md.Platform,
		Inputs: tensors(md.Inputs), Outputs: tensors(md.Outputs),
	}, nil
}

func (g *grpcService) ModelConfig(_ context.Context, req *tritonpb.ModelConfigRequest) (*tritonpb.ModelConfigResponse, error) {
	m, err := g.s.repo.Model(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, grpcError(err)
	}
	return &tritonpb.ModelConfigResponse{Config: m.Config()}, nil
}

func (g *grpcService) ModelStatistics(_ context.Context, req *tritonpb.ModelStatisticsRequest) (*tritonpb.ModelStatisticsResponse, error) {
	sts, err := g.s.statistics(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, grpcError(err)
	}
	return &tritonpb.ModelStatisticsResponse{ModelStats: sts}, nil
}

func (g *grpcService) RepositoryIndex(_ context.Context, req *tritonpb.RepositoryIndexRequest) (*tritonpb.RepositoryIndexResponse, error) {
	entries := g.s.repo.Index(req.GetReady())
	out := &tritonpb.RepositoryIndexResponse{Models: make([]*tritonpb.RepositoryIndexResponse_ModelIndex, 0, len(entries))}
	for _, e := range entries {
		out.Models = append(out.Models, &tritonpb.RepositoryIndexResponse_ModelIndex{Name: e.Name, Version: e.Version, State: e.State, Reason: e.Reason})
	}
	return out, nil
}

func (g *grpcService) RepositoryModelLoad(ctx context.Context, req *tritonpb.RepositoryModelLoadRequest) (*tritonpb.RepositoryModelLoadResponse, error) {
	if err := g.s.load(ctx, req.GetModelName(), grpcLoadParams(req.GetParameters())); err != nil {
		return nil, grpcError(err)
	}
	return &tritonpb.RepositoryModelLoadResponse{}, nil
}

func (g *grpcService) RepositoryModelUnload(ctx context.Context, req *tritonpb.RepositoryModelUnloadRequest) (*tritonpb.RepositoryModelUnloadResponse, error) {
	if err := g.s.repo.Unload(ctx, req.GetModelName()); err != nil {
		return nil, grpcError(err)
	}
	return &tritonpb.RepositoryModelUnloadResponse{}, nil
}

func (g *grpcService) ModelInfer(ctx context.Context, req *tritonpb.ModelInferRequest) (*tritonpb.ModelInferResponse, error) {
	resp, err := g.modelInfer(ctx, req)
	return resp, grpcError(err)
}

// ModelStreamInfer answers each request of the stream in turn; a failed
// request is reported in its response's error_message and the stream goes on,
// as Triton does.
func (g *grpcService) ModelStreamInfer(stream tritonpb.GRPCInferenceService_ModelStreamInferServer) error {
	for {
		// Each message passes the receive gate, as ModelInfer's does.
		req := new(tritonpb.ModelInferRequest)
		err := g.s.receiveGRPC(stream.Context(), stream, req)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return grpcError(err)
		}
		out := &tritonpb.ModelStreamInferResponse{}
		var resp *tritonpb.ModelInferResponse
		ierr := g.s.grpcTracked(stream.Context(), func(ctx context.Context) error {
			var err error
			resp, err = g.modelInfer(ctx, req)
			return err
		})
		if ierr != nil {
			_, msg, _ := classify(ierr)
			out.ErrorMessage = msg
		} else {
			out.InferResponse = resp
		}
		if err := stream.Send(out); err != nil {
			return err
		}
	}
}

func (g *grpcService) modelInfer(ctx context.Context, req *tritonpb.ModelInferRequest) (*tritonpb.ModelInferResponse, error) {
	release, err := g.s.codec.admit(req)
	defer release()
	if err != nil {
		return nil, err
	}
	m, err := g.s.repo.Model(req.GetModelName(), req.GetModelVersion())
	if err != nil {
		return nil, err
	}
	call, err := decodeGRPCInfer(req)
	if err != nil {
		return nil, err
	}
	ans, err := g.s.infer(ctx, m, call, false)
	if err != nil {
		return nil, err
	}
	// As Triton does, FP32 results go back in raw_output_contents
	// (little-endian), not in the typed contents field.
	return &tritonpb.ModelInferResponse{
		ModelName: ans.model, ModelVersion: ans.version, Id: ans.id,
		Outputs: []*tritonpb.ModelInferResponse_InferOutputTensor{{
			Name: ans.output, Datatype: "FP32", Shape: []int64{int64(ans.rows), int64(ans.dim)},
		}},
		RawOutputContents: [][]byte{appendFloat32LE(make([]byte, 0, 4*len(ans.embeddings)), ans.embeddings)},
	}, nil
}

// decodeGRPCInfer turns a ModelInferRequest into an inferCall. BYTES inputs
// come either in contents.bytes_contents or, for all inputs at once, in
// raw_input_contents as 4-byte length-prefixed elements.
func decodeGRPCInfer(req *tritonpb.ModelInferRequest) (*inferCall, error) {
	call := &inferCall{id: req.GetId(), inputs: make([]callInput, 0, len(req.GetInputs()))}
	for name, p := range req.GetParameters() {
		if err := applyRequestParameter(call, name, grpcParameter(name, p)); err != nil {
			return nil, err
		}
	}
	raw := req.GetRawInputContents()
	if len(raw) > 0 && len(raw) != len(req.GetInputs()) {
		return nil, invalidf("raw_input_contents has %d entries for %d inputs; when used it must hold every input", len(raw), len(req.GetInputs()))
	}
	for i, t := range req.GetInputs() {
		in := callInput{name: t.GetName(), datatype: t.GetDatatype(), shape: t.GetShape()}
		if in.name == "" {
			return nil, invalidf("an input has no name")
		}
		contents := t.GetContents()
		switch {
		case len(raw) > 0 && contents != nil:
			return nil, invalidf("input %q has contents although raw_input_contents is used", in.name)
		case len(raw) > 0:
			if in.datatype == "BYTES" {
				texts, err := splitBytesElements(in.name, raw[i], nil)
				if err != nil {
					return nil, err
				}
				in.texts = texts
			}
		case in.datatype == "BYTES":
			if contents == nil {
				return nil, invalidf("input %q has no data (contents.bytes_contents or raw_input_contents)", in.name)
			}
			// The texts alias the message's own bytes (which nothing
			// modifies, and which live as long as a text does) rather than
			// copying them: one copy less of a 60 MB message.
			in.texts = make([]string, len(contents.GetBytesContents()))
			for j, b := range contents.GetBytesContents() {
				in.texts[j] = unsafe.String(unsafe.SliceData(b), len(b))
			}
		}
		call.inputs = append(call.inputs, in)
	}
	for _, o := range req.GetOutputs() {
		out := callOutput{name: o.GetName()}
		for name, p := range o.GetParameters() {
			if name == "binary_data" {
				continue // HTTP-only; gRPC results are always binary
			}
			if err := applyOutputParameter(&out, name, grpcParameter(name, p)); err != nil {
				return nil, err
			}
		}
		call.outputs = append(call.outputs, out)
	}
	return call, nil
}

// grpcParameter reads an InferParameter's oneof as a parameter.
func grpcParameter(name string, p *tritonpb.InferParameter) parameter {
	out := parameter{source: name}
	switch v := p.GetParameterChoice().(type) {
	case *tritonpb.InferParameter_BoolParam:
		out.boolV = &v.BoolParam
	case *tritonpb.InferParameter_Int64Param:
		f := float64(v.Int64Param)
		out.numV = &f
	case *tritonpb.InferParameter_Uint64Param:
		f := float64(v.Uint64Param)
		out.numV = &f
	case *tritonpb.InferParameter_DoubleParam:
		out.numV = &v.DoubleParam
	case *tritonpb.InferParameter_StringParam:
		out.strV = &v.StringParam
	}
	return out
}
