/* XiaoNet C runtime: network forward pass and streaming front end (see xiaonet.h).
 * C99 + libm (sqrtf, rintf, fabsf); float arithmetic only; no malloc, no stdio.
 * Compile with -ffp-contract=off (GCC's default under -std=c99) for the same bits everywhere. */
#include <math.h>
#include <string.h>

#include "xiaonet.h"

#if XN_INT8
typedef uint8_t xn_act;   /* activations: uint8 with per-tensor scale / zero point */
typedef int32_t xn_acc;
#else
typedef float xn_act;
typedef float xn_acc;
#endif

#define XN_STEP (XN_WINDOW - XN_OVERLAP)

/* The network's activations: offsets (elements) computed by the generator for XN_WINDOW. */
static xn_act xn_arena[XN_ARENA];
extern const uint32_t xn_skip_offset[XN_DEPTH];

const char *xn_model_name(void) { return XN_NAME; }
int xn_window(void) { return XN_WINDOW; }
int xn_precision_bits(void) { return XN_INT8 ? 8 : 32; }
size_t xn_stream_size(void) { return sizeof(xn_stream); }

/* --- input: raw samples in one or two contiguous pieces, normalised on the fly ------------- */

typedef struct {
    const float *p1[XN_CHANNELS];
    const float *p2[XN_CHANNELS];
    int32_t len1, n;
    float mean[XN_CHANNELS], gain[XN_CHANNELS];
} xn_source;

static inline float raw_at(const xn_source *s, int c, int32_t i)
{
    return i < s->len1 ? s->p1[c][i] : s->p2[c][i - s->len1];
}

/* Sums are taken in float, in a fixed order that vectorises: 8 interleaved partial sums per
 * block of XN_BLOCK samples, added in lane order, then the block sums (error ~1e-6 relative
 * even for long windows, and no double arithmetic, which a Cortex-M4F emulates). Blocks never
 * straddle the two pieces of a ring buffer, so the loops run over plain arrays. */
#define XN_BLOCK 64
#define XN_LANES 8

typedef struct { float max, min, level, sum; } xn_stats;

static float lane_total(const float *lane)
{
    float total = lane[0];
    int l;
    for (l = 1; l < XN_LANES; l++) total += lane[l];
    return total;
}

static void stats_piece(const float *x, int32_t n, float first, xn_stats *st)
{
    int32_t i, j;
    int l;
    for (j = 0; j < n; j++) {
        const float v = x[j];
        st->max = v > st->max ? v : st->max;
        st->min = v < st->min ? v : st->min;
        st->level = fabsf(v) > st->level ? fabsf(v) : st->level;
    }
    for (i = 0; i < n; i += XN_BLOCK) {
        const int32_t end = i + XN_BLOCK < n ? i + XN_BLOCK : n;
        float lane[XN_LANES] = {0.0f};
        for (j = i; j + XN_LANES <= end; j += XN_LANES)
            for (l = 0; l < XN_LANES; l++) lane[l] += x[j + l] - first;
        for (l = 0; j < end; j++, l++) lane[l] += x[j] - first;
        st->sum += lane_total(lane);
    }
}

static void spread_piece(const float *x, int32_t n, float mean, float *dmax, float *ss)
{
    int32_t i, j;
    int l;
    float peak = *dmax;
    for (j = 0; j < n; j++) peak = fabsf(x[j] - mean) > peak ? fabsf(x[j] - mean) : peak;
    *dmax = peak;
    for (i = 0; i < n; i += XN_BLOCK) {
        const int32_t end = i + XN_BLOCK < n ? i + XN_BLOCK : n;
        float lane[XN_LANES] = {0.0f};
        for (j = i; j + XN_LANES <= end; j += XN_LANES)
            for (l = 0; l < XN_LANES; l++) lane[l] += (x[j + l] - mean) * (x[j + l] - mean);
        for (l = 0; j < end; j++, l++) lane[l] += (x[j] - mean) * (x[j] - mean);
        *ss += lane_total(lane);
    }
}

/* The student's normalisation (xiaonet.models.model.normalize_window): constant channels to
 * zero, demean, divide by the peak over all channels, then by std + 1e-3 x the largest std.
 * Sums are taken relative to the first sample so that a DC offset costs no precision. */
