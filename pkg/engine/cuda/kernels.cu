// m3ectl CUDA kernels for BERT encoders, compiled at run time by NVRTC.
// The host defines HIDDEN, HEAD_DIM, MAXPOS, LN_THREADS and USE_FP16.
// Activations are act_t (fp16 or fp32); LayerNorm parameters and all
// reductions are fp32. Batches are packed: row r owns tokens
// offsets[r] .. offsets[r+1]-1, so no kernel spends work on padding.

typedef unsigned short half_t;
typedef unsigned int u32;

__device__ __forceinline__ float h2f(half_t h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ half_t f2h(float f) { half_t h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
// pack2 puts lo in the low 16 bits, as a half2 in memory order.
__device__ __forceinline__ u32 pack2(float lo, float hi) { u32 r; asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo)); return r; }

#if USE_FP16
typedef half_t act_t;
__device__ __forceinline__ float ldf(const act_t* p) { return h2f(*p); }
__device__ __forceinline__ void stf(act_t* p, float v) { *p = f2h(v); }
#else
typedef float act_t;
__device__ __forceinline__ float ldf(const act_t* p) { return *p; }
__device__ __forceinline__ void stf(act_t* p, float v) { *p = v; }
#endif

// LN_WARP (fp16, HIDDEN a multiple of 8): one warp per token, 8 contiguous
// halves per 16-byte access, reductions by shuffles only; 8 tokens a block.
// Otherwise one block of LN_THREADS per token.
#if USE_FP16 && (HIDDEN % 8 == 0)
#define LN_WARP 1
#define CH (HIDDEN / 8)
#define CPL ((CH + 31) / 32)
#define VPT (CPL * 8)
#else
#define LN_WARP 0
#define VPT ((HIDDEN + LN_THREADS - 1) / LN_THREADS)
#endif

// pdlWait: a kernel launched with programmatic stream serialization
// (USE_PDL, launcher.launchDep) may start while the kernel before it on the
// stream drains; it waits here, before reading anything that kernel wrote.
// Launched without it, the wait returns at once.
__device__ __forceinline__ void pdlWait() {
#if defined(USE_PDL) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

struct __align__(16) u32x4 { u32 x, y, z, w; };
struct __align__(16) f32x4 { float x, y, z, w; };

__device__ __forceinline__ void load8(const half_t* p, float* x) {
  u32x4 v = *reinterpret_cast<const u32x4*>(p);
  u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; i++) { x[2 * i] = h2f((half_t)(w[i] & 0xffff)); x[2 * i + 1] = h2f((half_t)(w[i] >> 16)); }
}
__device__ __forceinline__ void store8(half_t* p, const float* x) {
  u32x4 v;
  v.x = pack2(x[0], x[1]); v.y = pack2(x[2], x[3]); v.z = pack2(x[4], x[5]); v.w = pack2(x[6], x[7]);
  *reinterpret_cast<u32x4*>(p) = v;
}

__device__ __forceinline__ float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
  return v;
}

// blockSum reduces v over the block; red must hold 32 floats. blockDim.x is
// a multiple of 32.
__device__ __forceinline__ float blockSum(float v, float* red) {
  v = warpSum(v);
  int w = threadIdx.x >> 5, l = threadIdx.x & 31;
  __syncthreads();
  if (l == 0) red[w] = v;
  __syncthreads();
  float s = 0.f;
  int nw = (blockDim.x + 31) >> 5;
  for (int i = 0; i < nw; i++) s += red[i];
  return s;
}

#if LN_WARP
// warpLayerNorm normalises the token whose chunks (lane + 32i) this warp holds.
__device__ __forceinline__ void warpLayerNorm(float* x, act_t* __restrict__ out, const float* __restrict__ gamma, const float* __restrict__ beta, float eps) {
  int lane = threadIdx.x & 31;
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < CPL; i++)
    if (lane + 32 * i < CH)
#pragma unroll
      for (int k = 0; k < 8; k++) s += x[i * 8 + k];
  float mean = warpSum(s) * (1.0f / HIDDEN);
  float v = 0.f;
#pragma unroll
  for (int i = 0; i < CPL; i++)
    if (lane + 32 * i < CH)
