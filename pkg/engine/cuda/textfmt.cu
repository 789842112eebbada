// m3ectl: the pooled embeddings written as JSON text on the GPU, compiled
// at run time by NVRTC (textfmt.go). The host defines TEXT_DIM (the row
// width) and prepends SF_G, Schubfach's multipliers from pkg/floatfmt
// (SchubfachTable), so the digits are those of floatfmt.AppendFloat32s and
// strconv.AppendFloat(b, float64(f), 'g', -1, 32), byte for byte: the
// arithmetic below is pkg/floatfmt's (schubfach.go, floatfmt.go), one
// thread per number instead of branch-free code.
//
// One block of 256 threads per row: each thread formats NPT consecutive
// numbers, a block-wide scan of their lengths places them, the row is put
// together in shared memory and written to the slot's pinned host buffer
// with 16-byte stores (the writes cross PCIe as whole lines). A row holding
// a subnormal (Ryū's case, which is not ported) is marked with length -1
// and formatted by the host.

typedef unsigned int u32;
typedef unsigned long long u64;

#define TEXT_THREADS 256
#define NPT ((TEXT_DIM + TEXT_THREADS - 1) / TEXT_THREADS)
// The longest number is "-0.0000ddddddddd" (16 bytes), then a comma.
#define MAX_NUM 17

__device__ __forceinline__ long long flog10pow2(long long q) { return (q * 661971961083LL) >> 41; }
__device__ __forceinline__ long long flog10tq(long long q) { return (q * 661971961083LL - 274743187321LL) >> 41; }
__device__ __forceinline__ long long flog2pow10(long long e) { return (e * 913124641741LL) >> 38; }

// rop: g·cp / 2^95 rounded to odd, 32 bits (schubfach.go's rop).
__device__ __forceinline__ u32 rop(u64 g, u64 cp) {
    u64 x1 = __umul64hi(g, cp);
    return (u32)((x1 >> 31) | (((x1 & 0xffffffffULL) + 0xffffffffULL) >> 32));
}

// pick: schubfach.go's choice among the candidates.
__device__ __forceinline__ u32 pick(u32 vb, u32 vbl, u32 vbr, u32 out, u32 evenTie) {
    u32 s = vb >> 2;
    int cmp = (int)(vb - (4 * s + 2));
    u32 closerS = (u32)(cmp < 0) | ((u32)(cmp == 0) & ~s & evenTie);
    u32 d = s + 1;
    if ((u32)(vbl + out <= 4 * s) & ((u32)(4 * s + 4 + out > vbr) | closerS)) d = s;
    u32 sp10 = 10 * (u32)(((u64)s * 1717986919ULL) >> 34);
    u32 upin = (u32)(vbl + out <= 4 * sp10);
    u32 shrt = upin ? sp10 : sp10 + 10;
    if (upin ^ (u32)(4 * sp10 + 40 + out <= vbr)) d = shrt;
    return d;
}

// A number's kind.
#define K_NUM 0  // normal: digits d, exponent e
#define K_ZERO 1 // ±0
#define K_NULL 2 // NaN or ±Inf: JSON's null
#define K_SUB 3  // subnormal: the host formats the row

// digitsOf sets d·10^e for the normal float32 of bits u (schubfach.go's
// schubfach); d may end in zeros.
__device__ void digitsOf(u32 u, u32* dOut, int* eOut) {
    u32 mant = u & 0x7fffff, exp = (u >> 23) & 0xff;
    u64 c = (u64)(0x800000 | mant);
    long long q = (long long)exp - 150;
    if (mant != 0) {
        long long k = flog10pow2(q);
        long long h = q + flog2pow10(-k) + 33;
        u64 g = SF_G[k - SF_KMIN];
        u64 half = 2ULL << h;
        u64 cb = c << (h + 2);
        *dOut = pick(rop(g, cb), rop(g, cb - half), rop(g, cb + half), mant & 1, 1);
        *eOut = (int)k;
        return;
    }
    u64 cb = c << 2, cbl = cb - 1;
    long long k = flog10tq(q);
    if (exp == 1) {
        cbl = cb - 2;
        k = flog10pow2(q);
    }
    long long h = q + flog2pow10(-k) + 33;
    u64 g = SF_G[k - SF_KMIN];
    *dOut = pick(rop(g, cb << h), rop(g, cbl << h), rop(g, (cb + 2) << h), 0, exp == 73);
    *eOut = (int)k;
}

__device__ __forceinline__ int decLen(u32 d) {
    int n = 1;
    while (n < 10 && d >= 10u) { d /= 10u; n++; }
    return n;
}

// A formatted number's parts: sign, kind, digits without trailing zeros
// (nt of them) and the decimal point's position dp (floatfmt.go's layout).
struct num {
    u32 d;   // the nt significant digits
    int nt, dp, len;
    unsigned char kind, neg;
};