static void normalisation(xn_source *s)
{
    float var[XN_CHANNELS];
    float peak = 0.0f, max_std = 0.0f;
    const int32_t n1 = s->len1 < s->n ? s->len1 : s->n, n2 = s->n - n1;
    int c;
    for (c = 0; c < XN_CHANNELS; c++) {
        const float first = s->p1[c][0];
        xn_stats st;
        float dmax = 0.0f, ss = 0.0f;
        st.max = st.min = first;
        st.level = st.sum = 0.0f;
        stats_piece(s->p1[c], n1, first, &st);
        stats_piece(s->p2[c], n2, first, &st);
        s->mean[c] = first + st.sum / (float)s->n;
        if (!(st.max - st.min > 1e-6f * st.level)) {  /* constant (or all-zero) channel: stays zero */
            var[c] = -1.0f;
            continue;
        }
        spread_piece(s->p1[c], n1, s->mean[c], &dmax, &ss);
        spread_piece(s->p2[c], n2, s->mean[c], &dmax, &ss);
        var[c] = ss / (float)s->n;
        peak = dmax > peak ? dmax : peak;
    }
    if (peak <= 0.0f) peak = 1.0f;
    for (c = 0; c < XN_CHANNELS; c++) {
        const float sd = var[c] < 0.0f ? 0.0f : sqrtf(var[c]) / peak;
        s->gain[c] = sd;  /* std for now */
        max_std = sd > max_std ? sd : max_std;
    }
    for (c = 0; c < XN_CHANNELS; c++)
        s->gain[c] = var[c] < 0.0f ? 0.0f : 1.0f / (peak * (s->gain[c] + 1e-3f * max_std + 1e-12f));
}

/* --- layers ------------------------------------------------------------------------------------- */

static inline int32_t conv_out_len(const xn_layer *ly, int32_t lin)
{
    return ly->transposed ? lin * ly->stride : (lin + 2 * ly->pad - ly->k) / ly->stride + 1;
}

#if XN_INT8
static inline int32_t sat_u8(int32_t q) { return q < 0 ? 0 : (q > 255 ? 255 : q); }

/* acc -> the layer's output quantisation (QuantizeLinear), relu, and the stored quantisation. */
static inline xn_act requantise(const xn_layer *ly, xn_acc acc)
{
    int32_t q = sat_u8((int32_t)rintf((float)acc * ly->out_mult) + ly->out_zp);
    if (ly->relu && q < ly->out_zp) q = ly->out_zp;
    return (xn_act)sat_u8((int32_t)rintf((float)(q - ly->out_zp) * ly->out_scale * ly->store_inv_scale) + ly->store_zp);
}
#define XN_STORE(ly, acc) requantise((ly), (acc))
#else
#define XN_STORE(ly, acc) ((ly)->relu && (acc) < 0.0f ? 0.0f : (acc))
#endif

/* Convolutions work on blocks of XN_TB outputs: the innermost loop runs over outputs, which are
 * independent, so a compiler may vectorise it without reordering any sum (every output adds
 * bias, then channels in order, then taps in order, on every machine). */
#define XN_TB 64

#if XN_INT8
#define XN_CENTRED(ly, q) ((int32_t)(q) - (ly)->in_zp)
#else
#define XN_CENTRED(ly, q) (q)
#endif

/* All taps of one input channel for outputs first..last (every tap inside the input), summed
 * in tap order into acc; K is a constant in the specialised cases, so the tap loop unrolls and
 * the output loop can be vectorised. VAL(q) is the centred input value. */
#define XN_TAPS(K, S, VAL)                                                   \
    for (i = first; i <= last; i++) {                                        \
        const xn_act *xi = x + (i * (S) - pad);                              \
        xn_acc v = acc[i - t0];                                              \
        for (kk = 0; kk < (K); kk++) v += w[kk] * VAL(xi[kk]);              \
        acc[i - t0] = v;                                                     \
    }
#define XN_TAPS_ANY_K(VAL)                                                   \
    if (s == 1) {                                                            \
        switch (k) {                                                         \
        case 3: XN_TAPS(3, 1, VAL) break;                                    \
        case 5: XN_TAPS(5, 1, VAL) break;                                    \
        default: XN_TAPS(k, 1, VAL) break;                                   \
        }                                                                    \
    } else if (s == 4 && k == 5) {                                           \
        XN_TAPS(5, 4, VAL)                                                   \
    } else {                                                                 \
        XN_TAPS(k, s, VAL)                                                   \
    }