#pragma unroll
      for (int k = 0; k < 8; k++) { float d = x[i * 8 + k] - mean; v += d * d; }
  float rstd = rsqrtf(warpSum(v) * (1.0f / HIDDEN) + eps);
#pragma unroll
  for (int i = 0; i < CPL; i++) {
    int c = lane + 32 * i;
    if (c < CH) {
      float y[8];
      // gamma and beta as four 16-byte loads, not sixteen 4-byte ones: L1
      // traffic, not DRAM, bounded the first version (ncu: L1 83%, DRAM 21%).
      const f32x4* g4 = reinterpret_cast<const f32x4*>(gamma + c * 8);
      const f32x4* b4 = reinterpret_cast<const f32x4*>(beta + c * 8);
      f32x4 ga = g4[0], gb = g4[1], ba = b4[0], bb = b4[1];
      float gv[8] = {ga.x, ga.y, ga.z, ga.w, gb.x, gb.y, gb.z, gb.w};
      float bv[8] = {ba.x, ba.y, ba.z, ba.w, bb.x, bb.y, bb.z, bb.w};
#pragma unroll
      for (int k = 0; k < 8; k++) y[k] = (x[i * 8 + k] - mean) * rstd * gv[k] + bv[k];
      store8(out + c * 8, y);
    }
  }
}
#else
// layerNormStore normalises the VPT values x each thread holds and stores them.
__device__ __forceinline__ void layerNormStore(float* x, act_t* out, const float* gamma, const float* beta, float eps, float* red) {
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < VPT; i++) { int j = threadIdx.x + i * LN_THREADS; if (j < HIDDEN) s += x[i]; }
  float mean = blockSum(s, red) * (1.0f / HIDDEN);
  float v = 0.f;
#pragma unroll
  for (int i = 0; i < VPT; i++) { int j = threadIdx.x + i * LN_THREADS; if (j < HIDDEN) { float d = x[i] - mean; v += d * d; } }
  float rstd = rsqrtf(blockSum(v, red) * (1.0f / HIDDEN) + eps);
#pragma unroll
  for (int i = 0; i < VPT; i++) {
    int j = threadIdx.x + i * LN_THREADS;
    if (j < HIDDEN) stf(out + j, (x[i] - mean) * rstd * gamma[j] + beta[j]);
  }
}
#endif

// embed_ln: out[t] = LayerNorm(word[ids[t]] + pos[pos[t]] + type0).
extern "C" __global__ void embed_ln(act_t* out, const int* ids, const int* pos,
    const act_t* word, const act_t* posEmb, const act_t* type0, const float* gamma, const float* beta, float eps, int ntok) {
#if LN_WARP
  int t = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (t >= ntok) return;
  const act_t* w = word + (size_t)ids[t] * HIDDEN;
  const act_t* p = posEmb + (size_t)pos[t] * HIDDEN;
  float x[VPT];
#pragma unroll
  for (int i = 0; i < CPL; i++) {
    int c = lane + 32 * i;
    if (c < CH) {
      float y[8], z[8];
      load8(w + c * 8, x + i * 8); load8(p + c * 8, y); load8(type0 + c * 8, z);
#pragma unroll
      for (int k = 0; k < 8; k++) x[i * 8 + k] += y[k] + z[k];
    }
  }
  warpLayerNorm(x, out + (size_t)t * HIDDEN, gamma, beta, eps);
#else
  __shared__ float red[32];
  int t = blockIdx.x;
  const act_t* w = word + (size_t)ids[t] * HIDDEN;
  const act_t* p = posEmb + (size_t)pos[t] * HIDDEN;
  float x[VPT];
#pragma unroll
  for (int i = 0; i < VPT; i++) {
    int j = threadIdx.x + i * LN_THREADS;
    x[i] = j < HIDDEN ? ldf(w + j) + ldf(p + j) + ldf(type0 + j) : 0.f;
  }
  layerNormStore(x, out + (size_t)t * HIDDEN, gamma, beta, eps, red);
#endif
}