__device__ num parse(u32 u) {
    num n;
    n.neg = u >> 31;
    n.d = 0; n.nt = 0; n.dp = 0;
    u32 exp = (u >> 23) & 0xff, mant = u & 0x7fffff;
    if (exp == 0xff) { n.kind = K_NULL; n.neg = 0; n.len = 4; return n; }
    if (exp == 0) {
        n.kind = mant == 0 ? K_ZERO : K_SUB;
        n.len = n.neg + 1;
        return n;
    }
    n.kind = K_NUM;
    u32 d; int e;
    digitsOf(u, &d, &e);
    int nd = decLen(d);
    int nt = nd;
    while (d % 10u == 0u) { d /= 10u; nt--; }
    n.d = d; n.nt = nt; n.dp = nd + e;
    int dp = n.dp, x = dp - 1, len;
    if (dp >= -3 && dp <= 0) {
        len = 2 - dp + nt;                      // 0.000ddd
    } else if (x < -4 || x >= 6) {
        int ax = x < 0 ? -x : x;
        len = (nt > 1 ? nt + 1 : 1) + 2 + (ax < 100 ? 2 : 3); // d.ddde±XX
    } else if (dp >= nt) {
        len = dp;                               // dddd00
    } else {
        len = nt + 1;                           // ddd.ddd
    }
    n.len = n.neg + len;
    return n;
}

// put writes n at p (its n.len bytes).
__device__ void put(const num& n, char* p) {
    if (n.kind == K_NULL) { p[0] = 'n'; p[1] = 'u'; p[2] = 'l'; p[3] = 'l'; return; }
    if (n.neg) *p++ = '-';
    if (n.kind != K_NUM) { *p = '0'; return; }
    char dg[9];
    u32 d = n.d;
    for (int i = n.nt - 1; i >= 0; i--) { dg[i] = (char)('0' + d % 10u); d /= 10u; }
    int nt = n.nt, dp = n.dp, x = dp - 1;
    if (dp >= -3 && dp <= 0) {
        *p++ = '0'; *p++ = '.';
        for (int i = 0; i < -dp; i++) *p++ = '0';
        for (int i = 0; i < nt; i++) *p++ = dg[i];
        return;
    }
    if (x < -4 || x >= 6) {
        *p++ = dg[0];
        if (nt > 1) {
            *p++ = '.';
            for (int i = 1; i < nt; i++) *p++ = dg[i];
        }
        *p++ = 'e';
        *p++ = x < 0 ? '-' : '+';
        int ax = x < 0 ? -x : x;
        if (ax >= 100) { *p++ = (char)('0' + ax / 100); ax %= 100; *p++ = (char)('0' + ax / 10); *p++ = (char)('0' + ax % 10); return; }
        *p++ = (char)('0' + ax / 10); *p++ = (char)('0' + ax % 10);
        return;
    }
    if (dp >= nt) {
        for (int i = 0; i < nt; i++) *p++ = dg[i];
        for (int i = nt; i < dp; i++) *p++ = '0';
        return;
    }
    for (int i = 0; i < dp; i++) *p++ = dg[i];
    *p++ = '.';
    for (int i = dp; i < nt; i++) *p++ = dg[i];
}

// text_rows writes row r of emb (rows × TEXT_DIM floats) as JSON numbers
// at dst + hdr + r·stride and its length at ((int*)dst)[r], -1 when the
// host must format it.
extern "C" __global__ void __launch_bounds__(TEXT_THREADS) text_rows(const float* __restrict__ emb, int rows,
                                                                       char* dst, int hdr, int stride) {
    __shared__ __align__(16) char row[(TEXT_DIM * MAX_NUM + 15) / 16 * 16];
    __shared__ int warpSum[TEXT_THREADS / 32];
    __shared__ int total;
    const int t = threadIdx.x, lane = t & 31, wid = t >> 5;
    int* lens = (int*)dst;
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* v = emb + (size_t)r * TEXT_DIM;
        num ns[NPT];
        int mine = 0, sub = 0;
#pragma unroll
        for (int j = 0; j < NPT; j++) {
            int i = t * NPT + j;
            if (i < TEXT_DIM) {
                ns[j] = parse(__float_as_uint(v[i]));
                mine += ns[j].len + (i < TEXT_DIM - 1);
                sub |= ns[j].kind == K_SUB;
            }
        }
        // Exclusive scan of the threads' lengths: within each warp by
        // shuffles, then over the warps' sums.
        int inc = mine;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            int y = __shfl_up_sync(0xffffffffu, inc, o);
            if (lane >= o) inc += y;
        }
        if (lane == 31) warpSum[wid] = inc;
        __syncthreads();
        int before = 0;
#pragma unroll
        for (int w = 0; w < TEXT_THREADS / 32; w++) before += w < wid ? warpSum[w] : 0;
        int off = before + inc - mine;
        if (t == TEXT_THREADS - 1) total = off + mine;
#pragma unroll
        for (int j = 0; j < NPT; j++) {
            int i = t * NPT + j;
            if (i < TEXT_DIM) {
                put(ns[j], row + off);
                off += ns[j].len;
                if (i < TEXT_DIM - 1) row[off++] = ',';
            }
        }
        int anySub = __syncthreads_or(sub);
        int n = total;
        uint4* out = (uint4*)(dst + hdr + (size_t)r * stride);
        const uint4* in = (const uint4*)row;
        for (int i = t; i < (n + 15) / 16; i += TEXT_THREADS) out[i] = in[i];
        if (t == 0) lens[r] = anySub ? -1 : n;
        __syncthreads(); // row and warpSum are reused by the next row
    }
    __threadfence_system();
}