#if XN_INT8
#define XN_PLAIN(q) ((int32_t)(q) - zp)
#define XN_VIA_LUT(q) ((int32_t)lut[(q)] - zp)
#else
#define XN_PLAIN(q) (q)
#endif

/* Outputs t0 .. t0 + nt - 1 of output channel co of a convolution over channels a (ca of them)
 * followed by b (a skip connection and the upsampled path), before the activation. Every
 * output sums bias, then channels in order, then taps in order (taps outside the input are
 * skipped), whatever the loop structure. */
static void conv_block(const xn_layer *ly, const xn_act *a, int ca, const xn_act *b, int32_t lin,
                       int co, int32_t t0, int32_t nt, xn_acc *restrict acc)
{
    const int k = ly->k, s = ly->stride, pad = ly->pad, cin = ly->cin;
    const int32_t end = t0 + nt - 1;
    /* outputs with every tap inside the input: pad <= i * s <= lin - k + pad */
    int32_t inner_first = (pad + s - 1) / s, inner_last = lin - k + pad < 0 ? -1 : (lin - k + pad) / s;
    const xn_weight *w = ly->w + (size_t)co * cin * k;
    int ci, kk;
    int32_t i, first, last;
#if XN_INT8
    const int32_t zp = ly->in_zp;
#endif
    if (inner_first < t0) inner_first = t0;
    if (inner_last > end) inner_last = end;
    for (i = 0; i < nt; i++) acc[i] = ly->b[co];
    for (ci = 0; ci < cin; ci++, w += k) {
        const xn_act *restrict x = ci < ca ? a + (size_t)ci * lin : b + (size_t)(ci - ca) * lin;
#if XN_INT8
        const uint8_t *lut = ci < ca ? ly->skip_lut : NULL;
#endif
        /* outputs at the edges: taps outside the input are left out */
        for (i = t0; i <= end; i++) {
            xn_acc v;
            if (i >= inner_first && i <= inner_last) { i = inner_last; continue; }
            v = acc[i - t0];
            for (kk = 0; kk < k; kk++) {
                const int32_t at = i * s - pad + kk;
                if (at < 0 || at >= lin) continue;
#if XN_INT8
                v += w[kk] * (lut ? XN_VIA_LUT(x[at]) : XN_PLAIN(x[at]));
#else
                v += w[kk] * x[at];
#endif
            }
            acc[i - t0] = v;
        }
        first = inner_first;
        last = inner_last;
        if (first > last) continue;
#if XN_INT8
        if (lut) {
            XN_TAPS_ANY_K(XN_VIA_LUT)
            continue;
        }
#endif
        XN_TAPS_ANY_K(XN_PLAIN)
    }
}

static void conv(const xn_layer *ly, const xn_act *a, int ca, const xn_act *b, int32_t lin, xn_act *out)
{
    const int32_t lout = conv_out_len(ly, lin);
    xn_acc acc[XN_TB];
    int co;
    int32_t t0, i;
    for (co = 0; co < ly->cout; co++) {
        xn_act *o = out + (size_t)co * lout;
        for (t0 = 0; t0 < lout; t0 += XN_TB) {
            const int32_t nt = lout - t0 < XN_TB ? lout - t0 : XN_TB;
            conv_block(ly, a, ca, b, lin, co, t0, nt, acc);
            for (i = 0; i < nt; i++) o[t0 + i] = XN_STORE(ly, acc[i]);
        }
    }
}

/* Transposed convolution, one output phase r at a time: outputs t = j * stride + r gather
 * inputs j + d for the taps kk with kk = r + pad - d * stride. */