// add_ln: r[t] = LayerNorm(a[t] + r[t]), in place on the residual stream.
// ln_res: r[t] = LayerNorm(a[t]), where the GEMM before already added the
// residual into a (cuBLASLt's C matrix): one tensor read instead of two.
// LN_TPW tokens per warp: their loads all go out before the first is used.
#ifndef LN_TPW
#define LN_TPW 1
#endif
template <bool ADD>
__device__ __forceinline__ void addLN(act_t* __restrict__ r, const act_t* __restrict__ a, const float* __restrict__ gamma,
    const float* __restrict__ beta, float eps, int ntok) {
  pdlWait();
#if LN_WARP
  int t0 = (blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)) * LN_TPW, lane = threadIdx.x & 31;
  if (t0 >= ntok) return;
  // Issue every 16-byte load before using any, so each lane has 2*CPL*LN_TPW in flight.
  u32x4 av[LN_TPW][CPL], rv[LN_TPW][CPL];
#pragma unroll
  for (int u = 0; u < LN_TPW; u++) {
    size_t base = (size_t)min(t0 + u, ntok - 1) * HIDDEN;
#pragma unroll
    for (int i = 0; i < CPL; i++) {
      int c = lane + 32 * i;
      if (c < CH) {
        av[u][i] = *reinterpret_cast<const u32x4*>(a + base + c * 8);
        if (ADD) rv[u][i] = *reinterpret_cast<const u32x4*>(r + base + c * 8);
      }
    }
  }
#pragma unroll
  for (int u = 0; u < LN_TPW; u++) {
    if (t0 + u >= ntok) break;
    float x[VPT];
#pragma unroll
    for (int i = 0; i < CPL; i++) {
      u32 wa[4] = {av[u][i].x, av[u][i].y, av[u][i].z, av[u][i].w};
#pragma unroll
      for (int k = 0; k < 4; k++) {
        x[i * 8 + 2 * k] = h2f((half_t)(wa[k] & 0xffff));
        x[i * 8 + 2 * k + 1] = h2f((half_t)(wa[k] >> 16));
      }
      if (ADD) {
        u32 wr[4] = {rv[u][i].x, rv[u][i].y, rv[u][i].z, rv[u][i].w};
#pragma unroll
        for (int k = 0; k < 4; k++) {
          x[i * 8 + 2 * k] += h2f((half_t)(wr[k] & 0xffff));
          x[i * 8 + 2 * k + 1] += h2f((half_t)(wr[k] >> 16));
        }
      }
    }
    warpLayerNorm(x, r + (size_t)(t0 + u) * HIDDEN, gamma, beta, eps);
  }
#else
  __shared__ float red[32];
  size_t base = (size_t)blockIdx.x * HIDDEN;
  float x[VPT];
#pragma unroll
  for (int i = 0; i < VPT; i++) {
    int j = threadIdx.x + i * LN_THREADS;
    x[i] = j < HIDDEN ? ldf(a + base + j) + (ADD ? ldf(r + base + j) : 0.f) : 0.f;
  }
  layerNormStore(x, r + base, gamma, beta, eps, red);
#endif
}

extern "C" __global__ void add_ln(act_t* __restrict__ r, const act_t* __restrict__ a, const float* __restrict__ gamma,
    const float* __restrict__ beta, float eps, int ntok) {
  addLN<true>(r, a, gamma, beta, eps, ntok);
}

extern "C" __global__ void ln_res(act_t* __restrict__ r, const act_t* __restrict__ a, const float* __restrict__ gamma,
    const float* __restrict__ beta, float eps, int ntok) {
  addLN<false>(r, a, gamma, beta, eps, ntok);
}

// gelu applies BERT's exact (erf) GELU in place; the bias came from the GEMM epilogue.
extern "C" __global__ void gelu(act_t* x, int n) {
  pdlWait();
  int i = blockIdx.x * blockDim.x + threadIdx.x;
#if USE_FP16
  if (2 * i + 1 < n) {
    u32 v = reinterpret_cast<u32*>(x)[i];
    float a = h2f((half_t)(v & 0xffff)), b = h2f((half_t)(v >> 16));
    a = 0.5f * a * (1.f + erff(a * 0.70710678118654752f));
    b = 0.5f * b * (1.f + erff(b * 0.70710678118654752f));
    reinterpret_cast<u32*>(x)[i] = pack2(a, b);
  } else if (2 * i < n) {
    float a = ldf(x + 2 * i);
    stf(x + 2 * i, 0.5f * a * (1.f + erff(a * 0.70710678118654752f)));
  }
#else
  for (int k = 2 * i; k < 2 * i + 2 && k < n; k++) {
    float a = x[k];
    x[k] = 0.5f * a * (1.f + erff(a * 0.70710678118654752f));
  }
#endif
}

