package cuda

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"
)

func TestReadConfig(t *testing.T) {
	for _, c := range []struct {
		name, json string
		want       bertConfig
		err        string
	}{
		{"m3e-base", `{"model_type":"bert","hidden_size":768,"num_hidden_layers":12,"num_attention_heads":12,"intermediate_size":3072,"vocab_size":21128,"max_position_embeddings":512,"layer_norm_eps":1e-12,"hidden_act":"gelu"}`,
			bertConfig{Layers: 12, Hidden: 768, Heads: 12, HeadDim: 64, Intermediate: 3072, Vocab: 21128, MaxPos: 512, Eps: 1e-12}, ""},
		{"defaults for eps and positions", `{"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":128,"vocab_size":10}`,
			bertConfig{Layers: 2, Hidden: 64, Heads: 4, HeadDim: 16, Intermediate: 128, Vocab: 10, MaxPos: 512, Eps: 1e-12}, ""},
		{"not bert", `{"model_type":"xlm-roberta","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":128}`, bertConfig{}, "BERT encoders only"},
		{"other activation", `{"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":128,"hidden_act":"relu"}`, bertConfig{}, "exact gelu only"},
		{"heads do not divide", `{"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":5,"intermediate_size":128}`, bertConfig{}, "incomplete BERT config"},
		{"empty", `{}`, bertConfig{}, "incomplete BERT config"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "config.json")
			if err := os.WriteFile(p, []byte(c.json), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := readConfig(p)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestKernelSourceIsEmbedded(t *testing.T) {
	for _, k := range []string{"embed_ln", "add_ln", "ln_res", "gelu", "pool", "attn_simple", "attn_mma"} {
		if !strings.Contains(kernelSource, `void `+k+`(`) && !strings.Contains(kernelSource, k+`(`) {
			t.Errorf("kernel %s missing from kernels.cu", k)
		}
	}
}

func TestAttnHeadsPerBlock(t *testing.T) {
	t.Setenv("M3ECTL_ATTN_HPB", "")
	h100 := deviceInfo{SMs: 132}
	for _, c := range []struct {
		name        string
		heads       int
		mma         bool
		bk          bucket
		want, queue int // static grid (M3ECTL_ATTN_QUEUE=0), work queue
	}{
		{"64 x 128 tokens: three heads per block still fill a wave", 12, true, bucket{T: 8192, N: 64}, 3, 2},
		{"512 short sentences", 12, true, bucket{T: 9216, N: 512}, 3, 3},
		{"one sentence keeps every head in parallel", 12, true, bucket{T: 16, N: 1}, 1, 1},
		{"16 k tokens", 12, true, bucket{T: 16384, N: 128}, 6, 4},
		{"16 k tokens, 16 heads", 16, true, bucket{T: 16384, N: 128}, 8, 4},
		{"a divisor of the heads only", 7, true, bucket{T: 65536, N: 128}, 7, 7},
		{"simple kernel", 12, false, bucket{T: 8192, N: 64}, 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := &Engine{cfg: bertConfig{Heads: c.heads}, dev: h100, attnMMA: c.mma}
			t.Setenv("M3ECTL_ATTN_QUEUE", "0")
			if got := e.attnHeadsPerBlock(c.bk); got != c.want {
				t.Fatalf("static: attnHeadsPerBlock(%+v) = %d, want %d", c.bk, got, c.want)
			}
			t.Setenv("M3ECTL_ATTN_QUEUE", "")
			if got := e.attnHeadsPerBlock(c.bk); got != c.queue {
				t.Fatalf("queue: attnHeadsPerBlock(%+v) = %d, want %d", c.bk, got, c.queue)
			}
		})
	}
	t.Setenv("M3ECTL_ATTN_HPB", "4")
	if got := (&Engine{cfg: bertConfig{Heads: 12}, dev: h100, attnMMA: true}).attnHeadsPerBlock(bucket{T: 16, N: 1}); got != 4 {
		t.Fatalf("override: got %d, want 4", got)
	}
	t.Setenv("M3ECTL_ATTN_HPB", "5") // not a divisor of 12: ignored
	if got := (&Engine{cfg: bertConfig{Heads: 12}, dev: h100, attnMMA: true}).attnHeadsPerBlock(bucket{T: 16, N: 1}); got != 1 {
		t.Fatalf("bad override: got %d, want 1", got)
	}
}

// TestAttnGrid: the work queue's grid is one wave of blocks (or fewer when
// the bucket has fewer items), the static grid every (head group, tile);
// buckets under attnQueueTokens keep the static grid.
func TestAttnGrid(t *testing.T) {
	e := &Engine{cfg: bertConfig{Heads: 16}, dev: deviceInfo{SMs: 132}, attnMMA: true}
	e.buf.queue = 0x1000
	for _, c := range []struct {
		bk    bucket
		hpb   int
		queue string
		grid  [3]int
		q     devPtr
	}{
		{bucket{T: 16384, N: 16384}, 2, "", [3]int{264, 1, 1}, 0x1000},
		{bucket{T: 4096, N: 4096}, 1, "", [3]int{264, 1, 1}, 0x1000},
		{bucket{T: 16, N: 16}, 1, "", [3]int{16, 4, 1}, 0},
		{bucket{T: 16384, N: 16384}, 8, "0", [3]int{2, 385, 1}, 0},
	} {
		t.Setenv("M3ECTL_ATTN_QUEUE", c.queue)
		if g, q := e.attnGrid(c.bk, c.hpb); g != c.grid || q != c.q {
			t.Fatalf("attnGrid(%+v, %d) with queue %q = %v %#x, want %v %#x", c.bk, c.hpb, c.queue, g, q, c.grid, c.q)
		}
	}
}

// TestAttnSmemBytes pins the host's copy of ATTN_SMEM (kernels.cu): K and V
// 2 x 64 x 72 halves each, Q 2 x 128 x 72 halves, 512 key rows.
func TestAttnSmemBytes(t *testing.T) {
	for _, c := range []struct{ headDim, maxPos, want int }{
		{64, 512, 2*(2*64*72*2) + 2*128*72*2 + 4*512},
		{16, 512, 2*(2*64*24*2) + 2*128*24*2 + 4*512},
		{128, 514, 2*(2*32*136*2) + 2*128*136*2 + 4*576},
	} {
		if got := attnSmemBytes(c.headDim, c.maxPos, attnChunkKeys(c.headDim)); got != c.want {
			t.Errorf("attnSmemBytes(%d, %d) = %d, want %d", c.headDim, c.maxPos, got, c.want)
		}
	}
	if got := attnSmemBytes(64, 512, attnChunkKeys(64)); got > 227*1024/2 {
		t.Errorf("m3e-base attention needs %d bytes: two blocks no longer fit an SM", got)
	}
}

// TestLaunchConfigLayout pins the Go mirrors of CUlaunchConfig and
// CUlaunchAttribute (cuda.h, x86-64 and arm64 alike).
func TestLaunchConfigLayout(t *testing.T) {
	var c launchConfig
	var a launchAttr
	for _, x := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof CUlaunchConfig", unsafe.Sizeof(c), 56},
		{"offsetof hStream", unsafe.Offsetof(c.stream), 32},
		{"offsetof attrs", unsafe.Offsetof(c.attrs), 40},
		{"offsetof numAttrs", unsafe.Offsetof(c.nattrs), 48},
		{"sizeof CUlaunchAttribute", unsafe.Sizeof(a), 72},
		{"offsetof value", unsafe.Offsetof(a.val), 8},
	} {
		if x.got != x.want {
			t.Errorf("%s = %d, want %d", x.name, x.got, x.want)
		}
	}
}