static void conv_transposed(const xn_layer *ly, const xn_act *in, int32_t lin, xn_act *out)
{
    const int s = ly->stride, k = ly->k, cout = ly->cout, pad = ly->pad;
    const int32_t lout = lin * s;
    xn_acc acc[XN_TB];
    int co, ci, kk, r, t, taps;
    int tap_k[XN_MAX_KERNEL];
    int32_t tap_d[XN_MAX_KERNEL], j0, j;
    for (r = 0; r < s; r++) {
        for (taps = 0, kk = 0; kk < k; kk++)  /* the taps of phase r, in order */
            if ((r + pad - kk) % s == 0) {
                tap_k[taps] = kk;
                tap_d[taps++] = (r + pad - kk) / s;
            }
        for (co = 0; co < cout; co++)
            for (j0 = 0; j0 < lin; j0 += XN_TB) {
                const int32_t nj = lin - j0 < XN_TB ? lin - j0 : XN_TB;
                for (j = 0; j < nj; j++) acc[j] = ly->b[co];
                for (ci = 0; ci < ly->cin; ci++) {
                    const xn_act *x = in + (size_t)ci * lin;
                    const xn_weight *w = ly->w + ((size_t)ci * cout + co) * k;
                    for (t = 0; t < taps; t++) {
                        const int32_t d = tap_d[t];
                        const int32_t first = j0 > -d ? j0 : -d;
                        const int32_t last = j0 + nj - 1 < lin - 1 - d ? j0 + nj - 1 : lin - 1 - d;
                        const xn_acc wv = w[tap_k[t]];
                        for (j = first; j <= last; j++) acc[j - j0] += wv * XN_CENTRED(ly, x[j + d]);
                    }
                }
                for (j = 0; j < nj; j++) out[(size_t)co * lout + (j0 + j) * s + r] = XN_STORE(ly, acc[j]);
            }
    }
}

/* The stem reads the raw window through the normalisation (zero beyond the record), one block
 * of inputs at a time. */
static void stem(const xn_layer *ly, const xn_source *src, int32_t lpad, xn_act *out)
{
    enum { SPAN = XN_TB * XN_STEM_STRIDE + XN_STEM_KERNEL };
    const int32_t lout = conv_out_len(ly, lpad);
    const int k = ly->k, s = ly->stride;
    xn_acc x[XN_CHANNELS][SPAN], acc[XN_TB];
    int co, ci, kk;
    int32_t t0, i;
    for (t0 = 0; t0 < lout; t0 += XN_TB) {
        const int32_t nt = lout - t0 < XN_TB ? lout - t0 : XN_TB;
        const int32_t first = t0 * s - ly->pad, span = (nt - 1) * s + k;
        for (ci = 0; ci < XN_CHANNELS; ci++)
            for (i = 0; i < span; i++) {
                const int32_t at = first + i;
                const float v = (at >= 0 && at < src->n) ? (raw_at(src, ci, at) - src->mean[ci]) * src->gain[ci] : 0.0f;
#if XN_INT8
                x[ci][i] = sat_u8((int32_t)rintf(v * ly->in_inv_scale) + ly->in_zp) - ly->in_zp;
#else
                x[ci][i] = v;
#endif
            }
        for (co = 0; co < ly->cout; co++) {
            const xn_weight *w = ly->w + (size_t)co * XN_CHANNELS * k;
            for (i = 0; i < nt; i++) acc[i] = ly->b[co];
            for (ci = 0; ci < XN_CHANNELS; ci++) {
                const xn_weight *wc = w + ci * k;
                for (i = 0; i < nt; i++) {
                    const xn_acc *xi = x[ci] + i * XN_STEM_STRIDE;
                    xn_acc v = acc[i];
                    for (kk = 0; kk < XN_STEM_KERNEL; kk++) v += wc[kk] * xi[kk];
                    acc[i] = v;
                }
            }
            for (i = 0; i < nt; i++) out[(size_t)co * lout + t0 + i] = XN_STORE(ly, acc[i]);
        }
    }
}

/* --- the whole network ------------------------------------------------------------------- */

/* e^x for x <= 0 in float arithmetic only (Cody-Waite reduction, degree-6 polynomial,
 * relative error ~2e-7): the same bits on every IEEE-754 machine, so a microcontroller and a
 * PC pick identically even where int8 probabilities tie (libm expf differs in the last bit). */
static inline float xn_expf(float x)
{
    const float inside = (float)(x >= -80.0f);      /* 0 below -80: e^x is then returned as 0 */
    const float c = x * inside - 80.0f * (1.0f - inside);
    const int32_t n = (int32_t)(c * 1.44269504f - 0.5f);  /* round to nearest for c <= 0 */
    const float r = c - (float)n * 0.693145752f - (float)n * 1.42860677e-6f;
    union { float f; uint32_t u; } y;
    y.f = 1.0f + r * (1.0f + r * (0.5f + r * (1.66666672e-1f + r * (4.16666679e-2f
          + r * (8.33333377e-3f + r * 1.38888892e-3f)))));
    y.u += (uint32_t)n << 23;  /* x 2^n */
    return y.f * inside;
}