// pool: blocks stride over the *nrows rows (the grid is sized for the
// bucket, not the batch); mode 0 mean, 1 CLS, 2 max; then optional L2
// normalisation.
extern "C" __global__ void pool(float* out, const act_t* h, const int* offsets, const int* nrows, int mode, int normalize) {
  pdlWait();
  __shared__ float red[32];
  const int n = *nrows;
  for (int r = blockIdx.x; r < n; r += gridDim.x) {
    int s = offsets[r], e = offsets[r + 1];
    float vals[(HIDDEN + 255) / 256];
    float ss = 0.f;
#pragma unroll
    for (int i = 0; i < (HIDDEN + 255) / 256; i++) {
      int j = threadIdx.x + i * 256;
      float acc = 0.f;
      if (j < HIDDEN) {
        if (mode == 1) acc = ldf(h + (size_t)s * HIDDEN + j);
        else if (mode == 2) { acc = -3.4e38f; for (int t = s; t < e; t++) acc = fmaxf(acc, ldf(h + (size_t)t * HIDDEN + j)); }
        else { for (int t = s; t < e; t++) acc += ldf(h + (size_t)t * HIDDEN + j); acc /= (float)(e - s); }
      }
      vals[i] = acc;
      ss += acc * acc;
    }
    float scale = 1.f;
    if (normalize) scale = 1.f / fmaxf(sqrtf(blockSum(ss, red)), 1e-12f);
#pragma unroll
    for (int i = 0; i < (HIDDEN + 255) / 256; i++) {
      int j = threadIdx.x + i * 256;
      if (j < HIDDEN) out[(size_t)r * HIDDEN + j] = vals[i] * scale;
    }
    __syncthreads();  // blockSum's red is reused by the next row
  }
}

// Attention over packed rows. tiles holds (qStart, qLen, kStart, kLen) in
// token indices, one per block: up to 64 queries that attend to kLen keys.
// Long rows get one tile per 64 queries; short rows are packed together into
// one tile, and a query attends only to keys of its own row (a token's row
// starts at token - pos[token]), so packing never leaks between rows.
// grid = (heads, max tiles); blocks past *ntiles (bucket padding) do nothing.
// qkv is [T, 3*HIDDEN] (q | k | v), ctx is [T, HIDDEN].

// attn_simple: CUDA-core attention, fp32 math; one warp per query.
extern "C" __global__ void __launch_bounds__(128) attn_simple(act_t* ctx, const act_t* qkv, const int* tiles, const int* ntiles,
    const int* pos, float scale) {
  pdlWait();
  __shared__ float sc[4][MAXPOS];
  int tile = blockIdx.y;  // heads on x: a tile's blocks launch together, bucket padding (empty tiles) last
  if (tile >= *ntiles) return;
  int qs = tiles[4 * tile], ql = tiles[4 * tile + 1], kst = tiles[4 * tile + 2], kl = tiles[4 * tile + 3], h = blockIdx.x;
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int ld = 3 * HIDDEN;
  for (int q = qs + warp; q < qs + ql; q += 4) {
    int qrow = q - pos[q];
    const act_t* qp = qkv + (size_t)q * ld + h * HEAD_DIM;
    float mx = -3.4e38f;
    for (int k = lane; k < kl; k += 32) {
      int kt = kst + k;
      float d = -3.4e38f;
      if (kt - pos[kt] == qrow) {
        const act_t* kp = qkv + (size_t)kt * ld + HIDDEN + h * HEAD_DIM;
        d = 0.f;
        for (int i = 0; i < HEAD_DIM; i++) d += ldf(qp + i) * ldf(kp + i);
        d *= scale;
      }
      sc[warp][k] = d;
      mx = fmaxf(mx, d);
    }
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, o));
    float sum = 0.f;
    for (int k = lane; k < kl; k += 32) {
      float p = sc[warp][k] > -3.0e38f ? expf(sc[warp][k] - mx) : 0.f;
      sc[warp][k] = p;
      sum += p;
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffff, sum, o);
    __syncwarp();
    float inv = 1.f / sum;
    for (int i = lane; i < HEAD_DIM; i += 32) {
      float acc = 0.f;
      for (int k = 0; k < kl; k++) {
        float p = sc[warp][k];
        if (p != 0.f) acc += p * ldf(qkv + (size_t)(kst + k) * ld + 2 * HIDDEN + h * HEAD_DIM + i);
      }
      stf(ctx + (size_t)q * HIDDEN + h * HEAD_DIM + i, acc * inv);
    }
    __syncwarp();
  }
}

