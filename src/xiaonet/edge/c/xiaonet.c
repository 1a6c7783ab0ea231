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

/* Sum of f(i) for i < n in float: blocks of 64 summed first, then the block sums (error ~1e-6
 * relative even for long windows, and no double arithmetic, which a Cortex-M4F emulates). */
#define XN_BLOCK 64

/* The student's normalisation (xiaonet.models.model.normalize_window): constant channels to
 * zero, demean, divide by the peak over all channels, then by std + 1e-3 x the largest std.
 * Sums are taken relative to the first sample so that a DC offset costs no precision. */
static void normalisation(xn_source *s)
{
    float var[XN_CHANNELS];
    float peak = 0.0f, max_std = 0.0f;
    int c;
    int32_t i, j;
    for (c = 0; c < XN_CHANNELS; c++) {
        const float first = raw_at(s, c, 0);
        float mx = first, mn = first, level = 0.0f, dmax = 0.0f, sum = 0.0f, ss = 0.0f;
        for (i = 0; i < s->n; i += XN_BLOCK) {
            const int32_t end = i + XN_BLOCK < s->n ? i + XN_BLOCK : s->n;
            float part = 0.0f;
            for (j = i; j < end; j++) {
                const float v = raw_at(s, c, j);
                mx = v > mx ? v : mx;
                mn = v < mn ? v : mn;
                level = fabsf(v) > level ? fabsf(v) : level;
                part += v - first;
            }
            sum += part;
        }
        s->mean[c] = first + sum / (float)s->n;
        if (!(mx - mn > 1e-6f * level)) {  /* constant (or all-zero) channel: stays zero */
            var[c] = -1.0f;
            continue;
        }
        for (i = 0; i < s->n; i += XN_BLOCK) {
            const int32_t end = i + XN_BLOCK < s->n ? i + XN_BLOCK : s->n;
            float part = 0.0f;
            for (j = i; j < end; j++) {
                const float d = raw_at(s, c, j) - s->mean[c];
                dmax = fabsf(d) > dmax ? fabsf(d) : dmax;
                part += d * d;
            }
            ss += part;
        }
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

/* Output t of a convolution over channels a (ca of them) followed by b (skip connection). */
static inline xn_acc conv_at(const xn_layer *ly, const xn_act *a, int ca, const xn_act *b,
                             int32_t lin, int co, int32_t t)
{
    const int k = ly->k, cin = ly->cin;
    const int32_t base = t * ly->stride - ly->pad;
    const int kmin = base < 0 ? -base : 0;
    const int kmax = lin - base < k ? (int)(lin - base) : k;
    const xn_weight *w = ly->w + (size_t)co * cin * k;
    xn_acc acc = ly->b[co];
    int ci, kk;
    for (ci = 0; ci < cin; ci++, w += k) {
        const xn_act *x = ci < ca ? a + (size_t)ci * lin : b + (size_t)(ci - ca) * lin;
#if XN_INT8
        const int32_t zp = ly->in_zp;
        if (ci < ca && ly->skip_lut) {
            const uint8_t *lut = ly->skip_lut;
            for (kk = kmin; kk < kmax; kk++) acc += (int32_t)w[kk] * ((int32_t)lut[x[base + kk]] - zp);
        } else {
            for (kk = kmin; kk < kmax; kk++) acc += (int32_t)w[kk] * ((int32_t)x[base + kk] - zp);
        }
#else
        for (kk = kmin; kk < kmax; kk++) acc += w[kk] * x[base + kk];
#endif
    }
    return acc;
}

static void conv(const xn_layer *ly, const xn_act *a, int ca, const xn_act *b, int32_t lin, xn_act *out)
{
    const int32_t lout = conv_out_len(ly, lin);
    int co;
    int32_t t;
    for (co = 0; co < ly->cout; co++)
        for (t = 0; t < lout; t++)
            out[(size_t)co * lout + t] = XN_STORE(ly, conv_at(ly, a, ca, b, lin, co, t));
}

/* Transposed convolution: output t gathers inputs j with t = j * stride + kk - pad. */
static void conv_transposed(const xn_layer *ly, const xn_act *in, int32_t lin, xn_act *out)
{
    const int s = ly->stride, k = ly->k, cout = ly->cout;
    const int32_t lout = lin * s;
    int co, ci;
    int32_t t, j;
    for (co = 0; co < cout; co++) {
        for (t = 0; t < lout; t++) {
            int32_t jmax = (t + ly->pad) / s;
            int32_t jmin = t + ly->pad - k + 1 <= 0 ? 0 : (t + ly->pad - k + s) / s;
            xn_acc acc = ly->b[co];
            if (jmax > lin - 1) jmax = lin - 1;
            for (j = jmin; j <= jmax; j++) {
                const int kk = (int)(t + ly->pad - j * s);
                const xn_weight *w = ly->w + (size_t)co * k + kk;
                for (ci = 0; ci < ly->cin; ci++)
#if XN_INT8
                    acc += (int32_t)w[(size_t)ci * cout * k] * ((int32_t)in[(size_t)ci * lin + j] - ly->in_zp);
#else
                    acc += w[(size_t)ci * cout * k] * in[(size_t)ci * lin + j];
#endif
            }
            out[(size_t)co * lout + t] = XN_STORE(ly, acc);
        }
    }
}

/* The stem reads the raw window through the normalisation (zero beyond the record). */
static void stem(const xn_layer *ly, const xn_source *src, int32_t lpad, xn_act *out)
{
    const int32_t lout = conv_out_len(ly, lpad);
    const int k = ly->k;
    int co, ci, kk;
    int32_t t;
    for (t = 0; t < lout; t++) {
        const int32_t base = t * ly->stride - ly->pad;
#if XN_INT8
        int32_t x[XN_CHANNELS][XN_STEM_KERNEL];
#else
        float x[XN_CHANNELS][XN_STEM_KERNEL];
#endif
        for (ci = 0; ci < XN_CHANNELS; ci++)
            for (kk = 0; kk < k; kk++) {
                const int32_t i = base + kk;
                float v = (i >= 0 && i < src->n) ? (raw_at(src, ci, i) - src->mean[ci]) * src->gain[ci] : 0.0f;
#if XN_INT8
                x[ci][kk] = sat_u8((int32_t)rintf(v * ly->in_inv_scale) + ly->in_zp) - ly->in_zp;
#else
                x[ci][kk] = v;
#endif
            }
        for (co = 0; co < ly->cout; co++) {
            const xn_weight *w = ly->w + (size_t)co * XN_CHANNELS * k;
            xn_acc acc = ly->b[co];
            for (ci = 0; ci < XN_CHANNELS; ci++)
                for (kk = 0; kk < k; kk++) acc += w[ci * k + kk] * x[ci][kk];
            out[(size_t)co * lout + t] = XN_STORE(ly, acc);
        }
    }
}

/* --- the whole network ------------------------------------------------------------------- */

/* e^x for x <= 0 in float arithmetic only (Cody-Waite reduction, degree-6 polynomial,
 * relative error ~2e-7): the same bits on every IEEE-754 machine, so a microcontroller and a
 * PC pick identically even where int8 probabilities tie (libm expf differs in the last bit). */
static inline float xn_expf(float x)
{
    union { float f; int32_t i; } u;
    int32_t n;
    float r, p;
    if (x < -80.0f) return 0.0f;
    n = (int32_t)(x * 1.44269504f - 0.5f);  /* round to nearest for x <= 0 */
    r = x - (float)n * 0.693145752f - (float)n * 1.42860677e-6f;
    p = 1.0f + r * (1.0f + r * (0.5f + r * (1.66666672e-1f + r * (4.16666679e-2f
        + r * (8.33333377e-3f + r * 1.38888892e-3f)))));
    u.f = p;
    u.i = (int32_t)((uint32_t)u.i + ((uint32_t)n << 23));  /* p x 2^n */
    return u.f;
}

typedef struct {
    float *probs;      /* xn_forward: labels x n */
    xn_stream *st;     /* streaming: add P and S to the stack */
    int32_t n, slot0;  /* slot of the window's first sample in the stack */
} xn_sink;

static inline void sink_sample(const xn_sink *sink, int32_t pos, const float *z)
{
    float e[XN_LABELS], m = z[0], sum = 0.0f;
    int c;
    for (c = 1; c < XN_LABELS; c++) m = z[c] > m ? z[c] : m;
    for (c = 0; c < XN_LABELS; c++) { e[c] = xn_expf(z[c] - m); sum += e[c]; }
    if (sink->probs) {
        for (c = 0; c < XN_LABELS; c++) sink->probs[(size_t)c * sink->n + pos] = e[c] / sum;
    } else {
        int32_t slot = sink->slot0 + pos;
        if (slot >= XN_WINDOW) slot -= XN_WINDOW;
        sink->st->stack[0][slot] += e[XN_P_INDEX] / sum;
        sink->st->stack[1][slot] += e[XN_S_INDEX] / sum;
        sink->st->count[slot]++;
    }
}

/* Finest level: the merge convolution column by column, each column straight into the head
 * (a transposed convolution with kernel == stride) and the softmax: no full-rate buffers. */
static void tail(const xn_layer *merge, const xn_layer *head, const xn_act *skip, const xn_act *up,
                 int32_t l0, const xn_sink *sink)
{
    const int s = head->stride, w0 = merge->cout;
    int32_t t;
    int co, ci, kk, c;
    for (t = 0; t < l0 && t * s < sink->n; t++) {
        xn_act col[XN_MAX_WIDTH];
        for (co = 0; co < w0; co++) col[co] = XN_STORE(merge, conv_at(merge, skip, w0, up, l0, co, t));
        for (kk = 0; kk < s && t * s + kk < sink->n; kk++) {
            float z[XN_LABELS];
            for (c = 0; c < XN_LABELS; c++) {
                xn_acc acc = head->b[c];
                for (ci = 0; ci < w0; ci++)
#if XN_INT8
                    acc += (int32_t)head->w[((size_t)ci * XN_LABELS + c) * s + kk] * ((int32_t)col[ci] - head->in_zp);
                int32_t q = sat_u8((int32_t)rintf((float)acc * head->out_mult) + head->out_zp);
                z[c] = (float)(q - head->out_zp) * head->out_scale;
#else
                    acc += head->w[((size_t)ci * XN_LABELS + c) * s + kk] * col[ci];
                z[c] = acc;
#endif
            }
            sink_sample(sink, t * s + kk, z);
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
        st->next_window += XN_STEP;
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
    } else if (st->next_window - XN_STEP + XN_WINDOW < n) {
        run_window(st, n - XN_WINDOW, XN_WINDOW);  /* one more window aligned to the end */
    }
    if (st->windows) finalise(st, n);
    for (ph = 0; ph < 2; ph++)
        if (st->trigger[ph].on) emit(st, ph, n - 1);
    st->finished = 1;
    return n;
}