/* Softmax over the labels of nt samples, in place (max, exp, sum, divide: the ONNX graph's);
 * loops over samples innermost, so that they vectorise. */
static void softmax_block(float z[XN_LABELS][XN_TB], int32_t nt)
{
    float m[XN_TB], sum[XN_TB];
    int32_t i;
    int c;
    for (i = 0; i < nt; i++) m[i] = z[0][i];
    for (c = 1; c < XN_LABELS; c++)
        for (i = 0; i < nt; i++) m[i] = z[c][i] > m[i] ? z[c][i] : m[i];
    for (c = 0; c < XN_LABELS; c++)
        for (i = 0; i < nt; i++) z[c][i] = xn_expf(z[c][i] - m[i]);
    for (i = 0; i < nt; i++) sum[i] = z[0][i];
    for (c = 1; c < XN_LABELS; c++)
        for (i = 0; i < nt; i++) sum[i] += z[c][i];
    for (c = 0; c < XN_LABELS; c++)
        for (i = 0; i < nt; i++) z[c][i] /= sum[i];
}

typedef struct {
    float *probs;      /* xn_forward: labels x n */
    xn_stream *st;     /* streaming: add P and S to the stack */
    int32_t n, slot0;  /* slot of the window's first sample in the stack */
} xn_sink;

/* Finest level: the merge convolution a block of columns at a time, each block straight into
 * the head (a transposed convolution with kernel == stride) and the softmax: no full-rate
 * buffers. */
static void tail(const xn_layer *merge, const xn_layer *head, const xn_act *skip, const xn_act *up,
                 int32_t l0, const xn_sink *sink)
{
    const int s = head->stride, w0 = merge->cout;
    xn_act col[XN_WIDTH0][XN_TB];
    xn_acc acc[XN_TB];
    float z[XN_LABELS][XN_TB];
    int32_t t0, i;
    int co, ci, kk, c;
    for (t0 = 0; t0 < l0 && t0 * s < sink->n; t0 += XN_TB) {
        const int32_t nt = l0 - t0 < XN_TB ? l0 - t0 : XN_TB;
        for (co = 0; co < w0; co++) {
            conv_block(merge, skip, w0, up, l0, co, t0, nt, acc);
            for (i = 0; i < nt; i++) col[co][i] = XN_STORE(merge, acc[i]);
        }
        for (kk = 0; kk < s; kk++) {
            for (c = 0; c < XN_LABELS; c++) {
                for (i = 0; i < nt; i++) acc[i] = head->b[c];
                for (ci = 0; ci < w0; ci++) {
                    const xn_acc wv = head->w[((size_t)ci * XN_LABELS + c) * s + kk];
                    for (i = 0; i < nt; i++) acc[i] += wv * XN_CENTRED(head, col[ci][i]);
                }
                for (i = 0; i < nt; i++) {
#if XN_INT8
                    const int32_t q = sat_u8((int32_t)rintf((float)acc[i] * head->out_mult) + head->out_zp);
                    z[c][i] = (float)(q - head->out_zp) * head->out_scale;
#else
                    z[c][i] = acc[i];
#endif
                }
            }
            softmax_block(z, nt);
            for (i = 0; i < nt; i++) {
                const int32_t pos = (t0 + i) * s + kk;
                if (pos >= sink->n) break;
                if (sink->probs) {
                    for (c = 0; c < XN_LABELS; c++) sink->probs[(size_t)c * sink->n + pos] = z[c][i];
                } else {
                    int32_t slot = sink->slot0 + pos;
                    if (slot >= XN_WINDOW) slot -= XN_WINDOW;
                    sink->st->stack[0][slot] += z[XN_P_INDEX][i];
                    sink->st->stack[1][slot] += z[XN_S_INDEX][i];
                    sink->st->count[slot]++;
                }
            }
        }
    }
}