#if USE_FP16 && (HEAD_DIM % 16 == 0) && HEAD_DIM <= 128
__device__ __forceinline__ void mma16816(float* c, const u32* a, u32 b0, u32 b1) {
  // Not volatile: independent products may be interleaved by the compiler.
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ u32 smemAddr(const void* p) {
  u32 a;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
  return a;
}

#define NEG_INF __int_as_float(0xff800000)
#ifdef ATTN_KC
#define KC ATTN_KC                    // keys per shared-memory chunk (the host chose it: attnChunkKeys)
#else
#define KC (HEAD_DIM > 64 ? 32 : 64)
#endif
#define KPAD (HEAD_DIM + 8)           // row pitch: 16 bytes of padding keep ldmatrix free of bank conflicts
#define QT 128                        // queries per tile (tileQueries in buffers.go)
// ATTN_MINB: blocks per SM the register budget is cut for.
#ifndef ATTN_MINB
#define ATTN_MINB 2
#endif
// Dynamic shared memory of attn_mma, in bytes (attnSmemBytes in forward.go
// computes the same): K and V chunks two stages deep, Q of two heads, and the
// row of every key of the tile.
#define ATTN_KV_BYTES (2 * KC * KPAD * 2)
#define ATTN_Q_BYTES (2 * QT * KPAD * 2)
#define ATTN_KMAX ((MAXPOS + 63) / 64 * 64)  // key rows: whole chunks, so a chunk never reads past them
#define ATTN_SMEM (2 * ATTN_KV_BYTES + ATTN_Q_BYTES + 4 * ATTN_KMAX)

// ex2 is 2^x without exp2f's denormal handling (scores are <= 0; -inf gives 0).
__device__ __forceinline__ float ex2(float x) { float y; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x)); return y; }

// ldsm4a / ldsm4ta: ldmatrix.x4 (plain / transposed) at shared address a.
__device__ __forceinline__ void ldsm4a(u32 (&r)[4], u32 a) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}
__device__ __forceinline__ void ldsm4ta(u32 (&r)[4], u32 a) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

// attn_mma: flash-attention style on tensor cores (mma.sync m16n8k16, fp32
// accumulate, online softmax in base 2); 8 warps x 16 queries = one tile of
// up to 128 queries per block, for hpb consecutive heads.
//
// One block walks hpb heads so that its start-up (tile, positions, the
// first loads) and its final stores are paid once per hpb heads, not per
// head: ncu put 37% of the one-head kernel's stall samples in that start-up
// and 12% in draining the stores at exit. Its work items are (head, chunk
// of KC keys); cp.async keeps the next item's K and V (and the next head's
// Q) in flight while this one is computed.
//
// Packed short rows share a tile; a query sees only keys of its own row
// (a token's row is named by its first token, token - pos). A tile that is
// one row (single) needs no row test at all, only the key-count bound.
//
// Two ways to hand out the work. Static (queue == 0): grid (heads/hpb,
// tiles), one (tile, head group) per block. Queue (queue != 0, a grid of
// about the blocks the GPU holds at once): every block takes (tile, head
// group) items from a counter, queue[0], until none is left, so a batch
// whose items are not a multiple of the GPU's block slots leaves no half-
// empty last wave (the 24 x 1024 model's bulk batches: 560 blocks on 264
// slots ran in 3 waves), and tiles of unequal length even out. The last
// block out resets queue[0] and queue[1] to zero for the next launch.
extern "C" __global__ void __launch_bounds__(256, ATTN_MINB) attn_mma(half_t* ctx, const half_t* qkv, const int* tiles, const int* ntiles,
    const int* pos, float scale, int hpb, int* queue) {
  pdlWait();
  extern __shared__ __align__(16) unsigned char smem[];
  int* kseg = reinterpret_cast<int*>(smem + 2 * ATTN_KV_BYTES + ATTN_Q_BYTES);
  __shared__ int nextItem;
  const int groups = HIDDEN / HEAD_DIM / hpb, nitems = *ntiles * groups;
  for (int pass = 0;; pass++) {
  int tile, group;
  if (queue == 0) {
    if (pass > 0) break;
    tile = blockIdx.y, group = blockIdx.x;  // head groups on x: a tile's blocks launch together, bucket padding (empty tiles) last
    if (tile >= *ntiles) break;
  } else {
    if (threadIdx.x == 0) nextItem = atomicAdd(queue, 1);
    __syncthreads();
    const int item = nextItem;
    __syncthreads();  // every thread has read it before thread 0 takes the next
    if (item >= nitems) break;
    tile = item / groups, group = item - tile * groups;
  }
  const int qs = tiles[4 * tile], ql = tiles[4 * tile + 1], kst = tiles[4 * tile + 2], kl = tiles[4 * tile + 3];
  const int h0 = group * hpb;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int ld = 3 * HIDDEN;
  const int nch = (kl + KC - 1) / KC, items = hpb * nch;

  // Shared-memory addresses as 32-bit offsets computed once: the loops below
  // then address with immediates (ncu counted ~600 integer instructions per
  // warp and head when every ldmatrix rebuilt its address).
  const u32 sK = smemAddr(smem), sV = sK + ATTN_KV_BYTES, sQ = sK + 2 * ATTN_KV_BYTES;
  constexpr int CPR = HEAD_DIM / 8;  // 16-byte pieces per row
  const int prow = threadIdx.x / CPR, pcol = (threadIdx.x % CPR) * 8;
  auto issue = [&](int it, int hj, int c) {
    const int h = h0 + hj, st = it & 1, kc = c * KC, nk = min(KC, kl - kc);
    const half_t* src = qkv + (size_t)(kst + kc) * ld + h * HEAD_DIM + pcol;
    const u32 dk = sK + st * (KC * KPAD * 2) + (prow * KPAD + pcol) * 2, dv = dk + ATTN_KV_BYTES;
#pragma unroll
    for (int key = prow; key < KC; key += 256 / CPR) {
      bool ok = key < nk;
      const half_t* p = src + (size_t)(ok ? key : 0) * ld;
      asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dk + (key - prow) * KPAD * 2), "l"(p + HIDDEN), "r"(ok ? 16 : 0));
      asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dv + (key - prow) * KPAD * 2), "l"(p + 2 * HIDDEN), "r"(ok ? 16 : 0));
    }
    if (c == 0) {
      const int rows = (ql + 15) & ~15;
      const half_t* q = qkv + (size_t)qs * ld + h * HEAD_DIM + pcol;
      const u32 dq = sQ + (hj & 1) * (QT * KPAD * 2) + (prow * KPAD + pcol) * 2;
      for (int r = prow; r < rows; r += 256 / CPR) {
        bool ok = r < ql;
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dq + (r - prow) * KPAD * 2), "l"(q + (size_t)(ok ? r : 0) * ld), "r"(ok ? 16 : 0));
      }
    }
    asm volatile("cp.async.commit_group;" ::: "memory");
  };
  issue(0, 0, 0);

  const bool single = pos[kst] == 0 && pos[kst + kl - 1] == kl - 1;
  if (!single)
    for (int i = threadIdx.x; i < kl; i += 256) kseg[i] = (kst + i) - pos[kst + i];  // read after the first barrier

  const int qb = warp * 16;
  const bool active = qb < ql;
  const float sl2 = scale * 1.4426950408889634f;
  const int r0 = qb + g, r1 = qb + g + 8;
  int seg0 = -2, seg1 = -2, segLo = 0, segHi = 0;
  if (!single) {
    seg0 = r0 < ql ? (qs + r0) - pos[qs + r0] : -2;
    seg1 = r1 < ql ? (qs + r1) - pos[qs + r1] : -2;
    // The warp's rows span segments [segLo, segHi].
    segLo = __shfl_sync(0xffffffff, seg0, 0);
    segHi = max(seg0, seg1);
    for (int o = 16; o > 0; o >>= 1) segHi = max(segHi, __shfl_xor_sync(0xffffffff, segHi, o));
  }

  u32 qa[HEAD_DIM / 16][4];
  float o[HEAD_DIM / 8][4];
  float m0 = -1e30f, m1 = -1e30f, l0 = 0.f, l1 = 0.f;

  const u32 kOff = ((lane & 7) + (lane >> 4) * 8) * (KPAD * 2) + ((lane >> 3) & 1) * 16;
  const u32 vOff = ((lane & 7) + ((lane >> 3) & 1) * 8) * (KPAD * 2) + (lane >> 4) * 16;
  const u32 qOff = (qb + (lane & 7) + ((lane >> 3) & 1) * 8) * (KPAD * 2) + (lane >> 4) * 16;
  for (int it = 0, hj = 0, c = 0; it < items; it++) {
    const int st = it & 1, kc = c * KC;
    if (it + 1 < items) {
      issue(it + 1, c + 1 == nch ? hj + 1 : hj, c + 1 == nch ? 0 : c + 1);
      asm volatile("cp.async.wait_group 1;" ::: "memory");
    } else {
      asm volatile("cp.async.wait_group 0;" ::: "memory");
    }
    __syncthreads();
    if (active) {
      const u32 qS = sQ + (hj & 1) * (QT * KPAD * 2) + qOff;
      if (c == 0) {
#pragma unroll
        for (int ks = 0; ks < HEAD_DIM / 16; ks++) ldsm4a(qa[ks], qS + ks * 32);
#pragma unroll
        for (int i = 0; i < HEAD_DIM / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
        m0 = m1 = -1e30f;
        l0 = l1 = 0.f;
      }
      // tmask bit n: key tile n (8 keys) of this chunk holds a key this warp may see.
      unsigned tmask;
      if (single) {
        int n = min(KC, kl - kc);
        tmask = n >= KC ? 0xffffffffu : (1u << ((n + 7) / 8)) - 1u;
      } else {
        bool rel = false;
        if (lane < KC / 8) {
#pragma unroll
          for (int k = 0; k < 8; k++) {
            int kx = kc + lane * 8 + k;
            if (kx < kl) { int ks = kseg[kx]; rel |= ks >= segLo && ks <= segHi; }
          }
        }
        tmask = __ballot_sync(0xffffffff, rel);
      }
      // Keys in groups of 32 (online softmax per group) keep the score
      // registers at 16 per thread.
#pragma unroll
      for (int hc = 0; hc < KC / 32; hc++) {
        if (((tmask >> (hc * 4)) & 0xfu) == 0u) continue;  // no key of this warp's rows here
        float s[4][4];
#pragma unroll
        for (int nt = 0; nt < 4; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
        // ks outer, key tiles inner: four independent accumulator chains in
        // flight. One ldmatrix.x4 brings the B fragments of two key tiles.
#pragma unroll
        for (int ks = 0; ks < HEAD_DIM / 16; ks++) {
          const u32(&qf)[4] = qa[ks];
#pragma unroll
          for (int np = 0; np < 2; np++) {
            u32 b[4];
            ldsm4a(b, sK + st * (KC * KPAD * 2) + kOff + (hc * 32 + np * 16) * (KPAD * 2) + ks * 32);
            mma16816(s[2 * np], qf, b[0], b[1]);
            mma16816(s[2 * np + 1], qf, b[2], b[3]);
          }
        }
        // Masks, each branch uniform over the warp: rows told apart (packed
        // tiles), or only the key-count bound (the last group of a row), or
        // none (a full group of one row, the common case).
        const int gk = kc + hc * 32;
        if (!single) {
#pragma unroll
          for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
              int kx = gk + nt * 8 + t * 2 + (i & 1);
              if (!((kx < kl) & (kseg[kx] == (i < 2 ? seg0 : seg1)))) s[nt][i] = NEG_INF;
            }
        } else if (gk + 32 > kl) {
#pragma unroll
          for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++)
              if (gk + nt * 8 + t * 2 + (i & 1) >= kl) s[nt][i] = NEG_INF;
        }
        // Maxima in raw score units; the scale is folded into the exponent
        // (one FFMA and one ex2 per score).
        float mx0 = m0, mx1 = m1;
#pragma unroll
        for (int nt = 0; nt < 4; nt++) {
          mx0 = fmaxf(mx0, fmaxf(s[nt][0], s[nt][1]));
          mx1 = fmaxf(mx1, fmaxf(s[nt][2], s[nt][3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffff, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffff, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffff, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffff, mx1, 2));
        float a0 = ex2((m0 - mx0) * sl2), a1 = ex2((m1 - mx1) * sl2);
        m0 = mx0; m1 = mx1;
        const float ms0 = mx0 * sl2, ms1 = mx1 * sl2;
#pragma unroll
        for (int i = 0; i < HEAD_DIM / 8; i++) { o[i][0] *= a0; o[i][1] *= a0; o[i][2] *= a1; o[i][3] *= a1; }
        float p0 = 0.f, p1 = 0.f;
#pragma unroll
        for (int nt = 0; nt < 4; nt++) {
          s[nt][0] = ex2(fmaf(s[nt][0], sl2, -ms0)); s[nt][1] = ex2(fmaf(s[nt][1], sl2, -ms0));
          s[nt][2] = ex2(fmaf(s[nt][2], sl2, -ms1)); s[nt][3] = ex2(fmaf(s[nt][3], sl2, -ms1));
          p0 += s[nt][0] + s[nt][1];
          p1 += s[nt][2] + s[nt][3];
        }
        l0 = l0 * a0 + p0;
        l1 = l1 * a1 + p1;
#pragma unroll
        for (int j = 0; j < 2; j++) {
          int jg = hc * 2 + j;
          u32 pa[4];
          pa[0] = pack2(s[2 * j][0], s[2 * j][1]);
          pa[1] = pack2(s[2 * j][2], s[2 * j][3]);
          pa[2] = pack2(s[2 * j + 1][0], s[2 * j + 1][1]);
          pa[3] = pack2(s[2 * j + 1][2], s[2 * j + 1][3]);
#pragma unroll
          for (int dn = 0; dn < HEAD_DIM / 8; dn += 2) {
            u32 b[4];
            ldsm4ta(b, sV + st * (KC * KPAD * 2) + vOff + jg * 16 * (KPAD * 2) + dn * 16);
            mma16816(o[dn], pa, b[0], b[1]);
            mma16816(o[dn + 1], pa, b[2], b[3]);
          }
        }
      }
      if (c == nch - 1) {
        float s0 = l0, s1 = l1;
        s0 += __shfl_xor_sync(0xffffffff, s0, 1);
        s0 += __shfl_xor_sync(0xffffffff, s0, 2);
        s1 += __shfl_xor_sync(0xffffffff, s1, 1);
        s1 += __shfl_xor_sync(0xffffffff, s1, 2);
        float i0 = 1.f / s0, i1 = 1.f / s1;
        int h = h0 + hj;
#pragma unroll
        for (int dn = 0; dn < HEAD_DIM / 8; dn++) {
          int col = h * HEAD_DIM + dn * 8 + t * 2;
          if (r0 < ql) *reinterpret_cast<u32*>(ctx + (size_t)(qs + r0) * HIDDEN + col) = pack2(o[dn][0] * i0, o[dn][1] * i0);
          if (r1 < ql) *reinterpret_cast<u32*>(ctx + (size_t)(qs + r1) * HIDDEN + col) = pack2(o[dn][2] * i1, o[dn][3] * i1);
        }
      }
    }
    __syncthreads();
    if (++c == nch) c = 0, hj++;
  }
  }
  if (queue != 0 && threadIdx.x == 0) {
    // Every block's last take came back empty before it counts itself out,
    // so the last one out knows no take is pending.
    __threadfence();
    if (atomicAdd(queue + 1, 1) == (int)(gridDim.x * gridDim.y) - 1) {
      queue[0] = 0;
      queue[1] = 0;
      __threadfence();
    }
  }
}
#endif