static void network(const xn_source *src, const xn_sink *sink)
{
    const int32_t lpad = (src->n + XN_TOTAL_STRIDE - 1) / XN_TOTAL_STRIDE * XN_TOTAL_STRIDE;
    int32_t len[XN_DEPTH + 1];
    xn_act *t_buf = xn_arena + XN_OFF_T, *m_buf = xn_arena + XN_OFF_M;
    xn_act *cur;
    int level, i;

    stem(&xn_layers[0], src, lpad, xn_arena + xn_skip_offset[0]);
    len[0] = conv_out_len(&xn_layers[0], lpad);
    cur = xn_arena + xn_skip_offset[0];
    for (level = 1; level <= XN_DEPTH; level++) {
        const xn_layer *down = &xn_layers[2 * level - 1], *refine = &xn_layers[2 * level];
        xn_act *out = level < XN_DEPTH ? xn_arena + xn_skip_offset[level] : xn_arena + XN_OFF_BOTTLENECK;
        conv(down, cur, down->cin, NULL, len[level - 1], t_buf);
        len[level] = conv_out_len(down, len[level - 1]);
        conv(refine, t_buf, refine->cin, NULL, len[level], out);
        cur = out;
    }
    for (i = 0; i < XN_DEPTH; i++) {
        const int target = XN_DEPTH - 1 - i;
        const xn_layer *up = &xn_layers[1 + 2 * XN_DEPTH + 2 * i], *merge = up + 1;
        const xn_act *skip = xn_arena + xn_skip_offset[target];
        if (target > 0) {
            conv_transposed(up, cur, len[target + 1], t_buf);
            conv(merge, skip, up->cout, t_buf, len[target], m_buf);
            cur = m_buf;
        } else {
            xn_act *u0 = xn_arena + XN_OFF_U0;
            conv_transposed(up, cur, len[1], u0);
            tail(merge, &xn_layers[XN_LAYERS - 1], skip, u0, len[0], sink);
        }
    }
}

int xn_forward(const float *x, int32_t n, float *probs)
{
    xn_source src;
    xn_sink sink;
    int c;
    if (n < 1 || n > XN_WINDOW) return -1;
    for (c = 0; c < XN_CHANNELS; c++) src.p1[c] = src.p2[c] = x + (size_t)c * n;
    src.len1 = src.n = n;
    normalisation(&src);
    sink.probs = probs;
    sink.st = NULL;
    sink.n = n;
    sink.slot0 = 0;
    network(&src, &sink);
    return 0;
}

/* --- streaming ---------------------------------------------------------------------------- */

void xn_set_thresholds(xn_stream *st, double p_threshold, double s_threshold)
{
    st->threshold[0] = p_threshold;
    st->threshold[1] = s_threshold;
    st->trigger_on[0] = (float)p_threshold;
    st->trigger_on[1] = (float)s_threshold;
    st->trigger_off[0] = (float)(p_threshold / 2.0);
    st->trigger_off[1] = (float)(s_threshold / 2.0);
}

void xn_stream_init(xn_stream *st, xn_pick_fn on_pick, void *user)
{
    memset(st, 0, sizeof *st);
    xn_set_thresholds(st, XN_P_THRESHOLD, XN_S_THRESHOLD);
    st->on_pick = on_pick;
    st->user = user;
}

void xn_set_first_index(xn_stream *st, int64_t first_index)
{
    int64_t phase = (-first_index) % XN_STEP;
    st->phase = phase < 0 ? phase + XN_STEP : phase;
}

static void emit(xn_stream *st, int phase, int64_t end)
{
    xn_trigger *tr = &st->trigger[phase];
    xn_pick pick;
    pick.peak = tr->peak;
    pick.start = tr->start;
    pick.end = end;
    pick.probability = tr->peak_value;
    pick.phase = phase ? 'S' : 'P';
    tr->on = 0;
    if (st->on_pick) st->on_pick(&pick, st->user);
}

/* ObsPy's trigger_onset as SeisBench calls it (on >= threshold, off below threshold / 2);
 * the comparison is in float32, as numpy compares a float32 curve with a Python float. */
static void trigger(xn_stream *st, int phase, int64_t pos, float v, int valid)
{
    xn_trigger *tr = &st->trigger[phase];
    const float on = st->trigger_on[phase], off = st->trigger_off[phase];
    if (tr->on) {
        if (valid && v >= off) {
            if (v > tr->peak_value) { tr->peak_value = v; tr->peak = pos; }
            return;
        }
        emit(st, phase, pos - 1);
    }
    if (valid && v >= on) {
        tr->on = 1;
        tr->start = tr->peak = pos;
        tr->peak_value = v;
    }
}

/* Samples before `upto` receive no further window: average them, trigger, free their slots. */
static void finalise(xn_stream *st, int64_t upto)
{
    int32_t slot = (int32_t)(st->final_upto % XN_WINDOW);
    int64_t pos;
    int ph;
    for (pos = st->final_upto; pos < upto; pos++) {
        const uint8_t count = st->count[slot];
        for (ph = 0; ph < 2; ph++) {
            trigger(st, ph, pos, count ? st->stack[ph][slot] / (float)count : 0.0f, count != 0);
            st->stack[ph][slot] = 0.0f;
        }
        st->count[slot] = 0;
        if (++slot == XN_WINDOW) slot = 0;
    }
    if (upto > st->final_upto) st->final_upto = upto;
}

static void run_window(xn_stream *st, int64_t offset, int32_t n)
{
    xn_source src;
    xn_sink sink;
    const int32_t start = (int32_t)(offset % XN_RING);
    int c;
    finalise(st, offset);
    for (c = 0; c < XN_CHANNELS; c++) {
        src.p1[c] = st->ring[c] + start;
        src.p2[c] = st->ring[c];
    }
    src.len1 = XN_RING - start < n ? XN_RING - start : n;
    src.n = n;
    normalisation(&src);
    sink.probs = NULL;
    sink.st = st;
    sink.n = n;
    sink.slot0 = (int32_t)(offset % XN_WINDOW);
    network(&src, &sink);
    st->windows++;
}

static int64_t min_total(const xn_stream *st)
{
    int64_t m = st->total[0];
    int c;
    for (c = 1; c < XN_CHANNELS; c++) m = st->total[c] < m ? st->total[c] : m;
    return m;
}

static void run_ready(xn_stream *st)
{
    const int64_t m = min_total(st);
    while (st->next_window + XN_WINDOW <= m) {
        run_window(st, st->next_window, XN_WINDOW);
        st->last_window = st->next_window;
        /* one window at the record start, then the grid: phase, phase + step, ... */
        st->next_window = (st->next_window == 0 && st->phase) ? st->phase : st->next_window + XN_STEP;
    }
}

static void copy_in(xn_stream *st, int channel, const float *x, int32_t n)
{
    int32_t pos = (int32_t)(st->total[channel] % XN_RING), i;
    float *ring = st->ring[channel];
    for (i = 0; i < n; i++) {
        ring[pos] = x[i];
        if (++pos == XN_RING) pos = 0;
    }
    st->total[channel] += n;
}

int32_t xn_push(xn_stream *st, int channel, const float *x, int32_t n)
{
    int64_t room;
    if (st->finished || channel < 0 || channel >= XN_CHANNELS || n < 0) return -1;
    room = min_total(st) + XN_MAX_LEAD - st->total[channel];
    if (n > room) n = (int32_t)room;
    if (n > 0) copy_in(st, channel, x, n);
    run_ready(st);
    return n;
}

int32_t xn_push_block(xn_stream *st, const float *data, int32_t n, int32_t channel_stride)
{
    int32_t done = 0;
    int c;
    if (st->finished || n < 0) return -1;
    while (done < n) {
        int64_t most = st->total[0], chunk;
        for (c = 1; c < XN_CHANNELS; c++) most = st->total[c] > most ? st->total[c] : most;
        chunk = min_total(st) + XN_MAX_LEAD - most;
        if (chunk > n - done) chunk = n - done;
        if (chunk <= 0) break;
        for (c = 0; c < XN_CHANNELS; c++) copy_in(st, c, data + (size_t)c * channel_stride + done, (int32_t)chunk);
        done += (int32_t)chunk;
        run_ready(st);
    }
    return done;
}

int64_t xn_finish(xn_stream *st)
{
    const int64_t n = min_total(st);
    int ph;
    if (st->finished) return n;
    run_ready(st);
    if (st->windows == 0) {
        if (n >= XN_MIN_SAMPLES) run_window(st, 0, (int32_t)n);
    } else if (st->last_window + XN_WINDOW < n) {
        run_window(st, n - XN_WINDOW, XN_WINDOW);  /* one more window aligned to the end */
    }
    if (st->windows) finalise(st, n);
    for (ph = 0; ph < 2; ph++)
        if (st->trigger[ph].on) emit(st, ph, n - 1);
    st->finished = 1;
    return n;
}
